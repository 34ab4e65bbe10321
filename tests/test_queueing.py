"""The latency model against queueing theory and against a request-level event simulation."""

from __future__ import annotations

import heapq
import math

import numpy as np
import pytest
from conftest import action_for

from scaling_env import EnvConfig, ServerlessScalingEnv
from scaling_env.sim.queueing import erlang_c, response_p95


def erlang_c_reference(c: int, a: float) -> float:
    """Textbook Erlang C from the sum formula (independent of the core's recursion)."""
    terms = sum(a**k / math.factorial(k) for k in range(c))
    top = a**c / math.factorial(c) * c / (c - a)
    return top / (terms + top)


def steady_mean_wait(
    n: int, rate: float, algorithm: str, concurrency: int = 10, service: float = 0.1, steps: int = 300, seed: int = 3
) -> float:
    """Served-weighted mean wait (latency - service) of the env in steady state at a constant rate."""
    cfg = EnvConfig.from_dict(
        {
            "episode_steps": steps,
            "workload": {"shape": {"kind": "constant", "rate_rps": rate}},
            "instances": {
                "concurrency": concurrency,
                "service_seconds": service,
                "max_queue": 100_000,
                "memory_mb_per_request": 0.0,
            },
            "scaling": {"min_instances": n, "max_instances": n, "initial_instances": n},
            "failures": {"mtbf_seconds": None},
            "load_balancer": {"algorithm": algorithm},
        }
    )
    env = ServerlessScalingEnv(cfg)
    env.reset(seed=seed)
    hold = action_for(cfg, 0)
    waited = served = 0.0
    for _ in range(steps):
        info = env.step(hold)[4]
        waited += (info["latency_mean_s"] - service) * info["served"]
        served += info["served"]
    return waited / served


@pytest.mark.parametrize("c, a", [(1, 0.5), (2, 1.0), (10, 3.0), (10, 9.0), (40, 36.0), (100, 95.0)])
def test_erlang_c_matches_the_textbook_sum(c, a):
    assert math.isclose(erlang_c(c, a), erlang_c_reference(c, a), rel_tol=1e-9)


def test_erlang_c_large_pools_use_an_accurate_approximation():
    # above 1000 servers the core switches to Wilson-Hilferty; compare with the exact log-space sum
    for n, rho in [(1200, 0.9), (3000, 0.95), (5000, 0.8)]:
        a = rho * n
        logs = [k * math.log(a) - math.lgamma(k + 1) for k in range(n + 1)]
        m = max(logs)
        total = sum(math.exp(x - m) for x in logs)
        blocking = math.exp(logs[-1] - m) / total
        exact = blocking / (1 - rho * (1 - blocking))
        assert math.isclose(erlang_c(n, a), exact, rel_tol=0.01), (n, rho)


@pytest.mark.parametrize("utilisation", [0.3, 0.5, 0.7, 0.8, 0.9])
@pytest.mark.parametrize("concurrency", [1, 10])
def test_mean_wait_agrees_with_erlang_c(utilisation, concurrency):
    # one instance = one M/M/c queue with c = concurrency, Poisson arrivals, exponential service
    service = 0.1
    rate = utilisation * concurrency / service
    expected = erlang_c_reference(concurrency, rate * service) / (concurrency / service - rate)
    measured = steady_mean_wait(1, rate, "random", concurrency=concurrency, service=service)
    assert measured == pytest.approx(expected, rel=0.10)


# reference: request-level event simulation, 4 instances x concurrency 10, exp. service 0.1 s, 360 req/s
@pytest.mark.parametrize(
    "algorithm, reference", [("random", 0.067), ("round_robin", 0.035), ("least_outstanding", 0.0106)]
)
def test_routing_changes_queueing_as_the_event_simulation_says(algorithm, reference):
    assert steady_mean_wait(4, 360.0, algorithm) == pytest.approx(reference, rel=0.15)


