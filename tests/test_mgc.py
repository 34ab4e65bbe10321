"""The waiting room under service variability (scaling_env/sim/mgc.py): a GI/G/N room of K places is the M/M/N
queue's room of K / z places, its line stretched z-fold. Hand-computed cases, the limits, and the exact
simulation's figures (perf/mgc_sim.py)."""

from __future__ import annotations

import math

import pytest

from scaling_env.sim.mgc import scaled_room
from scaling_env.sim.queueing import (
    _whitt_scale,
    erlang_arrivals_wait,
    erlang_b,
    erlang_c,
    stationary_wait,
    whitt_phi,
)


def test_scaled_room_hand_cases():
    assert scaled_room(100.0, 4.0) == 25.0
    assert scaled_room(100.0, 0.5) == 200.0  # less variable than exponential: a longer M/M/N room
    assert scaled_room(0.0, 5.0) == 0.0  # a loss system stays one
    assert scaled_room(-3.0, 2.0) == 0.0
    assert scaled_room(10.0, 1.0) == 10.0
    assert scaled_room(10.0, math.nan) == 10.0  # no usable scale: the room as it is
    assert scaled_room(10.0, 0.0) == 10.0


def test_mg1k_by_hand():
    """M/G/1 with cs2 = 3: Pollaczek-Khinchine's z = (1 + 3) / 2 = 2, so a room of 4 is M/M/1/(1 + 2). At
    rho = 0.5 (lambda = 5/s, s = 0.1 s) the states 0..3 have weights 1, 1/2, 1/4, 1/8 (sum 15/8): blocking
    (1/8) / (15/8) = 1/15; Lq = (1 * 1/4 + 2 * 1/8) / (15/8) = 4/15; admitted 5 * 14/15 = 14/3 per s, so
    W(M/M/1/3) = (4/15) / (14/3) = 2/35 s and W = 2 * 2/35 = 4/35 s; P(wait | admitted) = (1/2 + 1/4) / (15/8) /
    (14/15) = 3/7."""
    w, p_wait, p_block = stationary_wait(1, 5.0, 0.1, 1.0, 3.0, 4.0)
    assert p_block == pytest.approx(1.0 / 15.0, rel=1e-12)
    assert w == pytest.approx(4.0 / 35.0, rel=1e-12)
    assert p_wait == pytest.approx(3.0 / 7.0, rel=1e-12)


def test_unlimited_room_is_the_two_moment_wait():
    """K -> inf: z W(M/M/N) = phi (1 + cs2) / 2 * C(N, a) / (N mu - lambda), as before the room scaling."""
    n, lam, s, cs2 = 10, 75.0, 0.1, 9.0
    w, p_wait, p_block = stationary_wait(n, lam, s, 1.0, cs2, 1e12)
    c = erlang_c(n, lam * s)
    expected = whitt_phi(0.75, 1.0, cs2, n) * 0.5 * (1.0 + cs2) * c / (n / s - lam)
    assert w == pytest.approx(expected, rel=1e-12)
    assert p_wait == pytest.approx(c, rel=1e-12)
    assert p_block == 0.0


def test_exponential_service_and_loss_system_unchanged():
    # cs2 = 1: the room is not scaled (M/M/N/(N+K) itself, bit for bit the Poisson path)
    a = stationary_wait(3, 25.0, 0.1, 1.0, 1.0, 7.0)
    rho = 25.0 * 0.1 / 3
    b = erlang_b(3, 2.5)
    norm = 1.0 + b * sum(rho**j for j in range(1, 8))
    assert a[2] == pytest.approx(b * rho**7 / norm, rel=1e-12)
    # K = 0: Erlang B for any service law (insensitivity)
    for cs2 in (0.25, 4.0, 9.0):
        assert stationary_wait(4, 30.0, 0.1, 1.0, cs2, 0.0)[2] == pytest.approx(erlang_b(4, 3.0), rel=1e-12)


def test_more_variable_service_fills_the_room_sooner():
    """Near capacity, a room of 100 with cv 1.5, 2, 3: the blocking rises with cs2 (the M/M/N room shrinks to
    100 / z) and the wait stays near a full room's worth (100 / 10 services of 0.1 s = 1 s), not z times it."""
    blocks = []
    for cv in (1.0, 1.5, 2.0, 3.0):
        w, _, p_block = stationary_wait(10, 98.0, 0.1, 1.0, cv * cv, 100.0)
        blocks.append(p_block)
        assert w < 1.0
    assert blocks == sorted(blocks) and blocks[-1] > 5 * blocks[0]


