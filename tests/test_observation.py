"""The v1 observation (issue 15): history fields, the steady-state reset, options, determinism."""

from __future__ import annotations

import math
import warnings

import gymnasium as gym
import numpy as np
import pytest

import scaling_env  # noqa: F401  (registers the env ids)
from scaling_env import ConfigError, EnvConfig, ServerlessScalingEnv, ServerlessScalingVectorEnv
from scaling_env.fields import HISTORY_FIELDS, HISTORY_GROUPS, OBS_NAMES, observation_fields

V1_NAMES = [f[0] for f in observation_fields(HISTORY_GROUPS)]
# 200 requests/s on 4 instances of 10 x 0.1 s: utilisation 200 / 400 = 0.5
STEADY = {
    "episode_steps": 40,
    "workload": {"shape": {"kind": "constant", "rate_rps": 200.0}, "arrival_process": "deterministic"},
    "instances": {"service_cv": 0.0, "cold_start_jitter": 0.0},
    "scaling": {"initial_instances": 4, "min_instances": 1},
    "failures": {"mtbf_seconds": None},
}


def make(version: int, config=None, **kw):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*out of date.*", category=DeprecationWarning)
        return gym.make(f"ServerlessScaling-v{version}", config=config, **kw)


def test_v1_observation_is_the_v0_fields_then_the_history_in_fields_order():
    env = make(1)
    assert env.observation_space.shape == (len(OBS_NAMES) + len(HISTORY_FIELDS),) == (43,)
    assert V1_NAMES[: len(OBS_NAMES)] == list(OBS_NAMES)
    assert V1_NAMES[len(OBS_NAMES) :] == [f[0] for f in HISTORY_FIELDS]
    assert make(0).observation_space.shape == (19,)
    assert "ema_seconds" in ServerlessScalingEnv.__doc__ and "v1" in ServerlessScalingEnv.__doc__


def test_history_groups_can_be_chosen_for_ablation():
    env = ServerlessScalingEnv({"observation": {"history": ["trend", "ema"]}}, version=1)
    names = [f[0] for f in observation_fields(env.config.observation.groups)]
    assert env.observation_space.shape == (19 + 12 + 4,)
    assert names[19:22] == ["request_rate_ema_short", "request_rate_ema_mid", "request_rate_ema_long"]
    assert names[-1] == "latency_p95_trend"
    obs, _ = env.reset(seed=0)
    assert obs.shape == (35,)
    # an explicit empty history under v1 is the v0 observation with the steady-state reset
    env = ServerlessScalingEnv({"observation": {"history": []}}, version=1)
    assert env.observation_space.shape == (19,)


def test_bad_observation_options_name_the_field():
    with pytest.raises(ConfigError, match="observation.history"):
        EnvConfig.from_dict({"observation": {"history": ["emas"]}})
    with pytest.raises(ConfigError, match="ema_seconds"):
        EnvConfig.from_dict({"observation": {"ema_seconds": [300, 60, 900]}})
    with pytest.raises(ConfigError, match="unknown env version 7"):
        EnvConfig().for_version(7)


def test_v1_reset_shows_the_initial_fleet_at_the_first_rate_and_v0_shows_no_load():
    o1, _ = make(1, STEADY).reset(seed=0)
    v = dict(zip(V1_NAMES, o1.tolist()))
    # by hand: CPU = 200 / (4 * 10 / 0.1) = 0.5; memory = (256 + 4 MB * 0.5 * 10 in service) / 1024 MB
    assert v["cpu_mean"] == pytest.approx(0.5) and v["cpu_max"] == pytest.approx(0.5)
    assert v["memory_mean"] == pytest.approx(276.0 / 1024.0)
    assert v["request_rate"] == pytest.approx(200.0 / (64 * 100.0))  # rate / capacity of max_instances
    assert v["latency_p95"] > 0.1 / 0.5  # at least the service time / SLO
    assert v["cpu_ema_short"] == v["cpu_ema_long"] == pytest.approx(0.5) and v["cpu_trend"] == 0.0
    assert v["instances_controlled"] == pytest.approx(4 / 64)
    assert v["demand_per_capacity"] == pytest.approx(0.5)
    assert v["time_since_scale"] == 1.0 and v["last_scale_applied"] == 0.0
    # the steady state is what the first step then shows (same formulas; deterministic arrivals, fixed service)
    env = make(1, STEADY)
    env.reset(seed=0)
    o_next, *_ = env.step(2)  # hold
    assert o_next[:9] == pytest.approx(o1[:9], abs=2e-3)
    o0, _ = make(0, STEADY).reset(seed=0)
    assert not o0[:9].any()  # v0 keeps its reset: no load, CPU or latency


LATE = {"sources": {"cw": {"period_seconds": 60.0, "delay_seconds": 45.0, "metrics": ["cpu_utilization", "arrivals"]}}}


