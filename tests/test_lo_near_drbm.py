"""Least outstanding's pooled queue above capacity: the number waiting as the reflected Brownian motion on the
room, reflected at both ends (``queueing.drbm_mean``, ``drbm_step_wait``; docs/model.md 6.2.4)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

from scaling_env.sim.nonstationary import pooled_transient_wait, room_fill_time
from scaling_env.sim.queueing import (
    _rbm_room_mean,
    drbm_age,
    drbm_mean,
    drbm_overflow,
    drbm_step_blocking,
    drbm_step_wait,
    rbm_limit,
)

sys.path.insert(0, str(Path(__file__).parent))
from test_lo_near_capacity import _chain_waits  # noqa: E402


def test_driftless_two_sided_mean_is_the_cosine_series():
    # zero drift on [0, K] from 0: the heat equation with Neumann ends, E R(t) = K / 2 - sum over odd n of
    # 4 K / (n pi)^2 exp(-var (n pi / K)^2 t / 2) (separation of variables)
    var, k = 160.0, 100.0
    for t in (5.0, 20.0, 60.0, 400.0):
        series = k / 2.0 - sum(
            4.0 * k / (n * math.pi) ** 2 * math.exp(-var * (n * math.pi / k) ** 2 * t / 2.0) for n in range(1, 400, 2)
        )
        assert drbm_mean(t, 0.0, var, k) == pytest.approx(series, rel=1e-9)
    # early, the top is out of reach: the one-sided motion's sqrt(2 var t / pi)
    assert drbm_mean(1.0, 0.0, var, k) == pytest.approx(math.sqrt(2.0 * var / math.pi), rel=1e-6)


def test_limit_and_age():
    # it tends to the two-sided steady state (the truncated exponential, rbm_limit) from below, and the age fitted
    # to its mean gives that mean back
    for drift in (-3.0, 0.0, 3.2):
        assert drbm_mean(1e5, drift, 323.2, 800.0) == pytest.approx(rbm_limit(drift, 323.2, 800.0), rel=1e-9)
        m = drbm_mean(20.0, drift, 323.2, 800.0)
        assert m < 0.99 * rbm_limit(drift, 323.2, 800.0)
        assert drbm_age(m, drift, 323.2, 800.0) == pytest.approx(20.0, rel=1e-5)
    # above capacity it lies above the one-sided motion's mean below the room, which leaves out the paths the top
    # holds there: the two-sided limit is K - var / (2 drift), the one-sided law below K's K - var / drift
    assert drbm_mean(400.0, 3.2, 323.2, 800.0) > _rbm_room_mean(400.0, 3.2, 323.2, 800.0) + 20.0


def test_follows_the_exact_chain_above_capacity():
    # 8 pooled slots, a room of 60, utilisation 1.05, 2 s steps from empty (the room half fills in 8.6 s, longer
    # than a step): the exact chain's waits (expm) rise to 0.538 s; the two-sided motion is within 10 % from the
    # third step and 3 % over the 20 steps, where the one-sided motion below the room was 10-14 % short
    c, k, mu, dt, steps, rho = 8, 60, 10.0, 2.0, 20, 1.05
    assert room_fill_time(float(k), rho * c * mu, c, mu) > dt
    exact = _chain_waits(c, k, rho, mu, dt, steps)
    count = 0.0
    model = []
    for _ in range(steps):
        w, count = pooled_transient_wait(count, rho * c * mu, 1.0 / mu, c, 1.0, float(k), dt, 0.0)
        model.append(w)
    model = np.array(model)
    np.testing.assert_allclose(model[2:], exact[2:], rtol=0.10)
    np.testing.assert_allclose(model[8:], exact[8:], rtol=0.01)
    assert abs(model.mean() / exact.mean() - 1.0) < 0.03
    # a step from a carried count goes on where the queue was: two 15 s steps end where one 30 s step does
    args = (rho * c * mu, 1.0 / mu, c, 1.0, 600.0)
    _, q_a = drbm_step_wait(0.0, *args, 15.0)
    _, q_b = drbm_step_wait(q_a, *args, 15.0)
    _, q_30 = drbm_step_wait(0.0, *args, 30.0)
    assert q_b == pytest.approx(q_30, rel=1e-4)


def test_overflow_at_the_top_settles_at_the_stationary_density():
    # the upper regulator grows at var / 2 times the density at the top: uniform 1 / K at zero drift, and
    # 2 a / (1 - exp(-2 a K)) with a = drift / var otherwise (the truncated exponential law, Harrison 1985 5.6)
    var, k = 20.0, 101.0
    assert drbm_overflow(5e4, 5e4 + 100.0, 0.0, var, k) == pytest.approx(100.0 * var / (2.0 * k), rel=1e-9)
    drift = 0.2
    a = drift / var
    rate = 0.5 * var * 2.0 * a / (1.0 - math.exp(-2.0 * a * k))
    assert drbm_overflow(5e4, 5e4 + 100.0, drift, var, k) == pytest.approx(100.0 * rate, rel=1e-9)
    # additive over time, and nothing while the top is out of reach
    for d in (-0.3, 0.0, 0.2):
        whole = drbm_overflow(100.0, 700.0, d, var, k)
        assert drbm_overflow(100.0, 300.0, d, var, k) + drbm_overflow(300.0, 700.0, d, var, k) == pytest.approx(whole)
    assert drbm_overflow(0.0, 1.0, 0.0, var, k) == 0.0
    # a steep drift up: the series cancels in floating point, left to the caller
    assert drbm_overflow(10.0, 20.0, 5.0, var, k) == -1.0


def test_overflow_from_empty_against_the_exact_chain():
    # M/M/1/101 from empty at utilisation 1 (lambda = mu = 10): the chain turns away 0.00811 of the arrivals over
    # seconds 60-720 (tests/test_drops_fill.py's chain); the motion on [0, 101] with variance lambda + mu, 0.00824
    share = drbm_overflow(60.0, 720.0, 0.0, 20.0, 101.0) / (10.0 * 660.0)
    assert share == pytest.approx(0.00824, abs=5e-5)
    # and as a step's share from a carried count: the age fitted to it (drbm_age) gives the same overflow
    t0 = 300.0
    count = drbm_mean(t0, 0.0, 20.0, 101.0)
    step = drbm_step_blocking(count, 10.0, 0.1, 1, 1.0, 1.0, 101.0, 15.0)
    assert step == pytest.approx(drbm_overflow(t0, t0 + 15.0, 0.0, 20.0, 101.0) / 150.0, rel=1e-3)
