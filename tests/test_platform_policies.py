"""The platform-mode baselines (agents/rules/provisioned.py): hand-computed decisions, full episodes on the
platform scenarios, and which policy runs on which scenario in the benchmark."""

from __future__ import annotations

import math

import numpy as np
import pytest

from agents import make_policy
from agents.experiments.benchmark import DEFAULT_POLICIES, DEFAULT_SCENARIOS, fits
from agents.registry import PLATFORM_POLICIES
from agents.rules.provisioned import runs_on
from scaling_env import EnvConfig, ServerlessScalingEnv, ServerlessScalingVectorEnv
from scaling_env.scenarios import load_scenario

DAILY = load_scenario("daily_provisioned").config
SPARSE = load_scenario("sparse_bursts").config


def info(**values: float) -> dict:
    """A one-cluster batch info with the given keys (time_s > 0: not a reset)."""
    base = {"time_s": 60.0, "arrivals": 0.0, "instances_warm": 1.0, "instances_booting": 0.0}
    return {k: np.asarray([v], dtype=np.float64) for k, v in {**base, **values}.items()}


OBS = np.zeros((1, 19), dtype=np.float32)


def test_provisioned_tracking_scales_by_utilisation_over_target_after_three_data_points():
    # one-minute steps: each decision after the first (the reset's info) is a data point; 10 provisioned at
    # utilisation 1.0 (target 0.7): the high alarm fires on the third point, desired = ceil(10 * 1.0 / 0.7) = 15
    cfg = DAILY.with_updates({"step_seconds": 60.0})
    policy = make_policy("provisioned_tracking", cfg)
    policy.reset(num_envs=1)
    steps = cfg.scaling.scale_steps
    acts = [policy.act_batch(OBS, info(provisioned_utilization=1.0, instances_controlled=10.0))[0] for _ in range(4)]
    assert [steps[a] for a in acts[:3]] == [0, 0, 0] and policy.desired[0] == 15
    assert steps[acts[3]] == 4  # the nearest step to +5 (it keeps asking until 15 is reached)
    held = policy.act_batch(OBS, info(provisioned_utilization=0.7, instances_controlled=14.0))[0]
    assert steps[held] == 1  # 14 -> 15


def test_scheduled_sets_the_provisioned_count_for_the_coming_slot_from_the_daily_shape():
    # at clock 0 (the trough, 20 requests/s; peak 400 at 1,800 s): the slot due within the 60 s lead is [0, 300);
    # its peak rate is at 300 s: 210 - 190 cos(30 deg) = 45.45 requests/s -> ceil(45.45 * 0.1 / (1 * 0.7)) = 7
    policy = make_policy("scheduled", DAILY)
    policy.reset(num_envs=1)
    obs = OBS.copy()
    obs[0, 16], obs[0, 17] = 0.0, 1.0  # time of day: sin 0, cos 1
    steps = DAILY.scaling.scale_steps
    assert steps[policy.act_batch(obs, info(instances_controlled=7.0))[0]] == 0  # (already there: it holds)
    rate = 210.0 - 190.0 * math.cos(math.pi / 6)
    assert policy.desired[0] == math.ceil(rate * 0.1 / 0.7) == 7
    # at the peak (clock 1,800 s: sin 0, cos -1) the slot [1800, 2100) peaks at 400 requests/s: ceil(57.1) = 58
    obs[0, 17] = -1.0
    assert steps[policy.act_batch(obs, info(instances_controlled=50.0))[0]] == 8
    assert policy.desired[0] == math.ceil(400.0 * 0.1 / 0.7) == 58


def test_scheduled_provisions_a_known_spike_ahead_of_it():
    cfg = load_scenario("scaling_rate_burst").config
    policy = make_policy("scheduled", cfg)
    policy.reset(num_envs=1)
    # the slot [900, 1200) of the 1,500 requests/s spike asks for ceil(1500 * 0.1 / 0.7) = 215, clipped to
    # max_instances 200; from 8 provisioned, steps of at most +8 per 10 s need 24 decisions (240 s), so it is due
    # 60 + 240 = 300 s before the slot: from 600 s on
    policy.decisions[:] = 59  # 59 decisions of 10 s
    policy.act_batch(OBS, info(time_s=590.0, instances_controlled=8.0))
    assert policy.desired[0] == math.ceil(50.0 * 0.1 / 0.7) == 8  # the slot under way, at 50 requests/s
    policy.act_batch(OBS, info(time_s=600.0, instances_controlled=8.0))
    assert policy.desired[0] == 200


