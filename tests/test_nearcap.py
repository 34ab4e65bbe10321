"""Near capacity and above it (issue 16, docs/model.md 6.2.1 "Above capacity"): the finite-buffer flow's queue is
the step's mean wait (the deterministic fluid queues fill the room to K above capacity, where the stationary queue
holds about K - z / (rho - 1)), and the flow's relation is stretched by z = (ca2 + cs2) / 2 (the diffusion form)."""

from __future__ import annotations

import numpy as np
import pytest
from test_kernel_transients_psffa import mmck

from scaling_env import EnvConfig
from scaling_env.fields import INFO_NAMES
from scaling_env.sim.nonstationary import psffa_finite_wait, stretch_of
from scaling_env.sim.simulator import BatchSimulator


def test_stretch_is_half_the_squared_cvs():
    assert stretch_of(1.0, 1.0) == 1.0  # M/M/c
    assert stretch_of(1.0 / 8.0, 1.0) == pytest.approx(0.5625)  # round robin over 8 members, exponential service
    assert stretch_of(1.0, 9.0) == pytest.approx(5.0)  # random, service cv 3


@pytest.mark.parametrize("z", [1.0, 0.5625, 2.0])
def test_far_above_capacity_the_room_holds_k_less_z_over_the_excess(z):
    # c = 10, K = 100, mu = 10/s, utilisation 1.3 from an empty queue: every slot busy, and the number waiting is a
    # truncated geometric law on K / z places of ratio 1.3 stretched z-fold: mean about K - z * (1/rho) / (1 - 1/rho)
    # = 100 - z / 0.3 (the truncation's term is below 1e-9 here). The wait is that over c mu = 100/s:
    # z = 1: 0.96667 s, z = 0.5625 (round robin, n = 8): 0.98125 s, z = 2: 0.93333 s; the blocking 1 - 1/1.3
    w_fit = mmck(10, 100, 0.99)[1]
    y = 0.0
    for _ in range(4):
        y, w, p = psffa_finite_wait(y, 130.0, 0.1, 10, w_fit, 100.0, 15.0, z)
    assert w == pytest.approx((100.0 - z / 0.3) / 100.0, rel=1e-5)
    assert y == pytest.approx(10.0 + 100.0 - z / 0.3, rel=1e-5)
    assert p == pytest.approx(1.0 - 1.0 / 1.3, rel=1e-6)


def test_stretch_one_is_the_mmck_queue_at_1_02():
    # z = 1 keeps M/M/c/K's fixed point (c = 10, K = 100, utilisation 1.02: 75.07 in system, wait 0.6529 s)
    big_l, w_exact, block = mmck(10, 100, 1.02)
    w_fit = mmck(10, 100, 0.99)[1]
    y, w, p = psffa_finite_wait(big_l, 102.0, 0.1, 10, w_fit, 100.0, 15.0, 1.0)
    assert y == pytest.approx(big_l, rel=1e-6) and w == pytest.approx(w_exact, rel=1e-6)
    assert p == pytest.approx(block, rel=1e-6)


def _step_waits(algo: str, rho: float, steps: int = 16) -> np.ndarray:
    conc, n, svc = 10, 8, 0.1
    config = {
        "step_seconds": 15.0,
        "episode_steps": steps,
        "workload": {"shape": {"kind": "constant", "rate_rps": rho * n * conc / svc}},
        "instances": {"concurrency": conc, "max_queue": 100, "service_seconds": svc, "memory_mb_per_request": 0.0},
        "scaling": {"min_instances": n, "max_instances": n, "initial_instances": n},
        "load_balancer": {"algorithm": algo},
        "failures": {"mtbf_seconds": None, "memory_crash": False},
    }
    cfg = EnvConfig.from_dict(config)
    sim = BatchSimulator(cfg, 1, parallel=False)
    sim.seed([1])
    sim.reset()
    hold = list(cfg.scaling.scale_steps).index(0)
    col = INFO_NAMES.index("latency_mean_s")
    waits = []
    for _ in range(steps):
        sim.step(np.array([hold]))
        waits.append(sim.metrics[0, col] - svc)
    return np.array(waits)


def test_random_at_1_02_waits_as_mmck_not_a_full_room():
    # random: a Poisson stream per member, M/M/10/110 at utilisation 1.02: the stationary wait of an admitted request
    # is 0.653 s (75.1 in system), the request backend's 0.649 s (perf/fidelity.py, seeds 1-2); a full room would be
    # K / (c mu) = 1.0 s, where the fluid queues sat (0.87 s over the episode before)
    w_exact = mmck(10, 100, 1.02)[1]
    waits = _step_waits("random", 1.02)[4:]
    assert np.all(np.abs(waits / w_exact - 1.0) < 0.02), waits


def test_round_robin_at_1_02_holds_more_than_mmck_less_than_the_room():
    # Erlang-8 gaps (z = 0.5625) hold the room fuller than M/M/c/K's 0.653 s (the request backend: 0.748 s), below the
    # full room's 1.0 s (where the fluid queues sat before)
    waits = _step_waits("round_robin", 1.02)[4:]
    assert np.all(waits > 0.70) and np.all(waits < 0.80), waits


