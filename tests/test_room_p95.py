"""The p95 of a wait bounded by the waiting room (``queueing.room_wait_p95``) against the exact law, computed here
independently by numerical integration: j requests ahead with P(j) ~ r^j on 0 .. K - 1, the wait Erlang(j + 1,
c / s), the service exponential (cv = 1) or deterministic (cv = 0)."""

import math

import numpy as np
import pytest
from scipy import integrate, optimize, stats

from scaling_env.sim.queueing import response_p95, room_wait_p95


def exact_p95(svc: float, cv: float, servers: int, room: int, r: float) -> tuple[float, float]:
    """(p95 of wait + service, mean wait) for the truncated geometric law of the number ahead."""
    j = np.arange(room)
    w = r**j / np.sum(r**j)
    theta = servers / svc
    mean_wait = float(np.sum(w * (j + 1) / theta))

    def wait_tail(x: float) -> float:
        return float(np.sum(w * stats.gamma.sf(x, j + 1, scale=1 / theta))) if x > 0 else 1.0

    if cv == 0.0:
        tail = lambda t: wait_tail(t - svc)  # noqa: E731
    else:

        def tail(t: float) -> float:
            part, _ = integrate.quad(lambda u: math.exp(-u / svc) / svc * wait_tail(t - u), 0, t, limit=200)
            return math.exp(-t / svc) + part

    return optimize.brentq(lambda t: tail(t) - 0.05, 1e-6, 100.0, xtol=1e-10), mean_wait


@pytest.mark.parametrize(
    ("cv", "servers", "room", "r"),
    [(1.0, 10, 100, 1.0), (1.0, 10, 100, 1.02), (1.0, 1, 100, 0.99), (1.0, 10, 20, 0.95), (0.0, 10, 100, 1.0)],
)
def test_room_wait_p95_is_the_p95_of_the_erlang_mixture(cv, servers, room, r):
    exact, mean_wait = exact_p95(0.1, cv, servers, room, r)
    assert room_wait_p95(0.1, cv, mean_wait, 1.0, servers, float(room)) == pytest.approx(exact, rel=2e-3)


def test_a_uniform_room_by_hand():
    # deterministic service 0.1 s, 10 slots (a completion every 0.01 s on average), j uniform on 0..99: the wait
    # of the 95th percentile's request is 0.95-0.96 s, widened by the spread of its ~96 completions (sd 0.098 s)
    # and capped by a full room's 1.00 s (+ the same spread); the exponential tail of the same mean wait (0.505 s)
    # would put it at 0.505 ln 20 = 1.51 s
    p95 = room_wait_p95(0.1, 0.0, 0.505, 1.0, 10, 100.0)
    assert 0.1 + 0.95 < p95 < 0.1 + 1.0
    assert response_p95(0.1, 0.0, 0.505, 1.0) == pytest.approx(0.1 + 0.505 * math.log(20))


def test_a_room_the_law_does_not_reach_gives_the_exponential_tail():
    # mean wait 0.05 s with 10 slots: about 4 ahead on average, geometric with r ~ 0.8, whose mass beyond 1,000
    # places is nil: the unbounded room's exponential wait
    assert room_wait_p95(0.1, 1.0, 0.05, 1.0, 10, 1000.0) == pytest.approx(response_p95(0.1, 1.0, 0.05, 1.0))
    # half the requests served at once, the other half waiting as before: a lower p95
    assert room_wait_p95(0.1, 1.0, 0.15, 0.5, 10, 100.0) < room_wait_p95(0.1, 1.0, 0.3, 1.0, 10, 100.0)


def test_the_closed_form_part_by_hand():
    """One place in the room (J = 0): the wait is Exp(theta) and E + W the hypoexponential law, whose tail is
    (theta e^(-mu y) - mu e^(-theta y)) / (theta - mu); ``_room_exp_part`` is that less P(W > y) = e^(-theta y).
    theta = 100, mu = 10, y = 0.05: (60.653066 - 0.067379) / 90 - 0.006738 = 0.666436"""
    from numba import njit

    from scaling_env.sim import queueing as q

    @njit
    def part(y, theta, rate, room, x):
        scratch = q._stack_doubles(6144)
        ok = q._room_weights(x, room, math.log(theta / (theta - rate)), scratch)
        return q._room_exp_part(y, theta, rate, room, scratch) if ok else -1.0

    assert q._ROOM_SCRATCH <= 6144
    y = 0.05
    hand = (100.0 * math.exp(-0.5) - 10.0 * math.exp(-5.0)) / 90.0 - math.exp(-5.0)
    assert hand == pytest.approx(0.666436, abs=1e-6)
    assert part(y, 100.0, 10.0, 1, 0.0) == pytest.approx(hand, rel=1e-13)
    # two places, uniform (r = 1): the mean of the one-place value and the Erlang(2) one, whose exp part is
    # e^(-mu y) (theta / delta)^2 P(Poisson(delta y) >= 2), delta = 90
    two = math.exp(-0.5) * (100.0 / 90.0) ** 2 * (1.0 - math.exp(-4.5) * (1.0 + 4.5))
    assert part(y, 100.0, 10.0, 2, 0.0) == pytest.approx(0.5 * (hand + two), rel=1e-13)
