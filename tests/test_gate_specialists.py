"""Gate specialists (agents/experiments/ablation.py, ``gate_specialists``): each scenario's gate has its scenario's
best rule (chosen on the tuning seeds) as expert 0, so holding expert 0 plays exactly the rule it is judged
against; the other experts are the other best rules and the best generalist rule, each once."""

from __future__ import annotations

import json

import numpy as np
import pytest

from agents.experiments import ablation
from agents.experiments.gate_choices import Always
from scaling_env.config import ConfigError


def _policy_file(tmp_path, name: str, target: float) -> str:
    path = tmp_path / f"{name}_{target}.yaml"
    path.write_text(f"policy: {name}\nparams: {{target_utilization: {target}}}\n")
    return str(path)


@pytest.fixture
def rules(tmp_path, monkeypatch):
    """Three scenarios: a's best rule kpa (0.9), b's hpa (0.8), c's kpa with a's setting; kpa@generalist (0.5)
    is the best one-setting rule."""
    files = {
        ("kpa@tuned", "a"): _policy_file(tmp_path, "kpa", 0.9),
        ("kpa@tuned", "c"): _policy_file(tmp_path, "kpa", 0.9),  # the same setting as a's: one expert
        ("hpa@tuned", "b"): _policy_file(tmp_path, "hpa", 0.8),
        ("kpa@generalist", "a"): _policy_file(tmp_path, "kpa", 0.5),
    }
    monkeypatch.setattr(ablation, "rule_file", lambda spec, s: files[(spec, s)])
    tuning = {
        ("a", "kpa@tuned"): -10.0,
        ("b", "hpa@tuned"): -11.0,
        ("c", "kpa@tuned"): -12.0,
        ("b", "kpa@tuned"): -30.0,
    } | {(s, "kpa@generalist"): -20.0 for s in "abc"}
    return files, tuning


def test_a_gate_specialists_expert_0_is_its_scenarios_best_rule_and_the_experts_are_distinct(rules):
    files, tuning = rules
    gs = ablation.GateSpecialists(hold=16, zero_bias=1.5, timesteps=160, set={"eval_freq": 10, "seed": 3})
    sets, chosen = ablation.gate_specialist_sets(gs, tuning, ["a", "b", "c"], ["a", "b"])
    assert sets["a"] == {
        "eval_freq": 10,
        "seed": 3,
        "residual": {
            "policy": files[("kpa@tuned", "a")],
            "max_offset": 0,
            "zero_bias": 1.5,
            # the generalist first, then the scenarios' best rules; a's own and c's (the same setting) left out
            "experts": [files[("kpa@generalist", "a")], files[("hpa@tuned", "b")]],
            "hold": 16,
        },
    }
    assert sets["b"]["residual"]["policy"] == files[("hpa@tuned", "b")]
    assert sets["b"]["residual"]["experts"] == [files[("kpa@generalist", "a")], files[("kpa@tuned", "a")]]
    assert chosen["b"] == {
        "policy": "hpa@tuned",
        "experts": [("kpa@generalist", files[("kpa@generalist", "a")]), ("kpa@tuned", files[("kpa@tuned", "a")])],
    }
    without = ablation.GateSpecialists(generalist=False)
    sets, _ = ablation.gate_specialist_sets(without, tuning, ["a", "b", "c"], ["b"])
    assert sets["b"]["residual"]["experts"] == [files[("kpa@tuned", "a")]]
    assert sets["b"]["residual"]["hold"] == 16 and sets["b"]["residual"]["zero_bias"] == 0.0  # the defaults