def _overload_step_latency(start_s: float) -> float:
    # perf/fidelity.py's transient: 4 instances of c = 10 (capacity 400 req/s), q = 100, round robin, the rate
    # 200 -> 600 req/s at ``start_s``; step 10 (150-165 s), seeds 1-3
    config = {
        "step_seconds": 15.0,
        "episode_steps": 12,
        "workload": {
            "shape": {
                "kind": "spike",
                "base_rps": 200.0,
                "peak_rps": 600.0,
                "duration_seconds": 1e5,
                "start_seconds": start_s,
            }
        },
        "instances": {"concurrency": 10, "max_queue": 100, "service_seconds": 0.1, "memory_mb_per_request": 0.0},
        "scaling": {"min_instances": 4, "max_instances": 4, "initial_instances": 4},
        "failures": {"mtbf_seconds": None, "memory_crash": False},
    }
    cfg = EnvConfig.from_dict(config)
    hold = list(cfg.scaling.scale_steps).index(0)
    col = INFO_NAMES.index("latency_mean_s")
    out = []
    for seed in (1, 2, 3):
        sim = BatchSimulator(cfg, 1, parallel=False)
        sim.seed([seed])
        sim.reset()
        for _ in range(11):
            sim.step(np.array([hold]))
        out.append(sim.metrics[0, col])
    return float(np.mean(out))


def test_a_filling_queue_reports_the_wait_of_the_requests_it_serves():
    # A queue that grows reports the FIFO wait of the requests that start service in the step, Little with the
    # admitted rate (a request served at t arrived when the Lq(t) ahead of it had yet to arrive, at that rate), not
    # the wait of the step's arrivals (the later ones are served in the next step). By hand, a fluid queue of 10
    # servers at 150 req/s from empty grows at 50/s to its 98 waiting (K - 1/(rho - 1)) in 1.96 s; a request served
    # at t waited t/3 until t = 5.88 s, 0.98 s after: a mean of 0.788 s over 15 s, against the arrivals' 0.916 s.
    # The flow (its exponential path, 2 points a sub-step) lies between.
    w_fit = mmck(10, 100, 0.99)[1]
    _, w, _ = psffa_finite_wait(0.0, 150.0, 0.1, 10, w_fit, 100.0, 15.0, 1.0)
    assert 0.788 < w < 0.916
    # the env: the step of the rate change 200 -> 600 req/s (1.5 x capacity) reports 0.974 s (was 1.030 s), the
    # request backend 0.976 s; off the step grid (7.5 s at each rate) 0.691 s (was 0.753 s), the reference 0.589 s
    # (perf/fidelity.py --only transients)
    assert _overload_step_latency(150.0) == pytest.approx(0.976, rel=0.03)
    assert _overload_step_latency(157.5) < 0.72


def test_at_capacity_a_large_room_fills_as_a_reflected_brownian_motion():
    # utilisation 1.00, c = 10, mu = 10/s, K = 1000, Poisson arrivals (z = 1): from empty the number waiting is a
    # driftless reflected Brownian motion of variance sigma^2 = lambda + c mu = 200/s, whose mean is
    # sqrt(2 sigma^2 t / pi): 43.70 after 15 s, 87.40 after 60 s, 123.61 after 120 s (the flow alone, fitted to
    # the stationary queue, jumped to 267 in the first step; the request backend under round robin with q = 1,000:
    # 1.51 s mean wait over the grid's episode, the fast model 3.04 s before, 1.65 s now)
    w_fit = mmck(10, 1000, 0.99)[1]
    y = 0.0
    waiting = []
    for _ in range(8):
        y, _, _ = psffa_finite_wait(y, 100.0, 0.1, 10, w_fit, 1000.0, 15.0, 1.0)
        waiting.append(y - 10.0)
    assert waiting[0] == pytest.approx(43.70, rel=0.03)
    assert waiting[3] == pytest.approx(87.40, rel=0.03)
    assert waiting[7] == pytest.approx(123.61, rel=0.03)


def test_round_robin_at_capacity_turns_away_the_flows_share():
    # utilisation 1.00, c = 10, q = 100, round robin over 8 members (z = 0.5625): the flow's blocking at its fixed
    # point is P(all busy) / (K / z + 1) = P(all busy) / 178.8, about 0.55 % of arrivals; the request backend turns
    # away 0.54 %. The E_n/M/c/K blocking at utilisation 0.99 (the cut geometric tail) gave 0.33 %.
    conc, n, svc = 10, 8, 0.1
    config = {
        "step_seconds": 15.0,
        "episode_steps": 30,
        "workload": {"shape": {"kind": "constant", "rate_rps": n * conc / svc}},
        "instances": {"concurrency": conc, "max_queue": 100, "service_seconds": svc, "memory_mb_per_request": 0.0},
        "scaling": {"min_instances": n, "max_instances": n, "initial_instances": n},
        "load_balancer": {"algorithm": "round_robin"},
        "failures": {"mtbf_seconds": None, "memory_crash": False},
    }
    cfg = EnvConfig.from_dict(config)
    sim = BatchSimulator(cfg, 1, parallel=False)
    sim.seed([1])
    sim.reset()
    hold = list(cfg.scaling.scale_steps).index(0)
    dropped = arrivals = 0.0
    for k in range(30):
        sim.step(np.array([hold]))
        if k >= 8:
            dropped += sim.metrics[0, INFO_NAMES.index("dropped")]
            arrivals += sim.metrics[0, INFO_NAMES.index("arrivals")]
    assert 0.0045 < dropped / arrivals < 0.0065
