"""The waiting room under service variability (scaling_env/sim/mgc.py): a GI/G/N room of K places is the M/M/N
queue's room of K / z places, its line stretched z-fold. Hand-computed cases, the limits, and the exact
simulation's figures (perf/mgc_sim.py)."""

from __future__ import annotations

import math

import pytest

from scaling_env.sim.mgc import erlang_lognormal_factor, lognormal_light_traffic, lognormal_wait_factor, scaled_room
from scaling_env.sim.queueing import (
    _whitt_scale,
    erlang_arrivals_wait,
    erlang_b,
    erlang_c,
    lognormal_correction,
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
    """K -> inf: z W(M/M/N) = z C(N, a) / (N mu - lambda), as before the room scaling; z is the lognormal's own
    M/G/N factor for cs2 > 1 (mgc.lognormal_wait_factor), Whitt's phi (1 + cs2) / 2 below."""
    n, lam, s, cs2 = 10, 75.0, 0.1, 9.0
    w, p_wait, p_block = stationary_wait(n, lam, s, 1.0, cs2, 1e12)
    c = erlang_c(n, lam * s)
    expected = lognormal_wait_factor(n, 0.75, 3.0) * c / (n / s - lam)
    assert w == pytest.approx(expected, rel=1e-12)
    w_low = stationary_wait(n, lam, s, 1.0, 0.25, 1e12)[0]
    assert w_low == pytest.approx(whitt_phi(0.75, 1.0, 0.25, n) * 0.625 * c / (n / s - lam), rel=1e-12)
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
    (scale = Whitt's GI/G/N over GI/M/N factor times the lognormal correction of the Poisson queue and the
    Erlang arrivals' factor); the blocking
    and P(wait) are the GI/M/N ones at that room."""
    k, n, lam, s, cs2, room = 8, 10, 95.0 * 8, 0.1, 4.0, 100.0
    scale = _whitt_scale(0.95, 1.0 / k, cs2, n) * lognormal_correction(0.95, cs2, n)
    scale *= erlang_lognormal_factor(k, n, 0.95, 2.0)
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


def _excess_tail(t: float, cv: float) -> float:
    """P(Se > t) for the stationary excess of a lognormal of mean 1: E[(S - t)+] (plain closed form)."""
    s2 = math.log(1.0 + cv * cv)
    s = math.sqrt(s2)
    phibar = lambda x: 0.5 * math.erfc(x / math.sqrt(2.0))  # noqa: E731
    if t <= 0.0:
        return 1.0
    return phibar((math.log(t) - 0.5 * s2) / s) - t * phibar((math.log(t) + 0.5 * s2) / s)


@pytest.mark.parametrize(("servers", "cv"), [(2, 3.0), (10, 3.0), (10, 1.5), (6, 2.0), (100, 2.0)])
def test_light_traffic_limit_is_the_integral(servers, cv):
    """L(N, cv) = N * integral_0^inf P(Se > t)^N dt (mean 1): an arrival waits, in light traffic, only behind N
    busy slots, each with a stationary-excess remainder, for the least of them (Burman & Smith 1983). Checked
    against an independent Simpson rule in t (not the module's table in ln t)."""
    steps = 200_000
    top = 60.0
    h = top / steps
    total = _excess_tail(0.0, cv) ** servers + _excess_tail(top, cv) ** servers
    for i in range(1, steps):
        total += (4 if i % 2 else 2) * _excess_tail(i * h, cv) ** servers
    expected = servers * total * h / 3.0
    assert lognormal_light_traffic(servers, cv) == pytest.approx(expected, rel=2e-3)


def test_light_traffic_hand_cases():
    # one slot: the mean stationary excess (1 + cv^2) / 2, Pollaczek-Khinchine's factor: 5 at cv 3, 1.625 at 1.5
    assert lognormal_light_traffic(1, 3.0) == pytest.approx(5.0, rel=1e-9)
    assert lognormal_light_traffic(1, 1.5) == pytest.approx(1.625, rel=1e-9)
    # many slots: the least of N remainders is about 1/N whatever the law (their density at 0 is 1/mean)
    assert lognormal_light_traffic(1024, 3.0) == pytest.approx(1.0, abs=0.01)
    assert lognormal_light_traffic(5000, 3.0) == lognormal_light_traffic(1024, 3.0)


def test_lognormal_factor_limits():
    """z = L + (H - L) exp(-kappa beta): N = 1 is Pollaczek-Khinchine's H; at utilisation 1 (beta = 0) it is H
    (heavy traffic: two moments suffice); far from it it tends to L."""
    for cv in (1.5, 2.0, 3.0):
        h = 0.5 * (1.0 + cv * cv)
        assert lognormal_wait_factor(1, 0.5, cv) == pytest.approx(h, rel=1e-9)
        assert lognormal_wait_factor(10, 1.0, cv) == pytest.approx(h, rel=1e-12)
        assert lognormal_wait_factor(100, 0.1, cv) == pytest.approx(lognormal_light_traffic(100, cv), rel=1e-3)
    # exponential service and cv < 1 keep the two-moment wait (correction 1)
    assert lognormal_correction(0.75, 1.0, 10) == 1.0
    assert lognormal_correction(0.75, 0.25, 10) == 1.0
    assert lognormal_correction(0.75, 9.0, 1) == 1.0


@pytest.mark.parametrize(
    ("servers", "cv", "rho", "wait", "two_moment_error"),
    # perf/fit_mgc.py's exact simulation (perf/mgc_sim.py, no room limit, 4 seeds x 3e6 arrivals, mean 0.1 s);
    # standard errors 1.6 %, 0.7 %, 4.1 %
    [(10, 3.0, 0.7, 0.019972, 0.380), (10, 2.0, 0.7, 0.012634, 0.183), (100, 3.0, 0.9, 0.005466, 0.513)],
)
def test_mgc_wait_against_the_exact_lognormal_queue(servers, cv, rho, wait, two_moment_error):
    """Far from the room at cv 2-3 the two-moment factor overstated the lognormal M/G/N wait (+38 %, +18 % at
    N = 10, utilisation 0.7; +51 % at N = 100, 0.9: the pooled queue of least outstanding); now within 6 %."""
    lam = rho * servers / 0.1
    w, p_wait, _ = stationary_wait(servers, lam, 0.1, 1.0, cv * cv, 1e12)
    assert w == pytest.approx(wait, rel=0.06)
    two = whitt_phi(rho, 1.0, cv * cv, servers) * 0.5 * (1.0 + cv * cv) * erlang_c(servers, lam * 0.1)
    two /= servers / 0.1 - lam
    assert two / wait - 1.0 > two_moment_error * 0.9  # what the two-moment wait gave (without mgc.py's factor)
    assert p_wait == pytest.approx(erlang_c(servers, lam * 0.1), rel=1e-9)


def test_erlang_lognormal_factor_by_hand():
    """exp(-(1 - 1/k) E_A (1 - rho)^E_P (N - 1)^E_Q H^-E_R): 1 for Poisson arrivals, one slot, cv <= 1 and at
    utilisation 1; at k = 8, N = 10, cv 1.5 (H = 1.625), utilisation 0.75 the exponent is
    0.875 * 0.1886 * 0.25^0.7341 * 9^0.6671 * 1.625^-1.4442 = 0.875 * 0.1886 * 0.3614 * 4.331 * 0.4960 = 0.1281
    (factor 0.880); below utilisation 0.7 and above N = 50 it is held at those bounds (the fit's range)."""
    assert erlang_lognormal_factor(1, 10, 0.75, 1.5) == 1.0
    assert erlang_lognormal_factor(8, 1, 0.75, 1.5) == 1.0
    assert erlang_lognormal_factor(8, 10, 0.75, 1.0) == 1.0
    assert erlang_lognormal_factor(8, 10, 0.75, 0.5) == 1.0
    assert erlang_lognormal_factor(8, 10, 1.0, 1.5) == 1.0
    expo = 0.875 * 0.1886 * 0.25**0.7341 * 9.0**0.6671 * 1.625**-1.4442
    assert expo == pytest.approx(0.1281, abs=2e-4)
    assert erlang_lognormal_factor(8, 10, 0.75, 1.5) == pytest.approx(math.exp(-expo), rel=1e-3)
    assert erlang_lognormal_factor(8, 10, 0.5, 1.5) == erlang_lognormal_factor(8, 10, 0.7, 1.5)
    assert erlang_lognormal_factor(8, 500, 0.9, 1.5) == erlang_lognormal_factor(8, 50, 0.9, 1.5)
    # exponential service keeps the exact E_k/M/N wait bit for bit (the factor is not applied at all)
    w = erlang_arrivals_wait(8, 10, 75.0, 0.1, 1.0, 100.0)[0]
    assert w == erlang_arrivals_wait(8, 10, 75.0, 0.1, 1.0 - 0.0, 100.0)[0]


@pytest.mark.parametrize(
    ("servers", "cv", "rho", "wait", "old_error"),
    # perf/fit_mgc.py --phases 8 --scale 0.5: the exact E_8/G/N queue (perf/mgc_sim.py, lognormal service of mean
    # 0.1 s, no room limit, 4 seeds x 1.5e6 arrivals); standard errors 2.1 %, 2.0 %, 2.8 %, 2.8 %
    [
        (10, 1.5, 0.7, 0.003581, 0.183),
        (10, 1.5, 0.8, 0.014320, 0.129),
        (20, 1.5, 0.8, 0.003333, 0.218),
        (10, 2.0, 0.8, 0.023940, 0.095),
    ],
)
def test_round_robin_wait_against_the_exact_erlang_queue(servers, cv, rho, wait, old_error):
    """Round robin over 8 instances (Erlang-8 arrivals) with lognormal service: the Poisson-fitted correction
    alone overstated the wait (+18 %, +13 %, +22 %, +9.5 %); with the Erlang factor within 6 %."""
    lam = rho * servers / 0.1
    w = erlang_arrivals_wait(8, servers, lam, 0.1, cv * cv, 1e12)[0]
    assert w == pytest.approx(wait, rel=0.06)
    old = w / erlang_lognormal_factor(8, servers, rho, cv)
    assert old / wait - 1.0 == pytest.approx(old_error, abs=0.01)