def test_a_gate_specialists_nearest_experts_are_its_scenarios_next_best_rules(rules, tmp_path, monkeypatch):
    files, tuning = rules
    more = {
        ("hpa@tuned", "a"): _policy_file(tmp_path, "hpa", 0.7),
        ("kpa@default", "a"): _policy_file(tmp_path, "kpa", 0.9),  # plays a's base: left out
        ("hpa@default", "a"): _policy_file(tmp_path, "hpa", 0.6),
    }
    monkeypatch.setattr(ablation, "rule_file", lambda spec, s: {**files, **more}[(spec, s)])
    # a's rules on the tuning seeds: kpa@tuned -10 (the base), kpa@default -10.5 (the base's setting), hpa@tuned
    # -11, kpa@generalist -20, hpa@default -25
    tuning = tuning | {("a", "hpa@tuned"): -11.0, ("a", "kpa@default"): -10.5, ("a", "hpa@default"): -25.0}
    one = ablation.GateSpecialists(nearest=1, generalist=False)
    sets, chosen = ablation.gate_specialist_sets(one, tuning, ["a", "b", "c"], ["a"])
    assert sets["a"]["residual"]["policy"] == files[("kpa@tuned", "a")]
    assert chosen["a"]["experts"] == [("hpa@tuned", more[("hpa@tuned", "a")])]
    two = ablation.GateSpecialists(nearest=2, generalist=False)
    sets, _ = ablation.gate_specialist_sets(two, tuning, ["a", "b", "c"], ["a"])
    assert sets["a"]["residual"]["experts"] == [more[("hpa@tuned", "a")], files[("kpa@generalist", "a")]]
    with_generalist = ablation.GateSpecialists(nearest=1)  # the generalist first, then the nearest one
    sets, _ = ablation.gate_specialist_sets(with_generalist, tuning, ["a", "b", "c"], ["a"])
    assert sets["a"]["residual"]["experts"] == [files[("kpa@generalist", "a")], more[("hpa@tuned", "a")]]


def test_a_gate_specialists_max_offset_lets_the_gate_move_its_experts_step(rules):
    files, tuning = rules
    sets, _ = ablation.gate_specialist_sets(
        ablation.GateSpecialists(hold=4, max_offset=4), tuning, ["a", "b", "c"], ["a"]
    )
    assert sets["a"]["residual"]["max_offset"] == 4 and sets["a"]["residual"]["hold"] == 4
    with pytest.raises(ValueError, match="max_offset"):
        ablation.GateSpecialists(max_offset=9)


def test_own_scenario_gate_specialists_train_on_their_evaluation_scenario(rules):
    files, tuning = rules
    own = ablation.GateSpecialists(own_scenario=True, set={"seed": 3})
    sets, _ = ablation.gate_specialist_sets(own, tuning, ["a", "b", "c"], ["a", "b"])
    assert sets["a"]["scenarios"] == ["a"] and sets["b"]["scenarios"] == ["b"]
    assert sets["b"]["residual"]["policy"] == files[("hpa@tuned", "b")] and sets["b"]["seed"] == 3
    sets, _ = ablation.gate_specialist_sets(ablation.GateSpecialists(), tuning, ["a", "b", "c"], ["a"])
    assert "scenarios" not in sets["a"]  # by default the specialist config's training family
    with pytest.raises(ValueError, match="scenarios contradicts own_scenario"):
        ablation.GateSpecialists(own_scenario=True, set={"scenarios": ["a"]})


def test_a_gate_specialists_residual_is_not_set_by_hand(tmp_path):
    with pytest.raises(ValueError, match="residual is made by the ablation"):
        ablation.GateSpecialists(set={"residual": {"policy": "kpa"}})
    path = tmp_path / "ablation.yaml"
    path.write_text("variants: [{name: v}]\ngate_specialists: {hold: 0}\n")
    with pytest.raises(ConfigError, match="gate_specialists.hold"):
        ablation.load_ablation_config(path)