def test_fixed_keep_alive_steers_to_its_value_with_the_nearest_step():
    policy = make_policy("fixed_keep_alive", SPARSE, {"keep_alive_seconds": 900.0})
    policy.reset(num_envs=1)
    steps = SPARSE.scaling.scale_steps  # [-8, -4, -2, -1, 0, 1, 2, 4, 8] x 60 s
    assert steps[policy.act_batch(OBS, info(keep_alive_seconds=600.0))[0]] == 4  # +240 s: 840 is nearest to 900
    assert steps[policy.act_batch(OBS, info(keep_alive_seconds=840.0))[0]] == 1
    assert steps[policy.act_batch(OBS, info(keep_alive_seconds=900.0))[0]] == 0


def test_hybrid_histogram_keeps_instances_for_the_tail_of_the_idle_times():
    # requests every 12 minutes in one-minute steps: idle 11 minutes (660 s) between them; after 3 idle times the
    # histogram (one bin: CV high) sets the keep-alive to the 99th percentile's bin edge, 12 min, + 10 % = 792 s
    cfg = SPARSE.with_updates({"step_seconds": 60.0})
    policy = make_policy("hybrid_histogram", cfg)
    policy.reset(num_envs=1)
    targets = []
    for k in range(12 * 4 + 1):
        busy = 40.0 if k % 12 == 0 else 0.0
        targets.append(policy.target(info(time_s=60.0 * (k + 1), arrivals=busy))[0])
    assert targets[12 * 3 - 1] == 600.0  # two idle times seen: the fixed fallback
    assert targets[12 * 3] == pytest.approx(792.0)  # the third idle time ends
    assert policy.bins[0, 11] == 4 and policy.bins[0].sum() == 4


def test_hybrid_histogram_avoids_the_cold_starts_of_the_fixed_keep_alive_on_sparse_bursts():
    def cold_starts(name: str) -> float:
        env = ServerlessScalingVectorEnv(num_envs=2, config=SPARSE, parallel=False)
        policy = make_policy(name, SPARSE)
        obs, inf = env.reset(seed=1)
        policy.reset(num_envs=2)
        total = 0.0
        for _ in range(SPARSE.episode_steps):
            obs, _, _, _, inf = env.step(policy.act_batch(obs, inf))
            total += float(inf["cold_starts"].sum())
        return total

    fixed, hybrid = cold_starts("fixed_keep_alive"), cold_starts("hybrid_histogram")
    # the 11-minute gaps outlast the 10-minute keep-alive: a cold start at every burst with the fixed policy
    assert hybrid < 0.6 * fixed


@pytest.mark.parametrize("name", sorted(PLATFORM_POLICIES))
def test_platform_policies_run_full_episodes_on_the_platform_scenarios(name):
    for scenario in ("sparse_bursts", "daily_provisioned", "scaling_rate_burst"):
        cfg = load_scenario(scenario).config
        policy = make_policy(name, cfg)
        if not runs_on(policy, cfg):
            with pytest.raises(ValueError, match="platform.control"):
                policy.reset(num_envs=1)
            continue
        env = ServerlessScalingEnv(cfg)
        obs, inf = env.reset(seed=2)
        policy.reset(seed=2)
        for _ in range(cfg.episode_steps):
            a = policy.act(obs, inf)
            assert 0 <= a < env.action_space.n
            obs, _, _, truncated, inf = env.step(a)
        assert truncated


def test_the_platform_baselines_refuse_a_pool_env_with_a_clear_error():
    for name in PLATFORM_POLICIES:
        policy = make_policy(name, EnvConfig())  # built and validated against any config
        with pytest.raises(ValueError, match=f"{name} policy: needs an env with platform.enabled: true"):
            policy.reset(num_envs=1)


def test_the_default_benchmark_pairs_policies_with_the_scenarios_they_can_control():
    from scaling_env.scenarios import load_scenarios

    assert {"sparse_bursts", "daily_provisioned", "scaling_rate_burst"} <= set(DEFAULT_SCENARIOS)
    assert PLATFORM_POLICIES <= set(DEFAULT_POLICIES)
    loaded = {sc.name: sc for sc in load_scenarios(list(DEFAULT_SCENARIOS), None)[0]}
    assert not fits("fixed_keep_alive", loaded["steady"]) and not fits("scheduled", loaded["diurnal"])
    assert fits("hybrid_histogram", loaded["sparse_bursts"]) and not fits("scheduled", loaded["sparse_bursts"])
    assert not fits("hpa", loaded["sparse_bursts"])  # nothing to scale there: the action sets the keep-alive
    assert fits("hpa", loaded["daily_provisioned"]) and fits("scheduled", loaded["daily_provisioned"])
