"""Compatibility with the Gymnasium and stable-baselines3 tooling users put around the envs.

Every test here covers behaviour that works today and that training code relies on: SB3 wrappers and
callbacks, sb3-contrib's action masking, Gymnasium's vector wrappers and its SyncVectorEnv reference
behaviour, pickling for subprocess workers, and config errors.
"""

from __future__ import annotations

import copy
import pickle
import warnings

import gymnasium as gym
import numpy as np
import pytest

import scaling_env  # noqa: F401  (registers the env ids)
from scaling_env import ConfigError, EnvConfig, ServerlessScalingEnv, ServerlessScalingVectorEnv
from scaling_env.envs.sb3 import ServerlessScalingVecEnv
from scaling_env.fields import INFO_NAMES, REWARD_NAMES

TINY = {"episode_steps": 8}
# every per-episode random draw switched on, so that seeds show in the observations
RANDOM = {"episode_steps": 4, "workload": {"random_phase": True, "scale_jitter": 0.2}}
# both simulators run through the adapter-equivalence tests below (issue 16)
BACKENDS = ("fast", "request")


def flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flat(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


# ----------------------------------------------------------------------------------------- SB3


def test_sb3_seed_is_used_by_the_next_reset_only():
    venv = ServerlessScalingVecEnv(2, RANDOM)
    venv.seed(0)
    first = venv.reset()
    second = venv.reset()
    venv.seed(0)
    again = venv.reset()
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, second)


@pytest.mark.parametrize("backend", BACKENDS)
def test_sb3_vec_env_matches_dummy_vec_env_over_the_single_env(backend):
    config = {**RANDOM, "simulator": backend}
    from stable_baselines3.common.vec_env import DummyVecEnv

    dummy = DummyVecEnv([lambda: gym.make("ServerlessScaling-v0", config=config) for _ in range(3)])
    ours = ServerlessScalingVecEnv(3, config)
    dummy.seed(7)
    ours.seed(7)
    np.testing.assert_array_equal(dummy.reset(), ours.reset())
    assert dummy.reset_infos == ours.reset_infos
    rng = np.random.default_rng(0)
    for _ in range(9):  # two autoresets
        a = rng.integers(0, 5, 3)
        o1, r1, d1, i1 = dummy.step(a)
        o2, r2, d2, i2 = ours.step(a)
        np.testing.assert_array_equal(o1, o2)
        np.testing.assert_allclose(r1, r2, rtol=1e-6)  # DummyVecEnv stores float32 rewards
        np.testing.assert_array_equal(d1, d2)
        for x, y in zip(i1, i2):
            for key in INFO_NAMES:
                assert x[key] == y[key], key
            assert x["reward_components"] == y["reward_components"]
            assert x.get("TimeLimit.truncated", False) == y.get("TimeLimit.truncated", False)
            if "terminal_observation" in x:
                np.testing.assert_array_equal(x["terminal_observation"], y["terminal_observation"])


def test_vec_monitor_episode_stats_equal_the_summed_rewards():
    from stable_baselines3.common.vec_env import VecMonitor

    venv = VecMonitor(ServerlessScalingVecEnv(2, TINY), info_keywords=("cost_usd",))
    venv.seed(0)
    venv.reset()
    total = np.zeros(2)
    episodes = 0
    for _ in range(2 * TINY["episode_steps"]):
        _, r, dones, infos = venv.step(np.array([2, 3]))
        total += r
        for i in np.flatnonzero(dones):
            ep = infos[i]["episode"]
            assert ep["l"] == TINY["episode_steps"]
            assert ep["r"] == pytest.approx(total[i], rel=1e-5)
            assert ep["cost_usd"] == infos[i]["cost_usd"]  # the final step's info
            assert infos[i]["TimeLimit.truncated"] is True
            assert infos[i]["terminal_observation"][-1] == 1.0  # episode_progress of the last step
            total[i] = 0.0
            episodes += 1
    assert episodes == 4


def test_vec_normalize_save_load_evaluate_and_callbacks(tmp_path):
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import CheckpointCallback, EvalCallback
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.vec_env import VecMonitor, VecNormalize

    venv = VecNormalize(VecMonitor(ServerlessScalingVecEnv(2, TINY)))
    eval_env = VecNormalize(VecMonitor(ServerlessScalingVecEnv(2, TINY)), training=False, norm_reward=False)
    callbacks = [
        EvalCallback(eval_env, eval_freq=8, n_eval_episodes=2, best_model_save_path=str(tmp_path), verbose=0),
        CheckpointCallback(save_freq=16, save_path=str(tmp_path), save_vecnormalize=True),
    ]
    model = PPO("MlpPolicy", venv, n_steps=8, batch_size=16, n_epochs=1, seed=0, device="cpu")
    model.learn(32, callback=callbacks)
    assert (tmp_path / "best_model.zip").exists()
    assert (tmp_path / "rl_model_vecnormalize_32_steps.pkl").exists()

    venv.save(str(tmp_path / "vecnormalize.pkl"))
    loaded = VecNormalize.load(str(tmp_path / "vecnormalize.pkl"), VecMonitor(ServerlessScalingVecEnv(2, TINY)))
    np.testing.assert_allclose(loaded.obs_rms.mean, venv.obs_rms.mean)
    loaded.training, loaded.norm_reward = False, False
    rewards, lengths = evaluate_policy(model, loaded, n_eval_episodes=2, return_episode_rewards=True)
    assert lengths == [TINY["episode_steps"]] * 2 and all(np.isfinite(rewards))

    obs = loaded.reset()
    assert model.predict(obs, deterministic=True)[0].shape == (2,)
    assert model.predict(obs[0], deterministic=True)[0].shape == ()
    PPO.load(str(tmp_path / "best_model.zip"), env=ServerlessScalingVecEnv(2, TINY), device="cpu")


