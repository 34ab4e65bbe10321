"""The stationary formulas of issue 16's fixes against numbers derived by hand and an independent Markov chain."""

from __future__ import annotations

import math

import numpy as np
import pytest

from scaling_env.sim.queueing import (
    erlang_arrivals_finite,
    erlang_arrivals_wait,
    erlang_c,
    erlang_sigma,
    fluid_p95,
    gim_wait_probability,
    response_p95,
    service_shape,
    stationary_wait,
)


def en_m_c_chain(k: int, c: int, lam: float, mu: float, room: int) -> tuple[float, float, float]:
    """E_k/M/c/(c+room) as a continuous-time Markov chain over (requests, arrival phase), solved with numpy.
    Arrivals happen as phase k-1 ends, so they see the distribution of the requests given that phase.
    Returns (mean wait of admitted requests, their P(wait), P(turned away))."""
    top = c + room
    size = (top + 1) * k
    q = np.zeros((size, size))
    for n in range(top + 1):
        for ph in range(k):
            i = n * k + ph
            q[i, n * k + ph + 1 if ph < k - 1 else min(n + 1, top) * k] += k * lam
            if n > 0:
                q[i, (n - 1) * k + ph] += min(n, c) * mu
    np.fill_diagonal(q, 0.0)
    np.fill_diagonal(q, -q.sum(axis=1))
    a = q.T.copy()
    a[-1] = 1.0  # one balance equation is redundant: normalise instead
    rhs = np.zeros(size)
    rhs[-1] = 1.0
    pi = np.linalg.solve(a, rhs).reshape(top + 1, k)
    seen = pi[:, k - 1] / pi[:, k - 1].sum()
    block = seen[top]
    admitted = seen[:top] / (1.0 - block)
    n = np.arange(top)
    wait = float((admitted * np.maximum(n - c + 1, 0)).sum() / (c * mu))
    return wait, float(admitted[n >= c].sum()), float(block)


def test_e2_m_1_by_hand():
    # sigma = (2 rho / (2 rho + 1 - sigma))^2 at rho = 1/2: sigma (2 - sigma)^2 = 1, i.e. (sigma - 1)(sigma^2 - 3
    # sigma + 1) = 0, so sigma = (3 - sqrt 5) / 2; GI/M/1: P(wait) = sigma, W = sigma / (mu (1 - sigma))
    sigma = (3.0 - math.sqrt(5.0)) / 2.0
    assert erlang_sigma(2, 0.5) == pytest.approx(sigma, rel=1e-12)
    w, p_wait, p_block = erlang_arrivals_wait(2, 1, 5.0, 0.1, 1.0, 1e9)
    assert p_wait == pytest.approx(sigma, rel=1e-9)
    assert w == pytest.approx(sigma / (10.0 * (1.0 - sigma)), rel=1e-9)  # 0.0618 s
    assert p_block == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("c, rho", [(1, 0.5), (3, 0.7), (10, 0.9), (100, 0.9), (40, 0.95)])
def test_poisson_arrivals_give_erlang_c(c, rho):
    # k = 1: sigma = rho and Takacs' P(wait) is Erlang C (c = 100, rho = 0.9 puts c (1 - sigma) on the whole
    # number 10, where the formula's terms are 0/0)
    assert erlang_sigma(1, rho) == rho
    assert gim_wait_probability(1, c, rho)[0] == pytest.approx(erlang_c(c, c * rho), rel=1e-6)


@pytest.mark.parametrize("k, c, rho", [(4, 10, 0.9), (8, 1, 0.3), (8, 2, 0.3), (8, 5, 0.5), (32, 1, 0.8), (8, 50, 0.9)])
def test_erlang_arrivals_match_the_markov_chain(k, c, rho):
    # E4/M/10 at 0.9 is the round-robin reference of docs/model.md 6.5 (0.0366 s)
    mu = 10.0
    w, p_wait, _ = erlang_arrivals_wait(k, c, rho * c * mu, 1.0 / mu, 1.0, 1e9)
    w_ref, p_ref, _ = en_m_c_chain(k, c, rho * c * mu, mu, 150)  # (sigma^150 < 1e-11 here)
    assert w == pytest.approx(w_ref, rel=1e-6)
    assert p_wait == pytest.approx(p_ref, rel=1e-6)


@pytest.mark.parametrize("rho", [0.7, 0.9])
def test_erlang_arrivals_without_a_waiting_room_lose_as_takacs_says(rho):
    # GI/M/c/c: exact; round robin over 8 instances of 10 slots (the request backend drops 3.3 % at 0.7)
    mu = 10.0
    _, _, block = erlang_arrivals_wait(8, 10, rho * 10 * mu, 1.0 / mu, 1.0, 0.0)
    assert block == pytest.approx(en_m_c_chain(8, 10, rho * 10 * mu, mu, 0)[2], rel=1e-6)


