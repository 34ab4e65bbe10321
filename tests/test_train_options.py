"""Training options of issue 15: frame stacking, RecurrentPPO, action masks, the anti-flap reward shaping and
env overrides; each validated, trained end to end for a few hundred steps and used by the evaluation policy."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from stable_baselines3.common.vec_env import VecEnv, VecFrameStack, VecMonitor, VecNormalize
from typer.testing import CliRunner

from agents.experiments.cli import app
from agents.experiments.train_config import TrainConfig, load_train_config
from scaling_env import EnvConfig, ServerlessScalingVectorEnv
from scaling_env.envs.sb3 import ServerlessScalingVecEnv
from scaling_env.fields import N_OBS

runner = CliRunner()
STEPS = [-2, -1, 0, 1, 2]
TINY = {"episode_steps": 16, "scaling": {"max_instances": 16, "scale_steps": STEPS}}
SMOKE = {
    "n_envs": 4,
    "total_timesteps": 256,
    "eval_freq": 128,
    "checkpoint_freq": 0,
    "n_eval_episodes": 2,
    "ppo": {"n_steps": 32, "batch_size": 64, "n_epochs": 2, "policy_kwargs": {"net_arch": [16]}},
}


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    return smoke_files(tmp_path_factory, "options")


def smoke_files(tmp_path_factory, name: str) -> dict[str, Path]:
    """A tiny scenario file and a smoke training config that trains on it, in a new folder ``name``."""
    root = tmp_path_factory.mktemp(name)
    tiny = root / "tiny.yaml"
    tiny.write_text(yaml.safe_dump({"description": "test scenario", "env": TINY}))
    config = root / "smoke.yaml"
    config.write_text(yaml.safe_dump({**SMOKE, "scenarios": [str(tiny)], "eval_scenarios": [str(tiny)]}))
    return {"tiny": tiny, "config": config, "root": root}


def train_cli(files: dict[str, Path], run_dir: Path, *sets: str) -> None:
    args = ["train", "--config", str(files["config"]), "--run-dir", str(run_dir), "--no-progress"]
    for item in sets:
        args += ["--set", item]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output


# ----------------------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["frame_stack=0"], "frame_stack"),
        (["algo=recurrent_ppo", "frame_stack=4"], "both give the policy a memory"),
        (["recurrent={lstm_hidden_size: 8}"], "need algo: recurrent_ppo"),
        (["algo=recurrent_ppo", "recurrent={shared_lstm: true}"], "cannot both be true"),
        (["algo=recurrent_ppo", "recurrent={lstm_size: 8}"], "recurrent.lstm_size: unknown key"),
        (["reward_shaping.blocked=-0.1"], "reward_shaping.blocked"),
        (["reward_shaping={flaps: 1}"], "reward_shaping.flaps: unknown key"),
        (["reward_shaping={slo_violation_from: 64}"], "slo_violation_from is set but slo_violation is 0"),
        (["normalize={reward: false, reward_per_family: true}"], "reward_per_family needs reward: true"),
        (["reward_shaping={slo_violation: 1.0, slo_violation_from: -1}"], "reward_shaping.slo_violation_from"),
        (["reward_shaping={slo_violation: 1.0, slo_violation_from: 256}"], "the SLO penalty would never start"),
        (["env_overrides={scaling: {max_instances: 0}}"], "env_overrides.scaling.max_instances"),
        (["env_overrides={observaton: {}}"], "env_overrides.observaton: unknown key"),
        (["algo=dqn"], "recurrent_ppo"),  # the error lists the choices
    ],
)
def test_bad_option_values_are_named(files, tmp_path, sets, message):
    args = ["train", "--config", str(files["config"]), "--run-dir", str(tmp_path / "r")]
    for item in sets:
        args += ["--set", item]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not (tmp_path / "r").exists()


def test_defaults_leave_every_option_off():
    cfg = TrainConfig()
    assert (cfg.algo, cfg.frame_stack, cfg.recurrent, cfg.reward_shaping.active, cfg.env_overrides) == (
        "ppo",
        1,
        None,
        False,
        {},
    )


# ----------------------------------------------------------------------------------------- frame stacking
def test_frame_stack_trains_and_the_policy_stacks_as_vecframestack_does(files, tmp_path):
    from agents.learned.ppo import load_ppo_policy

    run_dir = tmp_path / "stack"
    train_cli(files, run_dir, "frame_stack=3")
    policy = load_ppo_policy(run_dir, EnvConfig.from_dict(TINY))
    assert policy.n_stack == 3 and policy.model.observation_space.shape == (3 * N_OBS,)

    # the training wrapper chain on the same seeds, with the policy's frozen statistics
    base = ServerlessScalingVecEnv(3, EnvConfig.from_dict(TINY))
    norm = VecNormalize(VecMonitor(base), training=False, norm_reward=False)
    norm.obs_rms = policy.vec_normalize.obs_rms
    stacked = VecFrameStack(norm, 3)
    stacked.seed(7)
    want = stacked.reset()

    env = ServerlessScalingVectorEnv(3, EnvConfig.from_dict(TINY))
    obs, info = env.reset(seed=7)
    policy.reset(num_envs=3)
    for step in range(6):
        got = policy._stacked(policy.normalize(obs))
        np.testing.assert_allclose(got, want, rtol=1e-6, err_msg=f"step {step}")
        if step == 0:  # before the first observation: zeros, as VecFrameStack starts
            assert not got[:, : 2 * N_OBS].any()
        actions = policy.model.predict(got, deterministic=True)[0]
        want = stacked.step(actions)[0]
        obs, *_, info = env.step(actions)
    policy.reset(num_envs=3)
    assert policy._stack is None  # a new batch of episodes starts from zeros again


# ----------------------------------------------------------------------------------------- RecurrentPPO
def test_recurrent_ppo_trains_and_the_policy_carries_its_lstm_state(files, tmp_path):
    from agents.experiments.evaluate import evaluate
    from agents.learned.ppo import load_ppo_policy

    run_dir = tmp_path / "lstm"
    train_cli(files, run_dir, "algo=recurrent_ppo", "recurrent={lstm_hidden_size: 8}")
    assert (run_dir / "evaluations.csv").is_file()  # the periodic evaluation ran the recurrent policy
    policy = load_ppo_policy(run_dir, EnvConfig.from_dict(TINY))
    assert policy.recurrent and type(policy.model).__name__ == "RecurrentPPO"
    assert policy.model.policy.lstm_actor.hidden_size == 8

    calls = []
    predict = policy.model.predict

    def spy(x, state=None, episode_start=None, deterministic=False):
        calls.append((None if state is None else state[0].copy(), episode_start.copy()))
        return predict(x, state=state, episode_start=episode_start, deterministic=deterministic)

    policy.model.predict = spy
    env = ServerlessScalingVectorEnv(2, EnvConfig.from_dict(TINY))
    for _ in range(2):  # two batches of episodes: the state starts afresh at each reset
        obs, info = env.reset(seed=1)
        policy.reset(num_envs=2)
        for _ in range(3):
            policy.act_batch(obs, info)
            obs, *_, info = env.step(np.full(2, 2))
    starts = [c[1].tolist() for c in calls]
    assert starts == [[True, True], [False, False], [False, False]] * 2
    assert calls[0][0] is None and calls[3][0] is None
    assert calls[1][0] is not None and np.abs(calls[1][0]).sum() > 0  # the state of step 0 is passed on
    rows = evaluate(run_dir, [str(files["tiny"])], episodes=2, seed=1000)
    assert np.isfinite(rows[0]["reward"])


# ----------------------------------------------------------------------------------------- masks
def test_masks_reach_maskable_ppo_through_the_wrappers_and_exclude_blocked_actions(files):
    from sb3_contrib.common.maskable.utils import get_action_masks, is_masking_supported

    from agents.experiments.train import make_training_env

    env = {**TINY, "scaling": {**TINY["scaling"], "initial_instances": 4, "scale_out_cooldown_seconds": 30.0}}
    cfg = load_train_config(files["config"], overrides={"algo": "maskable_ppo", "frame_stack": 2})
    base, venv = make_training_env(cfg, [("tiny", EnvConfig.from_dict(env))])
    assert is_masking_supported(venv)
    venv.seed(0)
    venv.reset()
    # no cooldown runs at the start: every action is valid
    assert get_action_masks(venv).all()
    venv.step(np.full(4, STEPS.index(1)))  # +1 everywhere: the 30 s scale-out cooldown starts (15 s steps)
    masks = get_action_masks(venv)
    assert masks.shape == (4, 5)
    np.testing.assert_array_equal(masks, np.tile([True, True, True, False, False], (4, 1)))
    venv.step(np.full(4, STEPS.index(0)))
    venv.step(np.full(4, STEPS.index(0)))  # 30 s later the cooldown is over
    assert get_action_masks(venv).all()


# ----------------------------------------------------------------------------------------- anti-flap reward
def test_flap_penalty_charges_blocked_requests_and_reversals(files):
    from agents.learned.shaping import FlapPenalty

    # scale-in cooldown 300 s (20 steps), scale-out 0 s; 3 instances at the start
    env = EnvConfig.from_dict({**TINY, "scaling": {**TINY["scaling"], "scale_out_cooldown_seconds": 0.0}})
    plain = ServerlessScalingVecEnv(1, env)
    shaped = FlapPenalty(ServerlessScalingVecEnv(1, env), blocked=0.5, reversal=2.0)
    for v in (plain, shaped):
        v.seed(3)
        v.reset()
    # +1 (applied), -1 (applied: a reversal, starts the scale-in cooldown), -1 (blocked), +1 (applied: a
    # reversal), +1 (applied), -2 (blocked), 0
    actions = [1, -1, -1, 1, 1, -2, 0]
    penalties = [0.0, 2.0, 0.5, 2.0, 0.0, 0.5, 0.0]
    for a, want in zip(actions, penalties):
        act = np.array([STEPS.index(a)])
        r_plain = plain.step(act)[1]
        r_shaped = shaped.step(act)[1]
        assert r_plain[0] - r_shaped[0] == pytest.approx(want, abs=1e-5), (a, want)


def test_flap_penalty_forgets_the_last_direction_at_an_episode_end():
    from agents.learned.shaping import FlapPenalty

    env = EnvConfig.from_dict(
        {**TINY, "episode_steps": 2, "scaling": {**TINY["scaling"], "scale_in_cooldown_seconds": 0}}
    )
    shaped = FlapPenalty(ServerlessScalingVecEnv(1, env), reversal=1.0)
    shaped.seed(0)
    shaped.reset()
    shaped.step(np.array([STEPS.index(1)]))
    shaped.step(np.array([STEPS.index(0)]))  # the episode ends here
    shaped.step(np.array([STEPS.index(-1)]))  # first change of the next episode: no reversal
    assert shaped.last_penalty[0] == 0.0
    shaped.step(np.array([STEPS.index(1)]))
    assert shaped.last_penalty[0] == 1.0


def test_slo_shaping_charges_each_violating_step_on_top_of_the_env_reward():
    from agents.learned.shaping import FlapPenalty

    # scale out, then in as far as the bounds allow: the fleet falls below the load and the steps violate the SLO
    env = EnvConfig.from_dict({**TINY, "scaling": {**TINY["scaling"], "scale_in_cooldown_seconds": 0.0}})
    plain = ServerlessScalingVecEnv(1, env)
    shaped = FlapPenalty(ServerlessScalingVecEnv(1, env), slo_violation=1.5)
    for v in (plain, shaped):
        v.seed(5)
        v.reset()
    seen = set()
    for a in [max(STEPS)] * 4 + [min(STEPS)] * 12:
        act = np.array([STEPS.index(a)])
        r_plain = plain.step(act)[1]
        _, r_shaped, _, infos = shaped.step(act)
        violated = float(infos[0]["slo_violated"])
        seen.add(violated)
        assert r_plain[0] - r_shaped[0] == pytest.approx(1.5 * violated, abs=1e-5)
    assert seen == {0.0, 1.0}  # both kinds of step were checked


def test_the_slo_penalty_starts_at_its_step_on_the_clusters_and_on_the_paired_copy():
    """reward_shaping.slo_violation_from: both FlapPenalty wrappers (the training clusters' and expert 0's copy,
    so the paired difference stays one shaped sum) charge 0 before the step and the penalty from it on."""
    from types import SimpleNamespace

    from stable_baselines3.common.logger import Logger

    from agents.experiments.train import SloPenaltyFrom, make_training_env
    from scaling_env.scenarios import load_scenario

    cfg = TrainConfig(
        scenarios=["steady"],
        n_envs=2,
        ppo={"n_steps": 8, "batch_size": 16},
        residual={"policy": "kpa", "max_offset": 0, "experts": ["hpa"], "paired_base": True},
        reward_shaping={"slo_violation": 3.0, "slo_violation_from": 100},
    )
    native, venv = make_training_env(cfg, [("steady", load_scenario("steady").config)])
    callback = SloPenaltyFrom(venv, 3.0, 100)
    assert len(callback.shapers) == 2 and {s.venv is native for s in callback.shapers} == {True, False}
    model = SimpleNamespace(num_timesteps=0, logger=Logger(folder=None, output_formats=[]), get_env=lambda: venv)
    callback.init_callback(model)
    for steps, want in [(0, 0.0), (99, 0.0), (100, 3.0), (5000, 3.0)]:
        model.num_timesteps = steps
        callback.on_rollout_start()
        assert [s.slo_violation for s in callback.shapers] == [want, want], steps


def test_a_late_slo_penalty_trains_and_logs_when_it_starts(files, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir = tmp_path / "late"
    # two rollouts of 4 x 32 steps: the first without the penalty, the second (from step 128) with it
    train_cli(files, run_dir, "reward_shaping={slo_violation: 1.5, slo_violation_from: 128}")
    events = EventAccumulator(str(next((run_dir / "tb").rglob("events.out.tfevents*")).parent))
    events.Reload()
    assert [e.value for e in events.Scalars("train/slo_penalty")] == [0.0, 1.5]


def test_a_held_gate_s_training_episodes_count_every_env_step(files, tmp_path):
    """learn() hooks the episode metrics into the ResidualVecEnv, which steps the env 4 times per agent step here:
    the logged training episodes have all 16 steps of TINY's episode, not the agent's 4."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir = tmp_path / "held"
    train_cli(files, run_dir, "residual={policy: kpa, max_offset: 0, experts: [hpa], hold: 4}")
    events = EventAccumulator(str(next((run_dir / "tb").rglob("events.out.tfevents*")).parent))
    events.Reload()
    assert {e.value for e in events.Scalars("episode/steps")} == {16.0}


