"""Least outstanding's pooled queue near capacity (docs/model.md 6.2.4): the reflected Brownian motion from
empty followed step by step (``queueing.rbm_step_wait``, ``nonstationary.pooled_transient_wait``), its steady
states (``queueing.rbm_limit``, ``nonstationary.mmck_wait``), the one-queue p95 (``queueing.window_wait_p95``) and
the kernel's use of them."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.linalg import expm
from scipy.stats import norm

from scaling_env import EnvConfig
from scaling_env.fields import INFO_NAMES
from scaling_env.sim.nonstationary import mmck_wait, pooled_transient_wait
from scaling_env.sim.queueing import rbm_age, rbm_limit, rbm_step_wait, window_wait_p95
from scaling_env.sim.simulator import BatchSimulator


def test_driftless_motion_mean_is_sqrt_2vt_over_pi():
    # zero drift, a room far away: the mean of |N(0, v t)| is sqrt(2 v t / pi); over a step from empty the
    # time average of sqrt(t) is (2/3) sqrt(h)
    var, h = 160.0, 15.0
    lam = 80.0  # 8 slots of 10/s at utilisation 1 (var = lam + c mu = 160)
    w, q1 = rbm_step_wait(0.0, lam, 0.1, 8, 1.0, 1e9, h)
    assert q1 == pytest.approx(math.sqrt(2.0 * var * h / math.pi), rel=1e-6)
    assert w * 80.0 == pytest.approx(2.0 / 3.0 * math.sqrt(2.0 * var * h / math.pi), rel=1e-4)


def test_age_is_carried_from_step_to_step():
    # two steps of 15 s from empty end where one of 30 s does (the age fitted to the carried count), and the
    # fitted age of the driftless motion's mean is pi m^2 / (2 v)
    args = (80.0, 0.1, 8, 1.0, 1e9)
    _, q_a = rbm_step_wait(0.0, *args, 15.0)
    _, q_b = rbm_step_wait(q_a, *args, 15.0)
    _, q_30 = rbm_step_wait(0.0, *args, 30.0)
    assert q_b == pytest.approx(q_30, rel=1e-4)
    assert rbm_age(q_a, 0.0, 160.0, 1e9) == pytest.approx(15.0, rel=1e-4)
    assert rbm_age(0.0, 0.0, 160.0, 1e9) == 0.0


def test_two_sided_limit():
    # truncated exponential at rate 2 drift / var on [0, room]: uniform at zero drift; far below capacity the
    # free motion's var / (2 |drift|); far above, room - var / (2 drift)
    assert rbm_limit(0.0, 10.0, 40.0) == pytest.approx(20.0)
    assert rbm_limit(-2.0, 10.0, 1e6) == pytest.approx(2.5)
    assert rbm_limit(2.0, 10.0, 1e6) == pytest.approx(1e6 - 2.5)
    a, k = -0.05, 30.0  # by quadrature
    x = np.linspace(0.0, k, 200001)
    dens = np.exp(2.0 * a / 1.0 * x)
    assert rbm_limit(a, 1.0, k) == pytest.approx(np.trapezoid(x * dens, x) / np.trapezoid(dens, x), rel=1e-6)
    # below capacity the motion from empty tends to it
    assert rbm_step_wait(0.0, 76.0, 0.1, 8, 1.0, 800.0, 1e4)[1] == pytest.approx(rbm_limit(-4.0, 156.0, 800.0))


def _mmck_exact(c: int, k: int, rho: float, mu: float = 10.0) -> float:
    top = c + k
    p = np.ones(top + 1)
    for n in range(1, top + 1):
        p[n] = p[n - 1] * rho * c / min(n, c)
    p /= p.sum()
    wait = np.array([max(n - c + 1, 0) / (c * mu) for n in range(top)])
    return float(p[:top] @ wait / p[:top].sum())


@pytest.mark.parametrize("c,k,rho", [(1, 3, 0.5), (3, 5, 0.7), (80, 160, 1.0), (80, 40, 1.02), (8, 800, 1.0)])
def test_mmck_wait_is_the_product_form(c, k, rho):
    assert mmck_wait(c, rho, float(k), 0.1) == pytest.approx(_mmck_exact(c, k, rho), rel=1e-9)


def _chain_waits(c: int, k: int, rho: float, mu: float, dt: float, steps: int) -> np.ndarray:
    """Per step, the admitted arrivals' mean wait of M/M/c/(c + k) from empty (expm, 40 points a step)."""
    lam = rho * c * mu
    top = c + k
    q = np.zeros((top + 1, top + 1))
    for n in range(top + 1):
        if n < top:
            q[n, n + 1] = lam
        if n > 0:
            q[n, n - 1] = min(n, c) * mu
        q[n, n] = -q[n].sum()
    sub = 40
    e = expm(q * dt / sub)
    half = expm(q * dt / sub / 2.0)
    wait = np.array([max(n - c + 1, 0) / (c * mu) if n < top else 0.0 for n in range(top + 1)])
    adm = np.array([1.0 if n < top else 0.0 for n in range(top + 1)])
    p = np.zeros(top + 1)
    p[0] = 1.0
    out = []
    for _ in range(steps):
        num = den = 0.0
        for _ in range(sub):
            pm = p @ half
            num += pm @ wait
            den += pm @ adm
            p = p @ e
        out.append(num / den)
    return np.array(out)


