"""The fast model's memory crash follows the momentary count of outstanding requests (scaling_env/sim/memory.py,
docs/model.md 7): level crossing of the count's stationary distribution, checked by hand, off far from the limit,
and against the request backend."""

from __future__ import annotations

import math

import numpy as np
import pytest

from scaling_env import EnvConfig
from scaling_env.fields import INFO_NAMES
from scaling_env.sim.load_balancer import LEAST_OUTSTANDING, RANDOM, ROUND_ROBIN
from scaling_env.sim.memory import (
    arrivals_at_level,
    crash_probability,
    erlang_infinite_level,
    memory_slots,
    mmck_range,
)
from scaling_env.sim.simulator import BatchSimulator

COL = {name: i for i, name in enumerate(INFO_NAMES)}


def test_memory_slots_is_the_request_backends_limit():
    # (1024 - 256) / 48 = 16 fit; the 17th passes the limit (memory_pressure)
    assert memory_slots(256.0, 48.0, 1024.0) == 16.0
    assert memory_slots(256.0, 300.0, 1024.0) == 2.0  # 856 MB fits, 1156 does not
    assert memory_slots(256.0, 256.0, 1024.0) == 3.0  # exactly at the limit still fits (the backend tests > 1)
    assert math.isinf(memory_slots(256.0, 0.0, 1024.0))


def test_mm1k_crossing_by_hand():
    # M/M/1/K with a = lambda s = 5 * 0.1 = 0.5, K = 1 + 2: p_n = 0.5^n / (1 + 0.5 + 0.25 + 0.125), so an
    # arrival (PASTA) finds N = 2 with probability 0.25 / 1.875 = 2/15
    r = arrivals_at_level(RANDOM, 5.0, 1, 1.0, 1.0, 1, 0.1, 2.0, 2.0)
    assert r == pytest.approx(2.0 / 15.0, rel=1e-12)
    assert mmck_range(1, 0.5, 3.0, 0.0, 3.0) == pytest.approx(1.0, rel=1e-12)
    # a step of 15 s takes 75 arrivals: P(at least one crossing 2 -> 3) = 1 - exp(-75 * 2/15) = 1 - e^-10
    assert crash_probability(75.0, r) == pytest.approx(1.0 - math.exp(-10.0), rel=1e-12)
    # the count cannot pass K = 3: a fourth request is turned away by the full waiting room
    assert arrivals_at_level(RANDOM, 5.0, 1, 1.0, 1.0, 1, 0.1, 2.0, 3.0) == 0.0


def test_erlang_arrivals_crossing_by_hand():
    # round robin over 2 members of a Poisson stream: each sees Erlang-2 gaps, E_2/M/1 at rho = 0.5.
    # sigma = (2 rho / (2 rho + 1 - sigma))^2 = 1 / (2 - sigma)^2  ->  (sigma - 1)(sigma^2 - 3 sigma + 1) = 0,
    # sigma = (3 - sqrt 5) / 2; arrivals find j with probability (1 - sigma) sigma^j (GI/M/1), j = 2:
    sigma = (3.0 - math.sqrt(5.0)) / 2.0
    r = arrivals_at_level(ROUND_ROBIN, 10.0, 2, 2.0, 2.0, 1, 0.1, 100.0, 2.0)
    assert r == pytest.approx((1.0 - sigma) * sigma**2, rel=1e-9)
    # smoother than Poisson: fewer arrivals find 2 than in M/M/1 (0.5 * 0.25)
    assert r < 0.125