def test_shaped_training_runs_and_evaluates_on_the_env_reward(files, tmp_path):
    run_dir = tmp_path / "shaped"
    train_cli(files, run_dir, "algo=maskable_ppo", "reward_shaping={blocked: 0.05, reversal: 0.2}")
    cfg = load_train_config(run_dir / "config.yaml")
    assert (cfg.reward_shaping.blocked, cfg.reward_shaping.reversal) == (0.05, 0.2)
    rows = (run_dir / "evaluations.csv").read_text().splitlines()
    assert len(rows) == 1 + 2  # header + one row per evaluation (128 and 256 steps)


# ----------------------------------------------------------------------------------------- env overrides
def test_env_overrides_reach_every_scenario_and_the_model_needs_them(files, tmp_path):
    from agents.learned.ppo import apply_env_overrides, load_ppo_policy

    run_dir = tmp_path / "overrides"
    train_cli(files, run_dir, "env_overrides={instances: {memory_mb_per_request: 12.0}}")
    saved = yaml.safe_load((run_dir / "scenarios.yaml").read_text())
    for group in ("train", "eval"):
        for env in saved[group].values():
            assert env["instances"]["memory_mb_per_request"] == 12.0
    plain = EnvConfig.from_dict(TINY)
    config = apply_env_overrides(plain, {"instances": {"memory_mb_per_request": 12.0}})
    assert plain != config
    # loaded on the plain config, the policy runs on the env it was trained on (the benchmark uses its env_config)
    assert load_ppo_policy(run_dir, plain).env_config == config
    assert load_ppo_policy(run_dir, config).n_stack == 1