@pytest.mark.parametrize(
    ("cv", "rho", "wait", "block"),
    # perf/mgc_sim.py (4 seeds x 6e6 arrivals, N = 10, K = 100, mean 0.1 s): the exact M/G/10/110 with lognormal
    # service; standard errors of the waits 0.0013, 0.0014, 0.0020 s
    [(1.5, 0.98, 0.36391, 0.0071), (2.0, 0.98, 0.38710, 0.0124), (3.0, 0.98, 0.40821, 0.0228)],
)
def test_near_capacity_against_the_exact_queue(cv, rho, wait, block):
    w, _, p_block = stationary_wait(10, rho * 100.0, 0.1, 1.0, cv * cv, 100.0)
    assert w == pytest.approx(wait, rel=0.05)  # was +41 %, +104 %, +284 % with the room applied unscaled
    assert p_block == pytest.approx(block, rel=0.40)  # 0.72 %, 1.37 %, 3.11 % (was 0.28 % at every cv)


def test_round_robin_room_scaled_the_same_way():
    """E_k/M/N with service variability: the wait is the GI/M/N one at a room of K / scale, times scale
    (scale = Whitt's GI/G/N over GI/M/N factor); the blocking and P(wait) are the GI/M/N ones at that room."""
    k, n, lam, s, cs2, room = 8, 10, 95.0 * 8, 0.1, 4.0, 100.0
    scale = _whitt_scale(0.95, 1.0 / k, cs2, n)
    assert scale > 1.5
    w, p_wait, p_block = erlang_arrivals_wait(k, n, lam / k, s, cs2, room)
    w1, p_wait1, p_block1 = erlang_arrivals_wait(k, n, lam / k, s, 1.0, room / scale)
    assert w == pytest.approx(scale * w1, rel=1e-12)
    assert p_wait == p_wait1 and p_block == p_block1


def test_no_variability_at_all_has_no_wait():
    """ca2 = cs2 = 0 (no variability anywhere): no stationary wait, and no factor to divide the room by."""
    w, p_wait, p_block = stationary_wait(2, 15.0, 0.1, 0.0, 0.0, 5.0)
    assert (w, p_wait) == (0.0, 0.0) and 0.0 <= p_block < 1.0


def test_random_balancer_near_capacity_keeps_the_scaled_rooms_blocking():
    """The env, not only the formula: 8 instances of c = 10, q = 100 behind the random balancer at utilisation 0.98
    with lognormal cv 3. The near-capacity flow (sim/nonstationary.py) follows the queue, but the share turned
    away is the stationary queue's with the room as K / z places: the exact M/G/10/110 turns away 2.28 % (above),
    the M/M/10/110 room the flow knows 0.3 % (what the env gave before)."""
    from scaling_env import EnvConfig, ServerlessScalingEnv

    cfg = EnvConfig.from_dict(
        {
            "episode_steps": 40,
            "workload": {"shape": {"kind": "constant", "rate_rps": 0.98 * 8 * 100.0}},
            "instances": {"concurrency": 10, "max_queue": 100, "service_cv": 3.0, "memory_mb_per_request": 0.0},
            "scaling": {"min_instances": 8, "max_instances": 8, "initial_instances": 8},
            "load_balancer": {"algorithm": "random"},
            "failures": {"mtbf_seconds": None, "memory_crash": False},
        }
    )
    env = ServerlessScalingEnv(cfg)
    env.reset(seed=1)
    hold = cfg.scaling.scale_steps.index(0)
    arrivals = dropped = 0.0
    for k in range(40):
        _, _, _, _, info = env.step(hold)
        if k >= 4:  # after the warm-up
            arrivals += info["arrivals"]
            dropped += info["dropped"]
    _, _, p_block = stationary_wait(10, 98.0, 0.1, 1.0, 9.0, 100.0)
    assert dropped / arrivals == pytest.approx(p_block, rel=0.25)
    assert dropped / arrivals > 0.015