def test_erlang_infinite_below_concurrency():
    # Poisson (k = 1): the binomial-moment sum is a^L e^-a / L!
    assert erlang_infinite_level(1, 6.4, 16) == pytest.approx(6.4**16 * math.exp(-6.4) / math.factorial(16), rel=1e-8)
    # E_3/M/infinity at a = 2, L = 3, against a simulation of 400,000 arrivals: an arrival finds the earlier
    # requests whose departure is after it (infinite servers: no waiting)
    rng = np.random.default_rng(7)
    t = np.cumsum(rng.gamma(3, 1 / (3 * 20.0), 400_000))  # lambda 20/s, mu 10/s
    d = np.sort(t + rng.exponential(0.1, t.size))
    found = np.arange(t.size) - np.searchsorted(d, t, side="right")
    share = float((found[1000:] == 3).mean())
    assert erlang_infinite_level(3, 2.0, 3) == pytest.approx(share, abs=4 * math.sqrt(share / t.size))
    # round robin over 4 members below c = 20 uses it: less than the Poisson value
    r = arrivals_at_level(ROUND_ROBIN, 4 * 64.0, 4, 4.0, 4.0, 20, 0.1, 100.0, 16.0)
    assert r == pytest.approx(erlang_infinite_level(4, 6.4, 16), rel=1e-12)
    assert r < 0.1 * 6.4**16 * math.exp(-6.4) / math.factorial(16)


def test_least_outstanding_balanced_pool():
    # 2 instances, c = 1, no waiting room beyond 1 each: the pooled M/M/2/4 at a = 1 (lambda 10, s 0.1):
    # p_n proportional to 1, 1, 1/2, 1/4, 1/8; an instance goes from 1 to 2 when the pool holds 2 or 3
    r = arrivals_at_level(LEAST_OUTSTANDING, 10.0, 2, 2.0, 2.0, 1, 0.1, 1.0, 1.0)
    assert r == pytest.approx((0.5 + 0.25) / (1 + 1 + 0.5 + 0.25 + 0.125), rel=1e-12)


def memory_config(simulator: str, rate_rps: float, crash: bool = True, conc: int = 20, steps: int = 4) -> EnvConfig:
    """4 fixed instances, 48 MB per request over 256 MB of 1 GB (16 requests fit), random balancer."""
    return EnvConfig.from_dict(
        {
            "simulator": simulator,
            "step_seconds": 15.0,
            "episode_steps": steps,
            "workload": {"shape": {"kind": "constant", "rate_rps": rate_rps}},
            "instances": {
                "concurrency": conc,
                "max_queue": 100,
                "service_seconds": 0.1,
                "service_cv": 1.0,
                "memory_mb_per_request": 48.0,
                "memory_base_mb": 256.0,
                "instance_memory_gb": 1.0,
            },
            "scaling": {"min_instances": 4, "max_instances": 4, "initial_instances": 4},
            "load_balancer": {"algorithm": "random"},
            "failures": {"mtbf_seconds": None, "memory_crash": crash, "replace_unhealthy": True},
        }
    )


def run(config: EnvConfig, seeds: list[int]) -> np.ndarray:
    sim = BatchSimulator(config, len(seeds), parallel=False)
    sim.seed(seeds)
    sim.reset()
    hold = list(config.scaling.scale_steps).index(0)
    rows = []
    for _ in range(config.episode_steps):
        sim.step(np.full(len(seeds), hold))
        rows.append(np.array(sim.metrics[:, : len(INFO_NAMES)]))
    return np.stack(rows, axis=1)  # (cluster, step, column)


def test_far_below_the_limit_nothing_changes():
    # mean 1.6 requests in flight of the 16 that fit: crossing to 17 has a chance ~1e-12 per step, below the
    # draw threshold, so the trajectory is the one without memory crashes, random numbers included
    seeds = list(range(8))
    on = run(memory_config("fast", 64.0, True, steps=20), seeds)
    off = run(memory_config("fast", 64.0, False, steps=20), seeds)
    np.testing.assert_array_equal(on, off)
    assert on[:, :, COL["crashes"]].sum() == 0


