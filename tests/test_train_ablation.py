"""The ablation command's config and its judging of a candidate (synthetic episodes with known differences)."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from agents.experiments import ablation
from scaling_env.config import ConfigError

SCENARIOS = ["a", "b"]
SEEDS = list(range(1000, 1010))


def rows(policy: str, offset: float, slo: float = 0.01, cost: float = 1.0, noise: float = 0.5) -> list[dict]:
    rng = np.random.default_rng(zlib.crc32(policy.encode()))  # fixed noise per policy
    return [
        {
            "policy": policy,
            "scenario": s,
            "seed": k,
            "reward": -50.0 + offset + noise * rng.standard_normal(),
            "slo_violation_share": slo,
            "cost_usd": cost,
        }
        for s in SCENARIOS
        for k in SEEDS
    ]


def test_judge_finds_known_wins_losses_and_cost_ratios():
    rules = rows("oracle", 10.0, cost=1.0) + rows("hpa@tuned", 0.0, cost=1.2) + rows("hpa@generalist", -5.0, cost=1.3)
    tuning = {(s, p): v for s in SCENARIOS for p, v in (("hpa@tuned", -50.0), ("hpa@generalist", -55.0))}
    # better than both rules by 2 on a, worse by 3 on b (before the generalist's -5)
    cand = [dict(r, reward=r["reward"] + (2.0 if r["scenario"] == "a" else -3.0)) for r in rows("ppo:x", 0.0, cost=1.1)]
    bound = {(s, k): 0.5 for s in SCENARIOS for k in SEEDS}  # the hindsight planner's cost, not the oracle's
    out = ablation.judge(rules, cand, "ppo:x", tuning, bound)
    per = {x["scenario"]: x for x in out["per_scenario"]}
    assert per["a"]["rule"] == "hpa@tuned"
    assert per["a"]["test"].mean_diff == pytest.approx(2.0, abs=0.6) and per["a"]["test"].p_value < 0.05
    assert per["b"]["test"].mean_diff == pytest.approx(-3.0, abs=0.6) and per["b"]["test"].p_value < 0.05
    assert out["generalist"] == "hpa@generalist"
    gen = {x["scenario"]: x["test"].mean_diff for x in out["vs_generalist"]}
    assert gen["a"] == pytest.approx(7.0, abs=0.6) and gen["b"] == pytest.approx(2.0, abs=0.6)
    assert out["cost"]["a"] == {"candidate": pytest.approx(2.2), "rule": pytest.approx(2.4)}
    text = ablation.markdown([{"variant": "v", **out}], {}, SCENARIOS, {})
    assert "| `v` |" in text and "1/0/1" in text and "2/0/0" in text  # W/T/L vs per-scenario and generalist


def test_a_win_needs_an_slo_share_not_higher():
    rules = rows("oracle", 10.0) + rows("hpa@tuned", 0.0, slo=0.01)
    tuning = {(s, "hpa@tuned"): -50.0 for s in SCENARIOS}
    bound = {(s, k): 1.0 for s in SCENARIOS for k in SEEDS}
    out = ablation.judge(rules, rows("ppo:x", 3.0, slo=0.02), "ppo:x", tuning, bound)
    assert "0/2/0" in ablation.markdown([{"variant": "v", **out}], {}, SCENARIOS, {})


def test_bad_ablation_configs_are_named(tmp_path):
    path = tmp_path / "a.yaml"
    path.write_text("variants: [{name: a, set: {}}, {name: a}]\n")
    with pytest.raises(ConfigError, match="repeated names"):
        ablation.load_ablation_config(path)
    path.write_text("variants: [{name: 'a b'}]\ntotal_timesteps: 0\n")
    with pytest.raises(ConfigError, match="total_timesteps") as exc:
        ablation.load_ablation_config(path)
    assert "variants.0.name" in str(exc.value)
    assert [v.name for v in ablation.load_ablation_config(ablation.Path("configs/train/ablation.yaml")).variants][
        0
    ] == ("baseline")


def test_a_variants_seeds_add_one_variant_per_training_seed(tmp_path):
    path = tmp_path / "a.yaml"
    path.write_text("variants: [{name: g, set: {hold: 4}, seeds: [400, 200], total_timesteps: 8}, {name: h}]\n")
    got = [(v.name, v.set, v.total_timesteps) for v in ablation.load_ablation_config(path).variants]
    assert got == [
        ("g", {"hold": 4}, 8),
        ("g_seed400", {"hold": 4, "seed": 400}, 8),
        ("g_seed200", {"hold": 4, "seed": 200}, 8),
        ("h", {}, None),
    ]
    path.write_text("variants: [{name: g, seeds: [200, 200]}]\n")
    with pytest.raises(ConfigError, match=r"variants.0.seeds: Value error, repeated seeds \(got \[200, 200\]\)"):
        ablation.load_ablation_config(path)
    path.write_text("variants: [{name: g, seeds: [200]}, {name: g_seed200}]\n")
    with pytest.raises(ConfigError, match="repeated names"):
        ablation.load_ablation_config(path)
    for bad, message in [("[true]", "variants.0.seeds.0"), ("[-1]", "variants.0.seeds.0"), ('"x"', "seeds")]:
        path.write_text(f"variants: [{{name: g, seeds: {bad}}}]\n")
        with pytest.raises(ConfigError, match=message):
            ablation.load_ablation_config(path)
    path.write_text("variants: [{name: g, set: {seed: 7}, seeds: [7]}]\n")
    with pytest.raises(ConfigError, match="the variant's own seed"):
        ablation.load_ablation_config(path)


def test_the_bound_comes_from_the_planner_cache_or_the_command_is_named(tmp_path, monkeypatch):
    from agents.experiments import bound as bd

    cache = tmp_path / "cache.json"
    with pytest.raises(ConfigError, match="perf/bench_planner.py --scenarios steady"):
        ablation.bound_rows(["steady"], cache)
    from scaling_env.scenarios import load_scenario

    config = load_scenario("steady").config
    key = bd.cache_key("steady", config, bd.planner_params(config), bd.code_version())
    bd.store(cache, key, [{"seed": s, "reward": -1.0, "cost_usd": 0.25 + s} for s in ablation.SEEDS], 1.0)
    rows = ablation.bound_rows(["steady"], cache)
    assert [(r["policy"], r["seed"], r["cost_usd"]) for r in rows[:2]] == [
        ("hindsight", 1000, 1000.25),
        ("hindsight", 1001, 1001.25),
    ]
    # another planner variant is keyed by its own parameters: the bound's entry is not the sampled planner's
    with pytest.raises(ConfigError, match="perf/bench_planner.py --bound planner --scenarios steady"):
        ablation.bound_rows(["steady"], cache, "planner")
    key = bd.cache_key("steady", config, bd.planner_params(config, "planner"), bd.code_version())
    bd.store(cache, key, [{"seed": s, "reward": -2.0, "cost_usd": 0.5} for s in ablation.SEEDS], 1.0)
    rows = ablation.bound_rows(["steady"], cache, "planner")
    assert {(r["policy"], r["reward"]) for r in rows} == {("planner", -2.0)}
    assert {r["policy"] for r in ablation.bound_rows(["steady"], cache)} == {"hindsight"}


# ------------------------------------------------------------------------------------------ residual specialists
def test_the_residual_specialists_base_rule_is_chosen_on_the_tuning_seeds():
    tuning = {("a", "hpa@tuned"): -50.0, ("a", "kpa@tuned"): -49.0, ("b", "hpa@tuned"): -40.0, ("b", "kpa"): -41.0}
    assert (ablation.best_rule(tuning, "a"), ablation.best_rule(tuning, "b")) == ("kpa@tuned", "hpa@tuned")
    with pytest.raises(ConfigError, match="scenario c"):
        ablation.best_rule(tuning, "c")
    # a @tuned setting is the benchmark scenario's file, readable on its training family; other specs stay
    assert ablation.rule_file("hpa@tuned", "steady") == "configs/policies/tuned/steady/hpa.yaml"
    assert ablation.rule_file("predictive@generalist", "steady") == "configs/policies/tuned/generalist/predictive.yaml"
    assert ablation.rule_file("static", "steady") == "static"


def test_a_zero_correction_residual_specialist_is_its_scenarios_tuned_rule_bit_for_bit():
    """On the specialist's training family (no tuned files of its own) the residual runs the benchmark scenario's
    tuned rule; with zero correction it plays exactly that rule."""
    from test_learned_residual import Zero

    from agents.base import PolicyConfigError
    from agents.learned.residual import ResidualPolicy, ResidualVecEnv
    from agents.registry import make_policy
    from scaling_env.envs.sb3 import ServerlessScalingVecEnv
    from scaling_env.rollout import rollout
    from scaling_env.scenarios import load_scenario

    spec, family = "hpa@tuned", load_scenario("train_steady")
    with pytest.raises(PolicyConfigError, match="train_steady"):  # the spec alone names the family's file
        ResidualVecEnv(ServerlessScalingVecEnv(2, family.config), spec, 2, names=[family.name])
    path = ablation.rule_file(spec, "steady")
    seeds = [3, 4]
    ref = rollout(family.config, make_policy(spec, family.config, scenario="steady"), seeds).metrics
    policy = ResidualPolicy(family.config, rule=make_policy(path, family.config), agent=Zero(2), max_offset=2)
    assert rollout(family.config, policy, seeds).metrics == ref
    base = ServerlessScalingVecEnv(len(seeds), family.config)
    venv = ResidualVecEnv(base, path, 2, names=[family.name])
    base.seed(seeds[0])
    venv.reset()
    totals = np.zeros(len(seeds))
    for _ in range(family.config.episode_steps):
        venv.step(np.full(len(seeds), 2))
        totals += base.step_rewards
    assert totals.tolist() == [m["reward"] for m in ref]


def test_the_ablation_trains_residual_specialists_on_the_chosen_rules(tmp_path, monkeypatch):
    trained: dict[str, tuple] = {}

    def fake_train(run_dir, base, sets, steps, base_only=False):
        trained[run_dir.name] = (base.name, sets, steps)
        return {"timesteps": steps, "wall_s": 1.0, "cpu_s": 1.0, "load1_start": 0.5, "load1_end": 0.5}

    def fake_eval(run_dir, scenarios, label):
        return [dict(r, policy=label) for r in rows("ppo:x", 2.0) if r["scenario"] in scenarios]

    rules = rows("oracle", 10.0) + rows("hpa@tuned", 0.0) + rows("kpa@tuned", -1.0)
    tuning = {("a", "hpa@tuned"): -50.0, ("a", "kpa@tuned"): -49.0, ("b", "hpa@tuned"): -40.0, ("b", "kpa@tuned"): -45}
    monkeypatch.setattr(ablation, "train_variant", fake_train)
    monkeypatch.setattr(ablation, "evaluate_run", fake_eval)
    monkeypatch.setattr(ablation, "rule_rows", lambda out, sc: rules)
    monkeypatch.setattr(ablation, "rule_tuning", lambda out, r, sc: tuning)
    monkeypatch.setattr(ablation, "bound_rows", lambda sc, cache: [])
    monkeypatch.setattr(ablation, "EVALUATION_SCENARIOS", SCENARIOS)
    monkeypatch.setattr(ablation, "rule_file", lambda spec, s: f"tuned/{s}/{spec}.yaml")
    (tmp_path / "machine.json").write_text('{"cartpole_steps_s": 1.0}')
    folder = tmp_path / "specialists"
    folder.mkdir()
    for s in SCENARIOS:
        (folder / f"{s}.yaml").write_text("{}\n")
    cfg = ablation.AblationConfig(
        variants=[{"name": "v"}],
        specialists=folder,
        residual_specialists={"max_offset": 1, "zero_bias": 2.0, "timesteps": 7},
    )
    monkeypatch.setattr(ablation, "judge", lambda r, c, label, t, b: _fake_judge(r, c, label))
    text = ablation.run_ablation(
        cfg, tmp_path, only=["residual_specialists"], log=lambda *_: None, specialist_scenarios=["b"]
    )
    assert trained == {
        "residual_specialist_b": (
            "b.yaml",
            {"residual": {"policy": "tuned/b/hpa@tuned.yaml", "max_offset": 1, "zero_bias": 2.0}},
            7,
        )
    }
    assert "`residual_specialists` correct: b: `hpa@tuned`" in text


def _fake_judge(rules: list[dict], cand: list[dict], label: str) -> dict:
    # the residual specialists are judged on the scenarios trained only
    assert {r["scenario"] for r in rules} == {r["scenario"] for r in cand} == {"b"}
    assert label.endswith("/residual_specialists")
    test = ablation.vd.paired_test(np.ones(3), np.zeros(3))
    scen = [{"scenario": "b", "rule": "hpa@tuned", "test": test, "slo": 0.0, "rule_slo": 0.0}]
    return {
        "per_scenario": scen,
        "vs_generalist": scen,
        "overall": [],
        "generalist": "hpa@generalist",
        "iqm": (1.0, 1.0, 1.0),
        "reward": -1.0,
        "slo": 0.0,
        "cost": {"b": {"candidate": 1.0, "rule": 1.0}},
    }


# ------------------------------------------------------------------------------------------ rules chosen by code
def test_the_best_generalist_is_the_best_one_setting_rule_on_the_tuning_seeds():
    # kpa@tuned is best on both scenarios but has per-scenario settings; kpa@generalist has the best mean of the rest
    tuning = {
        ("a", "kpa@tuned"): -10.0,
        ("b", "kpa@tuned"): -10.0,
        ("a", "kpa@generalist"): -30.0,
        ("b", "kpa@generalist"): -20.0,  # mean -25
        ("a", "predictive@generalist"): -20.0,
        ("b", "predictive@generalist"): -31.0,  # mean -25.5: best on a, not over both
        ("a", "hpa"): -40.0,  # no reward on b: not a candidate
    }
    assert ablation.best_generalist(tuning, SCENARIOS) == "kpa@generalist"
    with pytest.raises(ConfigError, match="one-setting rule"):
        ablation.best_generalist({("a", "kpa@tuned"): -1.0, ("b", "kpa@tuned"): -1.0}, SCENARIOS)


def test_best_generalist_and_auto_experts_are_resolved_from_the_tuning_seeds(tmp_path, monkeypatch):
    def policy_file(name: str, target: float) -> str:
        path = tmp_path / f"{name}_{target}.yaml"
        path.write_text(f"policy: {name}\nparams: {{target_utilization: {target}}}\n")
        return str(path)

    files = {
        ("kpa@generalist", "a"): policy_file("kpa", 0.4),
        ("kpa@generalist", "b"): policy_file("kpa", 0.4),
        ("kpa@generalist", "c"): policy_file("kpa", 0.4),
        ("hpa@tuned", "a"): policy_file("hpa", 0.9),
        ("hpa@tuned", "b"): policy_file("hpa", 0.9),  # the same setting as a's: one expert for both
        ("hpa@tuned", "c"): policy_file("hpa", 0.5),
    }
    monkeypatch.setattr(ablation, "rule_file", lambda spec, s: files[(spec, s)])
    scenarios = ["a", "b", "c"]
    tuning = {(s, "kpa@generalist"): -20.0 for s in scenarios} | {(s, "hpa@tuned"): -10.0 for s in "ab"}
    tuning[("c", "hpa@tuned")] = -30.0  # on c the generalist itself is best: expert 0, no new expert
    sets = {"seed": 3, "residual": {"policy": "best_generalist", "max_offset": 0, "experts": "auto"}}
    resolved, chosen = ablation.resolve_rules(sets, tuning, scenarios)
    assert resolved == {
        "seed": 3,
        "residual": {"policy": files[("kpa@generalist", "a")], "max_offset": 0, "experts": [files[("hpa@tuned", "a")]]},
    }
    assert chosen == {"policy": "kpa@generalist", "experts": [("hpa@tuned", files[("hpa@tuned", "a")], ["a", "b"])]}
    assert sets["residual"]["policy"] == "best_generalist"  # the variant itself is not changed
    # a named rule stays as it is; only "auto" experts are chosen
    named = {"residual": {"policy": "hpa", "experts": "auto"}}
    resolved, chosen = ablation.resolve_rules(named, tuning, scenarios)
    assert resolved["residual"]["policy"] == "hpa" and "policy" not in chosen
    assert resolved["residual"]["experts"] == [files[("hpa@tuned", "a")], files[("kpa@generalist", "c")]]
    # no experts asked for: none added
    resolved, chosen = ablation.resolve_rules({"residual": {"policy": "best_generalist"}}, tuning, scenarios)
    assert resolved == {"residual": {"policy": files[("kpa@generalist", "a")]}}
    assert chosen == {"policy": "kpa@generalist"}
    plain = {"residual": {"policy": "hpa", "experts": ["kpa"]}}
    assert ablation.resolve_rules(plain, tuning, scenarios) == (plain, None)


@pytest.fixture
def fake_rule_files(monkeypatch):
    """A one-setting rule has one file, a @tuned rule one per scenario; a spec and its file play the same rule; a
    file plays its (policy, params), a spec that is not a file is only itself (as ablation.rule_identity)."""
    monkeypatch.setattr(
        ablation, "rule_file", lambda spec, s: f"generalist/{spec}.yaml" if "@generalist" in spec else f"{s}/{spec}"
    )
    monkeypatch.setattr(
        ablation,
        "rule_identity",
        lambda path: ("file", path.removeprefix("generalist/").removesuffix(".yaml")) if "/" in path else (path, ""),
    )


def test_auto_at_slo_experts_earn_more_at_no_higher_slo_share_than_the_policy(fake_rule_files):
    """Per scenario the best tuning reward among rules whose tuning SLO share is at most the generalist rule's."""
    scenarios = ["a", "b", "c"]
    # (reward, SLO share) on the tuning seeds; kpa@generalist is the best one-setting rule (mean -20)
    cells = {
        ("a", "kpa@generalist"): (-20.0, 0.02),
        ("b", "kpa@generalist"): (-20.0, 0.01),
        ("c", "kpa@generalist"): (-20.0, 0.03),
        ("a", "hpa@generalist"): (-25.0, 0.00),
        ("b", "hpa@generalist"): (-25.0, 0.00),
        ("c", "hpa@generalist"): (-25.0, 0.00),
        ("a", "kpa@tuned"): (-10.0, 0.05),  # a's best reward, at a higher SLO share: not chosen
        ("a", "hpa@tuned"): (-15.0, 0.02),  # a's best at the generalist's share (equal counts): chosen
        ("b", "kpa@tuned"): (-10.0, 0.005),  # b's best reward is also below the share: chosen, as by "auto"
        ("c", "kpa@tuned"): (-5.0, 0.04),  # c: nothing earns more at 3 % or less: the generalist (no expert)
    }
    tuning = {k: v[0] for k, v in cells.items()}
    slo = {k: v[1] for k, v in cells.items()}
    sets = {"residual": {"policy": "best_generalist", "max_offset": 0, "experts": "auto_at_slo"}}
    resolved, chosen = ablation.resolve_rules(sets, tuning, scenarios, slo)
    assert chosen == {
        "policy": "kpa@generalist",
        "experts": [("hpa@tuned", "a/hpa@tuned", ["a"]), ("kpa@tuned", "b/kpa@tuned", ["b"])],
        "at_slo": True,
    }
    assert resolved["residual"] == {
        "policy": "generalist/kpa@generalist.yaml",
        "max_offset": 0,
        "experts": ["a/hpa@tuned", "b/kpa@tuned"],
    }
    # "auto" on the same rewards takes a's and c's best reward whatever their SLO share
    auto = {"residual": {"policy": "best_generalist", "max_offset": 0, "experts": "auto"}}
    assert [e[0] for e in ablation.resolve_rules(auto, tuning, scenarios)[1]["experts"]] == ["kpa@tuned"] * 3
    # the reference is residual.policy when it is named; a rule without tuning SLO shares is refused by name
    named = {"residual": {"policy": "hpa@generalist", "max_offset": 0, "experts": "auto_at_slo"}}
    # (hpa@generalist at 0 %: nothing else qualifies, and its own file is not a second expert)
    assert ablation.resolve_rules(named, tuning, scenarios, slo) == (
        {"residual": {**named["residual"], "experts": []}},
        {"experts": [], "at_slo": True},
    )
    slo[("b", "hpa@tuned")], tuning[("b", "hpa@tuned")] = 0.0, -24.0
    assert ablation.resolve_rules(named, tuning, scenarios, slo)[1] == {
        "experts": [("hpa@tuned", "b/hpa@tuned", ["b"])],
        "at_slo": True,
    }
    with pytest.raises(ConfigError, match="'hpa'.*tuning seeds of a"):
        ablation.resolve_rules({"residual": {"policy": "hpa", "experts": "auto_at_slo"}}, tuning, scenarios, slo)
    with pytest.raises(ConfigError, match="SLO shares"):
        ablation.resolve_rules(sets, tuning, scenarios)
    # no policy: the training config's default rule is the reference
    with pytest.raises(ConfigError, match="'predictive@generalist'.*tuning seeds of a"):
        ablation.resolve_rules({"residual": {"max_offset": 0, "experts": "auto_at_slo"}}, tuning, scenarios, slo)
    del slo[("a", "kpa@tuned")]  # a hand-copied cache that does not match the tuning rewards
    with pytest.raises(ConfigError, match="tuning_slo.json has no SLO share of kpa@tuned on a"):
        ablation.resolve_rules(sets, tuning, scenarios, slo)