def test_follows_the_exact_chain_from_empty_at_capacity():
    # 8 slots (pooled), a room of 300, utilisation 1, 5 s steps: the room takes pi K^2 / (8 var) = 221 s to half
    # fill, beyond the 10 steps, so the room's steady state (K / 2 waiting) is twice the chain's last step; the
    # motion is within 9 % of the chain from the third step on (it leaves out the time the chain spends with idle
    # slots, a constant offset of about one request: 24 % in the first step) and 7 % over the ten
    c, k, mu, dt, steps = 8, 300, 10.0, 5.0, 10
    exact = _chain_waits(c, k, 1.0, mu, dt, steps)
    count = 0.0
    model = []
    for _ in range(steps):
        w, count = pooled_transient_wait(count, c * mu, 1.0 / mu, c, 1.0, float(k), dt, 0.0)
        model.append(w)
    model = np.array(model)
    assert mmck_wait(c, 1.0, float(k), 1.0 / mu) > 2.0 * exact[-1]
    np.testing.assert_allclose(model[2:], exact[2:], rtol=0.09)
    assert abs(model.mean() / exact.mean() - 1.0) < 0.07


def test_capped_by_the_steady_state():
    # below capacity the motion's limit (1 / (1 - rho) ~ 20 waiting at 0.95) is above M/M/c's: the cap holds
    w_stat = 0.1
    w, q = pooled_transient_wait(0.0, 76.0, 0.1, 8, 1.0, 800.0, 1e4, w_stat)
    assert w == pytest.approx(w_stat)
    assert q == pytest.approx(w_stat * 80.0)
    # a room that fills within the step (pi 40^2 / (8 * 1616) = 0.39 s): M/M/c/K's steady state at the true load
    w, _ = pooled_transient_wait(0.0, 816.0, 0.1, 80, 1.0, 40.0, 15.0, 0.0)
    assert w == pytest.approx(_mmck_exact(80, 40, 1.02), rel=1e-9)


def test_window_p95_exponential_service_no_spread():
    # an empty queue with no walk: the p95 is the exponential service's, s ln 20
    assert window_wait_p95(0.1, 1.0, 0.0, 8, 0.0) == pytest.approx(0.1 * math.log(20.0), rel=1e-6)
    # deterministic service (cv 0): s + the normal's quantile of the number ahead over c / s
    m, spread, c, s = 100.0, 300.0, 8, 0.1
    sd = math.sqrt(spread + m)
    expect = s + (m + norm.ppf(0.95) * sd) * s / c
    assert window_wait_p95(s, 0.0, m * s / c, c, spread) == pytest.approx(expect, rel=1e-6)


def _lo_step_waits(rho: float):

    cfg = EnvConfig.from_dict(
        {
            "simulator": "fast",
            "step_seconds": 15.0,
            "episode_steps": 20,
            "workload": {"shape": {"kind": "constant", "rate_rps": rho * 8 * 2 / 0.1}},
            "instances": {
                "concurrency": 2,
                "max_queue": 100,
                "service_seconds": 0.1,
                "service_cv": 1.0,
                "memory_mb_per_request": 0.0,
            },
            "scaling": {"min_instances": 8, "max_instances": 8, "initial_instances": 8},
            "load_balancer": {"algorithm": "least_outstanding"},
            "failures": {"mtbf_seconds": None, "memory_crash": False},
        }
    )
    sim = BatchSimulator(cfg, 1, parallel=False)
    sim.seed([3])
    sim.reset()
    col = {n: i for i, n in enumerate(INFO_NAMES)}
    hold = list(cfg.scaling.scale_steps).index(0)
    waits, p95 = [], []
    for _ in range(cfg.episode_steps):
        sim.step(np.array([hold]))
        waits.append(sim.metrics[0][col["latency_mean_s"]] - 0.1)
        p95.append(sim.metrics[0][col["latency_p95_s"]])
    return np.array(waits), np.array(p95)


def test_kernel_follows_the_pooled_queue_at_capacity():
    # 8 instances of 2 slots, a room of 100 each, utilisation 1: the pooled queue (16 slots, room 800, var 320 per
    # s) grows from empty as the motion does, about sqrt(t): the first step's mean is (2/3) sqrt(2 var h / pi) / (c
    # mu) = 0.232 s, the 20th's (285-300 s) about sqrt(2 var 292.5 / pi) / 160 = 1.53 s (the room, 2.6 standard
    # deviations away, trims it by 2 %); the per-step stationary queue held at RHO_CAP gave a flat ~0.6 s
    w, p95 = _lo_step_waits(1.0)
    assert w[0] == pytest.approx(2.0 / 3.0 * math.sqrt(2.0 * 320.0 * 15.0 / math.pi) / 160.0, rel=0.02)
    assert w[-1] == pytest.approx(math.sqrt(2.0 * 320.0 * 292.5 / math.pi) / 160.0, rel=0.05)
    # its p95 is one queue's within the step (``window_wait_p95``: the walk's spread over 15 s, var h / 6 = 800
    # requests^2, plus the services ahead), not the half-normal law across episodes (2.45 times the mean wait)
    window = window_wait_p95(0.1, 1.0, w[-1], 16, 320.0 * 15.0 / 6.0)
    assert p95[-1] == pytest.approx(window, rel=0.03)
    assert p95[-1] < 0.1 + 1.5 * w[-1]
