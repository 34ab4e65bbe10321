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
backend does) at n = 2-32, c = 1-3, utilisation 0.3-0.95 (docs/model.md 6.2, "Least outstanding"):

    wait factor     R = 1 + (n - 1) g,  g = 0.501 n^(-0.020) (1 - rho)^(0.745 + 0.122 ln n) c^(-0.286)
    P(wait) factor  h = exp(ln n (1 - rho) (-1.185 + 1.660 (1 - rho) - 0.124 ln c))

The mean wait is within 10 % of that simulation at utilisation 0.7-0.95 for every n and c fitted (most within
5 %), -1 % to -22 % at 0.5 (waits under 5 ms); P(wait) within -15 % to +34 %. As ``c`` grows the pooled wait
itself vanishes (Erlang C of ``n c`` slots), so the factor needs no cut-off: it is applied at every ``c``.
"""

from __future__ import annotations

import math

from numba import njit

# the fitted shape (module docstring)
_G0, _G_N, _G_RHO, _G_RHO_LN_N, _G_C = 0.5010, -0.0198, 0.7450, 0.1217, -0.2865
_H1, _H2, _H_C = -1.1845, 1.6602, -0.1239


@njit(cache=True)
def jsq_factors(n: float, conc: int, rho: float) -> tuple[float, float]:
    """(mean wait factor, P(wait) factor) of join-the-shortest-queue over the pooled M/M/(n c) queue, at ``n``
    instances (fractional: instance-time in the pool), ``conc`` slots each, utilisation ``rho``."""
    if n <= 1.0 or conc < 1 or rho <= 0.0 or rho >= 1.0:
        return 1.0, 1.0
    ln_n = math.log(n)
    idle = 1.0 - rho
    g = _G0 * math.exp(_G_N * ln_n + (_G_RHO + _G_RHO_LN_N * ln_n) * math.log(idle) + _G_C * math.log(conc))
    h = math.exp(ln_n * idle * (_H1 + _H2 * idle + _H_C * math.log(conc)))
    return 1.0 + (n - 1.0) * g, h