def event_simulation(
    n: int, c: int, rate: float, service: float, algorithm: str, requests: int, seed: int = 0
) -> float:
    """Request-level FCFS simulation of n instances with c slots each behind a balancer; mean wait."""
    rng = np.random.default_rng(seed)
    t = np.cumsum(rng.exponential(1.0 / rate, requests))
    s = rng.exponential(service, requests)
    free = [[0.0] * c for _ in range(n)]
    pick = rng.integers(0, n, requests)
    waits = np.empty(requests)
    for j in range(requests):
        i = pick[j] if algorithm == "random" else j % n
        start = max(heapq.heappop(free[i]), t[j])
        waits[j] = start - t[j]
        heapq.heappush(free[i], start + s[j])
    return float(waits[requests // 10 :].mean())


@pytest.mark.parametrize("algorithm", ["random", "round_robin"])
def test_model_agrees_with_an_independent_event_simulation(algorithm):
    # a smaller, busier case than the reference: 3 instances x 4 slots at utilisation 0.85
    n, c, service = 3, 4, 0.1
    rate = 0.85 * n * c / service
    simulated = event_simulation(n, c, rate, service, algorithm, requests=150_000)
    modelled = steady_mean_wait(n, rate, algorithm, concurrency=c, service=service)
    assert modelled == pytest.approx(simulated, rel=0.15)


def test_p95_is_exact_for_mm_c():
    # M/M/c response time tail: P(T > t) = (1-C) e^{-mu t} + C * hypoexponential(mu, c mu - lambda)
    c, mu, lam = 10, 10.0, 85.0
    C = erlang_c_reference(c, lam / mu)
    theta = c * mu - lam
    wq = C / theta
    p95 = response_p95(1 / mu, 1.0, wq, C)

    def tail(t):
        hypo = (theta * math.exp(-mu * t) - mu * math.exp(-theta * t)) / (theta - mu)
        return (1 - C) * math.exp(-mu * t) + C * hypo

    assert tail(p95) == pytest.approx(0.05, rel=1e-3)


def test_low_load_p95_is_the_service_time_quantile():
    assert response_p95(0.1, 1.0, 0.0, 0.0) == pytest.approx(0.1 * math.log(20))
    assert response_p95(0.1, 0.0, 0.0, 0.0) == pytest.approx(0.1)


def test_overload_backlog_grows_step_by_step_and_is_carried_over():
    cfg = EnvConfig.from_dict(
        {
            "workload": {"shape": {"kind": "constant", "rate_rps": 150.0}, "arrival_process": "deterministic"},
            "instances": {"max_queue": 100_000, "memory_mb_per_request": 0.0},
            "scaling": {"min_instances": 1, "max_instances": 1, "initial_instances": 1},
            "failures": {"mtbf_seconds": None},
        }
    )
    env = ServerlessScalingEnv(cfg)
    env.reset(seed=0)
    backlogs = [env.step(action_for(cfg, 0))[4]["backlog"] for _ in range(4)]
    assert backlogs == [750, 1500, 2250, 3000]  # 2250 arrive, 1500 served per step
    p95s = []
    env.reset(seed=0)
    for _ in range(4):
        p95s.append(env.step(action_for(cfg, 0))[4]["latency_p95_s"])
    assert all(b > a for a, b in zip(p95s, p95s[1:]))


def test_full_queues_drop():
    cfg = EnvConfig.from_dict(
        {
            "workload": {"shape": {"kind": "constant", "rate_rps": 300.0}, "arrival_process": "deterministic"},
            "instances": {"max_queue": 100, "memory_mb_per_request": 0.0},
            "scaling": {"min_instances": 1, "max_instances": 1, "initial_instances": 1},
            "failures": {"mtbf_seconds": None},
        }
    )
    env = ServerlessScalingEnv(cfg)
    env.reset(seed=0)
    info = env.step(action_for(cfg, 0))[4]
    assert (info["served"], info["backlog"], info["dropped"]) == (1500, 100, 4500 - 1600)


def mmck_reference(c: int, room: int, lam: float, mu: float) -> tuple[float, float]:
    """Blocking probability and mean wait of admitted requests in M/M/c/(c+room), from the birth-death chain."""
    p = [1.0]
    for n in range(1, c + room + 1):
        p.append(p[-1] * lam / (mu * min(n, c)))
    total = sum(p)
    p = [x / total for x in p]
    block = p[-1]
    lq = sum((n - c) * p[n] for n in range(c + 1, c + room + 1))
    return block, lq / (lam * (1 - block))


@pytest.mark.parametrize("room", [0, 2, 10])
def test_a_small_waiting_room_blocks_as_mmck_says(room):
    cfg = EnvConfig.from_dict(
        {
            "episode_steps": 400,
            "workload": {"shape": {"kind": "constant", "rate_rps": 95.0}},
            "instances": {"max_queue": room, "memory_mb_per_request": 0.0},
            "scaling": {"min_instances": 1, "max_instances": 1, "initial_instances": 1},
            "failures": {"mtbf_seconds": None},
            "load_balancer": {"algorithm": "random"},
        }
    )
    env = ServerlessScalingEnv(cfg)
    env.reset(seed=0)
    arrivals = dropped = waited = served = 0.0
    for _ in range(400):
        info = env.step(action_for(cfg, 0))[4]
        arrivals += info["arrivals"]
        dropped += info["dropped"]
        waited += (info["latency_mean_s"] - 0.1) * info["served"]
        served += info["served"]
    block, wait = mmck_reference(10, room, 95.0, 10.0)
    assert dropped / arrivals == pytest.approx(block, rel=0.1)
    assert waited / served == pytest.approx(wait, rel=0.1, abs=1e-4)


def _slot(*cohorts: tuple[float, float, float]) -> np.ndarray:
    """inst_f of one cluster with one slot whose queue holds the given (n, oldest age, youngest age) cohorts."""
    from scaling_env.sim.instances import F_COHORTS, N_INST_F

    inst_f = np.zeros((1, 1, N_INST_F))
    for c, (n, old, young) in enumerate(cohorts):
        inst_f[0, 0, F_COHORTS + 3 * c : F_COHORTS + 3 * c + 3] = (n, old, young)
    return inst_f


def test_longest_fluid_wait_includes_the_first_cold_start_arrival():
    from scaling_env.sim.queueing import fifo_waits

    # empty queue, 10 s cold start with 200 arrivals (20 req/s), then 5 s of service at 100 req/s with 100 more
    # arrivals: the queue of 200 empties after 200 / 80 = 2.5 s; the first arrival (t = 0) leaves at 10 s
    inst_f = _slot()
    _, waited, longest = fifo_waits(inst_f, 0, 0, 0.0, 20.0, 200.0, 200.0, 20.0, 100.0, 0.0, 10.0, 5.0, 100.0)
    assert longest == pytest.approx(10.0)
    # request j of the 250 that went through the queue (200 + 20 * 2.5) leaves at 10 + j / 100 and arrived at
    # j / 20: waits 10 - 0.04 j, summed over j = 0..249: 2500 - 0.04 * 249 * 250 / 2
    assert waited == pytest.approx(2500.0 - 0.04 * 249 * 250 / 2)
    assert not inst_f.any()  # nothing left queued


def test_a_cohort_that_arrived_together_keeps_its_age():
    from scaling_env.sim.queueing import fifo_waits

    # 100 requests that have all waited 600 s; 1 s of service at 100 req/s, no arrivals: each waits 600 + j/100
    inst_f = _slot((100.0, 600.0, 600.0))
    age, waited, longest = fifo_waits(inst_f, 0, 0, 100.0, 0.0, 0.0, 100.0, 0.0, 0.0, 0.0, 0.0, 1.0, 100.0)
    assert waited == pytest.approx(100 * 600.0 + 0.01 * 99 * 100 / 2)
    assert longest == pytest.approx(600.99)  # was: twice the mean age, 1,200 s
    assert age == 0.0


def test_a_queue_that_fills_early_keeps_the_ages_of_its_arrivals():
    from scaling_env.sim.instances import F_COHORTS
    from scaling_env.sim.queueing import fifo_waits

    # an empty queue of 1,000 places, 10 s at 1,000 req/s into 100 req/s of service: full after 1000/900 s; the
    # 1,000 left at the end are the 1,000 newest admitted; those admitted after the fill came one per place freed
    # (100 req/s) over the last 10 - 1.111 s, so 889 of them and 111 from the end of the filling stretch
    t_f = 1000.0 / 900.0
    adm2 = 1000.0 * t_f + 100.0 * (10.0 - t_f)
    inst_f = _slot()
    age, waited, longest = fifo_waits(inst_f, 0, 0, 0.0, 0.0, 0.0, 0.0, 1000.0, adm2, 1000.0, 0.0, 10.0, 100.0)
    n_late = 100.0 * (10.0 - t_f)
    n_early = 1000.0 - n_late
    # ages at t = 10: the late ones evenly 0 .. 10 - t_f, the early ones arrived evenly over [t_f - n_early/1000, t_f]
    expected = n_late * (10.0 - t_f) / 2 + n_early * (10.0 - t_f + n_early / 2000.0)
    assert age == pytest.approx(expected)
    # kept as one cohort of this step: 1,000 requests, the total age kept, no older than the oldest left
    n, old, young = inst_f[0, 0, F_COHORTS : F_COHORTS + 3]
    assert n == pytest.approx(1000.0) and n * (old + young) / 2 == pytest.approx(expected)
    assert old <= 10.0 - t_f + n_early / 1000.0 + 1e-9 and young >= 0.0
    # the 1,000 served arrived in the first second: request j arrived at j/1000 and left at j/100
    assert waited == pytest.approx(sum(j / 100 - j / 1000 for j in range(1000)))
    assert longest == pytest.approx(999 * 0.009)


def test_a_flash_crowd_and_the_trickle_after_it_stay_apart():
    from scaling_env.sim.instances import F_COHORTS, N_COHORTS
    from scaling_env.sim.queueing import fifo_waits

    # three steps of 10 s: 400 req/s for 10 s, then 20 req/s; 100 req/s of service, room for 10,000
    inst_f = _slot()
    fifo_waits(inst_f, 0, 0, 0.0, 0.0, 0.0, 0.0, 400.0, 4000.0, 3000.0, 0.0, 10.0, 100.0)
    fifo_waits(inst_f, 0, 0, 3000.0, 0.0, 0.0, 3000.0, 20.0, 200.0, 2200.0, 0.0, 10.0, 100.0)
    cohorts = inst_f[0, 0, F_COHORTS : F_COHORTS + 3 * N_COHORTS].reshape(N_COHORTS, 3)
    # left: arrivals of the crowd from 5 s to 10 s (2,000, ages 10..15 s) and the trickle's 200 (ages 0..10 s)
    np.testing.assert_allclose(cohorts[0], (2000.0, 15.0, 10.0), rtol=1e-6)
    np.testing.assert_allclose(cohorts[1], (200.0, 10.0, 0.0), rtol=1e-6, atol=1e-9)
    # the next 10 s serve the 1,000 oldest: request j arrived 15 - j/400 s before the step and leaves j/100 s
    # into it, so it waits 15 + 0.0075 j: mean 15 + 0.0075 * 999/2 (even spreads between 0 and twice the mean age
    # of all 2,200 said 13.6 + ..., about 8 % less, and then too much once the trickle is served)
    _, waited, longest = fifo_waits(inst_f, 0, 0, 2200.0, 0.0, 0.0, 2200.0, 20.0, 200.0, 1400.0, 0.0, 10.0, 100.0)
    assert waited / 1000 == pytest.approx(15.0 + 0.0075 * 999 / 2)
    assert longest == pytest.approx(15.0 + 0.0075 * 999)