def test_auto_at_slo_robust_adds_a_rule_with_a_significantly_lower_slo_share(fake_rule_files):
    """auto_at_slo_robust: auto_at_slo's experts, plus per scenario the best rule that beats the policy by a paired
    test on the tuning seeds (more reward, p < 0.05) with the whole 95 % CI of its SLO-share difference below 0."""
    scenarios = ["a", "b"]
    noise = np.array([0.5, -0.5, 0.25, -0.25, 0.0, 0.1, -0.1, 0.3, -0.3, 0.0])  # per-seed spread, mean 0

    def cell(reward: float, slo: float, slo_noise: float = 0.002) -> dict[str, list[float]]:
        return {"reward": list(reward + noise), "slo_violation_share": list(slo + slo_noise * noise / 0.5)}

    per_seed = {
        ("a", "kpa@generalist"): cell(-20.0, 0.020, 0.0),
        ("b", "kpa@generalist"): cell(-20.0, 0.020, 0.0),
        # a: hpa@tuned earns most at a share lower by a hair (auto_at_slo's choice, not significant);
        # kpa@tuned earns less at a share lower by 0.01 (significant): both are experts
        ("a", "hpa@tuned"): cell(-10.0, 0.0199),
        ("a", "kpa@tuned"): cell(-12.0, 0.010),
        ("a", "step@tuned"): cell(-11.0, 0.030),  # more reward, higher share: neither
        ("a", "tt@tuned"): cell(-14.0, 0.008),  # robust too, but earns less than kpa@tuned: not chosen
        ("b", "cheap@tuned"): cell(-30.0, 0.005),  # a much lower share but less reward (p < 0.05): not robust
        # b: significantly lower share but not more reward (p >= 0.05): no robust expert; hpa@tuned as auto_at_slo
        ("b", "hpa@tuned"): cell(-15.0, 0.0199),
        ("b", "kpa@tuned"): {"reward": list(-20.0 + 3 * noise[::-1] + 0.05), "slo_violation_share": [0.0] * 10},
    }
    tuning = {k: float(np.mean(v["reward"])) for k, v in per_seed.items()}
    slo = {k: float(np.mean(v["slo_violation_share"])) for k, v in per_seed.items()}
    sets = {"residual": {"policy": "best_generalist", "max_offset": 0, "experts": "auto_at_slo_robust"}}
    resolved, chosen = ablation.resolve_rules(sets, tuning, scenarios, slo, per_seed)
    assert chosen == {
        "policy": "kpa@generalist",
        "experts": [
            ("hpa@tuned", "a/hpa@tuned", ["a"]),
            ("kpa@tuned", "a/kpa@tuned", ["a"]),
            ("hpa@tuned", "b/hpa@tuned", ["b"]),
        ],
        "at_slo": True,
        "robust": {"a": "kpa@tuned"},
    }
    assert resolved["residual"]["experts"] == ["a/hpa@tuned", "a/kpa@tuned", "b/hpa@tuned"]
    # the report names the robust pick as such
    rules = rows("oracle", 10.0) + rows("hpa@tuned", 0.0)
    out = ablation.judge(rules, rows("ppo:x", 0.0), "ppo:x", {(x, "hpa@tuned"): -50.0 for x in SCENARIOS}, {})
    text = ablation.markdown([{"variant": "v", **out, "chosen": chosen}], {}, SCENARIOS, {})
    assert "2: `kpa@tuned` (chosen at no higher SLO share than expert 0 on a)" in text
    assert "the best with more reward at a significantly lower SLO share (paired tests): a: `kpa@tuned`" in text
    # auto_at_slo on the same numbers: without a's robust expert
    at_slo = {"residual": {**sets["residual"], "experts": "auto_at_slo"}}
    assert [e[1] for e in ablation.resolve_rules(at_slo, tuning, scenarios, slo)[1]["experts"]] == [
        "a/hpa@tuned",
        "b/hpa@tuned",
    ]
    # the robust pick is also the at-SLO pick: one expert, named for both
    per_seed[("a", "kpa@tuned")] = cell(-9.0, 0.010)
    tuning[("a", "kpa@tuned")], slo[("a", "kpa@tuned")] = (
        -9.0,
        float(np.mean(per_seed[("a", "kpa@tuned")]["slo_violation_share"])),
    )
    _, chosen = ablation.resolve_rules(sets, tuning, scenarios, slo, per_seed)
    assert chosen["experts"][0] == ("kpa@tuned", "a/kpa@tuned", ["a"]) and len(chosen["experts"]) == 2
    assert chosen["robust"] == {"a": "kpa@tuned"}
    with pytest.raises(ConfigError, match="episodes per tuning seed"):
        ablation.resolve_rules(sets, tuning, scenarios, slo)
    with pytest.raises(ConfigError, match="'hpa'.*no episodes on the tuning seeds of a"):
        ablation.best_rule_robust(per_seed, tuning, "a", "hpa")
    with pytest.raises(ConfigError, match="tuning_seeds.json has no episodes of step@tuned on a"):
        ablation.best_rule_robust(
            {k: v for k, v in per_seed.items() if k != ("a", "step@tuned")}, tuning, "a", "kpa@generalist"
        )


