"""Residual policy learning (agents/learned/residual.py): the agent corrects a rule's step; zero correction is the
rule, bit for bit; a residual run folder loads with its rule for evaluate and the benchmark; and a run trained with
env_overrides is benchmarked on the env it was trained on."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from test_train_options import TINY, smoke_files, train_cli
from typer.testing import CliRunner

from agents.experiments.cli import app
from agents.learned.residual import ResidualPolicy, ResidualVecEnv, corrected, prefer_zero_correction, with_proposal
from agents.registry import make_policy
from scaling_env import EnvConfig
from scaling_env.envs.sb3 import ServerlessScalingVecEnv
from scaling_env.fields import N_OBS
from scaling_env.rollout import rollout
from scaling_env.scenarios import load_scenario

runner = CliRunner()
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    return smoke_files(tmp_path_factory, "residual")


RULE = "predictive@generalist"


def test_a_correction_moves_the_rule_step_in_the_steps_ordered_by_change():
    config = EnvConfig.from_dict({"scaling": {"scale_steps": [0, -1, 1, -2, 2]}})
    # rule index 2 (+1): +1 place -> +2 (index 4); -2 places -> -1 (index 1); index 3 (-2) -1 place: clipped
    got = corrected(np.array([2, 2, 3, 4]), np.array([3, 0, 1, 2]), config, max_offset=2)
    assert got.tolist() == [4, 1, 3, 4]
    obs = with_proposal(np.zeros((2, 3)), np.array([1, 4]), 5)
    assert obs[:, 3:].tolist() == [[0, 1, 0, 0, 0], [0, 0, 0, 0, 1]]


class Zero:
    """An agent that never corrects (action max_offset)."""

    def __init__(self, k: int) -> None:
        self.k = k

    def reset(self, seed=None, num_envs=1) -> None:
        pass

    def act_batch(self, obs, info):
        assert obs.shape[1] == N_OBS + 9  # the observation and the proposal's one-hot
        return np.full(len(obs), self.k)


@pytest.mark.parametrize("scenario", ["steady", "flash_crowd"])
def test_zero_correction_is_the_rule_bit_for_bit(scenario):
    config = load_scenario(scenario).config
    seeds = [3, 4, 5]
    ref = rollout(config, make_policy(RULE, config, scenario=scenario), seeds).metrics
    # the evaluation policy
    policy = ResidualPolicy(config, rule=make_policy(RULE, config, scenario=scenario), agent=Zero(2), max_offset=2)
    assert rollout(config, policy, seeds).metrics == ref
    # the training wrapper: two episodes in a row (the rule starts afresh after the autoreset)
    base = ServerlessScalingVecEnv(len(seeds), config)
    venv = ResidualVecEnv(base, RULE, 2, names=[scenario])
    base.seed(seeds[0])
    obs = venv.reset()
    assert obs.shape == (3, N_OBS + 9)
    totals, steps = np.zeros(len(seeds)), config.episode_steps
    second = rollout(config, make_policy(RULE, config, scenario=scenario), [0, 1, 2])  # only its length is used
    for k in range(2 * steps):
        obs, _, dones, _ = venv.step(np.full(len(seeds), 2))
        totals += base.step_rewards
        if k == steps - 1:
            assert dones.all()
            assert totals.tolist() == [m["reward"] for m in ref]
            totals[:] = 0.0
    assert len(second.metrics) == 3
    # the second episode under the rule from a fresh state: as a plain rule loop on the same env would play it
    base2 = ServerlessScalingVecEnv(len(seeds), config)
    rule = make_policy(RULE, config, scenario=scenario)
    base2.seed(seeds[0])
    obs2 = base2.reset()
    rule.reset(num_envs=len(seeds))
    again = np.zeros(len(seeds))
    for k in range(2 * steps):
        obs2, _, dones2, _ = base2.step(rule.act_batch(obs2, base2.batch_info() if k % steps else fresh_info(base2)))
        if k >= steps:
            again += base2.step_rewards
        if dones2.all():
            rule.reset(num_envs=len(seeds))
    assert totals.tolist() == again.tolist()


def fresh_info(base: ServerlessScalingVecEnv) -> dict:
    from scaling_env.envs.info import batch_info

    return batch_info(base.sims[0].metrics, base.sims[0].reward_parts)


def test_the_fresh_policy_prefers_zero_correction():
    from stable_baselines3 import PPO

    base = ServerlessScalingVecEnv(2, EnvConfig.from_dict(TINY))
    model = PPO("MlpPolicy", ResidualVecEnv(base, RULE, 2), n_steps=8, batch_size=8, seed=0, device="cpu")
    prefer_zero_correction(model, 2, 3.0)
    obs = np.random.default_rng(0).normal(size=(64, N_OBS + 5)).astype(np.float32)
    probs = model.policy.get_distribution(model.policy.obs_to_tensor(obs)[0]).distribution.probs.detach().numpy()
    assert np.allclose(probs[:, 2], np.exp(3) / (np.exp(3) + 4), atol=0.02)
    assert (model.predict(obs, deterministic=True)[0] == 2).all()


def benchmark_cli(files: dict[str, Path], run_dir: Path) -> str:
    out = files["root"] / ("bench_" + run_dir.name)
    args = ["benchmark", "-p", f"ppo:{run_dir}", "-s", str(files["tiny"]), "--seeds", "1000,1001", "--out", str(out)]
    result = runner.invoke(app, [*args, "--no-progress", "--workers", "1"])
    assert result.exit_code == 0, result.output
    return (out / "episodes.csv").read_text()


def test_a_residual_run_trains_and_loads_with_its_rule(files):
    from agents.learned.ppo import load_ppo_policy

    run_dir = files["root"] / "residual_run"
    train_cli(files, run_dir, "residual={policy: predictive@generalist, max_offset: 1}")
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["residual"]["max_offset"] == 1
    assert (run_dir / "evaluations.csv").read_text().count("\n") >= 2  # the periodic evaluation ran
    config = EnvConfig.from_dict(TINY)
    policy = load_ppo_policy(run_dir, config, scenario="tiny")
    assert isinstance(policy, ResidualPolicy)
    assert (policy.rule.name, policy.max_offset, policy.agent.n_obs) == ("predictive", 1, N_OBS + 5)
    assert int(policy.agent.model.action_space.n) == 3
    metrics = rollout(config, policy, [1000, 1001]).metrics
    assert len(metrics) == 2
    result = runner.invoke(app, ["evaluate", "--model", str(run_dir), "--episodes", "2"])
    assert result.exit_code == 0, result.output
    assert "ppo:" in benchmark_cli(files, run_dir)


def test_a_run_with_env_overrides_is_benchmarked_on_its_env(files):
    from scaling_env.fields import HISTORY_GROUPS, N_HISTORY

    run_dir = files["root"] / "v1_run"
    history = "[" + ", ".join(HISTORY_GROUPS) + "]"
    train_cli(files, run_dir, f"env_overrides={{observation: {{history: {history}, reset: steady_state}}}}")
    rows = benchmark_cli(files, run_dir)
    assert rows.count("ppo:") == 2
    from agents.learned.ppo import load_ppo_policy

    policy = load_ppo_policy(run_dir, EnvConfig.from_dict(TINY))
    assert policy.n_obs == N_OBS + N_HISTORY
    assert policy.env_config.observation.reset == "steady_state"


# ------------------------------------------------------------------------------------------ gating
def test_a_gated_action_follows_one_expert_and_corrects_its_step():
    from agents.learned.residual import gated

    config = EnvConfig.from_dict({"scaling": {"scale_steps": [0, -1, 1, -2, 2]}})
    proposals = np.array([[2, 1], [2, 1], [0, 3], [0, 3]])  # expert 0 / expert 1 proposals (action indices)
    # width 5 (max_offset 2): a=2 expert 0 as is; a=7 expert 1 as is; a=9 expert 1 +2 places; a=0 expert 0 -2
    got = gated(proposals, np.array([2, 7, 9, 0]), config, max_offset=2)
    assert got.tolist() == [2, 1, 0, 3]  # +1; -1; -2 moved +2 -> 0 (index 0); 0 moved -2 -> -2 (index 3)
    obs = with_proposal(np.zeros((1, 2)), np.array([[1, 4]]), 5)
    assert obs[0, 2:].tolist() == [0, 1, 0, 0, 0, 0, 0, 0, 0, 1]  # one one-hot per expert, expert 0 first


class Follow:
    """An agent that always follows expert ``e`` uncorrected (max_offset 2: action 5 e + 2)."""

    def __init__(self, e: int, n_experts: int) -> None:
        self.e, self.n = e, n_experts

    def reset(self, seed=None, num_envs=1) -> None:
        pass

    def act_batch(self, obs, info):
        assert obs.shape[1] == N_OBS + 9 * self.n
        return np.full(len(obs), 5 * self.e + 2)


@pytest.mark.parametrize("e", [0, 1])
def test_following_one_expert_uncorrected_is_that_rule_bit_for_bit(e):
    scenario, other = "flash_crowd", "step_scaling@tuned"
    config = load_scenario(scenario).config
    seeds = [3, 4]
    specs = [RULE, other]
    ref = rollout(config, make_policy(specs[e], config, scenario=scenario), seeds).metrics
    assert ref != rollout(config, make_policy(specs[1 - e], config, scenario=scenario), seeds).metrics
    rules = [make_policy(x, config, scenario=scenario) for x in specs]
    policy = ResidualPolicy(config, rule=rules[0], agent=Follow(e, 2), max_offset=2, experts=rules[1:])
    assert rollout(config, policy, seeds).metrics == ref
    base = ServerlessScalingVecEnv(len(seeds), config)
    venv = ResidualVecEnv(base, RULE, 2, names=[scenario], experts=[other])
    assert (venv.action_space.n, venv.observation_space.shape) == (10, (N_OBS + 18,))
    base.seed(seeds[0])
    venv.reset()
    totals = np.zeros(len(seeds))
    for _ in range(config.episode_steps):
        venv.step(np.full(len(seeds), 5 * e + 2))
        totals += base.step_rewards
    assert totals.tolist() == [m["reward"] for m in ref]


def test_a_gated_run_trains_and_loads_with_its_experts(files):
    from agents.learned.ppo import load_ppo_policy

    run_dir = files["root"] / "gated_run"
    train_cli(files, run_dir, "residual={policy: predictive@generalist, max_offset: 1, experts: [hpa, kpa]}")
    policy = load_ppo_policy(run_dir, EnvConfig.from_dict(TINY), scenario="tiny")
    assert [r.name for r in policy.experts] == ["predictive", "hpa", "kpa"]
    assert (int(policy.agent.model.action_space.n), policy.agent.n_obs) == (9, N_OBS + 15)
    assert len(rollout(EnvConfig.from_dict(TINY), policy, [1000]).metrics) == 1
    result = runner.invoke(
        app,
        ["train", "--config", str(files["config"]), "--run-dir", str(files["root"] / "bad"), "--set"]
        + ["residual={policy: hpa, experts: [kpa, hpa]}"],
    )
    assert result.exit_code == 2 and "must be distinct" in result.output


def test_a_run_whose_rules_were_re_tuned_since_is_refused_naming_the_change(files):
    # a re-tune rewrites a tuned file under the same path: the trained gate would silently follow another expert
    from agents.learned.ppo import load_ppo_policy
    from scaling_env.config import ConfigError

    expert = files["root"] / "my_kpa.yaml"
    expert.write_text((ROOT / "configs/policies/kpa.yaml").read_text())
    run_dir = files["root"] / "retuned_run"
    train_cli(files, run_dir, f"residual={{policy: hpa, max_offset: 0, experts: [{expert}]}}")
    record = yaml.safe_load((run_dir / "rules.json").read_text())  # JSON is YAML
    assert record["tiny"][str(expert)]["min_capacity"] == 0 and "steady" in record  # and the benchmark's
    load_ppo_policy(run_dir, EnvConfig.from_dict(TINY), scenario="tiny")
    # a parameter added to the rule since, at its default, is no change: a record without it still loads
    record_file = run_dir / "rules.json"
    older = {sc: {spec: {k: v for k, v in params.items() if k != "min_capacity"} for spec, params in entry.items()}
             for sc, entry in record.items()}  # fmt: skip
    record_file.write_text(json.dumps(older))
    load_ppo_policy(run_dir, EnvConfig.from_dict(TINY), scenario="tiny")
    expert.write_text(expert.read_text().replace("min_capacity: 0", "min_capacity: 5"))
    # a file spec reads the same file everywhere: refused without a scenario, or with one the record lacks
    for scenario in (None, "elsewhere/tiny.yaml", "diurnal_delayed_metrics"):
        with pytest.raises(ConfigError, match=r"min_capacity: 0 -> 5"):
            load_ppo_policy(run_dir, EnvConfig.from_dict(TINY), scenario=scenario)
    with pytest.raises(
        ConfigError,
        match=r"(?s)retuned_run was trained with other settings of .*my_kpa.yaml on tiny "
        r"\(min_capacity: 0 -> 5;",
    ):
        load_ppo_policy(run_dir, EnvConfig.from_dict(TINY), scenario="tiny")


# ------------------------------------------------------------------------------------------ the pure gate
@pytest.mark.parametrize("e", [0, 2])
def test_a_pure_gate_plays_the_expert_it_chooses_bit_for_bit(e):
    """max_offset 0: the action is the expert, nothing else; every expert runs every step, so following expert e
    from the first step plays e's episodes exactly (its windows saw every step)."""
    scenario = "flash_crowd"
    config = load_scenario(scenario).config
    specs = [RULE, "step_scaling@tuned", "kpa@tuned"]
    seeds = [5, 6]
    ref = rollout(config, make_policy(specs[e], config, scenario=scenario), seeds).metrics

    class Choose:
        def reset(self, seed=None, num_envs=1) -> None:
            pass

        def act_batch(self, obs, info):
            assert obs.shape[1] == N_OBS + 9 * len(specs)
            return np.full(len(obs), e)

    rules = [make_policy(x, config, scenario=scenario) for x in specs]
    policy = ResidualPolicy(config, rule=rules[0], agent=Choose(), max_offset=0, experts=rules[1:])
    assert rollout(config, policy, seeds).metrics == ref
    base = ServerlessScalingVecEnv(len(seeds), config)
    venv = ResidualVecEnv(base, RULE, 0, names=[scenario], experts=specs[1:])
    assert venv.action_space.n == len(specs)
    base.seed(seeds[0])
    venv.reset()
    totals = np.zeros(len(seeds))
    for _ in range(config.episode_steps):
        venv.step(np.full(len(seeds), e))
        totals += base.step_rewards
    assert totals.tolist() == [m["reward"] for m in ref]


