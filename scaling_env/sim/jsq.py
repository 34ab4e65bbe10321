"""Join-the-shortest-queue (least outstanding) over ``n`` instances of ``c`` slots, relative to one pooled queue.

One pooled M/M/(n c) queue lets a freed slot take any waiting request; under join-the-shortest-queue (JSQ) a
request stays at the instance it was sent to, so slots idle while other instances have requests waiting and a
waiting request is served only by its own instance's ``c`` slots. Both make JSQ's mean wait longer than the pooled
queue's, most at low ``c``, many instances and moderate load (n = 32, c = 1, utilisation 0.8: 7.4 ms against
2.5 ms), while fewer arrivals find every instance full (P(wait) below Erlang C).

No closed form for FCFS JSQ with ``n`` servers of ``c`` slots could be checked here, so ``jsq_factors`` scales the
pooled queue's wait and P(wait) by factors that keep its two exact limits:

- ``n = 1`` is the pooled queue (M/M/c), factor 1;
- utilisation -> 1 at fixed ``n``: JSQ is heavy-traffic optimal, its queue collapses onto the pooled one
  (G. J. Foschini, J. Salz, "A basic dynamic routing problem and diffusion", IEEE Trans. Commun. 26(3), 1978),
  factor 1;

and between them a shape fitted (least squares in logs) to an exact-in-distribution event simulation of JSQ
(Poisson arrivals, exponential service, FCFS per instance, ties broken by a rotating pointer as the request
backend does) at n = 2, 4, 8, 16, 32, c = 1-3, utilisation 0.3-0.99 (``perf/fit_jsq.py``, which simulates, fits and
prints the per-cell errors; docs/model.md 6.2, "Least outstanding"):

    wait factor     R = 1 + (n - 1) g,  g = 1.081 n^(-0.262) (1 - rho)^(1.357 - 0.065 ln n) c^(-0.327)
    P(wait) factor  h = min(1, exp(ln n (1 - rho) (-0.247 + 0.908 (1 - rho) - 0.248 ln c - 0.260 ln n)))

Against that simulation (5-160 million requests per cell, the wait factor's own noise 1.2 % median, at most 3 %
in the cells used), the mean wait is within 7 % at utilisation 0.7-0.99 for every n and c (rms 2.6 %), -13 % to
+7 % at 0.3-0.5 (rms 5.8 %; waits of a few ms); P(wait) -10 % to +27 % at 0.7-0.95 (rms 7.8 %; the largest at
n = 32, c = 2-3), within 13 % at 0.97-0.99. The exact n = 2 chain (tests/test_jsq.py) agrees with the simulation.
As ``c`` grows the pooled wait itself vanishes (Erlang C of ``n c`` slots), so the factor needs no cut-off: it is
applied at every ``c``.
"""

from __future__ import annotations

import math

from numba import njit

from .mgc import variance_ratio
from .queueing import RHO_CAP

# the fitted shape (module docstring)
_G0, _G_N, _G_RHO, _G_RHO_LN_N, _G_C = 1.0807, -0.2615, 1.3573, -0.0646, -0.3265
_H1, _H2, _H_C, _H_N = -0.2471, 0.9080, -0.2476, -0.2602


@njit(cache=True)
def jsq_factors(n: float, conc: int, rho: float) -> tuple[float, float]:
    """(mean wait factor, P(wait) factor) of join-the-shortest-queue over the pooled M/M/(n c) queue, at ``n``
    instances (fractional: instance-time in the pool), ``conc`` slots each, utilisation ``rho``."""
    if n <= 1.0 or conc < 1 or rho <= 0.0 or rho >= 1.0:
        return 1.0, 1.0
    ln_n = math.log(n)
    idle = 1.0 - rho
    g = _G0 * math.exp(_G_N * ln_n + (_G_RHO + _G_RHO_LN_N * ln_n) * math.log(idle) + _G_C * math.log(conc))
    h = math.exp(ln_n * idle * (_H1 + _H2 * idle + _H_C * math.log(conc) + _H_N * ln_n))
    return 1.0 + (n - 1.0) * g, min(h, 1.0)


@njit(cache=True)
def window_variance_share(servers: int, rho: float, cv: float) -> float:
    """Least outstanding's pooled queue near capacity with lognormal service (``cv`` > 1): the share of its
    stationary mean wait that a queue run for an episode from empty reaches, as the heavy-traffic stretch
    (1 + cs2 r) / (1 + cs2) of the wait's diffusion form (Kingman's; Lee & Longton's M/G/c), with r the share of
    the services' long-run count variance they show over the queue's relaxation time (``mgc.variance_ratio``:
    a heavy-tailed service shows only part of it over a short time scale, as ``mgc.blocking_stretch`` uses for
    the blocking). The relaxation time of the reflected Brownian motion is var / drift^2 (Abate & Whitt,
    "Transient behavior of regulated Brownian motion", Adv. Appl. Probab. 19, 1987): (rho + cs2) / (N (1 - rho)^2)
    mean services for N slots, with the load held at queueing.RHO_CAP as the stationary wait is. 1 for cv <= 1.

    At 8 instances of 10 slots, utilisation 0.98, cv 3 (a relaxation time of 312 mean services, r = 0.92) it
    takes the stationary wait from 0.202 s to 0.187 s against the request backend's 0.174 s (+/- 6.4 %, 64
    seeds; ``perf/lo_cv_window.py``). docs/model.md 6.2.4."""
    if cv <= 1.0 or servers <= 0:
        return 1.0
    cs2 = cv * cv
    load = min(max(rho, 0.0), RHO_CAP)
    t = (load + cs2) / (servers * (1.0 - load) ** 2)
    return (1.0 + cs2 * variance_ratio(cv, t)) / (1.0 + cs2)
