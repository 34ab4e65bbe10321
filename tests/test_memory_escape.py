"""Replacements drawn on their own (issue 16, the escape from memory_pressure's crash spiral; docs/model.md 7): a
slot that joins the pool in the step crashes at the first passage of its own count, from the count it joins with,
at its own rate (``memory.escape_probability``, ``memory.draw_join_crash``, ``kernel.joined_level``). Hand-computed
cases, the law against a simulated chain, and two fleets against the request backend that fail without it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from scaling_env import EnvConfig
from scaling_env.fields import INFO_NAMES
from scaling_env.sim.memory import (
    draw_join_crash,
    draw_memory_crash,
    erlang_passage,
    escape_probability,
    mmck_passage,
)
from scaling_env.sim.simulator import BatchSimulator

COL = {name: i for i, name in enumerate(INFO_NAMES)}


def test_escape_probability_by_hand():
    # one server at a = 1 (lambda = mu: the fair random walk above 1), the bulk m = floor(a) = 1: from 3, L = 4,
    # hit 5 before 1: rho_1 = rho_2 = rho_3 = rho_4 = 1, (rho_1 + rho_2) / 4 = 1/2 (the gambler's ruin, 2 of 4)
    assert escape_probability(1, 1.0, 3.0, 4.0) == pytest.approx(0.5, rel=1e-12)
    # two servers at a = 1, L = 3, from 3, m = 1: rho_1 = 1, rho_2 = 2, rho_3 = 4: (1 + 2) / 7 = 3/7. First step:
    # from n >= 2 up with 1/3, down with 2/3: u3 = 1/3 + 2/3 u2, u2 = 1/3 u3, so u3 = 1/3 + 2/9 u3 = 3/7
    assert escape_probability(2, 1.0, 3.0, 3.0) == pytest.approx(3.0 / 7.0, rel=1e-12)
    # memory_pressure's instance (c = 10, 16 fit) at a = 4 from 16: rho above 10 grows 2.5-fold a level, so the
    # top term is nearly 1 - 1/2.5 of the sum: about 0.4
    assert escape_probability(10, 4.0, 16.0, 16.0) == pytest.approx(0.400, abs=0.001)
    # at or below the bulk, nothing to escape; past the limit already, sure; no arrivals, never
    assert escape_probability(10, 6.7, 6.0, 16.0) == 0.0
    assert escape_probability(10, 6.7, 0.0, 16.0) == 0.0
    assert escape_probability(10, 6.7, 17.0, 16.0) == 1.0
    assert escape_probability(10, 0.0, 16.0, 16.0) == 0.0


def test_escape_probability_is_the_chains():
    """The law against the M/M/10 chain itself (memory_pressure's instance at a = 6.7, from its limit 16): the
    jump chain goes up with lambda / (lambda + min(n, c) mu); 20,000 paths, to 17 or back to 6."""
    rng = np.random.default_rng(7)
    a, c, start, top, bulk = 6.7, 10, 16, 17, 6
    n = np.full(20_000, start)
    alive = np.ones(n.size, dtype=bool)
    hit = np.zeros(n.size, dtype=bool)
    while alive.any():
        up = rng.random(n.size) < a / (a + np.minimum(n, c))
        n = np.where(alive, n + np.where(up, 1, -1), n)
        hit |= alive & (n >= top)
        alive &= (n < top) & (n > bulk)
    p = escape_probability(c, a, float(start), 16.0)
    assert 0.5 < p < 0.8
    assert hit.mean() == pytest.approx(p, abs=4 * math.sqrt(p * (1 - p) / n.size))


def test_draw_join_crash_law():
    """With no quick part it is ``draw_memory_crash``, draw for draw; with one, a crash at once with probability
    ``quick`` and otherwise the truncated exponential of the stationary hazard."""
    rng_a = np.array([12345], dtype=np.uint64)
    rng_b = rng_a.copy()
    for _ in range(200):
        assert draw_join_crash(rng_a, 0, 800.0, 1e-3, 0.0, 0.5) == draw_memory_crash(rng_b, 0, 800.0, 1e-3)
    rng = np.array([99], dtype=np.uint64)
    quick, m = 0.4, 1.0  # 1000 arrivals at 1e-3
    at = np.array([draw_join_crash(rng, 0, 1000.0, 1e-3, quick, 0.01) for _ in range(20_000)])
    p = quick + (1 - quick) * (1 - math.exp(-m))  # 0.779
    assert np.mean(at > 0) == pytest.approx(p, abs=4 * math.sqrt(p * (1 - p) / at.size))
    assert np.mean(at == 0.01) == pytest.approx(quick, abs=4 * math.sqrt(quick * (1 - quick) / at.size))
    slow = at[(at > 0) & (at != 0.01)]
    # the slow crashes' CDF at 1/2: (1 - e^-m/2) / (1 - e^-m)
    f = (1 - math.exp(-m / 2)) / (1 - math.exp(-m))
    assert np.mean(slow <= 0.5) == pytest.approx(f, abs=4 * math.sqrt(f * (1 - f) / slow.size))


def fleet(simulator: str, rate_rps: float, initial: int, boot_s: float, outage: bool) -> EnvConfig:
    """memory_pressure's instance (c = 10 at 0.1 s, 16 fit) under the random balancer (Poisson arrivals at each
    member: the M/M/10 chain exactly), no jitter; the action at the first step launches one more instance."""
    return EnvConfig.from_dict(
        {
            "simulator": simulator,
            "step_seconds": 15.0,
            "episode_steps": 2,
            "workload": {"shape": {"kind": "constant", "rate_rps": rate_rps}, "arrival_process": "poisson"},
            "instances": {
                "concurrency": 10,
                "max_queue": 100,
                "service_seconds": 0.1,
                "service_cv": 1.0,
                "cold_start_seconds": boot_s,
                "cold_start_jitter": 0.0,
                "memory_mb_per_request": 48.0,
                "memory_base_mb": 256.0,
                "instance_memory_gb": 1.0,
            },
            "scaling": {"min_instances": 0, "max_instances": 2, "initial_instances": initial, "scale_steps": [0, 1, 2]},
            "load_balancer": {"algorithm": "random"},
            "failures": {
                "mtbf_seconds": None,
                "memory_crash": True,
                "replace_unhealthy": False,
                "outages": [{"time_seconds": 0.0, "fraction": 1.0}] if outage else [],
            },
        }
    )


def first_step(config: EnvConfig, seeds: list[int], action: int) -> np.ndarray:
    sim = BatchSimulator(config, len(seeds), parallel=False)
    sim.seed(seeds)
    sim.reset()
    sim.step(np.full(len(seeds), action, dtype=np.int64))
    return np.asarray(sim.metrics)[:, : len(INFO_NAMES)]


def test_a_replacement_that_kept_its_limit_survives_at_the_first_passage_law():
    """Two instances boot 5 s from empty while 80 requests/s wait on them, dealt in turn: the first passes 16 at
    0.4 s and crashes, the other keeps 16 (the request backend: exactly L, dealt in turn) and joins at 5 s beside
    the crashed one, 40/s each (random: a Poisson stream, a = 4). It survives the step if its count falls back to
    its bulk before passing 16, 1 - 0.400 (``escape_probability``), and then no first passage from low in its 400
    arrivals, exp(-400 h), h = 1.3e-5 (``mmck_passage``): 0.597. Before (the passage from low only): 0.9975 of
    400 seeds survived; the request backend: 0.63. Tolerance: 4 standard errors of a share at n = 400 (0.098)."""
    seeds = list(range(3000, 3400))
    a = 4.0
    law = (1 - escape_probability(10, a, 16.0, 16.0)) * math.exp(-400 * mmck_passage(10, a, 16.0))
    assert law == pytest.approx(0.597, abs=0.001)
    se = 4 * math.sqrt(law * (1 - law) / len(seeds))
    fast = first_step(fleet("fast", 80.0, 0, 5.0, False), seeds, 2)
    assert np.all(fast[:, COL["crashes"]] >= 1)  # the first to pass the limit, always
    assert np.mean(fast[:, COL["instances_warm"]] == 1) == pytest.approx(law, abs=se)
    request = first_step(fleet("request", 80.0, 0, 5.0, False), seeds, 2)
    assert np.mean(request[:, COL["instances_warm"]] == 1) == pytest.approx(law, abs=se)


def test_a_replacement_that_joins_a_crashed_member_crashes_at_its_own_rate():
    """The only instance crashes at the step start (an outage) and stays in the pool until found; a scale-out
    boots 2 s and joins it: from then on each takes half of the 130/s (random), a = 6.5 for the new one, which
    crashes in its 845 arrivals with probability 1 - exp(-845 h(6.5)) = 0.706. Drawn at the pool's mean rate over
    its pool time (130 * 15 / 28 = 69.6/s, the failed member's lone 2 s counted in) it was 0.867 (345 of 400
    seeds); the request backend: 277 of 400 (0.69)."""
    seeds = list(range(4000, 4400))
    law = 1 - math.exp(-845 * mmck_passage(10, 6.5, 16.0))
    assert law == pytest.approx(0.706, abs=0.001)
    se = 4 * math.sqrt(law * (1 - law) / len(seeds))
    for simulator in ("fast", "request"):
        m = first_step(fleet(simulator, 130.0, 1, 2.0, True), seeds, 1)
        memory_crashes = m[:, COL["crashes"]] - 1  # (the outage's)
        assert np.mean(memory_crashes == 1) == pytest.approx(law, abs=se), simulator


def test_erlang_passage_by_hand():
    """Round robin's hazard is the exact first passage of E_k/M/c (``memory.erlang_passage``). Two members (k = 2,
    arrival phases at rate 2 lambda), one server, a = 1, L = 1. Level 0: t_0(1) = 1/2, t_0(0) = 1/2 + 1/2 = 1.
    Level 1 (down at 1, up a phase at 2, both from a total of 3), x = t_1(0): t_1(1) = (1 + t_0(1) + x) / 3,
    x = (1 + 2 t_1(1) + t_0(0) + x) / 3, so 3x = 2 + (3 + 2x) / 3 + x, x = 9/4: T = 1 + 9/4 = 13/4 service times,
    lambda T = 13/4 arrivals, h = 4/13 (the Poisson chain's 1/3: smoother arrivals pass later). k = 1 is the
    birth-death sum, and the exact value is what a dense solve of the (count, phase) chain gives."""
    assert erlang_passage(2, 1, 1.0, 1.0) == pytest.approx(4.0 / 13.0, rel=1e-12)
    assert mmck_passage(1, 1.0, 1.0) == pytest.approx(1.0 / 3.0, rel=1e-12)
    assert erlang_passage(1, 10, 6.4, 16.0) == pytest.approx(mmck_passage(10, 6.4, 16.0), rel=1e-9)
    k, c, a, level = 3, 10, 6.7, 16
    size = (level + 1) * k
    m = np.zeros((size, size))
    for n in range(level + 1):
        for j in range(k):
            r = n * k + j
            m[r, r] = k * a + min(n, c)
            if j < k - 1:
                m[r, r + 1] -= k * a
            elif n < level:
                m[r, (n + 1) * k] -= k * a
            if n > 0:
                m[r, r - k] -= min(n, c)
    t = np.linalg.solve(m, np.ones(size))[0]
    assert erlang_passage(k, c, a, float(level)) == pytest.approx(1.0 / (a * t), rel=1e-9)
    # memory_pressure's member at a = 6.7 beside 2 others: the arrival-epoch sum said 4.8e-4, 35 % above
    assert 1.0 / (a * t) == pytest.approx(3.59e-4, rel=1e-3)


def test_round_robin_members_crash_at_the_erlang_passage():
    """Three warm members under round robin at 200 requests/s (each every third request: E_3 at a = 6.67, c = 10,
    16 fit), one 15 s step from empty: each crashes with about 1 - exp(-1000 h), h = ``erlang_passage``
    (3.36e-4 per arrival): 0.286 (a little less from empty). The birth-death sum on E_3/M/c's arrival-epoch law
    (before) drew 0.349 of them (600 seeds), the request backend 0.276. Tolerance: 4 standard errors of a share
    of 1800 instance-steps (0.042)."""
    seeds = list(range(5000, 5600))
    law = 1 - math.exp(-1000 * erlang_passage(3, 10, 200.0 * 0.1 / 3, 16.0))
    assert law == pytest.approx(0.286, abs=0.001)
    se = 4 * math.sqrt(law * (1 - law) / (3 * len(seeds)))
    for simulator in ("fast", "request"):
        config = fleet(simulator, 200.0, 3, 2.0, False).with_updates(
            {"load_balancer": {"algorithm": "round_robin"}, "scaling": {"max_instances": 3}}
        )
        m = first_step(config, seeds, 0)
        assert np.mean(m[:, COL["crashes"]]) / 3 == pytest.approx(law, abs=se), simulator


def test_a_replacement_that_crashes_at_its_join_reports_a_busy_server():
    """Two instances boot 5 s from empty under 250 requests/s (random): the first passes 16 at 0.128 s and crashes,
    the other keeps 16 and joins at 5 s beside it, taking 125/s against the 100/s its 10 servers complete, so its
    fluid count rises from the limit: it crashes at its join. The request backend puts 10 of its 16 in service and
    serves them until the crash (an arrival before a completion: 125 / 225 of the time at once, else a little
    later, its 10 servers busy throughout): the step's CPU reads 10 / 10 = 1. The fast model reported no server
    (CPU 0) before; now min(q, c) / c = 1."""
    seeds = list(range(6000, 6040))
    for simulator in ("fast", "request"):
        m = first_step(fleet(simulator, 250.0, 0, 5.0, False), seeds, 2)
        assert np.all(m[:, COL["crashes"]] == 2), simulator
        assert np.mean(m[:, COL["cpu_utilization"]]) == pytest.approx(1.0, abs=0.05), simulator


def test_erlang_passage_at_a_vanishing_load_is_zero_not_an_error():
    # k lambda / (k lambda + d) underflows to 0 when raised to the k-th power (hypothesis found it: 12 members at
    # 4.7e-28 requests/s): the level is out of reach, the hazard 0, no division by zero
    assert erlang_passage(12, 1, 4.7e-28, 42.0) == 0.0
    assert 0.0 < erlang_passage(12, 1, 0.05, 3.0) < erlang_passage(12, 1, 0.5, 3.0)