def test_maskable_ppo_masks_through_wrappers_block_nothing():
    from sb3_contrib import MaskablePPO
    from sb3_contrib.common.maskable.utils import get_action_masks
    from stable_baselines3.common.vec_env import VecMonitor, VecNormalize

    cfg = {"episode_steps": 8, "scaling": {"scale_out_cooldown_seconds": 30.0}}
    venv = VecNormalize(VecMonitor(ServerlessScalingVecEnv(3, cfg)))
    venv.seed(0)
    model = MaskablePPO("MlpPolicy", venv, n_steps=8, batch_size=24, n_epochs=1, seed=0, device="cpu")
    model.learn(24)
    obs = venv.reset()
    for _ in range(10):
        masks = get_action_masks(venv)
        assert masks.shape == (3, 5) and masks.dtype == np.bool_
        actions, _ = model.predict(obs, action_masks=masks, deterministic=True)
        assert masks[np.arange(3), actions].all()
        obs, _, _, infos = venv.step(actions)
        assert not any(info["blocked_by_cooldown"] for info in infos)


# ----------------------------------------------------------------------------------------- Gymnasium vector


@pytest.mark.parametrize("backend", BACKENDS)
def test_vector_env_matches_sync_vector_env_same_step_values(backend):
    config = {**RANDOM, "simulator": backend}
    from gymnasium.vector import AutoresetMode, SyncVectorEnv

    ref = SyncVectorEnv(
        [lambda: gym.make("ServerlessScaling-v0", config=config) for _ in range(3)],
        autoreset_mode=AutoresetMode.SAME_STEP,
    )
    ours = gym.make_vec(
        "ServerlessScaling-v0",
        num_envs=3,
        vectorization_mode="vector_entry_point",
        config=config,
        autoreset_mode="same_step",
    )
    assert ours.metadata["autoreset_mode"] == ref.metadata["autoreset_mode"]
    ro, ri = ref.reset(seed=5)
    oo, oi = ours.reset(seed=5)
    np.testing.assert_array_equal(ro, oo)
    rng = np.random.default_rng(1)
    ends = 0
    for _ in range(9):
        a = rng.integers(0, 5, 3)
        r = ref.step(a)
        o = ours.step(a)
        for x, y in zip(r[:4], o[:4]):
            np.testing.assert_array_equal(x, y)
        ri, oi = flat(r[4]), flat(o[4])
        if r[3].any():
            ends += 1
            np.testing.assert_array_equal(np.stack(list(ri.pop("final_obs"))), np.stack(list(oi.pop("final_obs"))))
        assert set(ri) == set(oi)
        for key, value in ri.items():  # every key the reference gives, with its value
            np.testing.assert_array_equal(value, oi[key], err_msg=key)
    assert ends == 2


def test_vector_record_episode_statistics_and_normalize_reward():
    from gymnasium.wrappers.vector import NormalizeReward, RecordEpisodeStatistics

    env = RecordEpisodeStatistics(
        NormalizeReward(
            gym.make_vec("ServerlessScaling-v0", num_envs=2, vectorization_mode="vector_entry_point", config=TINY)
        )
    )
    env.reset(seed=0)
    seen = 0
    for _ in range(2 * TINY["episode_steps"] + 1):  # next-step autoreset: one reset step between episodes
        *_, truncated, info = env.step(np.array([2, 2]))
        if truncated.any():
            assert list(info["episode"]["l"]) == [TINY["episode_steps"]] * 2
            seen += 1
    assert seen == 2


def test_vector_env_reset_with_int_seed_is_reproducible_and_survives_copies():
    env = ServerlessScalingVectorEnv(num_envs=2, config=RANDOM)
    first = env.reset(seed=3)[0]
    run1 = [env.step([2, 3])[0] for _ in range(6)]
    np.testing.assert_array_equal(env.reset(seed=3)[0], first)
    run2 = [env.step([2, 3])[0] for _ in range(6)]
    for a, b in zip(run1, run2):
        np.testing.assert_array_equal(a, b)
    for clone in (copy.deepcopy(env), pickle.loads(pickle.dumps(env))):
        np.testing.assert_array_equal(clone.step([1, 1])[0], copy.deepcopy(env).step([1, 1])[0])


