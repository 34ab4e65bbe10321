"""Env checkers, determinism, and equivalence of the single env, the vector env and the SB3 VecEnv."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from conftest import merge

import scaling_env  # noqa: F401  (registers the env ids)
from scaling_env import EnvConfig, ServerlessScalingEnv, ServerlessScalingVectorEnv
from scaling_env.envs.sb3 import ServerlessScalingVecEnv
from scaling_env.fields import INFO_NAMES, OBS_NAMES, REWARD_NAMES

# short episodes with every random mechanism switched on
BUSY = {
    "episode_steps": 12,
    "workload": {
        "shape": {"kind": "random_walk", "start_rps": 600.0, "volatility": 0.3},
        "random_phase": True,
        "scale_jitter": 0.3,
    },
    "instances": {"cold_start_seconds": 20.0, "cold_start_jitter": 0.5},
    "failures": {"mtbf_seconds": 600.0, "outages": [{"time_seconds": 60.0, "fraction": 0.5}]},
    "load_balancer": {"algorithm": "random"},
    "scaling": {"scale_out_cooldown_seconds": 15.0, "scale_in_cooldown_seconds": 30.0},
}


def make_quietly(env_id: str, **kwargs):
    """gym.make without Gymnasium's notice that v0 is not the newest version (v0 stays a supported version)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*out of date.*", category=DeprecationWarning)
        return gym.make(env_id, **kwargs)


def test_v0_make_says_v1_exists():
    with pytest.warns(DeprecationWarning, match="ServerlessScaling-v0 is out of date"):
        gym.make("ServerlessScaling-v0")


# both simulators run through the checkers, determinism and adapter-equivalence tests (issue 16)
BACKENDS = ("fast", "request")


def busy(backend: str) -> dict:
    return merge(BUSY, {"simulator": backend})


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("env_id", ["ServerlessScaling-v0", "ServerlessScaling-v1"])
def test_gymnasium_env_checker_passes_without_warnings(env_id, backend):
    from gymnasium.utils.env_checker import check_env

    envs = [make_quietly(env_id, config={"simulator": backend}), make_quietly(env_id, config=busy(backend))]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for env in envs:
            check_env(env.unwrapped)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("version", [0, 1])
def test_sb3_env_checker_passes_without_warnings(version, backend):
    from stable_baselines3.common.env_checker import check_env

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(ServerlessScalingEnv({"simulator": backend}, version=version), warn=True)
        check_env(ServerlessScalingEnv(busy(backend), version=version), warn=True)


def test_make_and_make_vec():
    env = gym.make("ServerlessScaling-v0", config=BUSY)
    obs, info = env.reset(seed=1)
    assert env.observation_space.contains(obs)
    assert set(INFO_NAMES) <= set(info) and set(info["reward_components"]) == set(REWARD_NAMES)
    venv = gym.make_vec("ServerlessScaling-v0", num_envs=3, vectorization_mode="vector_entry_point", config=BUSY)
    assert isinstance(venv.unwrapped, ServerlessScalingVectorEnv)
    obs, info = venv.reset(seed=1)
    assert obs.shape == (3, len(OBS_NAMES)) and venv.observation_space.contains(obs)
    assert info["arrivals"].shape == (3,)


def rollout_single(config, seed, actions):
    env = ServerlessScalingEnv(config)
    obs, _ = env.reset(seed=seed)
    out = [(obs, 0.0, {})]
    for a in actions:
        obs, r, term, trunc, info = env.step(int(a))
        out.append((obs, r, info))
        if trunc:
            obs, _ = env.reset()
            out.append((obs, None, None))
    return out


@pytest.mark.parametrize("backend", BACKENDS)
def test_same_seed_same_trajectory_and_different_seed_differs(backend):
    config = busy(backend)
    actions = np.random.default_rng(0).integers(0, 5, 30)
    a = rollout_single(config, 7, actions)
    b = rollout_single(config, 7, actions)
    c = rollout_single(config, 8, actions)
    for (oa, ra, ia), (ob, rb, ib) in zip(a, b):
        np.testing.assert_array_equal(oa, ob)
        assert ra == rb and ia == ib
    assert any(not np.array_equal(x[0], y[0]) for x, y in zip(a, c))


