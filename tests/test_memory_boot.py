"""Memory crashes where several instances boot at once, and the first-passage hazard of a crash
(scaling_env/sim/memory.py, docs/model.md 7, docs/fidelity.md item 10): hand-computed cases that fail without the
fixes, and one check against the request backend."""

from __future__ import annotations

import math

import numpy as np
import pytest

from scaling_env import EnvConfig
from scaling_env.fields import INFO_NAMES
from scaling_env.sim.load_balancer import RANDOM, ROUND_ROBIN
from scaling_env.sim.memory import (
    arrivals_at_level,
    crash_probability,
    geometric_passage,
    mmck_passage,
    passage_rate,
    serving_count,
)
from scaling_env.sim.simulator import BatchSimulator

COL = {name: i for i, name in enumerate(INFO_NAMES)}


def test_first_passage_by_hand():
    # M/M/2 at lambda = mu = 1 (a = 1), 1 fits: p = (1, 1) unnormalised, D = S(0)/p_0 + S(1)/p_1 = 1 + 2 = 3.
    # By hand: from 0 the first arrival comes after 1 s; from 1 the next event (rate 2) after 1/2 s, an arrival
    # (crash) or a departure (back to 0) with 1/2 each: E1 = 1/2 + 1/2 (1 + E1), E1 = 2; E0 = 1 + 2 = 3 s, so
    # 1/3 crash per arrival
    assert mmck_passage(2, 1.0, 1.0) == pytest.approx(1.0 / 3.0, rel=1e-12)
    # 2 fit: p = (1, 1, 1/2), D = 1 + 2 + 2.5 / 0.5 = 8. By hand: E0 = 1, E1 = 2 (above), from 2 (rate 3)
    # E2 = 1/3 + 2/3 (2 + E2), E2 = 5; 8 s in all: 1/8 per arrival, where the share of arrivals that find 2
    # (M/M/2/102: p proportional to 1, 1, 1/2, 1/4, ..., sum 3) is 1/6: a third more crashes
    assert passage_rate(RANDOM, 10.0, 1, 1.0, 1.0, 2, 0.1, 100.0, 2.0) == pytest.approx(1.0 / 8.0, rel=1e-12)
    assert arrivals_at_level(RANDOM, 10.0, 1, 1.0, 1.0, 2, 0.1, 100.0, 2.0) == pytest.approx(1.0 / 6.0, rel=1e-9)
    # M/M/1 at lambda = 0.5, mu = 1: p = (1, 0.5), D = 1 + 1.5 / 0.5 = 4. By hand: E0 = 2 s; from 1 (rate 1.5)
    # E1 = 2/3 + 2/3 (2 + E1), E1 = 6; E = 8 s, lambda E = 4 arrivals
    assert mmck_passage(1, 0.5, 1.0) == pytest.approx(0.25, rel=1e-12)
    # round robin above c (E_k/M/c's arrival-epoch law, geometric above c): P(wait) 1, sigma 1/2, L = c + 1:
    # p_c = 1/2, p_(c+1) = 1/4, S(c) = 1 - 1/2, S(c+1) = 1 - 1/4: D = 0.5/0.5 + 0.75/0.25 = 4
    assert geometric_passage(1.0, 0.5, 1.0) == pytest.approx(0.25, rel=1e-12)
    assert passage_rate(ROUND_ROBIN, 10.0, 2, 2.0, 2.0, 1, 0.1, 100.0, 2.0) < arrivals_at_level(
        ROUND_ROBIN, 10.0, 2, 2.0, 2.0, 1, 0.1, 100.0, 2.0
    )


def test_serving_count_after_a_cold_start():
    # a queue built while booting holds every request: c of them go into service, the count stays the queue
    assert serving_count(10.0, 16.0, True) == 16.0
    assert serving_count(10.0, 16.0, False) == 26.0
    assert serving_count(12.0, 3.0, True) == 12.0


def one_instance(simulator: str, rate_rps: float) -> EnvConfig:
    """One instance of c = 20 (nothing queues: only the count's spread passes the 16 that fit), random."""
    return EnvConfig.from_dict(
        {
            "simulator": simulator,
            "step_seconds": 15.0,
            "episode_steps": 1,
            "workload": {"shape": {"kind": "constant", "rate_rps": rate_rps}},
            "instances": {
                "concurrency": 20,
                "max_queue": 100,
                "service_seconds": 0.1,
                "service_cv": 1.0,
                "memory_mb_per_request": 48.0,
                "memory_base_mb": 256.0,
                "instance_memory_gb": 1.0,
            },
            "scaling": {"min_instances": 1, "max_instances": 1, "initial_instances": 1},
            "load_balancer": {"algorithm": "random"},
            "failures": {"mtbf_seconds": None, "memory_crash": True, "replace_unhealthy": True},
        }
    )


