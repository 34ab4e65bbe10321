"""Least outstanding's pooled queue near capacity with lognormal service (docs/model.md 6.2.4): its steady state
is the stationary wait stretched by the services' count variance over the queue's relaxation time
(``jsq.window_variance_share``), not by their long-run cs2."""

from __future__ import annotations

import numpy as np
import pytest

from scaling_env import EnvConfig
from scaling_env.fields import INFO_NAMES
from scaling_env.sim.jsq import window_variance_share
from scaling_env.sim.load_balancer import LEAST_OUTSTANDING, balancer_queue
from scaling_env.sim.mgc import variance_ratio
from scaling_env.sim.queueing import RHO_CAP
from scaling_env.sim.simulator import BatchSimulator


def test_share_is_the_stretch_at_the_relaxation_time():
    # 80 slots at utilisation 0.98, cv 3: the relaxation time var / drift^2 is (0.98 + 9) / (80 0.02^2) = 311.875
    # mean services, where the lognormal services show a share r of their long-run count variance; the stretch
    # (1 + cs2) / 2 becomes (1 + cs2 r) / 2
    r = variance_ratio(3.0, 311.875)
    assert 0.85 < r < 0.95
    assert window_variance_share(80, 0.98, 3.0) == pytest.approx((1.0 + 9.0 * r) / 10.0, rel=1e-12)
    # exponential (and lighter) service: no change; a longer relaxation time (fewer slots, nearer capacity) keeps
    # more of the variance; above RHO_CAP the load is held there, as the stationary wait is
    assert window_variance_share(80, 0.98, 1.0) == 1.0
    assert window_variance_share(80, 0.98, 0.5) == 1.0
    assert window_variance_share(8, 0.98, 3.0) > window_variance_share(80, 0.98, 3.0)
    assert window_variance_share(80, 0.985, 3.0) > window_variance_share(80, 0.98, 3.0)
    assert window_variance_share(80, 1.02, 3.0) == window_variance_share(80, RHO_CAP, 3.0) < 1.0


def _lo_waits(rho: float, cv: float, conc: int = 10, steps: int = 24) -> np.ndarray:
    cfg = EnvConfig.from_dict(
        {
            "simulator": "fast",
            "step_seconds": 15.0,
            "episode_steps": steps,
            "workload": {"shape": {"kind": "constant", "rate_rps": rho * 8 * conc / 0.1}},
            "instances": {
                "concurrency": conc,
                "max_queue": 100,
                "service_seconds": 0.1,
                "service_cv": cv,
                "memory_mb_per_request": 0.0,
            },
            "scaling": {"min_instances": 8, "max_instances": 8, "initial_instances": 8},
            "load_balancer": {"algorithm": "least_outstanding"},
            "failures": {"mtbf_seconds": None, "memory_crash": False},
        }
    )
    sim = BatchSimulator(cfg, 1, parallel=False)
    sim.seed([5])
    sim.reset()
    col = INFO_NAMES.index("latency_mean_s")
    hold = list(cfg.scaling.scale_steps).index(0)
    waits = []
    for _ in range(steps):
        sim.step(np.array([hold]))
        waits.append(sim.metrics[0][col] - 0.1)
    return np.array(waits)


def test_kernel_caps_the_pooled_queue_at_the_window_steady_state():
    # 8 instances of 10 slots, utilisation 0.98, cv 3: the motion from empty (variance lam + c mu cs2 per s) passes
    # the steady state within a few steps, so later steps sit at the cap: the stationary pooled wait (JSQ factors,
    # lognormal M/G/N) times the share, 0.187 s; the long-run cs2 gave 0.202 s (the request backend: 0.174 s)
    lam = 0.98 * 800.0
    w_stat = balancer_queue(LEAST_OUTSTANDING, lam, 8, 8.0, 8.0, 10, 0.1, 9.0, 100.0)[0]
    share = window_variance_share(80, 0.98, 3.0)
    w = _lo_waits(0.98, 3.0)
    assert w[-8:] == pytest.approx(np.full(8, w_stat * share), rel=0.01)
    assert w[-1] < 0.95 * w_stat
    # exponential service keeps the stationary wait as its cap
    w1 = _lo_waits(0.98, 1.0)
    w_stat1 = balancer_queue(LEAST_OUTSTANDING, lam, 8, 8.0, 8.0, 10, 0.1, 1.0, 100.0)[0]
    assert w1[-8:] == pytest.approx(np.full(8, w_stat1), rel=0.01)