@pytest.mark.parametrize("backend", BACKENDS)
def test_single_env_and_vector_env_with_one_cluster_agree_step_by_step(backend):
    config = busy(backend)
    actions = np.random.default_rng(1).integers(0, 5, 30)
    single = ServerlessScalingEnv(config)
    vec = ServerlessScalingVectorEnv(num_envs=1, config=config, autoreset_mode="same_step")
    so, si = single.reset(seed=11)
    vo, vi = vec.reset(seed=11)
    np.testing.assert_array_equal(so, vo[0])
    for a in actions:
        so, sr, _, st, si = single.step(int(a))
        vo, vr, _, vt, vi = vec.step(np.array([a]))
        if st:
            # same-step autoreset: the vector env shows the final observation in info
            np.testing.assert_array_equal(so, vi["final_obs"][0])
            for key in INFO_NAMES:
                assert si[key] == vi["final_info"][key][0], key
            so, si = single.reset()
        else:
            for key in INFO_NAMES:
                assert si[key] == vi[key][0], key
        np.testing.assert_array_equal(so, vo[0])
        assert sr == vr[0] and st == vt[0]


@pytest.mark.parametrize("backend", BACKENDS)
def test_cluster_in_a_batch_matches_a_single_env_seeded_like_it(backend):
    config = busy(backend)
    # vector env seed s gives cluster i the seed s + i; threads on or off
    actions = np.random.default_rng(2).integers(0, 5, (20, 5))
    for parallel in (False, True):
        vec = ServerlessScalingVectorEnv(num_envs=5, config=config, parallel=parallel, autoreset_mode="same_step")
        vo, _ = vec.reset(seed=100)
        singles = [ServerlessScalingEnv(config) for _ in range(5)]
        for i, env in enumerate(singles):
            np.testing.assert_array_equal(env.reset(seed=100 + i)[0], vo[i])
        for a in actions:
            vo, vr, _, vt, vi = vec.step(a)
            for i, env in enumerate(singles):
                o, r, _, t, info = env.step(int(a[i]))
                if t:
                    o, _ = env.reset()
                np.testing.assert_array_equal(o, vo[i])
                assert r == vr[i]


@pytest.mark.parametrize("backend", BACKENDS)
def test_sb3_vec_env_agrees_with_vector_env_including_autoreset(backend):
    config = busy(backend)
    actions = np.random.default_rng(3).integers(0, 5, (30, 4))
    vec = ServerlessScalingVectorEnv(num_envs=4, config=config, autoreset_mode="same_step")
    sb3 = ServerlessScalingVecEnv(num_envs=4, config=config)
    vo, _ = vec.reset(seed=5)
    sb3.seed(5)
    so = sb3.reset()
    np.testing.assert_array_equal(vo, so)
    resets = 0
    for a in actions:
        vo, vr, _, vt, vi = vec.step(a)
        so, sr, sd, sinfos = sb3.step(a)
        np.testing.assert_array_equal(vo, so)
        np.testing.assert_array_equal(vr.astype(np.float32), sr)
        np.testing.assert_array_equal(vt, sd)
        for i in range(4):
            src = vi["final_info"] if vt[i] else vi
            for key in INFO_NAMES:
                assert sinfos[i][key] == src[key][i], key
            if sd[i]:
                resets += 1
                assert sinfos[i]["TimeLimit.truncated"] is True
                np.testing.assert_array_equal(sinfos[i]["terminal_observation"], vi["final_obs"][i])
    assert resets == 8  # 30 steps of 12-step episodes: two ends x 4 clusters


def test_sb3_ppo_and_maskable_ppo_train_on_the_native_batch():
    from sb3_contrib import MaskablePPO
    from stable_baselines3 import PPO

    venv = ServerlessScalingVecEnv(num_envs=4, config=BUSY)
    venv.seed(0)
    PPO("MlpPolicy", venv, n_steps=16, batch_size=32, n_epochs=1, seed=0, device="cpu").learn(64)
    venv = ServerlessScalingVecEnv(num_envs=4, config=BUSY)
    MaskablePPO("MlpPolicy", venv, n_steps=16, batch_size=32, n_epochs=1, seed=0, device="cpu").learn(64)