def test_the_rules_per_seed_episodes_match_their_means_and_are_cached(tmp_path, monkeypatch):
    from agents.registry import make_policy
    from scaling_env.rollout import rollout
    from scaling_env.scenarios import load_scenario

    sc = load_scenario("flash_crowd")
    run = rollout(sc.config, make_policy("kpa@generalist", sc.config, scenario=sc.name), [0, 1], parallel=False)
    got = ablation.vd.tuning_episodes(["kpa@generalist"], ["flash_crowd"], [0, 1], ("reward", "slo_violation_share"))
    assert got == {
        ("flash_crowd", "kpa@generalist"): {
            "reward": [m["reward"] for m in run.metrics],
            "slo_violation_share": [m["slo_violation_share"] for m in run.metrics],
        }
    }
    calls = []

    def fake(specs, scenarios, seeds, metrics=("reward",), traces_dir=None):
        calls.append((specs, metrics, seeds))
        return {(s, p): {m: [0.5] * len(seeds) for m in metrics} for s in scenarios for p in specs}

    monkeypatch.setattr(ablation.vd, "tuning_episodes", fake)
    tuning = {("a", "kpa@generalist"): -1.0, ("a", "hpa@tuned"): -2.0, ("b", "kpa@generalist"): -3.0}
    per_seed = ablation.rule_tuning_seeds(tmp_path, tuning, ["a", "b"])
    assert calls == [(["kpa@generalist", "hpa@tuned"], ("reward", "slo_violation_share"), ablation.TUNING_SEEDS)]
    assert ablation.rule_tuning_seeds(tmp_path, tuning, ["a", "b"]) == per_seed and len(calls) == 1  # the cache
    (tmp_path / ablation.RULES_VERSION).write_text("another code version\n")
    assert not ablation.rules_cache_fresh(tmp_path)
    assert not (tmp_path / "tuning_seeds.json").exists()