def test_the_v1_observation_trains_through_env_overrides(files, tmp_path):
    from agents.learned.ppo import apply_env_overrides, load_ppo_policy
    from scaling_env.fields import HISTORY_GROUPS, N_HISTORY

    run_dir = tmp_path / "v1"
    history = "[" + ", ".join(HISTORY_GROUPS) + "]"
    train_cli(
        files, run_dir, f"env_overrides={{observation: {{history: {history}, reset: steady_state}}}}", "frame_stack=2"
    )
    config = apply_env_overrides(
        EnvConfig.from_dict(TINY), {"observation": {"history": list(HISTORY_GROUPS), "reset": "steady_state"}}
    )
    policy = load_ppo_policy(run_dir, config)
    assert (policy.n_obs, policy.n_stack) == (N_OBS + N_HISTORY, 2)
    # on the v0 scenario config the run's overrides are merged back in: the model never sees v0 observations
    assert load_ppo_policy(run_dir, EnvConfig.from_dict(TINY)).env_config == config


# ----------------------------------------------------------------------------------------- per-family returns
class Scripted(VecEnv):
    """A VecEnv whose clusters earn scripted rewards (row t at step t) and end episodes every 5 steps."""

    def __init__(self, rewards: np.ndarray) -> None:
        from gymnasium import spaces

        super().__init__(rewards.shape[1], spaces.Box(-1.0, 1.0, (1,), np.float32), spaces.Discrete(2))
        self.rewards, self.t = rewards, 0

    def reset(self) -> np.ndarray:
        return np.zeros((self.num_envs, 1), np.float32)

    def step_async(self, actions: np.ndarray) -> None:
        pass

    def step_wait(self):
        r = self.rewards[self.t]
        self.t += 1
        dones = np.full(self.num_envs, self.t % 5 == 0)
        return self.reset(), r.copy(), dones, [{} for _ in range(self.num_envs)]

    def close(self) -> None:
        pass

    def get_attr(self, name, indices=None):
        return [getattr(self, name)] * self.num_envs

    def set_attr(self, name, value, indices=None):
        setattr(self, name, value)

    def env_method(self, name, *args, indices=None, **kwargs):
        return [None] * self.num_envs

    def env_is_wrapped(self, wrapper_class, indices=None):
        return [False] * self.num_envs


