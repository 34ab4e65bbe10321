"""The queue carried from step to step near capacity (sim/nonstationary.py, docs/model.md 6.2.1): numbers that
follow on paper from the flow dy/dt = lambda - mu c G(y) with the relation y = c rho + kappa rho / (1 - rho)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import action_for, quiet_config, started

from scaling_env.sim.nonstationary import psffa_step, psffa_utilisation, psffa_wait


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
    y, _ = psffa_step(100.0, 10.0, 10.0, 1.0, 1.0, 1e9, 15.0)
    assert y == pytest.approx(1.0 + math.sqrt(99.0**2 + 300.0), rel=2e-3)


def test_above_capacity_it_grows_as_the_fluid_until_the_room_is_full():
    # 20 req/s into c mu = 10 from a long queue: 1 - G ~ 0, so y grows at 10 req/s: +150 in 15 s; with room for
    # 120 (cap 121) it stops there
    y, _ = psffa_step(1000.0, 20.0, 10.0, 1.0, 1.0, 1e9, 15.0)
    assert y == pytest.approx(1150.0, rel=1e-3)
    y, lq = psffa_step(100.0, 20.0, 10.0, 1.0, 1.0, 121.0, 15.0)
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