def test_tuning_rewards_average_the_metric_asked_for():
    from agents.registry import make_policy
    from scaling_env.rollout import rollout
    from scaling_env.scenarios import load_scenario

    sc = load_scenario("flash_crowd")
    run = rollout(sc.config, make_policy("kpa@generalist", sc.config, scenario=sc.name), [0, 1], parallel=False)
    for metric in ("reward", "slo_violation_share"):
        got = ablation.vd.tuning_rewards(["kpa@generalist"], ["flash_crowd"], [0, 1], metric=metric)
        assert got == {("flash_crowd", "kpa@generalist"): float(np.mean([m[metric] for m in run.metrics]))}
    assert 0 < got[("flash_crowd", "kpa@generalist")] < 1  # a share, not a reward


def test_the_rules_slo_shares_are_computed_once_and_dropped_with_a_new_code_version(tmp_path, monkeypatch):
    calls = []

    def fake(specs, scenarios, seeds, traces_dir=None, metric="reward"):
        calls.append((specs, metric, seeds))
        return {(s, p): 0.01 for s in scenarios for p in specs}

    monkeypatch.setattr(ablation.vd, "tuning_rewards", fake)
    tuning = {("a", "kpa@generalist"): -1.0, ("a", "hpa@tuned"): -2.0, ("b", "kpa@generalist"): -3.0}
    slo = ablation.rule_tuning_slo(tmp_path, tuning, ["a", "b"])
    assert calls == [(["kpa@generalist", "hpa@tuned"], "slo_violation_share", ablation.TUNING_SEEDS)]
    assert slo[("b", "hpa@tuned")] == 0.01
    assert ablation.rule_tuning_slo(tmp_path, tuning, ["a", "b"]) == slo and len(calls) == 1  # read from the cache
    (tmp_path / ablation.RULES_VERSION).write_text("another code version\n")
    assert not ablation.rules_cache_fresh(tmp_path)
    assert not (tmp_path / "tuning_slo.json").exists()