def test_per_family_normalisation_scales_each_family_as_its_own_vecnormalize_would():
    """Clusters [a, a, b, b] with families 0, 0, 1, 1: each family's normalised rewards equal, bit for bit, those
    of a plain VecNormalize over that family's clusters alone; their scales differ 100x as the rewards do."""
    from agents.learned.family_normalize import FamilyVecNormalize

    rng = np.random.default_rng(0)
    rewards = rng.normal(size=(40, 4)) * np.array([1.0, 1.0, 100.0, 100.0])
    kw = {"norm_obs": False, "gamma": 0.9}
    fam = FamilyVecNormalize(Scripted(rewards), np.array([0, 0, 1, 1]), **kw)
    alone = [VecNormalize(Scripted(rewards[:, :2]), **kw), VecNormalize(Scripted(rewards[:, 2:]), **kw)]
    pooled = VecNormalize(Scripted(rewards), **kw)
    for v in (fam, *alone, pooled):
        v.reset()
    act = np.zeros(4, dtype=np.int64)
    for _ in range(40):
        got = fam.step(act)[1]
        want = np.concatenate([alone[0].step(act[:2])[1], alone[1].step(act[2:])[1]])
        np.testing.assert_array_equal(got, want)
        assert not np.array_equal(pooled.step(act)[1], got)  # one pooled scale is not the same
    np.testing.assert_allclose(fam.unnormalize_reward(got), rewards[-1], rtol=1e-6)
    scale = fam.reward_scale()
    assert scale[0] == scale[1] and scale[2] == scale[3] and 30 < scale[2] / scale[0] < 300
    with pytest.raises(ValueError, match="every family 0..n-1 with a cluster"):
        FamilyVecNormalize(Scripted(rewards), np.array([0, 0, 2, 2]), **kw)


