"""The queue carried from step to step near capacity (sim/nonstationary.py, docs/model.md 6.2.1): numbers that
follow on paper from the flow dy/dt = lambda - mu c G(y) with the relation y = c rho + kappa rho / (1 - rho)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import action_for, quiet_config, started

from scaling_env.config import EnvConfig
from scaling_env.envs.single import ServerlessScalingEnv
from scaling_env.sim.nonstationary import psffa_finite_wait, psffa_step, psffa_utilisation, psffa_wait, room_shape


def test_utilisation_inverts_the_stationary_relation():
    # c = 1, kappa = 1 (M/M/1's y = rho / (1 - rho) plus the... c rho + rho / (1 - rho)): rho = 0.5 -> y = 1.5
    rho, grad = psffa_utilisation(1.5, 1.0, 1.0)
    assert rho == pytest.approx(0.5, rel=1e-12)
    assert grad == pytest.approx(1.0 / (1.0 + 1.0 / 0.25), rel=1e-12)  # d rho / d y = 1 / (c + kappa / (1 - rho)^2)
    # c = 10, kappa = 2, rho = 0.9: y = 9 + 2 * 9 = 27
    assert psffa_utilisation(27.0, 10.0, 2.0)[0] == pytest.approx(0.9, rel=1e-12)
    assert psffa_utilisation(0.0, 10.0, 2.0)[0] == 0.0


def test_a_steady_state_gives_back_the_stationary_wait():
    # M/M/1, mu = 10, lambda = 5: W = rho / (mu (1 - rho)) = 0.1 s, Lq = 0.5, kappa = Lq (1 - rho) / rho = 0.5,
    # y* = rho + Lq = 1.0. Started there, the queue stays there and the step's mean wait is W.
    y, w = psffa_wait(1.0, 5.0, 0.1, 1, 0.1, 1e9, 15.0)
    assert y == pytest.approx(1.0, rel=1e-12)
    assert w == pytest.approx(0.1, rel=1e-12)
    # started empty, it relaxes within a fraction of a second at rho = 0.5: the end is y*, the mean a bit lower
    y, w = psffa_wait(0.0, 5.0, 0.1, 1, 0.1, 1e9, 15.0)
    assert y == pytest.approx(1.0, rel=1e-6)
    assert 0.09 < w < 0.1


def test_at_capacity_the_queue_grows_like_the_square_root_of_time():
    # rho = 1, far above c: 1 - G(y) ~ kappa / (y - c), so d(y - c)^2/dt = 2 mu c kappa. From y0 = 100 (c = 1,
    # kappa = 1, mu = 10) over 15 s: (y - 1)^2 = 99^2 + 300 -> y = 1 + sqrt(10101) = 101.504
    y, _, _ = psffa_step(100.0, 10.0, 10.0, 1.0, 1.0, 1e9, 15.0)
    assert y == pytest.approx(1.0 + math.sqrt(99.0**2 + 300.0), rel=2e-3)


def test_above_capacity_it_grows_as_the_fluid_until_the_room_is_full():
    # 20 req/s into c mu = 10 from a long queue: 1 - G ~ 0, so y grows at 10 req/s: +150 in 15 s; with room for
    # 120 (cap 121) it stops there
    y, _, _ = psffa_step(1000.0, 20.0, 10.0, 1.0, 1.0, 1e9, 15.0)
    assert y == pytest.approx(1150.0, rel=1e-3)
    y, lq, _ = psffa_step(100.0, 20.0, 10.0, 1.0, 1.0, 121.0, 15.0)
    assert y == 121.0
    assert 100.0 < lq < 121.0


def test_round_robin_at_capacity_waits_longer_step_after_step():
    # one instance, c = 1, 10 req/s into 0.1 s service: utilisation 1, waiting room 100,000. The per-step
    # stationary wait (utilisation capped at 0.99) is the same every step; followed over time the queue grows,
    # like sqrt(t) once it is long: the mean wait of step 15 over that of step 3 is close to sqrt(16 / 4) = 2
    cfg = quiet_config(
        workload={"shape": {"kind": "constant", "rate_rps": 10.0}},
        instances={"concurrency": 1, "service_seconds": 0.1},
        load_balancer={"algorithm": "round_robin"},
    )
    env = started(cfg)
    hold = action_for(cfg, 0)
    waits = np.array([env.step(hold)[4]["latency_mean_s"] - 0.1 for _ in range(16)])
    assert np.all(np.diff(waits) > 0.0)
    assert waits[15] / waits[3] == pytest.approx(2.0, rel=0.15)


def _erlang_c(c: int, a: float) -> float:
    """P(wait) in M/M/c at offered load a (Erlang's C formula)."""
    head = sum(a**k / math.factorial(k) for k in range(c))
    tail = a**c / math.factorial(c) * c / (c - a)
    return tail / (head + tail)


def test_a_steady_state_of_m_m_c_gives_back_erlang_c():
    # c = 10 servers of mu = 10/s at lambda = 80/s (a = 8): W = C(10, 8) / (c mu - lambda); Lq = lambda W,
    # y* = a + Lq. Started at y*, every arrival waits Lq / (c mu rho) = Lq / lambda = W.
    w = _erlang_c(10, 8.0) / (100.0 - 80.0)
    y_star = 8.0 + 80.0 * w
    y, w_step = psffa_wait(y_star, 80.0, 0.1, 10, w, 1e9, 15.0)
    assert y == pytest.approx(y_star, rel=1e-9)
    assert w_step == pytest.approx(w, rel=1e-9)


def test_a_draining_queue_with_little_traffic_waits_a_fraction_of_its_drain_time():
    # 50 in system on 10 servers of 10/s (40 waiting: the first arrival waits 40 / 100 = 0.4 s), a stationary
    # wait of 1 ms, almost no arrivals. kappa = w c mu (1 - rho) = 0.1, so the queue drains (G ~ 1 while it is
    # long) within about a second and every later arrival waits about kappa / (c mu) = 1 ms: over 15 s the mean
    # is a few ms, at least the 1 ms and at most 1 ms + 0.4 s x 1 s / 15 s. Little's law with the arrival rate
    # (Lq / lambda) made it 46,314 s at 1e-6 req/s and 4.6 s at 0.01.
    for lam in (1e-6, 0.01, 0.0):
        y, w = psffa_wait(50.0, lam, 0.1, 10, 0.001, 1000.0, 15.0)
        assert y < 0.01
        assert 0.001 * (1.0 - lam / 100.0) <= w <= 0.001 + 0.4 / 15.0
    w_small = psffa_wait(50.0, 1e-6, 0.1, 10, 0.001, 1000.0, 15.0)[1]
    assert psffa_wait(50.0, 0.01, 0.1, 10, 0.001, 1000.0, 15.0)[1] == pytest.approx(w_small, rel=1e-3)


def test_a_step_without_arrivals_keeps_the_queue_it_carries_until_it_drains():
    # no arrivals: the queue of 50 drains at most at c mu = 100/s, so after 0.1 s at least 40 are left (it
    # returned 0, the queue lost); after 15 s it is gone
    y, w = psffa_wait(50.0, 0.0, 0.1, 10, 0.0, 1000.0, 0.1)
    assert 40.0 <= y < 50.0
    assert w > 0.0
    assert psffa_wait(50.0, 0.0, 0.1, 10, 0.0, 1000.0, 15.0)[0] < 1e-6


def test_the_step_after_an_overload_ends_waits_about_as_the_request_backend():
    # 4 instances (400 req/s) at 420 req/s, then 2 req/s from t = 150 s (step 10), round robin, waiting room 100:
    # step 10 serves the 400 queued requests (each instance's full room, 1 s of work) and a handful of arrivals.
    # Its mean latency is at most the room's wait plus the service: 110 / 100 + 0.1 = 1.2 s (the followed queue's
    # Lq / lambda at 0.5 req/s per instance made it 10.8 s); the request backend: 0.89 s over seeds 0-2
    base = {
        "step_seconds": 15.0,
        "episode_steps": 12,
        "workload": {"shape": {"kind": "spike", "base_rps": 420.0, "peak_rps": 2.0, "start_seconds": 150.0,
                               "duration_seconds": 1e5}},
        "instances": {"concurrency": 10, "max_queue": 100, "service_seconds": 0.1, "memory_mb_per_request": 0.0},
        "scaling": {"min_instances": 0, "max_instances": 16, "initial_instances": 4},
        "failures": {"mtbf_seconds": None, "memory_crash": False},
        "load_balancer": {"algorithm": "round_robin"},
    }  # fmt: skip
    lat = {}
    for simulator in ("fast", "request"):
        cfg = EnvConfig.from_dict({**base, "simulator": simulator})
        runs = []
        for seed in range(3):
            env = ServerlessScalingEnv(cfg)
            env.reset(seed=seed)
            hold = action_for(cfg, 0)
            runs.append([env.step(hold)[4]["latency_mean_s"] for _ in range(11)][10])
        lat[simulator] = float(np.mean(runs))
    assert lat["fast"] <= 1.2
    assert lat["fast"] == pytest.approx(lat["request"], rel=0.2)


# ---------------------------------------------------------------------------------------------------------------
# The finite-buffer flow (Tipper & Sundareshan 1990): its fixed point is the M/M/c/K stationary queue at every
# utilisation, capacity and above included.


def mmck(c: int, room: int, rho: float, mu: float = 10.0) -> tuple[float, float, float]:
    """M/M/c/(c + room) from its product form: (mean in system, mean wait of an admitted request, P(full))."""
    a = rho * c
    p = [1.0]
    for n in range(1, c + room + 1):
        p.append(p[-1] * a / min(n, c))
    p = np.array(p) / sum(p)
    n = np.arange(c + room + 1)
    lq = float((p * np.maximum(n - c, 0)).sum())
    return float((p * n).sum()), lq / (rho * c * mu * (1.0 - p[-1])), float(p[-1])


def test_room_shape_at_and_around_capacity():
    # the waiting count behind c busy slots is uniform on 0..K at rho = 1: mean K / 2, P(K) = 1 / (K + 1)
    m_rho, top = room_shape(1.0, 100.0)
    assert m_rho == pytest.approx(50.0, rel=1e-12) and top == pytest.approx(1.0 / 101.0, rel=1e-12)
    # K = 1 at rho = 0.5: P(0) = 2/3, P(1) = 1/3, mean 1/3
    m_rho, top = room_shape(0.5, 1.0)
    assert m_rho * 0.5 == pytest.approx(1.0 / 3.0, rel=1e-12) and top == pytest.approx(1.0 / 3.0, rel=1e-12)
    # mirror image: the mean at rho and at 1 / rho add up to K; continuous through rho = 1
    for rho in (1.02, 1.3, 3.0):
        assert room_shape(rho, 100.0)[0] * rho + room_shape(1.0 / rho, 100.0)[0] / rho == pytest.approx(100.0)
    # the expansion used within ln(rho) (K + 1) < 1e-4 meets the closed form at the switch: m / rho has the slope
    # K (K + 2) / 12 - K / 2 = 800 in ln(rho) there
    below, above = room_shape(math.exp(0.98e-6), 100.0)[0], room_shape(math.exp(1.0e-6), 100.0)[0]
    assert above - below == pytest.approx(800.0 * 0.02e-6, rel=0.05)


@pytest.mark.parametrize("c", [1, 10])
@pytest.mark.parametrize("rho", [0.5, 0.9, 0.98, 1.0, 1.02, 1.1, 1.3])
def test_finite_flow_fixed_point_is_the_mmck_queue(c, rho):
    # fitted to M/M/c/K's own stationary wait (at rho capped at 0.99), started at M/M/c/K's mean number in system,
    # the flow stays there: the step's mean wait and blocking are M/M/c/K's at every utilisation
    big_l, w, block = mmck(c, 100, rho)
    w_fit = mmck(c, 100, min(rho, 0.99))[1]
    y, w_step, p_step = psffa_finite_wait(big_l, rho * c * 10.0, 0.1, c, w_fit, 100.0, 15.0)
    assert y == pytest.approx(big_l, rel=1e-6)
    assert w_step == pytest.approx(w, rel=1e-6)
    assert p_step == pytest.approx(block, rel=1e-6)


def test_a_constant_overload_fills_to_the_mmck_value():
    # c = 10, K = 100, utilisation 1.3 from an empty queue: it fills to M/M/c/K's 106.67 (10 busy + K - 1/(rho - 1)
    # waiting, nearly), not to the full room, and blocks its 1 - 1/1.3 = 23.1 %
    big_l, _, block = mmck(10, 100, 1.3)
    w_fit = mmck(10, 100, 0.99)[1]
    y = 0.0
    for _ in range(4):
        y, _, p_step = psffa_finite_wait(y, 130.0, 0.1, 10, w_fit, 100.0, 15.0)
    assert y == pytest.approx(big_l, rel=1e-6) and big_l < 110.0
    assert p_step == pytest.approx(block, rel=1e-3) and block == pytest.approx(1.0 - 1.0 / 1.3, rel=1e-3)
