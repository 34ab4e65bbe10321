"""The p95 of a queue that started empty and has not reached its stationary law (``queueing.transient_wait_p95``):
the reflected Brownian motion's law from 0 against the reflection principle, its stationary limit, a simulated
reflected random walk, and the kernel's use of it near capacity."""

import math

import numpy as np
import pytest
from scipy import integrate, stats

from scaling_env.sim.queueing import _rbm_room_mean, _rbm_survival, room_wait_p95, transient_wait_p95

Z95 = stats.norm.ppf(0.975)  # the half-normal's 95th percentile in units of its scale


def test_driftless_law_is_the_reflection_principle_half_normal():
    # P(max of a driftless Brownian motion > x) = 2 P(B_t > x): 2 Phi-bar(x / sqrt(v t))
    for x, t, v in [(0.0, 10.0, 2.0), (3.0, 10.0, 2.0), (30.0, 100.0, 11.25)]:
        assert _rbm_survival(x, t, 0.0, v) == pytest.approx(2.0 * stats.norm.sf(x / math.sqrt(v * t)), rel=1e-12)


def test_long_run_law_is_the_stationary_exponential():
    # drift -m, variance v: the stationary law is exponential with rate 2 m / v (Harrison 1985)
    m, v = 0.5, 2.0
    for x in (0.5, 2.0, 5.0):
        assert _rbm_survival(x, 1e6, -m, v) == pytest.approx(math.exp(-2.0 * m / v * x), rel=1e-9)


@pytest.mark.parametrize(("t", "drift", "var", "room"), [(100, 0, 11.25, 100), (50, 0.2, 11, 100), (5, -0.2, 11, 100)])
def test_admitted_mean_is_the_integral_of_the_conditioned_survival(t, drift, var, room):
    s_room = _rbm_survival(room, t, drift, var)
    exact = integrate.quad(lambda x: _rbm_survival(x, t, drift, var) - s_room, 0, room, limit=200)[0]
    assert _rbm_room_mean(t, drift, var, room) == pytest.approx(exact / (1.0 - s_room), rel=1e-9)


def test_driftless_p95_by_hand():
    # deterministic service s, a room far beyond the queue: the wait is half-normal, whose p95 is its mean times
    # z(0.975) / sqrt(2 / pi) = 2.4564
    svc, servers, mean_wait = 0.1, 1, 1.0
    p95 = transient_wait_p95(svc, 0.0, mean_wait, servers, 1e6, 0.0, 20.0)
    assert p95 == pytest.approx(svc + mean_wait * Z95 / math.sqrt(2.0 / math.pi), rel=1e-4)


def test_no_age_fits_a_mean_beyond_the_stationary_one():
    # drift -1, variance 2 per s: the stationary mean number is v / (2 m) = 1 request (0.1 s at c = 1, s = 0.1)
    assert transient_wait_p95(0.1, 1.0, 0.2, 1, 100.0, -1.0, 2.0) == -1.0
    assert transient_wait_p95(0.1, 1.0, 0.05, 1, 100.0, -1.0, 2.0) > 0.1
    # a nearly full room is left to the stationary law and the full-room cap
    assert transient_wait_p95(0.1, 1.0, 9.5, 1, 100.0, 0.0, 20.0) == -1.0


def test_simulated_reflected_walk_from_empty():
    """M/M/1 at utilisation 1 from empty, 400 s, mu = 10: the simulated number in system (uniformised chain,
    20,000 paths) against the law fitted to its mean (waits in units of s, deterministic service)."""
    rng = np.random.default_rng(7)
    mu, horizon, paths = 10.0, 400.0, 20_000
    events = rng.poisson(2.0 * mu * horizon, size=paths)
    n = np.zeros(paths, dtype=np.int64)
    for k in range(events.max()):
        live = k < events
        up = rng.random(paths) < 0.5
        n = np.where(live, np.where(up, n + 1, np.maximum(n - 1, 0)), n)
    svc = 1.0 / mu
    mean_wait = n.mean() * svc
    simulated = svc + np.quantile(n, 0.95) * svc
    got = transient_wait_p95(svc, 0.0, mean_wait, 1, 10_000.0, 0.0, 2.0 * mu)
    assert got == pytest.approx(simulated, rel=0.03)
    # the stationary-shaped (geometric) law fitted to the same mean overstates it by far more
    assert room_wait_p95(svc, 0.0, mean_wait, 1.0, 1, 10_000.0) > 1.1 * simulated