def test_a_fresh_pure_gate_prefers_expert_0():
    """zero_bias on a gate without corrections favours expert 0 (the base rule): e^3 / (e^3 + E - 1)."""
    import torch
    from stable_baselines3 import PPO

    base = ServerlessScalingVecEnv(2, load_scenario("steady").config)
    venv = ResidualVecEnv(base, RULE, 0, names=["steady"], experts=["hpa", "kpa", "threshold"])
    model = PPO("MlpPolicy", venv, seed=0, device="cpu", n_steps=8, batch_size=8)
    prefer_zero_correction(model, 0, 3.0)
    obs = torch.as_tensor(venv.reset())
    probs = model.policy.get_distribution(obs).distribution.probs.detach().numpy()
    np.testing.assert_allclose(probs[:, 0], np.exp(3) / (np.exp(3) + 3), atol=0.02)


def test_gate_choices_counts_each_experts_share_and_the_switches():
    from agents.experiments.gate_choices import choice_stats, expert_label

    # 3 experts, max_offset 1 (width 3): actions (steps, episodes); episode 0: e0, e1 +1, e1, e0 -> 2 switches;
    # episode 1: e2 four times -> none
    actions = np.array([[1, 7], [5, 7], [4, 7], [0, 7]])
    got = choice_stats(actions, 3, 1)
    assert got == {"share": [2 / 8, 2 / 8, 4 / 8], "corrected": 2 / 8, "switches": 1.0}
    assert expert_label("configs/policies/tuned/steady/kpa.yaml") == "kpa (steady)"
    assert expert_label("kpa@generalist") == "kpa@generalist"
    from agents.experiments.gate_choices import parse_seeds
    from scaling_env.config import ConfigError

    assert parse_seeds("0-3") == [0, 1, 2, 3] and parse_seeds("5,7") == [5, 7]
    with pytest.raises(ConfigError, match="--seeds"):
        parse_seeds("a-b")