def test_the_ablation_trains_gate_specialists_on_the_chosen_rules(rules, tmp_path, monkeypatch):
    files, tuning = rules
    trained: dict[str, tuple] = {}

    def fake_train(run_dir, base, sets, steps, base_only=False):
        trained[run_dir.name] = (base.name, sets, steps)
        timing = {"timesteps": steps, "env_steps": 16 * steps, "wall_s": 1.0, "cpu_s": 1.0}
        return {**timing, "load1_start": 0.5, "load1_end": 0.7}

    judged = {}

    def fake_judge(rules_, cand, label, tuning_, bound):
        judged["scenarios"] = ({r["scenario"] for r in rules_}, {r["scenario"] for r in cand})
        judged["label"] = label
        test = ablation.vd.paired_test(np.array([2.0, 2.1, 1.9, 2.0]), np.zeros(4))
        scen = [{"scenario": "b", "rule": "hpa@tuned", "test": test, "slo": 0.01, "rule_slo": 0.02}]
        cost = {"b": {"candidate": 1.25, "rule": 1.0}}
        return {
            **{"per_scenario": scen, "vs_generalist": scen, "overall": [], "generalist": "kpa@generalist"},
            **{"iqm": (1.0, 1.0, 1.0), "reward": -1.0, "slo": 0.0, "cost": cost},
        }

    monkeypatch.setattr(ablation, "train_variant", fake_train)
    monkeypatch.setattr(
        ablation, "evaluate_run", lambda run_dir, sc, label: [{"policy": label, "scenario": s} for s in sc]
    )
    monkeypatch.setattr(ablation, "rule_rows", lambda out, sc: [{"policy": "r", "scenario": s} for s in sc])
    monkeypatch.setattr(ablation, "rule_tuning", lambda out, r, sc: tuning)
    monkeypatch.setattr(ablation, "add_oracle_ratio", lambda rows: None)
    monkeypatch.setattr(ablation, "write_rows", lambda path, rows: None)
    monkeypatch.setattr(ablation, "judge", fake_judge)
    monkeypatch.setattr(ablation, "EVALUATION_SCENARIOS", ["a", "b", "c"])
    (tmp_path / "machine.json").write_text('{"cartpole_steps_s": 1.0}')
    folder = tmp_path / "specialists"
    folder.mkdir()
    for s in "abc":
        (folder / f"{s}.yaml").write_text("{}\n")
    cfg = ablation.AblationConfig(
        variants=[{"name": "v"}], specialists=folder, gate_specialists={"hold": 16, "timesteps": 1600}
    )
    text = ablation.run_ablation(
        cfg, tmp_path, only=["gate_specialists"], log=lambda *_: None, specialist_scenarios=["b"], bound_cache=None
    )
    name, sets, steps = trained["gate_specialist_b"]
    assert list(trained) == ["gate_specialist_b"] and name == "b.yaml" and steps == 100  # 1600 env steps / 16
    assert sets["residual"]["policy"] == files[("hpa@tuned", "b")]
    assert judged == {"scenarios": ({"b"}, {"b"}), "label": f"ppo:{tmp_path}/gate_specialists"}
    assert "- b: `hpa@tuned`; `kpa@generalist`" in text
    assert "| b | `hpa@tuned` | +2.0 [" in text and "| 1.00% / 2.00% | 1.25 / 1.00 | win |" in text
    assert "| `gate_specialists` | 1.6k" not in text and "| `gate_specialists` | 0.0M" in text  # env steps