def test_e2_m_1_with_one_place_to_wait_by_hand():
    # E_2 arrivals at lambda = mu / 2 (one phase ends at rate 2 lambda = mu), one slot, one place to wait. Over
    # one phase a busy slot finishes w.p. 1/2, so over the two phases between arrivals: from 2 requests (after an
    # arrival that saw 1 or 2) to 2, 1, 0 w.p. 1/4, 1/4, 1/2; from 1 (an arrival saw 0) to 1, 0 w.p. 1/4, 3/4.
    # Balance: q2 = (q1 + q2) / 4 -> q1 = 3 q2; q1 = q0 / 4 + (q1 + q2) / 4 -> q0 = 8 q2: arrivals see
    # (8, 3, 1) / 12. Blocking 1/12; of the admitted 3/11 wait, each one service: W = 3/11 services
    w, p_wait, p_block = erlang_arrivals_wait(2, 1, 5.0, 0.1, 1.0, 1.0)
    assert p_block == pytest.approx(1.0 / 12.0, rel=1e-12)
    assert p_wait == pytest.approx(3.0 / 11.0, rel=1e-12)
    assert w == pytest.approx(0.3 / 11.0, rel=1e-12)
    assert erlang_arrivals_finite(2, 1, 0.5, 1) == pytest.approx((1.0 / 12.0, 3.0 / 11.0, 3.0 / 11.0), rel=1e-12)


@pytest.mark.parametrize(
    "k, c, rho, room",
    [(1, 10, 0.9, 5), (8, 10, 0.7, 5), (8, 10, 0.9, 5), (8, 10, 0.98, 5), (8, 10, 0.98, 20), (8, 10, 0.9, 1),
     (3, 2, 0.5, 3), (32, 1, 0.8, 4), (8, 50, 0.9, 10), (64, 5, 0.95, 20), (8, 10, 0.3, 2), (8, 10, 1.02, 20),
     (8, 10, 1.3, 5)],
)  # fmt: skip
def test_a_small_waiting_room_is_the_exact_finite_chain(k, c, rho, room):
    # round robin over 8 instances of 10 slots with 5 places: the request backend turns away 2.7 % at 0.9 and
    # 5.7 % at 0.98 (1.6 % with 20 places); the cut geometric tail of the unlimited queue gave 4.5 %, 9.5 %, 2.7 %.
    # Above utilisation 1 too (no cap: a finite queue has a steady state): 3.5 % at 1.02 with 20 places
    mu = 10.0
    got = erlang_arrivals_wait(k, c, rho * c * mu, 1.0 / mu, 1.0, float(room))
    ref = en_m_c_chain(k, c, rho * c * mu, mu, room)
    assert got == pytest.approx(ref, rel=1e-7, abs=1e-13)


def test_the_finite_chain_at_the_round_robin_cells_of_the_issue():
    mu = 10.0
    blocks = [erlang_arrivals_wait(8, 10, rho * 100.0, 0.1, 1.0, room)[2] for rho, room in ((0.9, 5), (0.98, 5))]
    assert blocks == pytest.approx([0.0272, 0.0574], abs=5e-4)
    # the geometric tail cut at the room (used above 20 places) overstates it
    d, sigma = gim_wait_probability(8, 10, 0.9)
    cut = d * (1.0 - sigma) * sigma**5 / (1.0 - d * sigma**6)
    assert cut > 1.5 * blocks[0]
    # 21 places: the cut tail again; it still overstates the blocking about as much (0.18 % against 0.11 %), but
    # that is under the report's floor of 0.1 % of arrivals, and its wait is within 5 %
    w_cut, _, b_cut = erlang_arrivals_wait(8, 10, 90.0, 0.1, 1.0, 21.0)
    w_ref, _, b_ref = en_m_c_chain(8, 10, 90.0, mu, 21)
    assert b_ref < b_cut < b_ref + 0.001
    assert w_cut == pytest.approx(w_ref, rel=0.05)


def test_the_finite_chain_at_a_light_load_turns_nobody_away():
    # P(nobody leaves between two arrivals) underflows: the unlimited queue's values (nobody waits)
    assert erlang_arrivals_finite(100, 10, 1e-6, 5)[0] == -1.0
    assert erlang_arrivals_wait(100, 10, 1e-5, 0.1, 1.0, 5.0) == (0.0, 0.0, 0.0)
    block = erlang_arrivals_wait(8, 10, 10.0, 0.1, 1.0, 5.0)[2]  # rho = 0.1: the chain, scaled as it goes
    assert 0.0 <= block < 1e-20


@pytest.mark.parametrize("cv", [0.5, 1.5, 2.0, 3.0])
def test_p95_without_a_wait_is_the_lognormal_quantile(cv):
    # the request backend draws lognormal service for cv not 0 or 1: sigma^2 = ln(1 + cv^2), median s/sqrt(1+cv^2);
    # at cv = 3, s = 0.1: 0.1 / sqrt(10) * exp(1.6449 * sqrt(ln 10)) = 0.384 s (0.300 s before: exponential)
    from statistics import NormalDist

    sigma = math.sqrt(math.log(1.0 + cv * cv))
    q95 = 0.1 / math.sqrt(1.0 + cv * cv) * math.exp(NormalDist().inv_cdf(0.95) * sigma)
    assert response_p95(0.1, cv, 0.0, 0.0) == pytest.approx(q95, rel=1e-9)
    const, e = service_shape(0.1, cv)
    assert const + e == pytest.approx(0.1)  # the mean is kept