def test_action_masks_match_what_step_applies():
    cfg = EnvConfig.from_dict(merge(BUSY, {"failures": {"mtbf_seconds": None, "outages": []}}))
    env = ServerlessScalingEnv(cfg)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    steps = cfg.scaling.scale_steps
    for _ in range(11):
        mask = env.action_masks()
        a = int(rng.integers(0, len(steps)))
        info = env.step(a)[4]
        assert bool(mask[a]) == (not info["blocked_by_cooldown"])


@pytest.mark.parametrize("bad", [-1, 5, 2.5, "1", None, np.array([1, 2])])
def test_invalid_actions_raise_clear_errors(bad):
    env = ServerlessScalingEnv()
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"action must be an integer index in \[0, 4\]"):
        env.step(bad)


def test_invalid_vector_actions_raise_clear_errors():
    vec = ServerlessScalingVectorEnv(num_envs=3)
    vec.reset(seed=0)
    with pytest.raises(ValueError, match=r"actions\[1\] = 7 is outside \[0, 4\]"):
        vec.step(np.array([0, 7, 1]))
    with pytest.raises(ValueError, match="shape"):
        vec.step(np.array([0, 1]))


def test_step_after_truncation_without_reset_is_an_error():
    env = ServerlessScalingEnv({"episode_steps": 2})
    env.reset(seed=0)
    env.step(2)
    assert env.step(2)[3] is True
    with pytest.raises(RuntimeError, match="reset"):
        env.step(2)


def test_human_render_prints_one_line_per_step_and_ansi_returns_it(capsys):
    env = gym.make("ServerlessScaling-v0", render_mode="human")
    env.reset(seed=0)
    for _ in range(3):
        env.step(2)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and all(line.startswith("step") for line in lines)
    env = gym.make("ServerlessScaling-v0", render_mode="ansi")
    env.reset(seed=0)
    env.step(2)
    assert capsys.readouterr().out == ""
    line = env.render()
    assert line.startswith("step     1") and "\n" not in line


def test_workload_rate_function_is_exposed_for_look_ahead():
    env = ServerlessScalingEnv(BUSY)
    env.reset(seed=0)
    wl = env.workload
    rates = wl.rate(np.array([0.0, 15.0, 30.0]))
    assert rates.shape == (3,) and np.all(rates > 0)
    np.testing.assert_allclose(env.sim.expected[0], wl.expected_arrivals())


def test_observation_docstring_table_names_every_field():
    doc = ServerlessScalingEnv.__doc__
    for i, name in enumerate(OBS_NAMES):
        assert f"| {i} | `{name}` |" in doc


@pytest.mark.parametrize("mode", ["next_step", "same_step"])
def test_vector_env_matches_gymnasium_sync_vector_env(mode):
    """Values and autoreset of the native vector env equal Gymnasium's SyncVectorEnv over single envs."""
    from gymnasium.vector import AutoresetMode, SyncVectorEnv

    ref = SyncVectorEnv(
        [lambda: ServerlessScalingEnv(BUSY) for _ in range(3)],
        autoreset_mode=AutoresetMode(mode.title().replace("_", "")),
    )
    ours = ServerlessScalingVectorEnv(3, BUSY, autoreset_mode=mode)
    ro, ri = ref.reset(seed=9)
    oo, oi = ours.reset(seed=9)
    np.testing.assert_array_equal(ro, oo)
    actions = np.random.default_rng(4).integers(0, 5, (30, 3))
    for a in actions:
        ro, rr, rt, rtr, ri = ref.step(a)
        oo, orr, ot, otr, oi = ours.step(a)
        np.testing.assert_array_equal(ro, oo)
        np.testing.assert_array_equal(rr, orr)
        np.testing.assert_array_equal(rt, ot)
        np.testing.assert_array_equal(rtr, otr)
        for key in INFO_NAMES:
            np.testing.assert_array_equal(ri[key], oi[key], err_msg=key)
        if "final_obs" in ri:
            for i in range(3):
                np.testing.assert_array_equal(ri["final_obs"][i], oi["final_obs"][i])
            for key in INFO_NAMES:
                np.testing.assert_array_equal(ri["final_info"][key], oi["final_info"][key], err_msg=key)