# ----------------------------------------------------------------------------------------- single env


def test_make_with_time_limit_and_common_wrappers():
    from gymnasium.wrappers import FlattenObservation, RecordEpisodeStatistics

    env = gym.make("ServerlessScaling-v0", config=TINY, max_episode_steps=5)
    env.reset(seed=0)
    lengths = [t for t in range(1, 9) if env.step(2)[3]]
    assert lengths[0] == 5

    env = RecordEpisodeStatistics(FlattenObservation(gym.make("ServerlessScaling-v0", config=TINY)))
    env.reset(seed=0)
    total = 0.0
    while True:
        _, r, _, truncated, info = env.step(2)
        total += r
        if truncated:
            break
    assert info["episode"]["l"] == TINY["episode_steps"] and info["episode"]["r"] == pytest.approx(total)
    assert sum(info["reward_components"].values()) == pytest.approx(r)
    assert set(info["reward_components"]) == set(REWARD_NAMES)
    env.close()
    env.close()


def test_single_env_pickle_and_deepcopy_continue_identically():
    env = gym.make("ServerlessScaling-v0", config=RANDOM)
    env.reset(seed=1)
    env.step(3)
    for clone in (copy.deepcopy(env), pickle.loads(pickle.dumps(env))):
        a = copy.deepcopy(env).step(1)
        b = clone.step(1)
        np.testing.assert_array_equal(a[0], b[0])
        assert a[1] == b[1] and a[4] == b[4]


def test_reset_with_the_same_seed_repeats_the_episode():
    env = ServerlessScalingEnv(RANDOM)
    first = env.reset(seed=3)[0]
    run1 = [env.step(2)[0] for _ in range(3)]
    np.testing.assert_array_equal(env.reset(seed=3)[0], first)
    run2 = [env.step(2)[0] for _ in range(3)]
    for a, b in zip(run1, run2):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(env.reset()[0], first)  # an unseeded reset continues the generator


def test_subproc_vec_env_over_gym_make_with_module_prefixed_id():
    from stable_baselines3.common.vec_env import SubprocVecEnv

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        # "module:id" makes the worker import scaling_env (a forkserver worker does not run the test's imports)
        venv = SubprocVecEnv([lambda: gym.make("scaling_env:ServerlessScaling-v0", config=TINY)] * 2)
    try:
        venv.seed(0)
        obs = venv.reset()
        single = ServerlessScalingEnv(TINY)
        np.testing.assert_array_equal(obs[1], single.reset(seed=1)[0])
        _, rewards, _, _ = venv.step(np.array([1, 3]))
        assert rewards[1] == single.step(3)[1]
        masks = venv.env_method("action_masks")
        assert len(masks) == 2 and masks[0].shape == (5,)
    finally:
        venv.close()


# ----------------------------------------------------------------------------------------- config


def test_config_from_yaml_through_gym_make(tmp_path):
    path = tmp_path / "env.yaml"
    path.write_text("episode_steps: 6\nscaling:\n  max_instances: 16\nfailures:\n  mtbf_seconds: null\n")
    env = gym.make("ServerlessScaling-v0", config=str(path))
    assert env.unwrapped.config.scaling.max_instances == 16
    assert env.unwrapped.config.failures.mtbf_seconds is None
    env.reset(seed=0)
    assert sum(1 for _ in range(6) if not env.step(2)[3]) == 5


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"episode_steps": 0}, "episode_steps: Input should be greater than or equal to 1"),
        ({"scaling": {"max_instance": 5}}, "scaling.max_instance: unknown key"),
        ({"scaling": {"min_instances": 10, "max_instances": 5}}, "min_instances (10) must be <= max_instances (5)"),
        ({"workload": {"shape": {"kind": "diurnal", "peak_rps": -1}}}, "workload.shape.diurnal.peak_rps"),
        ({"workload": {"shape": {"kind": "sine"}}}, "does not match any of the expected tags"),
        ({"load_balancer": {"algorithm": "least_conn"}}, "load_balancer.algorithm"),
        ({"failures": {"outages": [{"time_seconds": 10}]}}, "failures.outages.0.fraction: Field required"),
        ({"step_seconds": float("nan")}, "step_seconds"),
    ],
)
def test_bad_config_values_name_the_field(bad, message):
    with pytest.raises(ConfigError) as exc:
        gym.make("ServerlessScaling-v0", config=bad)
    assert message in str(exc.value)


def test_bad_yaml_names_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("episode_steps: 0\n")
    with pytest.raises(ConfigError, match="bad.yaml"):
        EnvConfig.from_yaml(path)
    with pytest.raises(ConfigError, match="cannot read"):
        EnvConfig.coerce(str(tmp_path / "missing.yaml"))