def test_p95_with_a_wait_is_exact_for_exponential_service_and_grows_with_the_wait():
    # cv = 1 is unchanged (M/M/c exact, tests/test_queueing.py); for cv = 3 a wait adds to the lognormal's q95
    assert service_shape(0.1, 1.0) == (0.0, 0.1)
    assert service_shape(0.1, 0.0) == (0.1, 0.0)
    no_wait = response_p95(0.1, 3.0, 0.0, 0.0)
    assert no_wait < response_p95(0.1, 3.0, 0.02, 0.3) < no_wait + 0.02 / 0.3 * math.log(0.3 / 0.05) + 1e-9


def test_fluid_p95_adds_the_spread_of_the_services_ahead():
    # one slot (c = 1), a full waiting room of 100 at 0.1 s exponential service: a request waits for the 100
    # ahead and then its own service, Gamma(101, 10/s): p95 11.81 s; the fluid alone said 10 + p95(S) = 10.30 s.
    # By hand: 10 + 0.1 + sqrt((0.1 ln 20 - 0.1)^2 + (1.6449 * 0.1 * sqrt(100))^2) = 11.757 s
    by_hand = 10.1 + math.sqrt((0.1 * math.log(20.0) - 0.1) ** 2 + (1.6448536269514722 * 0.1 * 10.0) ** 2)
    assert fluid_p95(10.0, 0.1, 1.0, 1, 100.0) == pytest.approx(by_hand, rel=1e-12)
    assert by_hand == pytest.approx(11.8079, rel=0.01)  # scipy.stats.gamma.ppf(0.95, 101, scale=0.1)
    # deterministic service, or nobody ahead (the front of a queue behind a cold start): no spread
    assert fluid_p95(10.0, 0.1, 0.0, 1, 100.0) == pytest.approx(10.1)
    assert fluid_p95(40.0, 0.1, 1.0, 10, 0.0) == pytest.approx(40.0 + 0.1 * math.log(20.0))
    # no more ahead than the wait can hold: 0.5 s at 100 req/s is 50 requests, whatever the room
    assert fluid_p95(0.5, 0.1, 1.0, 10, 110.0) == pytest.approx(fluid_p95(0.5, 0.1, 1.0, 10, 50.0))


def test_overload_p95_includes_the_spread_behind_a_full_waiting_room():
    # one instance, c = 1, room 100, 13 req/s into 10 req/s: the room is full, requests are turned away, and a
    # served request waited behind 100 others: p95 about Gamma(101, 10/s)'s 11.8 s, not the fluid's 10.3 s
    from conftest import action_for, quiet_config, started

    cfg = quiet_config(
        workload={"shape": {"kind": "constant", "rate_rps": 13.0}},
        instances={"concurrency": 1, "max_queue": 100},
        scaling={"min_instances": 1, "max_instances": 1, "initial_instances": 1},
    )
    env = started(cfg)
    infos = [env.step(action_for(cfg, 0))[4] for _ in range(6)]
    assert infos[-1]["dropped"] > 0
    assert infos[-1]["latency_p95_s"] == pytest.approx(fluid_p95(10.0, 0.1, 1.0, 1, 101.0), rel=0.02)


@pytest.mark.parametrize("rate", [1e-9, 1e-6, 1e-3])
@pytest.mark.parametrize("servers", [1, 2, 10, 256])
def test_erlang_arrivals_at_a_light_load_wait_for_nothing(rate, servers):
    # (the oracle probes the queue at 1e-6 of a rate: sigma and phi_j underflow there; was a ZeroDivisionError)
    for room in (0.0, 100.0):
        w, p_wait, p_block = erlang_arrivals_wait(17, servers, rate, 0.1, 1.0, room)
        assert w == pytest.approx(0.0, abs=1e-12) and p_wait == pytest.approx(0.0, abs=1e-9)
        assert p_block == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("cv", [0.5, 1.5, 2.0, 3.0])
@pytest.mark.parametrize("rho", [0.5, 0.9])
def test_poisson_arrivals_at_one_slot_wait_as_pollaczek_khinchine(cv, rho):
    # M/G/1 (the random balancer at concurrency 1): W = lambda E[S^2] / (2 (1 - rho)) = rho (1 + cv^2) s / (2 (1 -
    # rho)), exact; e.g. 0.5 s at cv = 3, rho = 0.5, s = 0.1 s (Whitt's phi gave 0.403 s)
    w, p_wait, _ = stationary_wait(1, rho * 10.0, 0.1, 1.0, cv * cv, 1e9)
    assert w == pytest.approx(rho * (1.0 + cv * cv) * 0.1 / (2.0 * (1.0 - rho)), rel=1e-9)
    assert p_wait == pytest.approx(rho, rel=1e-9)