def test_next_step_mode_works_with_gymnasium_observation_wrappers():
    from gymnasium.wrappers.vector import NormalizeObservation

    inner = gym.make_vec(
        "ServerlessScaling-v0", num_envs=2, vectorization_mode="vector_entry_point", config={"episode_steps": 3}
    )
    venv = NormalizeObservation(inner)
    venv.reset(seed=0)
    for _ in range(7):
        obs, *_ = venv.step(np.array([2, 3]))
        assert np.all(np.isfinite(obs))


def test_vector_env_reset_mask_seed_lists_and_max_episode_steps():
    venv = gym.make_vec(
        "ServerlessScaling-v0", num_envs=3, vectorization_mode="vector_entry_point", config=BUSY, max_episode_steps=5
    )
    assert venv.unwrapped.config.episode_steps == 5
    o1, _ = venv.reset(seed=[1, 2, 3])
    o2, _ = venv.reset(seed=1)  # int seed s gives cluster i the seed s + i
    np.testing.assert_array_equal(o1, o2)
    for _ in range(2):
        venv.step(np.array([4, 4, 4]))
    before = venv.unwrapped.sim.env_state.copy()
    venv.reset(options={"reset_mask": np.array([False, True, False])})
    after = venv.unwrapped.sim.env_state
    np.testing.assert_array_equal(before[[0, 2]], after[[0, 2]])
    assert after[1, 0] == 0.0  # cluster 1 is back at t = 0


def test_vector_env_step_before_reset_is_an_error():
    with pytest.raises(RuntimeError, match="reset"):
        ServerlessScalingVectorEnv(2).step(np.array([2, 2]))


def test_config_is_immutable_and_copied():
    cfg = EnvConfig.from_dict({"episode_steps": 8})
    with pytest.raises(Exception, match="frozen"):
        cfg.episode_steps = 3
    shorter = cfg.with_updates({"episode_steps": 3, "scaling": {"max_instances": 4}})
    assert (shorter.episode_steps, shorter.scaling.max_instances, cfg.episode_steps) == (3, 4, 8)
    with pytest.raises(Exception, match="rate_rps"):
        cfg.with_updates({"workload": {"shape": {"kind": "constant", "rate_rps": float("inf")}}})


def test_sb3_per_cluster_methods_and_attributes():
    venv = ServerlessScalingVecEnv(3, BUSY)
    venv.seed(0)
    venv.reset()
    venv.step(np.array([4, 4, 4]))
    before = venv.sim.env_state.copy()
    out = venv.env_method("reset", indices=[2])
    assert len(out) == 1 and out[0][0].shape == (len(OBS_NAMES),)
    np.testing.assert_array_equal(before[:2], venv.sim.env_state[:2])
    assert venv.sim.env_state[2, 0] == 0.0
    assert [m.shape for m in venv.env_method("action_masks")] == [(5,)] * 3
    assert len(venv.get_attr("workload", indices=[0, 1])) == 2
    with pytest.raises(ValueError, match="share one simulator"):
        venv.set_attr("flag", True, indices=[0])
    with pytest.raises(AttributeError):
        venv.env_method("fly")


def test_sb3_make_vec_env_with_its_default_render_mode():
    from stable_baselines3.common.env_util import make_vec_env

    venv = make_vec_env("ServerlessScaling-v0", n_envs=2, env_kwargs={"config": {"episode_steps": 4}})
    venv.reset()
    venv.step(np.array([2, 2]))
    frames = venv.get_images()  # SB3 asks for rgb_array by default: the dashboard frames
    assert len(frames) == 2 and frames[0].ndim == 3 and frames[0].shape[2] == 3


def test_rgb_array_render_is_a_uint8_frame_that_changes_between_steps():
    env = gym.make("ServerlessScaling-v0", config={"episode_steps": 12}, render_mode="rgb_array")
    env.reset(seed=3)
    env.step(4)
    first = env.render()
    assert isinstance(first, np.ndarray) and first.dtype == np.uint8
    assert first.ndim == 3 and first.shape[2] == 3 and first.shape[0] > 200 and first.shape[1] > 200
    for _ in range(5):
        env.step(4)
    second = env.render()
    assert second.shape == first.shape
    assert np.mean(np.any(first != second, axis=2)) > 0.001  # the curves grew: a visible share of pixels changed