def test_a_pure_gate_run_trains_and_its_choices_are_counted(files):
    from agents.experiments.gate_choices import gate_choices, markdown

    run_dir = files["root"] / "pure_gate_run"
    train_cli(files, run_dir, "residual={policy: hpa, max_offset: 0, experts: [kpa, threshold]}")
    labels, rows = gate_choices(run_dir, [str(files["tiny"])], [0, 1])
    assert labels == ["hpa", "kpa", "threshold"]
    (row,) = rows
    assert sum(row["share"]) == pytest.approx(1.0) and row["corrected"] == 0.0
    assert 0 <= row["switches"] <= TINY["episode_steps"] - 1
    assert "| 0: hpa | 1: kpa | 2: threshold |" in markdown(labels, rows)
    assert 0 < row["fleet"] and 0 <= row["slo"] <= 1


def test_each_expert_followed_alone_inside_the_gate_plays_that_expert(files):
    """gate_choices --alone: forcing the gate to follow expert k on every step (all experts in shadow) gives
    expert k's own episodes, reward for reward; and the forced choice is k, not always expert 0."""
    from agents.experiments.gate_choices import alone_markdown, followed_alone

    run_dir = files["root"] / "pure_gate_alone"
    train_cli(files, run_dir, "residual={policy: hpa, max_offset: 0, experts: [kpa, threshold]}")
    config = load_scenario(str(files["tiny"])).config
    got = followed_alone(run_dir, str(files["tiny"]), [0, 1])
    want = [rollout(config, make_policy(x, config), [0, 1]).metrics for x in ("hpa", "kpa", "threshold")]
    assert [g["reward"] for g in got] == pytest.approx([np.mean([m["reward"] for m in w]) for w in want], abs=1e-9)
    assert len({round(g["fleet"], 9) for g in got}) > 1  # the three rules hold different fleets here
    assert "| 2: threshold alone |" in alone_markdown(["hpa", "kpa", "threshold"], {"tiny": got})