def test_per_family_normalisation_is_built_by_scenario_and_saved_with_its_statistics(tmp_path):
    from agents.experiments.train import make_training_env
    from agents.learned.family_normalize import FamilyVecNormalize
    from agents.learned.ppo import load_vecnormalize
    from scaling_env.scenarios import load_scenario

    scenarios = [(s, load_scenario(s).config) for s in ("steady", "diurnal")]
    ppo = {"n_steps": 8, "batch_size": 16}
    cfg = TrainConfig(scenarios=["steady", "diurnal"], n_envs=4, ppo=ppo, normalize={"reward_per_family": True})
    _, venv = make_training_env(cfg, scenarios)
    assert isinstance(venv, FamilyVecNormalize) and venv.groups.tolist() == [0, 0, 1, 1]
    venv.reset()
    for _ in range(20):
        venv.step(np.full(4, 2, dtype=np.int64))
    path = tmp_path / "vecnormalize.pkl"
    venv.save(str(path))
    loaded = load_vecnormalize(path, make_training_env(cfg, scenarios)[1].venv)
    assert isinstance(loaded, FamilyVecNormalize) and loaded.groups.tolist() == [0, 0, 1, 1]
    steady, diurnal = (r.var for r in venv.family_rms)
    assert min(r.count for r in venv.family_rms) > 20 and diurnal > 10 * steady  # updated, per family
    assert [r.var for r in loaded.family_rms] == [steady, diurnal]
    x = np.array([1.0, -1.0, 5.0, -5.0])
    np.testing.assert_array_equal(loaded.normalize_reward(x), venv.normalize_reward(x))
    _, plain = make_training_env(TrainConfig(scenarios=["steady", "diurnal"], n_envs=4, ppo=ppo), scenarios)
    assert type(plain) is VecNormalize