def crash_share(config: EnvConfig, seeds: list[int]) -> float:
    sim = BatchSimulator(config, len(seeds), parallel=False)
    sim.seed(seeds)
    sim.reset()
    sim.step(np.full(len(seeds), list(config.scaling.scale_steps).index(0)))
    return float((np.asarray(sim.metrics)[:, COL["crashes"]] > 0).mean())


def test_crash_chance_is_the_first_passage_not_every_crossing():
    """One instance at 6.4 requests in flight (a = 6.4, 16 fit), 960 arrivals in a 15 s step. Every crossing
    counted as Poisson: 1 - exp(-960 p_16) = 0.45 (p_16 = 6.4^16 e^-6.4 / 16! = 6.3e-4); the first passage:
    1 - exp(-960 / D) = 0.29 (crossings come in clumps of about 1.7). The request backend over 800 seeds: about
    0.31. Tolerance: 4 standard errors of the difference of two shares at n = 800 (0.09) - the old model's 0.45
    is outside it."""
    rate = 64.0
    h = mmck_passage(20, 6.4, 16.0)
    p16 = 6.4**16 * math.exp(-6.4) / math.factorial(16)
    assert crash_probability(960.0, h) == pytest.approx(0.29, abs=0.01)
    assert crash_probability(960.0, p16) == pytest.approx(0.45, abs=0.01)
    seeds = list(range(2000, 2800))
    fast = crash_share(one_instance("fast", rate), seeds)
    request = crash_share(one_instance("request", rate), seeds)
    se = math.sqrt(2 * 0.3 * 0.7 / len(seeds))
    assert abs(fast - request) <= 4 * se, (fast, request)
    assert abs(fast - crash_probability(960.0, h)) <= 4 * math.sqrt(0.3 * 0.7 / len(seeds)), fast


def four_booting(simulator: str, algorithm: str = "round_robin") -> EnvConfig:
    """No instance at the start; the first action launches 4, booting 5 s, while 200 requests a step arrive
    evenly (deterministic) and wait on them; 16 requests fit; c = 20 at 0.1 s (deterministic)."""
    return EnvConfig.from_dict(
        {
            "simulator": simulator,
            "step_seconds": 15.0,
            "episode_steps": 2,
            "workload": {"shape": {"kind": "constant", "rate_rps": 200.0 / 15.0}, "arrival_process": "deterministic"},
            "instances": {
                "concurrency": 20,
                "max_queue": 100,
                "service_seconds": 0.1,
                "service_cv": 0.0,
                "cold_start_seconds": 5.0,
                "cold_start_jitter": 0.0,
                "memory_mb_per_request": 48.0,
                "memory_base_mb": 256.0,
                "instance_memory_gb": 1.0,
            },
            "scaling": {"min_instances": 0, "max_instances": 4, "initial_instances": 0, "scale_steps": [0, 4]},
            "load_balancer": {"algorithm": algorithm},
            "failures": {"mtbf_seconds": None, "memory_crash": True, "replace_unhealthy": False},
        }
    )


def first_step(config: EnvConfig) -> np.ndarray:
    sim = BatchSimulator(config, 1, parallel=False)
    sim.seed([0])
    sim.reset()
    sim.step(np.array([1]))
    return np.array(sim.metrics[0, : len(INFO_NAMES)])


def test_the_first_booting_instance_to_crash_spares_the_others():
    """Hand check (memory.boot_crash_split): 50 requests each over the step, 10/3 per s: every one passes 16 at
    4.8 s. The first crashes there; the others keep floor(50 * 4.8 / 15) = 16, below the limit, boot at 5 s and
    join the pool with the crashed one, each taking a quarter of the 133.3 arrivals of 5-15 s (33). Failed: the
    crashed one's 50 and 200 - 50 - 3 * (16 + 33) = 3; served 3 * 49 = 147. The request backend (dealt in turn,
    the first to reach 17 crashes at 4.84 s): 147 served, 52 failed, 1 still in service. Before the fix the even
    split crashed all 4 at 4.8 s: 200 failed; with it but the booted queue counted as in service + queued
    (16 + 16), the 3 survivors crashed when their cold start ended."""
    fast = first_step(four_booting("fast"))
    assert fast[COL["crashes"]] == 1
    assert fast[COL["failed"]] == 53
    assert fast[COL["served"]] == 147
    assert fast[COL["instances_warm"]] == 3
    request = first_step(four_booting("request"))
    assert request[COL["crashes"]] == 1
    assert abs(request[COL["failed"]] - fast[COL["failed"]]) <= 1
    assert request[COL["served"]] == fast[COL["served"]]


def test_least_outstanding_the_crashed_booting_instance_takes_the_rest():
    # least outstanding: the crashed member has no outstanding requests and wins every later request (ties with
    # the joined ones at 0 go to it first too): the joined ones keep their 16 and take nothing more in the step
    fast = first_step(four_booting("fast", "least_outstanding"))
    assert fast[COL["crashes"]] == 1
    assert fast[COL["served"]] == 3 * 16
    assert fast[COL["failed"]] == 200 - 48