@pytest.mark.parametrize("metrics", [None, LATE], ids=["as-measured", "delayed"])
def test_moving_averages_follow_the_delivered_metrics_by_hand(metrics):
    """e_k = e_{k-1} + (1 - exp(-15 / tau)) (x_k - e_{k-1}) from the info's observed CPU, rate and p95."""
    cfg = {
        **({"metrics": metrics} if metrics else {}),
        "episode_steps": 30,
        "workload": {
            "shape": {
                "kind": "spike",
                "base_rps": 300.0,
                "peak_rps": 2500.0,
                "start_seconds": 60.0,
                "duration_seconds": 120.0,
            }
        },
    }
    env = make(1, cfg)
    obs, info = env.reset(seed=4)
    v = dict(zip(V1_NAMES, obs.tolist()))
    e = {
        w: (v[f"cpu_ema_{w}"], v[f"request_rate_ema_{w}"], v[f"latency_p95_ema_{w}"]) for w in ("short", "mid", "long")
    }
    taus = {"short": 60.0, "mid": 300.0, "long": 900.0}
    rng = np.random.default_rng(0)
    max_rps = 64 * 10 / 0.1
    for _ in range(30):
        obs, _, _, _, info = env.step(int(rng.integers(0, 5)))
        v = dict(zip(V1_NAMES, obs.tolist()))
        x = (
            min(info["observed_cpu_utilization"], 1.0),
            min(info["observed_arrivals"] / 15.0 / max_rps, 10.0),
            min(info["observed_latency_p95_s"] / 0.5, 10.0),
        )
        for w, tau in taus.items():
            a = 1.0 - math.exp(-15.0 / tau)
            e[w] = tuple(old + a * (new - old) for old, new in zip(e[w], x))
            assert v[f"cpu_ema_{w}"] == pytest.approx(e[w][0], abs=1e-6)
            assert v[f"request_rate_ema_{w}"] == pytest.approx(e[w][1], abs=1e-6)
            assert v[f"latency_p95_ema_{w}"] == pytest.approx(e[w][2], abs=1e-6)
        assert v["cpu_trend"] == pytest.approx(e["short"][0] - e["long"][0], abs=1e-6)


def test_last_scaling_action_and_time_since_it():
    env = make(1, STEADY)
    env.reset(seed=0)
    obs, _, _, _, info = env.step(4)  # +2
    v = dict(zip(V1_NAMES, obs.tolist()))
    assert info["scale_applied"] == 2 and v["last_scale_applied"] == 1.0 and v["time_since_scale"] == 0.0
    for k in range(1, 4):
        obs, _, _, _, info = env.step(2)  # hold
        v = dict(zip(V1_NAMES, obs.tolist()))
        assert v["last_scale_applied"] == 1.0
        assert v["time_since_scale"] == pytest.approx(15.0 * k / 900.0)
    assert v["instances_controlled"] == pytest.approx(6 / 64)


@pytest.mark.parametrize("config", [None, STEADY])
def test_v1_same_seed_same_trajectory_single_and_vector(config):
    def run_single(seed):
        env = make(1, config)
        obs, _ = env.reset(seed=seed)
        out = [obs]
        for k in range(25):
            obs, *_ = env.step(k % 5)
            out.append(obs)
        return np.array(out)

    a, b = run_single(11), run_single(11)
    assert a.tobytes() == b.tobytes()
    venv = ServerlessScalingVectorEnv(num_envs=3, config=config, version=1, parallel=False)
    obs, _ = venv.reset(seed=10)
    vec = [obs]
    for k in range(25):
        obs, *_ = venv.step(np.full(3, k % 5))
        vec.append(obs)
    assert np.array(vec)[:, 1].tobytes() == a.tobytes()  # cluster 1 of seed 10 = single env of seed 11


def test_sb3_vecenv_takes_the_version_and_refuses_mixed_observations():
    from scaling_env.envs.sb3 import ServerlessScalingVecEnv

    venv = ServerlessScalingVecEnv(2, STEADY, version=1)
    assert venv.observation_space.shape == (43,)
    assert venv.reset().shape == (2, 43)
    with pytest.raises(ConfigError, match="observation.history differs"):
        ServerlessScalingVecEnv(2, [STEADY, {**STEADY, "observation": {"history": ["ema"]}}], version=1)


def test_v1_threaded_and_serial_batches_agree_bit_for_bit():
    from scaling_env.sim.simulator import BatchSimulator

    cfg = EnvConfig.from_dict({"episode_steps": 30, "metrics": LATE}).for_version(1)
    out = []
    for parallel in (False, True):
        sim = BatchSimulator(cfg, num_envs=6, parallel=parallel)
        sim.seed(list(range(6)))
        sim.reset()
        obs = [sim.obs.copy()]
        for k in range(30):
            sim.step(np.full(6, k % 5))
            obs.append(sim.obs.copy())
        out.append(np.array(obs))
    assert out[0].tobytes() == out[1].tobytes()