# ----------------------------------------------------------------------------------------- adaptive SLO penalty
def test_lagrange_step_by_hand():
    """gaps in percentage points: 100 (0.010 - 0.9 * 0.005) = +0.55, 100 (0.002 - 0.9 * 0.004) = -0.16,
    100 (0.30 - 0.9 * 0.30) = +3; times lr 2 on penalties 1, 1, 5; the last clipped at 10, none below 0."""
    from agents.learned.shaping import lagrange_step

    got = lagrange_step(
        np.array([1.0, 1.0, 5.0, 0.1]),
        np.array([0.010, 0.002, 0.30, 0.0]),
        np.array([0.005, 0.004, 0.30, 0.5]),
        lr=2.0,
        margin=0.1,
        high=10.0,
    )
    np.testing.assert_allclose(got, [2.1, 0.68, 10.0, 0.0])


@pytest.mark.parametrize(
    ("shaping", "residual", "message"),
    [
        ({"slo_lagrangian": {"lr": 1.0}}, None, "slo_lagrangian needs residual: {paired_base: true}"),
        (
            {"slo_lagrangian": {"lr": 1.0}},
            {"policy": "kpa", "max_offset": 0, "experts": ["hpa"]},
            "slo_lagrangian needs residual: {paired_base: true}",
        ),
        ({"slo_violation": 1.0, "slo_violation_from": 8, "slo_lagrangian": {"lr": 1.0}}, None, "choose one"),
        ({"slo_lagrangian": {"lr": 0.0}}, None, "slo_lagrangian.lr"),
        ({"slo_lagrangian": {"lr": 1.0, "margin": 1.0}}, None, "slo_lagrangian.margin"),
        ({"slo_lagrangian": {}}, None, "slo_lagrangian.lr"),
        ({"slo_violation": 12.0, "slo_lagrangian": {"lr": 1.0, "max": 10.0}}, None, "above slo_lagrangian.max"),
    ],
)
def test_bad_lagrangian_settings_are_named(shaping, residual, message):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=re.escape(message)):
        TrainConfig(reward_shaping=shaping, residual=residual, total_timesteps=64)


def test_lagrange_step_takes_one_margin_per_scenario():
    """100 (0.004 - 1.0 * 0.004) = 0 and 100 (0.004 - 0.7 * 0.004) = +0.12, times lr 0.5 on penalties 1, 1."""
    from agents.learned.shaping import lagrange_step

    got = lagrange_step(np.ones(2), np.full(2, 0.004), np.full(2, 0.004), lr=0.5, margin=np.array([0.0, 0.3]), high=10)
    np.testing.assert_allclose(got, [1.0, 1.06])