def test_crash_chance_matches_the_request_backend():
    """The chance that some instance crashes in the first step, over 400 seeds per backend: 4 instances of
    c = 20 at 4.8 requests in flight on average (rho 0.24: nothing queues, only the count's spread passes 16).
    Per instance 1 - exp(-720 r_L) with r_L the Poisson P(N = 16) ~ 3.3e-5: about 0.023, so about 9 % for the
    fleet. Tolerance: 4 standard errors of the difference of two binomial shares (~0.020 each at n = 400) plus
    2 points for the model (the count starts at 0 in the request backend and the stationary law needs about a
    service time to hold)."""
    rate = 4 * 4.8 / 0.1
    seeds = list(range(1000, 1400))
    share = {}
    for simulator in ("fast", "request"):
        rows = run(memory_config(simulator, rate, steps=1), seeds)
        share[simulator] = float((rows[:, 0, COL["crashes"]] > 0).mean())
    r = arrivals_at_level(RANDOM, rate, 4, 4.0, 4.0, 20, 0.1, 100.0, 16.0)
    expected = 1.0 - (1.0 - crash_probability(rate / 4 * 15.0, r)) ** 4
    se = math.sqrt(2 * expected * (1 - expected) / len(seeds))
    assert abs(share["fast"] - share["request"]) <= 4 * se + 0.02, (share, expected)
    assert abs(share["fast"] - expected) <= 4 * math.sqrt(expected * (1 - expected) / len(seeds)), (share, expected)
    assert share["fast"] > 0.0  # (without the fix the fast model's mean count, 4.8, never crashes)


def one_instance(simulator: str, rate_rps: float, initial: int = 1, hc_interval: float = 5.0) -> EnvConfig:
    """One instance of concurrency 1 and a 1 s service (deterministic arrivals and service), 48 MB per request
    over 256 MB of 1 GB (16 requests fit), 10 s steps, health checks every ``hc_interval`` s (2 to fail)."""
    return EnvConfig.from_dict(
        {
            "simulator": simulator,
            "step_seconds": 10.0,
            "episode_steps": 2,
            "workload": {"shape": {"kind": "constant", "rate_rps": rate_rps}, "arrival_process": "deterministic"},
            "instances": {
                "concurrency": 1,
                "max_queue": 1000,
                "service_seconds": 1.0,
                "service_cv": 0.0,
                "cold_start_seconds": 5.0,
                "cold_start_jitter": 0.0,
                "memory_mb_per_request": 48.0,
                "memory_base_mb": 256.0,
                "instance_memory_gb": 1.0,
            },
            "scaling": {"min_instances": 0, "max_instances": 1, "initial_instances": initial, "scale_steps": [0, 1]},
            "load_balancer": {
                "algorithm": "round_robin",
                "health_check_interval_seconds": hc_interval,
                "unhealthy_threshold": 2,
            },
            "failures": {"mtbf_seconds": None, "memory_crash": True, "replace_unhealthy": False},
        }
    )


def first_steps(config: EnvConfig, actions: list[int]) -> np.ndarray:
    sim = BatchSimulator(config, 1, parallel=False)
    sim.seed([0])
    sim.reset()
    rows = []
    for a in actions:
        sim.step(np.array([a]))
        rows.append(np.array(sim.metrics[0, : len(INFO_NAMES)]))
    return np.stack(rows)