@pytest.mark.parametrize("scenario,family", [("steady", "train_steady"), ("memory_pressure", "train_memory")])
def test_a_gate_specialist_holding_expert_0_plays_its_scenarios_tuned_rule_bit_for_bit(scenario, family):
    """On the training family and on the benchmark scenario, in evaluation (ResidualPolicy) and in training
    (ResidualVecEnv, hold 16: the rewards of a held choice summed), a gate that always chooses expert 0 plays the
    scenario's best rule alone, its other experts in shadow."""
    from agents.learned.residual import ResidualPolicy, ResidualVecEnv
    from agents.registry import make_policy
    from scaling_env.envs.sb3 import ServerlessScalingVecEnv
    from scaling_env.rollout import rollout
    from scaling_env.scenarios import load_scenario

    base = ablation.rule_file("kpa@tuned", scenario)
    experts = [ablation.rule_file("predictive@generalist", scenario), ablation.rule_file("hpa@tuned", "noisy_trace")]
    seeds = [5, 6]
    for name in (family, scenario):
        config = load_scenario(name).config
        ref = rollout(config, make_policy(base, config), seeds).metrics
        gate = ResidualPolicy(
            config,
            rule=make_policy(base, config),
            agent=Always(0),
            max_offset=0,
            experts=[make_policy(x, config) for x in experts],
            hold=16,
        )
        assert rollout(config, gate, seeds).metrics == ref
        shadow = rollout(config, make_policy(experts[0], config), seeds).metrics
        assert [m["reward"] for m in shadow] != [m["reward"] for m in ref]  # the experts differ from the base
    native = ServerlessScalingVecEnv(len(seeds), config)
    venv = ResidualVecEnv(native, base, 0, names=[scenario], experts=experts, hold=16)
    native.seed(seeds[0])
    venv.reset()
    totals = np.zeros(len(seeds))
    for _ in range(config.episode_steps // 16):
        _, rewards, _, _ = venv.step(np.zeros(len(seeds), dtype=np.int64))
        totals += rewards
    np.testing.assert_allclose(totals, [m["reward"] for m in ref], rtol=1e-5)


@pytest.mark.parametrize("shaped", [False, True])
def test_the_paired_baseline_subtracts_expert_0s_own_run_on_the_same_seeds(shaped):
    """residual.paired_base: holding expert 0 earns exactly 0 every step (same seeds, same draws, over an autoreset
    and with the shaping wrapper on both); following another expert earns its episode reward minus expert 0's,
    each as a plain rollout of that rule on those seeds gives it."""
    from agents.learned.residual import PairedBase, ResidualVecEnv
    from agents.learned.shaping import FlapPenalty
    from agents.registry import make_policy
    from scaling_env.envs.sb3 import ServerlessScalingVecEnv
    from scaling_env.rollout import rollout
    from scaling_env.scenarios import load_scenario

    scenario = "flash_crowd"
    config = load_scenario(scenario).config
    base = ablation.rule_file("predictive@tuned", scenario)
    other = ablation.rule_file("step_scaling@tuned", scenario)  # differs from it on every seed
    seeds = [11, 12, 13]
    wrap = (lambda env: FlapPenalty(env, 0.5, 0.5, 0.0)) if shaped else None

    def paired_env() -> tuple[ResidualVecEnv, int]:
        native = ServerlessScalingVecEnv(len(seeds), config)
        venv = ResidualVecEnv(
            native,
            base,
            0,
            venv=None if wrap is None else wrap(native),
            names=[scenario],
            experts=[other],
            hold=4,
            paired=PairedBase(native, base, [scenario], wrap),
        )
        venv.seed(seeds[0])  # as SB3 seeds it: the wrapper passes the clusters' seeds on to the copy
        venv.reset()
        return venv, config.episode_steps // 4

    venv, decisions = paired_env()
    for _ in range(2 * decisions):  # two episodes: the copy's rule starts afresh at the autoreset
        _, rewards, _, _ = venv.step(np.zeros(len(seeds), dtype=np.int64))
        assert rewards.tolist() == [0.0] * len(seeds)
    if shaped:
        return
    venv, decisions = paired_env()
    totals = np.zeros(len(seeds))
    for _ in range(decisions):
        _, rewards, dones, _ = venv.step(np.ones(len(seeds), dtype=np.int64))
        totals += rewards
    assert dones.all()
    own = [m["reward"] for m in rollout(config, make_policy(other, config), seeds).metrics]
    ref = [m["reward"] for m in rollout(config, make_policy(base, config), seeds).metrics]
    np.testing.assert_allclose(totals, np.subtract(own, ref), rtol=1e-5, atol=1e-3)
    assert np.abs(totals).min() > 0.1  # the two rules differ on every seed


def test_paired_base_reaches_the_training_env_only_when_asked(rules):
    from agents.experiments.train import make_training_env
    from agents.experiments.train_config import TrainConfig
    from scaling_env.scenarios import load_scenario

    gs = ablation.GateSpecialists(paired_base=True)
    _, tuning = rules
    sets, _ = ablation.gate_specialist_sets(gs, tuning, ["a", "b"], ["a"])
    assert sets["a"]["residual"]["paired_base"] is True
    plain, _ = ablation.gate_specialist_sets(ablation.GateSpecialists(), tuning, ["a", "b"], ["a"])
    assert "paired_base" not in plain["a"]["residual"]  # a run trained before the option keeps its config
    assert "sync" not in plain["a"]["residual"] and "sync" not in sets["a"]["residual"]
    synced, _ = ablation.gate_specialist_sets(ablation.GateSpecialists(sync=True), tuning, ["a", "b"], ["a"])
    assert synced["a"]["residual"]["sync"] is True
    scenarios = [("steady", load_scenario("steady").config)]
    for paired in (False, True):
        cfg = TrainConfig(
            scenarios=["steady"],
            n_envs=2,
            ppo={"n_steps": 8, "batch_size": 16},
            residual={"policy": "kpa", "max_offset": 0, "experts": ["hpa"], "paired_base": paired},
        )
        native, venv = make_training_env(cfg, scenarios)
        inner = venv
        while not hasattr(inner, "paired"):
            inner = inner.venv
        assert (inner.paired is not None) is paired
    # sim_threads reaches the copy too
    cfg = cfg.model_copy(update={"sim_threads": True})
    native, venv = make_training_env(cfg, scenarios)
    inner = venv
    while not hasattr(inner, "paired"):
        inner = inner.venv
    assert native.sims[0].parallel and inner.paired.env.sims[0].parallel


def test_an_arm_is_chosen_per_scenario_on_the_tuning_seeds_only(tmp_path, monkeypatch):
    from agents.experiments import pick_arm

    assert pick_arm.choose({"h16": -30.0, "h4": -29.5}) == "h4"
    assert pick_arm.choose({"h16": -30.0, "h4": -30.0}) == "h16"  # the first listed on a tie
    arms = [tmp_path / "h16", tmp_path / "h4"]
    for arm in arms:
        (arm / "tuning_rewards.json").parent.mkdir()
        (arm / "tuning_rewards.json").write_text(f'{{"from": "{arm.name}"}}')
        for s in "ab":
            run = arm / "runs" / f"gate_specialist_{s}"
            run.mkdir(parents=True)
            (run / "final_model.zip").write_text(f"{arm.name} {s}")
    rewards = {("h16", "a"): -10.0, ("h4", "a"): -12.0, ("h16", "b"): -20.0, ("h4", "b"): -19.0}
    seen = []

    def fake_reward(run_dir, scenario, seeds):
        seen.append(seeds)
        return rewards[(run_dir.parent.parent.name, scenario)]

    monkeypatch.setattr(pick_arm, "tuning_reward", fake_reward)
    out = tmp_path / "chosen"
    with pytest.raises(ConfigError, match="tuning seeds"):
        pick_arm.pick_arms(out, arms, ["a", "b"], "gate_specialist", [0, 1000])
    with pytest.raises(ConfigError, match="no trained gate_specialist_c"):
        pick_arm.pick_arms(out, arms, ["c"], "gate_specialist", [0, 1])
    selection = pick_arm.pick_arms(out, arms, ["a", "b"], "gate_specialist", list(range(20)), log=lambda *_: None)
    assert {s: x["chosen"] for s, x in selection.items()} == {"a": str(arms[0]), "b": str(arms[1])}
    assert seen == [list(range(20))] * 4
    assert (out / "runs/gate_specialist_a/final_model.zip").read_text() == "h16 a"
    assert (out / "runs/gate_specialist_b/final_model.zip").read_text() == "h4 b"
    assert (out / "tuning_rewards.json").read_text() == '{"from": "h16"}'  # the rules' cache, from the first arm
    assert json.loads((out / "selection.json").read_text())["scenarios"]["b"]["tuning_rewards"][str(arms[1])] == -19.0


def test_a_folder_assembled_by_pick_arm_keeps_each_runs_experts_but_checks_its_base(tmp_path):
    run = tmp_path / "runs" / "gate_specialist_a"
    run.mkdir(parents=True)
    experts = ["configs/policies/tuned/a/kpa.yaml", "configs/policies/tuned/generalist/predictive.yaml"]
    run.joinpath("config.yaml").write_text(
        json.dumps({"residual": {"policy": "configs/policies/tuned/a/hpa.yaml", "experts": experts}})
    )
    base = "configs/policies/tuned/a/hpa.yaml"
    other = {"residual": {"policy": base, "experts": ["configs/policies/tuned/b/x.yaml"]}}
    assert "trained on the rules" in ablation.stale_rules(run, other)
    assert ablation.stale_rules(run, other, base_only=True) is None  # an arm's own experts
    rebased = {"residual": {**other["residual"], "policy": "configs/policies/tuned/a/kpa.yaml"}}
    assert "trained on the rules" in ablation.stale_rules(run, rebased, base_only=True)  # the base must agree
    assert ablation.run_experts(run) == [("kpa@tuned", experts[0]), ("predictive@generalist", experts[1])]