def test_a_margin_per_scenario_is_read_for_the_training_scenarios_and_names_a_stranger():
    from pydantic import ValidationError

    lag = {"lr": 1.0, "margin": {"diurnal": 0.3}}
    residual = {"policy": "kpa", "max_offset": 0, "experts": ["hpa"], "paired_base": True}
    cfg = TrainConfig(scenarios=["steady", "diurnal"], residual=residual, reward_shaping={"slo_lagrangian": lag})
    np.testing.assert_array_equal(cfg.reward_shaping.slo_lagrangian.margins(["steady", "diurnal"]), [0.0, 0.3])
    np.testing.assert_array_equal(
        TrainConfig(
            residual=residual, reward_shaping={"slo_lagrangian": {"lr": 1.0, "margin": 0.2}}
        ).reward_shaping.slo_lagrangian.margins(["a", "b"]),
        [0.2, 0.2],
    )
    with pytest.raises(ValidationError, match="margin names 'flash_crowd', which is not a training scenario"):
        TrainConfig(
            scenarios=["steady"],
            residual=residual,
            reward_shaping={"slo_lagrangian": {"lr": 1.0, "margin": {"flash_crowd": 0.1}}},
        )
    steady_file = str(Path("configs/scenarios/steady.yaml").resolve())  # a file is named by its stem, as in training
    by_file = TrainConfig(
        scenarios=[steady_file],
        residual=residual,
        reward_shaping={"slo_lagrangian": {"lr": 1.0, "margin": {"steady": 0.3}}},
    )
    np.testing.assert_array_equal(by_file.reward_shaping.slo_lagrangian.margins(["steady"]), [0.3])
    with pytest.raises(ValidationError, match="less than 1"):
        TrainConfig(
            scenarios=["steady"],
            residual=residual,
            reward_shaping={"slo_lagrangian": {"lr": 1.0, "margin": {"steady": 1.0}}},
        )


def test_flap_penalty_counts_each_cluster_s_violating_steps_and_charges_per_cluster_penalties():
    from agents.learned.shaping import FlapPenalty

    config = EnvConfig.from_dict({**TINY, "reward": {"slo_p95_seconds": 0.05}})  # a tight SLO: violations happen
    plain, shaped = ServerlessScalingVecEnv(3, config), FlapPenalty(ServerlessScalingVecEnv(3, config))
    shaped.slo_violation = np.array([0.0, 2.0, 5.0])
    plain.seed(3), shaped.seed(3)
    plain.reset(), shaped.reset()
    want = np.zeros(3)
    rng = np.random.default_rng(0)
    for _ in range(20):
        act = rng.integers(0, len(STEPS), 3)
        plain.step_async(act), shaped.step_async(act)
        (_, r_plain, _, infos), (_, r_shaped, _, _) = plain.step_wait(), shaped.step_wait()
        violated = np.array([float(i["slo_violated"]) for i in infos])
        want += violated
        np.testing.assert_allclose(r_plain - r_shaped, [0.0, 2.0, 5.0] * violated, atol=1e-5)
    assert want.sum() > 0
    counts, steps = shaped.take_violations()
    np.testing.assert_array_equal(counts, want)
    assert steps == 20
    counts, steps = shaped.take_violations()  # counted afresh
    assert steps == 0 and not counts.any()


def lagrangian_env(margin: float | dict = 0.5):
    from agents.experiments.train import make_training_env
    from scaling_env.scenarios import load_scenario

    cfg = TrainConfig(
        scenarios=["steady", "diurnal"],
        n_envs=4,
        ppo={"n_steps": 8, "batch_size": 32},
        residual={"policy": "kpa", "max_offset": 0, "experts": ["hpa"], "paired_base": True},
        reward_shaping={"slo_violation": 1.0, "slo_lagrangian": {"lr": 0.1, "margin": margin, "max": 4.0}},
    )
    scenarios = [(n, load_scenario(n).config) for n in ("steady", "diurnal")]
    return cfg, *make_training_env(cfg, scenarios)


def test_the_lagrangian_moves_each_scenario_s_penalty_on_both_copies():
    """Two scenarios of two clusters each; 10 counted steps; lr 0.1, margin 0.5, max 4. steady: agent 1 + 0
    violating steps (share 0.05), the copy 2 + 2 (0.2): gap 100 (0.05 - 0.5 * 0.2) = -5, penalty 1 - 0.5 = 0.5.
    diurnal: agent 3 + 3 (0.3), the copy 1 + 1 (0.1): gap +25, 1 + 2.5 = 3.5. Then again: 0.5 - 0.5 = 0 and
    3.5 + 2.5 -> 4 (max)."""
    from types import SimpleNamespace

    from stable_baselines3.common.logger import Logger

    from agents.experiments.train import SloLagrangianUpdate, shaping_state

    cfg, native, venv = lagrangian_env()
    callback = SloLagrangianUpdate(venv, native, ["steady", "diurnal"], cfg.reward_shaping.slo_lagrangian)
    assert callback.agent.venv is native and callback.paired.venv is not native
    model = SimpleNamespace(num_timesteps=0, logger=Logger(folder=None, output_formats=[]), get_env=lambda: venv)
    callback.init_callback(model)
    callback.on_rollout_start()  # nothing counted yet: the penalties stay at slo_violation
    for shaper in (callback.agent, callback.paired):
        np.testing.assert_array_equal(shaper.slo_violation, [1.0] * 4)
    for want in ([0.5, 0.5, 3.5, 3.5], [0.0, 0.0, 4.0, 4.0]):
        callback.agent.violations[:] = [1, 0, 3, 3]
        callback.paired.violations[:] = [2, 2, 1, 1]
        callback.agent.counted_steps = callback.paired.counted_steps = 10
        callback.on_rollout_start()
        for shaper in (callback.agent, callback.paired):
            np.testing.assert_allclose(shaper.slo_violation, want)
        assert shaping_state(venv) == {"slo_penalty": pytest.approx(want)}
        assert not callback.agent.violations.any() and callback.agent.counted_steps == 0
    callback.agent.counted_steps = 3  # the copy stepped other times: refused
    with pytest.raises(RuntimeError, match="paired copy stepped other times"):
        callback.on_rollout_start()