def test_a_sure_crash_acts_when_the_fluid_count_reaches_the_limit():
    """3 requests/s on one instance that completes 1/s: the fluid queue grows at 2/s, the count (1 in service +
    the queue) passes the 16 that fit when the queue passes 15, at 7.5 s. Before it the instance completes 7.5
    of the step's 10 (rounded: 8); the 2 it would have completed after, and the 20 queued at the step's end,
    fail: 8 served, 22 failed (acting at the step's end it served 10 and failed 20). Its health checks fail from
    7.5 s: the one at 10 s, then the one at 15 s takes it out, halfway through step 1: of its 30 arrivals the 15
    before fail, the 15 after find no instance and are dropped.
    The request backend (deterministic 1 s services) crashes it when the 24th arrival (at 23/3 s) finds 16
    outstanding, after 7 completions."""
    fast = first_steps(one_instance("fast", 3.0), [0, 0])
    assert fast[0, COL["crashes"]] == 1
    assert fast[0, COL["served"]] == 8 and fast[0, COL["failed"]] == 22 and fast[0, COL["dropped"]] == 0
    assert fast[1, COL["served"]] == 0 and fast[1, COL["failed"]] == 15 and fast[1, COL["dropped"]] == 15
    assert fast[1, COL["instances_unhealthy"]] == 1  # found at 15 s (a crash at the step end: at 20 s)
    request = first_steps(one_instance("request", 3.0), [0, 0])
    assert request[0, COL["crashes"]] == 1 and request[0, COL["served"]] == 7
    assert request[1, COL["instances_unhealthy"]] == 1 and request[1, COL["dropped"]] == 15


def test_a_cold_start_queue_past_the_limit_crashes_the_booting_instance():
    """No instance at the start; the action starts one (5 s cold start) and the 4 requests/s wait on it: its queue
    passes the 16 that fit at 4 s, before it is warm, so it serves nothing and all 40 requests of the step fail
    (it used to serve a step's worth at the step's end). The request backend crashes it at the 17th arrival,
    at 4 s, too."""
    for simulator in ("fast", "request"):
        rows = first_steps(one_instance(simulator, 4.0, initial=0), [1, 0])
        assert rows[0, COL["crashes"]] == 1, simulator
        assert rows[0, COL["served"]] == 0 and rows[0, COL["failed"]] == 40, simulator


def test_the_replacement_starts_at_the_detection_inside_the_step():
    """An outage crashes the one instance (0.5 requests/s, far from its memory) at 7.5 s; with health checks
    every 4 s (at 8 s, then 12 s) it is found at 12 s, a fifth into step 1. Its replacement is launched then (the
    request backend's rule), so its 5 s cold start is over at 17 s: warm at the end of step 1 (it used to launch
    at 20 s and be warm at 25 s), billed 8 s in step 1 beside the failed instance's 10 s. The request backend:
    the same states and billing."""
    failures = {"memory_crash": False, "replace_unhealthy": True, "outages": [{"time_seconds": 7.5, "fraction": 1.0}]}
    config = one_instance("fast", 0.5, hc_interval=4.0).with_updates({"failures": failures})
    for simulator in ("fast", "request"):
        rows = first_steps(config.with_updates({"simulator": simulator}), [0, 0])
        assert rows[0, COL["crashes"]] == 1, simulator
        assert rows[1, COL["cold_starts"]] == 1, simulator
        assert rows[1, COL["instances_warm"]] == 1 and rows[1, COL["instances_booting"]] == 0, simulator
        assert rows[1, COL["instances_unhealthy"]] == 1, simulator
        assert rows[1, COL["instance_seconds"]] == pytest.approx(10.0 + 8.0), simulator


def test_least_outstanding_one_crash_stops_the_others_in_the_step():
    """Two instances under least outstanding, 6 requests/s split evenly: each is the instance above (3/s on 1/s),
    so both would pass the limit at 7.5 s. The first to crash has no outstanding requests and takes the later
    requests (docs/model.md 5), so the other's count stops growing: one crash, not two (slot order decides the
    tie). The crashed one serves 8 and fails 22 as above; the other serves its 10 and keeps its queue of 20."""
    config = one_instance("fast", 6.0).with_updates(
        {"load_balancer": {"algorithm": "least_outstanding"}, "scaling": {"max_instances": 2, "initial_instances": 2}}
    )
    rows = first_steps(config, [0])
    assert rows[0, COL["crashes"]] == 1
    assert rows[0, COL["served"]] == 8 + 10 and rows[0, COL["failed"]] == 22
    assert rows[0, COL["backlog"]] == 20