def test_a_held_choice_acts_for_hold_steps_in_training_and_in_evaluation():
    """hold 4: the agent is asked every 4 steps; its choice plays 4 steps on the experts' fresh proposals; the
    training env returns the 4 rewards summed, and the two give the same episodes."""
    scenario = "flash_crowd"
    config = load_scenario(scenario).config
    specs = [RULE, "step_scaling@tuned"]
    seeds = [5, 6]

    class Alternate:  # expert 0 at the first decision, then 1, 0, ...
        def __init__(self) -> None:
            self.calls = 0

        def reset(self, seed=None, num_envs=1) -> None:
            self.calls = 0

        def act_batch(self, obs, info):
            self.calls += 1
            return np.full(len(obs), (self.calls - 1) % 2)

    rules = [make_policy(x, config, scenario=scenario) for x in specs]
    agent = Alternate()
    policy = ResidualPolicy(config, rule=rules[0], agent=agent, max_offset=0, experts=rules[1:], hold=4)
    ref = rollout(config, policy, seeds).metrics
    assert agent.calls == config.episode_steps // 4
    assert ref != rollout(config, make_policy(specs[0], config, scenario=scenario), seeds).metrics
    base = ServerlessScalingVecEnv(len(seeds), config)
    venv = ResidualVecEnv(base, RULE, 0, names=[scenario], experts=specs[1:], hold=4)
    seen = []
    venv.inner_step_hooks.append(lambda: seen.append(base.step_rewards.copy()))
    base.seed(seeds[0])
    venv.reset()
    totals = np.zeros(len(seeds))
    for k in range(config.episode_steps // 4):
        _, rewards, dones, _ = venv.step(np.full(len(seeds), k % 2))
        assert np.allclose(rewards, sum(seen[-3:]) + base.step_rewards)  # the 4 steps' rewards
        totals += rewards
    assert dones.all() and len(seen) == 3 * config.episode_steps // 4
    # the same episodes; the VecEnv returns float32 rewards, summed here in float32 per choice
    np.testing.assert_allclose(totals, [m["reward"] for m in ref], rtol=1e-6)
    with pytest.raises(ValueError, match="hold"):
        ResidualVecEnv(ServerlessScalingVecEnv(1, config), RULE, 0, names=[scenario], experts=specs[1:], hold=7)


class _Desired:
    """A rule's shadow state as sync_experts sees it: a desired count and the memory of a coarser step."""

    def __init__(self, desired: list[int]) -> None:
        self.desired = np.array(desired, dtype=np.int64)
        self.rounded_from = np.array([5, 5], dtype=np.int64)


def test_sync_tells_only_the_experts_that_did_not_act_what_the_applied_step_reaches():
    from agents.learned.residual import sync_experts

    config = load_scenario("steady").config  # scale steps (-8, -4, -2, -1, 0, 1, 2, 4, 8), fleet 1..64
    acting, shadow, no_state = _Desired([99, 99]), _Desired([40, 3]), object()
    # two clusters at 10 instances: cluster 0 applies +8 (index 8), cluster 1 applies -2 (index 2)
    applied = np.array([8, 2])
    proposals = np.array([[8, 5, 4], [2, 2, 4]])  # expert 0 proposed the applied step in both; expert 1 only in 1
    sync_experts([acting, shadow, no_state], proposals, applied, np.array([10, 10]), config)
    assert acting.desired.tolist() == [99, 99] and acting.rounded_from.tolist() == [5, 5]
    assert shadow.desired.tolist() == [18, 3]  # 10 + 8 where it did not act; its own count where it did
    assert shadow.rounded_from.tolist() == [-1, 5]


def test_sync_keeps_a_shadowing_step_scaling_expert_on_the_real_fleet():
    """Without sync the flash-crowd step-scaling expert's own count drifts from the fleet kpa@generalist runs."""
    sc = load_scenario("steady")

    class Always0:
        def reset(self, seed=None, num_envs=1):
            pass

        def act_batch(self, obs, info):
            return np.zeros(len(obs), dtype=np.int64)

    gaps = {}
    for sync in (False, True):
        step = make_policy("configs/policies/tuned/flash_crowd/step_scaling.yaml", sc.config, scenario=sc.name)
        policy = ResidualPolicy(
            sc.config,
            rule=make_policy("kpa@generalist", sc.config, scenario=sc.name),
            agent=Always0(),
            max_offset=0,
            experts=[step],
            sync=sync,
        )
        rollout(sc.config, policy, [0, 1], parallel=False)
        fleet = policy.experts[0].desired  # kpa acted every step: its last target is the fleet it asked for
        gaps[sync] = float(np.mean(np.abs(step.desired - fleet)))
    assert gaps[True] <= 1.0 < gaps[False]