def test_a_run_trained_on_rules_the_tuning_seeds_no_longer_choose_is_not_reused(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("residual: {policy: predictive@generalist, max_offset: 2, experts: []}\n")
    (run / "final_model.zip").write_text("x")
    (run / "timing.json").write_text("{}")
    assert ablation.stale_rules(run, {"residual": {"policy": "predictive@generalist", "experts": []}}) is None
    with pytest.raises(ConfigError, match="kpa@generalist"):
        ablation.train_variant(run, ablation.Path("x.yaml"), {"residual": {"policy": "kpa@generalist"}}, 10)
    # the same rules, but another gate: corrections of up to 4 places, not 2
    wider = {"residual": {"policy": "predictive@generalist", "experts": [], "max_offset": 4}}
    with pytest.raises(ConfigError, match=r"another gate: max_offset 2 \(now 4\)"):
        ablation.train_variant(run, ablation.Path("x.yaml"), wider, 10)
    assert ablation.stale_rules(run, wider, base_only=True) is None  # an assembled folder's runs keep their shape

    # the same gate, but its best model chosen with the untrained model among the candidates (the run's config has
    # no eval_at_start: it was trained before the option, i.e. without), whether the change is asked for by the
    # variant's set or by the base file
    base = ablation.Path("configs/train/ppo.yaml")
    same = {"residual": {"policy": "predictive@generalist", "experts": [], "max_offset": 2}}
    assert ablation.stale_selection(run, base, same) is None
    assert ablation.stale_selection(run, base, {**same, "eval_at_start": False}) is None
    with pytest.raises(ConfigError, match=r"best model another way: eval_at_start False \(now True\)"):
        ablation.train_variant(run, base, {**same, "eval_at_start": True}, 10)
    early = tmp_path / "early.yaml"
    early.write_text(base.read_text() + "\neval_at_start: true\n")
    with pytest.raises(ConfigError, match=r"eval_at_start False \(now True\)"):
        ablation.train_variant(run, early, same, 10)
    # and the reverse: a run kept with eval_at_start, asked for by a config that leaves it out
    (run / "config.yaml").write_text(
        "residual: {policy: predictive@generalist, max_offset: 2, experts: []}\neval_at_start: true\n"
    )
    with pytest.raises(ConfigError, match=r"eval_at_start True \(now False\)"):
        ablation.train_variant(run, base, same, 10)
    assert ablation.stale_selection(run, base, {**same, "eval_at_start": True}) is None
    assert ablation.stale_selection(run, base, {**same, "eval_at_start": True, "select_by": "wins_vs_base"})


def test_unresolved_rule_choices_are_named_in_a_training_config():
    from agents.experiments.train_config import load_train_config

    with pytest.raises(ConfigError, match="residual.policy.*tuning seeds"):
        load_train_config(None, overrides={"residual": {"policy": "best_generalist"}})
    with pytest.raises(ConfigError, match="residual.experts.*tuning seeds"):
        load_train_config(None, overrides={"residual": {"policy": "hpa", "experts": "auto"}})
    with pytest.raises(ConfigError, match="residual.experts.*'auto_at_slo'.*tuning seeds"):
        load_train_config(None, overrides={"residual": {"policy": "hpa", "experts": "auto_at_slo"}})
    with pytest.raises(ConfigError, match="residual.experts.*'auto_at_slo_robust'.*tuning seeds"):
        load_train_config(None, overrides={"residual": {"policy": "hpa", "experts": "auto_at_slo_robust"}})
    with pytest.raises(ConfigError, match="nothing to choose"):
        load_train_config(None, overrides={"residual": {"policy": "hpa", "max_offset": 0}})


def test_the_ablations_residuals_name_no_rule_by_hand():
    """Every residual variant's base rule (and the gates' experts) is chosen on the tuning seeds by the code."""
    cfg = ablation.load_ablation_config(ablation.Path("configs/train/ablation.yaml"))
    residuals = [v for v in cfg.variants if "residual" in v.set]
    assert len(residuals) >= 8
    assert all(v.set["residual"]["policy"] == "best_generalist" for v in residuals)
    gates = [v for v in residuals if "experts" in v.set["residual"]]
    assert {v.name for v in gates} >= {"gate", "residual_gate"}
    assert all(v.set["residual"]["experts"] in ("auto", "auto_at_slo", "auto_at_slo_robust") for v in gates)


def test_cross_rules_all_marks_the_settings_that_earn_more_at_no_higher_slo_share(tmp_path, monkeypatch):
    from agents.experiments import cross_rules

    for name in ("steady/kpa", "memory_pressure/hpa"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / f"{name}.yaml").write_text("policy: x\n")
    monkeypatch.setattr(cross_rules, "TUNED_DIR", tmp_path)
    monkeypatch.setattr(cross_rules, "EVALUATION_SCENARIOS", ("steady", "memory_pressure"))
    monkeypatch.setattr(cross_rules.ab, "best_generalist", lambda tuning, scenarios: "g@generalist")
    monkeypatch.setattr(cross_rules.vd, "tuning_rewards", lambda *a, **k: {})
    steady_kpa, memory_hpa = (
        (tmp_path / "steady/kpa.yaml").as_posix(),
        (tmp_path / "memory_pressure/hpa.yaml").as_posix(),
    )
    # (reward per seed, SLO share per seed) on two seeds
    cells = {
        ("steady", "g@generalist"): ([-10.0, -12.0], [0.004, 0.004]),
        ("memory_pressure", "g@generalist"): ([-20.0, -20.0], [0.02, 0.02]),
        ("steady", steady_kpa): ([-8.0, -8.0], [0.0, 0.008]),  # +3 at the same share: marked
        ("memory_pressure", steady_kpa): ([-900.0, -1100.0], [0.8, 0.9]),  # catastrophic
        ("steady", memory_hpa): ([-5.0, -5.0], [0.01, 0.01]),  # +6 at a higher share: not marked
        ("memory_pressure", memory_hpa): ([-19.0, -20.0], [0.01, 0.02]),  # +0.5 at a lower share: marked
    }

    def episodes(specs, scenarios, seeds, metrics=("reward",), traces_dir=None):
        assert seeds == [0, 1] and metrics == ("reward", "slo_violation_share")
        return {(s, p): dict(zip(metrics, cells[(s, p)])) for s in scenarios for p in specs}

    monkeypatch.setattr(cross_rules.vd, "tuning_episodes", episodes)
    lines = cross_rules.all_tuned_table([0, 1]).splitlines()
    assert lines[2] == "| g@generalist | -11.0 (0.40%) | -20.0 (2.00%) |"  # its own reward
    assert lines[3] == "| memory_pressure/hpa | +6.0 (1.00%) | +0.5 (1.50%)* |"
    assert lines[4] == "| steady/kpa | +3.0 (0.40%)* | -980.0 (85.00%) |"


def test_every_shipped_training_config_loads():
    """Each YAML under configs/train is a training config (ppo.yaml, specialists/) or an ablation config (the
    others), and loads as one; every variant's ``set`` over its base, and a gate specialists' ``set`` over each
    specialist config, is a valid training config once the rules the tuning seeds choose are filled in (here by
    placeholders): a config that names a field the code no longer has fails here, not mid-study."""
    import copy
    from pathlib import Path

    from agents.experiments.train_config import AUTO_GENERALIST, load_train_config

    root = Path(__file__).resolve().parents[1]

    def with_rules(sets: dict) -> dict:
        sets = copy.deepcopy(sets)
        residual = sets.get("residual")
        if isinstance(residual, dict):
            if residual.get("policy") in (None, AUTO_GENERALIST):
                residual["policy"] = "hpa"
            if isinstance(residual.get("experts"), str):  # auto, auto_at_slo, ...
                residual["experts"] = ["kpa"]
        return sets

    files = sorted((root / "configs" / "train").rglob("*.yaml"))
    assert len(files) >= 20
    checked = 0
    for path in files:
        if path.name == "ppo.yaml" or path.parent.name == "specialists":
            load_train_config(path)
            continue
        if path.name.startswith("imitate"):  # DAgger configs (agents/experiments/imitate.py) and their student's
            from agents.experiments import imitate

            icfg = imitate.load_imitation_config(path)
            imitate.prepare(icfg, icfg.scenarios or ["steady"])  # every check a run makes before it writes
            checked += 1
            continue
        cfg = ablation.load_ablation_config(path)
        for v in cfg.variants:
            steps = v.total_timesteps or cfg.total_timesteps  # as the ablation trains it
            load_train_config(root / cfg.base, overrides={**with_rules(v.set), "total_timesteps": steps})
            checked += 1
        gs = cfg.gate_specialists
        if gs is not None and cfg.specialists is not None:
            residual = {"policy": "hpa", "experts": ["kpa"], "hold": gs.hold, "max_offset": gs.max_offset}
            residual |= {k: True for k in ("paired_base", "sync") if getattr(gs, k)}  # as gate_specialist_sets
            for spec in sorted((root / cfg.specialists).glob("*.yaml")):
                sets = {**gs.set, "residual": {**residual, "zero_bias": gs.zero_bias}}
                load_train_config(spec, overrides={**sets, "total_timesteps": max(gs.timesteps // gs.hold, 1)})
                checked += 1
    assert checked > 100


def test_specialists_trained_two_at_a_time_are_those_trained_one_by_one(tmp_path, monkeypatch):
    """`ablation --workers 2` (train_runs): two tiny trainings in two spawned processes write the same evaluation
    rows and weights as the same two trained here one after the other, and their timings come back in the jobs'
    order; a bad config is refused before any training starts."""
    import yaml
    from stable_baselines3 import PPO

    from agents.experiments.train import read_evaluations

    scenario = tmp_path / "tiny.yaml"
    scenario.write_text(
        yaml.safe_dump(
            {
                "description": "test scenario",
                "env": {"episode_steps": 16, "scaling": {"max_instances": 8, "scale_steps": [-2, -1, 0, 1, 2]}},
            }
        )
    )
    config = {
        "scenarios": [str(scenario)],
        "eval_scenarios": [str(scenario)],
        "n_envs": 4,
        "eval_freq": 32,
        "checkpoint_freq": 64,
        "n_eval_episodes": 2,
        "eval_workers": 1,
        "ppo": {"n_steps": 16, "batch_size": 32, "n_epochs": 2, "policy_kwargs": {"net_arch": [8]}},
    }
    base = tmp_path / "train.yaml"
    base.write_text(yaml.safe_dump(config))
    runs = {}
    for workers in (1, 2):
        if workers == 2:  # the trainings must happen in the workers: here, training is refused
            monkeypatch.setattr(ablation, "train_variant", lambda *a, **k: pytest.fail("trained in the parent"))
        jobs = [
            (tmp_path / f"w{workers}" / f"seed{seed}", base, {"seed": seed}, steps, False)
            for seed, steps in ((0, 128), (7, 192))
        ]
        timings = ablation.train_runs(jobs, workers)
        assert [t["timesteps"] for t in timings] == [128, 192]
        runs[workers] = []
        for run_dir, *_ in jobs:
            model = PPO.load(run_dir / "final_model.zip", device="cpu")
            params = [p.detach().numpy().copy() for p in model.policy.parameters()]
            runs[workers].append((read_evaluations(run_dir / "evaluations.csv"), params))
    for (rows1, w1), (rows2, w2) in zip(runs[1], runs[2]):
        assert rows1 == rows2 and len(rows1) >= 4
        assert all(np.array_equal(a, b) for a, b in zip(w1, w2))
    assert runs[1][0][0] != runs[1][1][0]  # two seeds: two different runs
    bad = [(tmp_path / "bad" / f"r{i}", base, {"n_envs": 0 if i else 4}, 128, False) for i in range(2)]
    with pytest.raises(ConfigError, match="n_envs"):
        ablation.train_runs(bad, 2)
    assert not (tmp_path / "bad").exists()  # refused before the good one started
