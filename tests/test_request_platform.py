"""The serverless platform mode in the request-level backend (``simulator: request``, issue 16; docs/model.md 11-12):
hand-computed cases with deterministic service times, the cases both backends must agree on exactly, invariants,
the env checkers, seeded determinism and adapter equivalence on the three platform scenarios."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from conftest import merge
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_invariants import check_step
from test_platform import LAMBDA, PROV_GB_S, ZERO, burst, platform_configs
from test_request_backend import request_waits

import scaling_env  # noqa: F401  (registers the env ids)
from scaling_env import EnvConfig, ServerlessScalingEnv
from scaling_env.envs.vector import ServerlessScalingVectorEnv
from scaling_env.fields import INFO_NAMES
from scaling_env.scenarios import load_scenario
from scaling_env.sim.simulator import BatchSimulator

BACKENDS = ("fast", "request")
PLATFORM_SCENARIOS = ("sparse_bursts", "daily_provisioned", "scaling_rate_burst")
# deterministic service (cv 0) so that every time below is derived on paper
EXACT: dict = merge(LAMBDA, {"simulator": "request", "instances": {"service_cv": 0.0}})


def run(over: dict, steps: int, backend: str = "request", actions: list[int] | None = None) -> list[dict]:
    cfg = EnvConfig.from_dict(merge(merge(EXACT, over), {"simulator": backend}))
    env = ServerlessScalingEnv(cfg)
    env.reset(seed=0)
    acts = actions or [ZERO] * steps
    return [env.step(acts[k])[4] for k in range(steps)]


def total(infos: list[dict], key: str) -> float:
    return sum(i[key] for i in infos)


# ------------------------------------------------------------------------------------------ hand-computed
def test_one_request_into_a_cold_platform_waits_exactly_its_cold_start():
    infos = run({"workload": {"shape": burst([1, 0, 0], 10.0)}}, steps=3)
    assert total(infos, "arrivals") == 1 and total(infos, "served") == 1
    assert total(infos, "cold_starts") == 1 and total(infos, "cold_start_waits") == 1
    done = next(i for i in infos if i["served"] == 1)
    assert done["latency_mean_s"] == pytest.approx(2.0 + 0.1, abs=1e-9)  # cold start + service, exactly
    assert total(infos, "throttled") == 0


def test_a_warm_instance_serves_the_next_request_without_a_cold_start():
    # 1 request every 10 s: the first cold-starts; every later one finds the instance warm (keep-alive 600 s)
    infos = run({"workload": {"shape": {"kind": "constant", "rate_rps": 0.1}}}, steps=5)
    assert total(infos, "cold_starts") == 1
    later = [i for i in infos[1:] if i["served"] == 1 and i["cold_start_waits"] == 0]
    assert later and all(i["latency_mean_s"] == pytest.approx(0.1, abs=1e-9) for i in later)


@pytest.mark.parametrize("keep_alive", [0.0, 7.5, 25.0])
def test_keep_alive_reclaims_an_idle_instance_exactly_keep_alive_after_its_last_request(keep_alive):
    # launched at the arrival t_a, warm at t_a + 2, done at t_a + 2.1, reclaimed at t_a + 2.1 + keep_alive:
    # billed 2.1 + keep_alive s in all, whichever steps they fall in
    over = {"workload": {"shape": burst([1, 0, 0, 0, 0, 0], 10.0)}, "platform": {"keep_alive_seconds": keep_alive}}
    infos = run(over, steps=6)
    assert total(infos, "instance_seconds") == pytest.approx(2.1 + keep_alive, abs=1e-9)
    assert total(infos, "instances_reclaimed") == 1 and infos[-1]["instances_warm"] == 0


def test_a_burst_over_the_scaling_rate_budget_throttles_exactly_the_excess():
    # a bucket of 5 new instances, refilled at 5 per day (0.0006 in this episode): 12 requests arriving at once,
    # each holding its instance longer than the episode: 5 cold starts, 7 throttled
    over = {
        "workload": {"shape": burst([12, 0, 0], 10.0)},
        "instances": {"service_seconds": 100.0},
        "platform": {"scale_rate_instances": 5, "scale_rate_period_seconds": 86400.0},
    }
    infos = run(over, steps=3)
    assert total(infos, "cold_starts") == 5 and total(infos, "throttled") == 7
    assert infos[0]["throttled_share"] == pytest.approx(7 / 12)
    assert infos[0]["reward_components"]["throttled"] == pytest.approx(-10.0 * 7 / 12)  # weight 10
    assert total(infos, "dropped") == total(infos, "failed") == 0


def test_the_concurrency_limit_throttles_what_it_cannot_hold_and_the_activator_buffers_some_of_it():
    over = {"workload": {"shape": burst([12, 0, 0], 10.0)}, "instances": {"service_seconds": 100.0}}
    infos = run(merge(over, {"platform": {"max_concurrency": 8}}), steps=3)
    assert total(infos, "throttled") == 4 and infos[-1]["instances_warm"] == 8
    # with the activator (room for 3): 3 of the 4 wait in its buffer, 1 is throttled; they stay buffered
    act = {"platform": {"max_concurrency": 8, "activator": True, "activator_capacity": 3}}
    infos = run(merge(over, act), steps=3)
    assert total(infos, "throttled") == 1 and [i["activator_buffered"] for i in infos] == [3, 3, 3]
    assert [i["backlog"] for i in infos] == [11, 11, 11]  # 8 in service + 3 buffered


def test_the_activator_serves_its_buffer_first_when_capacity_frees():
    # one instance at most, 4 s per request, 3 requests in step 0: one cold-starts, two wait in the buffer and
    # run one after the other on the same instance; nothing is throttled and no second instance starts
    over = {
        "workload": {"shape": burst([3, 0, 0], 10.0)},
        "instances": {"service_seconds": 4.0},
        "platform": {"max_concurrency": 1, "activator": True, "activator_capacity": 10},
    }
    infos = run(over, steps=3)
    assert total(infos, "served") == 3 and total(infos, "throttled") == 0 and total(infos, "cold_starts") == 1


def test_requests_waiting_only_in_the_activator_report_their_age_as_latency():
    # a bucket of one token (refilled at 1 per day): the first request (at 9.5 s) uses it, its instance is
    # reclaimed at once when it is done (keep-alive 0); the two of step 2 find no instance and no token: buffered,
    # nothing served in step 2
    over = {
        "workload": {"shape": burst([1, 0, 2], 10.0)},
        "platform": {
            "scale_rate_instances": 1,
            "scale_rate_period_seconds": 86400.0,
            "keep_alive_seconds": 0.0,
            "activator": True,
        },
    }
    infos = run(over, steps=3)
    assert total(infos[:2], "served") == 1 and total(infos[:2], "instances_reclaimed") == 1
    step = infos[2]
    assert step["served"] == 0 and step["activator_buffered"] == 2 and step["backlog"] == 2
    assert 0.1 < step["latency_mean_s"] <= 10.1 and step["latency_p95_s"] == step["latency_mean_s"]


def test_provisioned_capacity_is_used_first_and_billed_at_its_price():
    # 2 provisioned instances, one request per step: no cold start, served in 0.1 s on a provisioned instance;
    # provisioned billing 2 x 10 s at the provisioned price + 0.1 s of duration at the duration price
    infos = run(
        {"workload": {"shape": {"kind": "constant", "rate_rps": 0.1}}, "platform": {"initial_provisioned": 2}}, 3
    )
    for info in infos:
        assert info["cold_starts"] == 0 and info["instance_seconds"] == 0.0 and info["provisioned"] == 2
        assert info["provisioned_cost_usd"] == pytest.approx(2 * 10.0 * PROV_GB_S + 0.1 * 0.0000097222, rel=1e-9)
        assert info["provisioned_utilization"] == pytest.approx(0.1 / 20.0, rel=1e-9)


@pytest.mark.parametrize("backend", BACKENDS)
def test_both_backends_agree_exactly_where_nothing_depends_on_request_times(backend):
    # no traffic: 3 provisioned instances, then the action lowers the count by one (scale step -1)
    infos = run({"platform": {"initial_provisioned": 3}}, steps=3, backend=backend, actions=[ZERO, 0, ZERO])
    assert [i["provisioned"] for i in infos] == [3, 2, 2]
    assert [i["instances_warm"] for i in infos] == [3, 2, 2]
    assert infos[0]["cost_usd"] == pytest.approx(3 * 10.0 * PROV_GB_S, rel=1e-12)
    assert infos[1]["cost_usd"] == pytest.approx(2 * 10.0 * PROV_GB_S, rel=1e-12)
    # the action raises it: one cold start of 2 s, provisioned instances do not use the scaling tokens
    infos = run({"platform": {"scale_rate_instances": 1}}, steps=2, backend=backend, actions=[3, ZERO])
    assert [i["cold_starts"] for i in infos] == [2, 0] and infos[1]["instances_warm"] == 2


def test_lowering_the_provisioned_count_lets_a_busy_instance_finish_its_requests():
    # 1 provisioned instance busy with a 25 s request from the start; the action stops it: the request is not lost
    over = {"workload": {"shape": burst([1, 0, 0, 0], 10.0)}, "instances": {"service_seconds": 25.0}}
    infos = run(merge(over, {"platform": {"initial_provisioned": 1}}), steps=4, actions=[ZERO, 0, ZERO, ZERO])
    assert total(infos, "served") == 1 and total(infos, "failed") == 0 and total(infos, "cold_starts") == 0
    assert infos[1]["provisioned"] == 0


# ------------------------------------------------------------------------------------------ invariants
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=platform_configs(), seed=st.integers(0, 2**31 - 1), actions=st.lists(st.integers(0, 10), min_size=20))
def test_platform_invariants_hold_on_every_step_of_the_request_backend(data, seed, actions):
    """previous backlog + arrivals = served + dropped + failed + throttled + backlog (check_step, with the request
    backend's latency bounds), and the platform's limits, on every step of random platform configs."""
    cfg = EnvConfig.from_dict({**data, "simulator": "request"})
    env = ServerlessScalingEnv(cfg)
    env.reset(seed=seed)
    prev = 0.0
    first = None
    for k in range(cfg.episode_steps):
        obs, reward, _, _, info = env.step(actions[k % len(actions)] % env.action_space.n)
        if first is None and info["arrivals"] > 0:
            first = info["time_s"] - cfg.step_seconds
        check_step(env, prev, obs, reward, info, cfg, first if first is not None else info["time_s"], request_waits)
        assert info["dropped"] == info["failed"] == 0  # the platform throttles; it does not drop or fail
        assert 0.0 <= info["throttled_share"] <= 1.0
        assert info["instances_warm"] + info["instances_booting"] <= cfg.platform.max_concurrency
        assert 0.0 <= info["provisioned_utilization"] <= 1.0 + 1e-12
        assert info["activator_buffered"] <= (cfg.platform.activator_capacity if cfg.platform.activator else 0)
        assert info["provisioned_cost_usd"] >= 0.0 and info["cost_usd"] >= info["provisioned_cost_usd"] - 1e-15
        prev = info["backlog"]


# ------------------------------------------------------------------------------------------ adapters
def scenario_config(name: str) -> dict:
    return load_scenario(name).config.model_copy(update={"simulator": "request", "episode_steps": 24})


@pytest.mark.parametrize("scenario", PLATFORM_SCENARIOS)
def test_env_checkers_pass_with_the_request_backend(scenario):
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    cfg = scenario_config(scenario)
    env = gym.make("ServerlessScaling-v1", config=cfg)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped)
        sb3_check_env(ServerlessScalingEnv(cfg), warn=True)


def rollout(cfg, seed: int, actions: np.ndarray) -> list:
    env = ServerlessScalingEnv(cfg)
    env.reset(seed=seed)
    out = []
    for a in actions:
        obs, r, _, _, info = env.step(int(a))
        out.append((obs.copy(), r, info))
    return out


@pytest.mark.parametrize("scenario", PLATFORM_SCENARIOS)
def test_same_seed_same_trajectory_with_the_request_backend(scenario):
    cfg = scenario_config(scenario)
    actions = np.random.default_rng(0).integers(0, len(cfg.scaling.scale_steps), 24)
    a, b, c = rollout(cfg, 3, actions), rollout(cfg, 3, actions), rollout(cfg, 4, actions)
    for (oa, ra, ia), (ob, rb, ib) in zip(a, b):
        np.testing.assert_array_equal(oa, ob)
        assert ra == rb and ia == ib
    assert any(x[2] != y[2] for x, y in zip(a, c))


def test_a_cluster_in_a_batch_follows_the_single_env_threads_on_or_off():
    cfg = scenario_config("sparse_bursts")
    acts = np.random.default_rng(1).integers(0, len(cfg.scaling.scale_steps), size=(20, 3))
    single = BatchSimulator(cfg, num_envs=1, parallel=False)
    single.seed([6])
    single.reset()
    sims = []
    for parallel in (False, True):
        sim = BatchSimulator(cfg, num_envs=3, parallel=parallel)
        sim.seed([5, 6, 7])
        sim.reset()
        sims.append(sim)
    for k in range(20):
        single.step(acts[k, 1:2])
        for sim in sims:
            sim.step(acts[k])
            assert sim.metrics[1].tobytes() == single.metrics[0].tobytes()


def test_vector_env_and_sb3_vec_env_agree_with_the_single_env():
    from scaling_env.envs.sb3 import ServerlessScalingVecEnv

    cfg = scenario_config("scaling_rate_burst")
    actions = np.random.default_rng(2).integers(0, len(cfg.scaling.scale_steps), (30, 2))
    vec = ServerlessScalingVectorEnv(num_envs=2, config=cfg, autoreset_mode="same_step")
    sb3 = ServerlessScalingVecEnv(num_envs=2, config=cfg)
    singles = [ServerlessScalingEnv(cfg) for _ in range(2)]
    vo, _ = vec.reset(seed=9)
    sb3.seed(9)
    np.testing.assert_array_equal(vo, sb3.reset())
    for i, env in enumerate(singles):
        np.testing.assert_array_equal(env.reset(seed=9 + i)[0], vo[i])
    for a in actions:
        vo, vr, _, vt, vi = vec.step(a)
        so, sr, _, sinfos = sb3.step(a)
        np.testing.assert_array_equal(vo, so)
        np.testing.assert_array_equal(vr.astype(np.float32), sr)
        for i, env in enumerate(singles):
            o, r, _, t, info = env.step(int(a[i]))
            src = vi["final_info"] if vt[i] else vi
            for key in INFO_NAMES:
                assert info[key] == src[key][i] == sinfos[i][key], key
            if t:
                o, _ = env.reset()
            np.testing.assert_array_equal(o, vo[i])
            assert r == vr[i]


# ------------------------------------------------------------------------------------------ fidelity report
def test_fidelity_platform_section_compares_both_backends_under_a_platform_baseline(fidelity):
    fidelity.PLATFORM_SCENARIOS = ("sparse_bursts",)
    fidelity.PLATFORM_POLICIES = ("fixed_keep_alive", "provisioned_tracking")  # the second cannot run there
    rows = fidelity.platform_scenarios((1,))
    assert [(r["scenario"], r["policy"]) for r in rows] == [("sparse_bursts", "fixed_keep_alive")]
    assert rows[0]["fast"]["reward"] != rows[0]["request"]["reward"]  # two different simulations ran
    text = "\n".join(fidelity.platform_lines(rows))
    assert "| sparse_bursts | fixed_keep_alive |" in text and text.count("\n") == 2
