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