def test_the_lagrangian_moves_each_scenario_s_penalty_by_its_own_margin():
    """As above with the margin 0.5 on diurnal only (steady's 0): steady's gap 100 (0.05 - 0.2) = -15, penalty
    1 - 1.5 -> 0; diurnal's +25 as above, 3.5."""
    from types import SimpleNamespace

    from stable_baselines3.common.logger import Logger

    from agents.experiments.train import SloLagrangianUpdate

    cfg, native, venv = lagrangian_env({"diurnal": 0.5})
    callback = SloLagrangianUpdate(venv, native, ["steady", "diurnal"], cfg.reward_shaping.slo_lagrangian)
    model = SimpleNamespace(num_timesteps=0, logger=Logger(folder=None, output_formats=[]), get_env=lambda: venv)
    callback.init_callback(model)
    callback.agent.violations[:] = [1, 0, 3, 3]
    callback.paired.violations[:] = [2, 2, 1, 1]
    callback.agent.counted_steps = callback.paired.counted_steps = 10
    callback.on_rollout_start()
    np.testing.assert_allclose(callback.agent.slo_violation, [0.0, 0.0, 3.5, 3.5])


def test_a_lagrangian_run_logs_its_penalties_and_resumes_them_from_the_checkpoint(files, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from agents.experiments.train import (
        RunPaths,
        SloLagrangianUpdate,
        flap_penalties,
        load_checkpoint,
        load_scenario_configs,
        read_run_config,
        with_env_overrides,
    )

    run_dir = tmp_path / "lagrangian"
    train_cli(
        files,
        run_dir,
        "residual={policy: kpa, max_offset: 0, experts: [hpa], paired_base: true}",
        # a tight SLO (violations happen) and a target of a tenth of the copy's share: the penalty rises
        "reward_shaping={slo_violation: 1.0, slo_lagrangian: {lr: 0.05, max: 50.0, margin: 0.9}}",
        "env_overrides={reward: {slo_p95_seconds: 0.05}}",
        "checkpoint_freq=256",
    )
    events = EventAccumulator(str(next((run_dir / "tb").rglob("events.out.tfevents*")).parent))
    events.Reload()
    name = files["tiny"].stem
    logged = [e.value for e in events.Scalars(f"slo_lagrangian/{name}_penalty")]
    assert logged[0] == 1.0 and len(logged) == 2  # two rollouts; the first before any count
    manifest = next((run_dir / "checkpoints").glob("*.json"))
    saved = json.loads(manifest.read_text())["slo_penalty"]
    assert len(saved) == 4 and len(set(saved)) == 1 and 1.0 < saved[0] < 50.0  # moved, not clipped
    assert saved[0] == pytest.approx(logged[1], rel=1e-6)
    cfg = read_run_config(run_dir / "config.yaml")
    paths = RunPaths(run_dir)
    train = with_env_overrides(cfg, load_scenario_configs(cfg.scenarios))
    native, venv, _ = load_checkpoint(cfg, paths, 256, train)
    shapers = flap_penalties(venv)
    assert len(shapers) == 2 and all(list(s.slo_violation) == saved for s in shapers)
    # the resumed run's callback continues from the saved penalties, not from slo_violation
    callback = SloLagrangianUpdate(venv, native, [name], cfg.reward_shaping.slo_lagrangian)
    assert list(callback.penalty) == saved[:1]
