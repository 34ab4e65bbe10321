"""The mean queue carried from step to step near capacity: the pointwise stationary fluid-flow approximation
(PSFFA; W.-P. Wang, D. Tipper, S. Banerjee, "A simple approximation for modeling nonstationary queues", IEEE
INFOCOM 1996; D. Tipper, M. K. Sundareshan, "Numerical methods for modeling computer networks under
nonstationary conditions", IEEE JSAC 8(9), 1990), compiled helpers. docs/model.md 6.2.1.

The mean number in system ``y`` of a queue with ``c`` servers of rate ``mu`` follows the flow balance

    dy/dt = lambda(t) - mu c G(y),

where ``G(y)`` is the server utilisation at which the *stationary* queue has mean ``y``: the inverse of the
stationary relation ``y = L(rho)``. It is exact in equilibrium (``G(y*) = rho`` gives the stationary ``y*``), and it
follows a queue that needs longer than a step to reach its steady state, or has none (``rho >= 1``), where a
stationary formula evaluated per step resets the queue each step.

The stationary relation used here has one parameter: ``L(rho) = c rho + kappa rho / (1 - rho)`` (in service plus
waiting). M/M/1 has it with ``kappa = rho`` (``Lq = rho^2 / (1 - rho)``), M/M/c with ``kappa = C(c, a)`` (Erlang C),
and GI/G/c near capacity with Kingman's ``kappa ~ (ca2 + cs2) / 2``. ``kappa`` is fitted each step to the model's
stationary waiting queue at the step's utilisation (``kappa = Lq (1 - rho) / rho``, at ``rho`` at most RHO_CAP),
so in a steady state the flow gives back exactly the stationary wait (Erlang C, Whitt's GI/G/c, M/M/c/K), and
the inverse ``G`` is a quadratic's root. The flow is integrated over a step in a few sub-steps: below capacity
towards its fixed point at the flow's secant rate (exact at both ends, stable however fast the queue relaxes: a
sub-step far longer than the relaxation time ends at the fixed point); at or above capacity, where it has no
fixed point, by the exponential Euler rule (linearised about the sub-step's start).
"""

from __future__ import annotations

import math

from numba import njit

from .queueing import RHO_CAP

PSFFA_SUBSTEPS = 4
WAIT_POINTS = 4  # points per sub-step for the mean wait where the queue moves (psffa_step)


@njit(cache=True)
def psffa_utilisation(y: float, servers: float, kappa: float):
    """(rho, d rho / d y) with ``servers * rho + kappa * rho / (1 - rho) = y``: the smaller root of
    ``c rho^2 - (c + kappa + y) rho + y = 0``, written without cancellation."""
    if y <= 0.0:
        return 0.0, 1.0 / (servers + kappa)
    s = servers + kappa + y
    disc = max(s * s - 4.0 * servers * y, 0.0)
    rho = min(2.0 * y / (s + math.sqrt(disc)), 1.0)
    gap = max(1.0 - rho, 1e-12)
    return rho, 1.0 / (servers + kappa / (gap * gap))


@njit(cache=True)
def psffa_arrival_wait(y: float, mu: float, servers: float, kappa: float) -> float:
    """The wait of a request that arrives when the queue holds ``y``: with FIFO it waits until the ``Lq(y)``
    requests ahead of it have started, which the servers do at their throughput ``c mu G(y)``, so
    ``Lq / (c mu G)``. Under the one-parameter relation ``Lq = kappa rho / (1 - rho)`` that is
    ``kappa / (c mu (1 - rho))``: the stationary wait (Little's ``Lq / lambda``) at a fixed point, finite while
    a queue drains with few arrivals, and ``kappa / (c mu)`` as it empties. At a full utilisation (``G = 1``,
    far beyond ``c``) the queue ahead is ``y - c``."""
    rho, _ = psffa_utilisation(y, servers, kappa)
    if rho < 1.0:
        return kappa / (mu * servers * (1.0 - rho))
    return max(y - servers, 0.0) / (mu * servers)


@njit(cache=True)
def psffa_step(y0: float, lam: float, mu: float, servers: float, kappa: float, cap: float, duration: float):
    """Integrate ``dy/dt = lam - mu c G(y)`` over ``duration`` s from ``y0``, with ``y`` kept in ``[0, cap]``.

    Returns (y at the end, mean number waiting ``y - c G(y)`` over the duration, mean wait of a request arriving
    in it (``psffa_arrival_wait``; Poisson arrivals see time averages, at a rate constant over the duration))."""
    if duration <= 0.0:
        rho, _ = psffa_utilisation(y0, servers, kappa)
        return y0, max(y0 - servers * rho, 0.0), psffa_arrival_wait(y0, mu, servers, kappa)
    h = duration / PSFFA_SUBSTEPS
    y = min(max(y0, 0.0), cap)
    area = 0.0
    wait = 0.0
    rho_in = lam / (mu * servers)
    # below capacity the flow has the fixed point y* = c rho + kappa rho / (1 - rho) (G(y*) = rho)
    y_star = servers * rho_in + kappa * rho_in / (1.0 - rho_in) if rho_in < 1.0 else 0.0
    for _ in range(PSFFA_SUBSTEPS):
        rho, grad = psffa_utilisation(y, servers, kappa)
        f = lam - mu * servers * rho
        if rho_in < 1.0 and abs(y_star - y) > 1e-12 * (1.0 + y_star):
            # towards the fixed point at the secant rate of the flow between y and y* (exact at both ends, and
            # stable however fast the queue relaxes)
            y_inf = y_star
            r = f / (y_star - y)
        else:
            # no fixed point (or at it): exponential Euler, the flow linearised about y (r = -d f / d y)
            r = mu * servers * grad
            y_inf = y + f / r
        e = math.exp(-r * h)
        y_mean = y_inf + (y - y_inf) * (1.0 - e) / (r * h)
        y_end = y_inf + (y - y_inf) * e
        if y_end > cap:  # the waiting room is full: it stays there
            y_mean = min(y_mean, cap)
            y_end = cap
        y_end = max(y_end, 0.0)
        y_mean = max(y_mean, 0.0)
        rho_m, _ = psffa_utilisation(y_mean, servers, kappa)
        area += max(y_mean - servers * rho_m, 0.0) * h
        if lam > 0.0 and (y_end > y + 1e-9 * (1.0 + y) or lam > mu * servers * rho_m):
            # a growing (or full, above capacity) queue: Little with the arrival rate, the FIFO wait of the
            # requests the step serves (they arrived before the step's arrivals, which wait longer;
            # tests/test_waits.py)
            wait += max(y_mean - servers * rho_m, 0.0) / lam * h
        elif abs(y_end - y) <= 1e-9 * (1.0 + y):
            wait += psffa_arrival_wait(y_mean, mu, servers, kappa) * h  # (a steady sub-step: most of them)
        else:
            # the wait is far from linear in y (a draining queue's falls from y / (c mu) to about nothing within
            # the sub-step): the mean over WAIT_POINTS midpoints of the sub-step's exponential path
            for j in range(WAIT_POINTS):
                t = (j + 0.5) * h / WAIT_POINTS
                y_t = min(max(y_inf + (y - y_inf) * math.exp(-r * t), 0.0), cap)
                wait += psffa_arrival_wait(y_t, mu, servers, kappa) * h / WAIT_POINTS
        y = y_end
    return y, area / duration, wait / duration


@njit(cache=True)
def psffa_wait(y0: float, lam: float, service_s: float, servers: int, w_stat: float, room: float, duration: float):
    """The mean wait over a step of a queue of ``servers`` slots (waiting room ``room``) fed at ``lam`` admitted
    requests/s, whose stationary mean wait at the step's utilisation (capped at RHO_CAP) is ``w_stat``; the queue
    starts the step with ``y0`` requests in system. Above capacity the flow grows at ``lam - c mu`` as the fluid
    backlog does, until the room is full. Returns (y at the end, mean wait s of a request arriving in the step).

    The fit: ``kappa = Lq (1 - rho) / rho`` with ``Lq = w_stat c mu rho`` (Little at the fitted ``rho``) is
    ``w_stat c mu (1 - rho)``, which needs no division by the rate: a step with no (or a vanishing) rate drains
    the queue it carries, at ``kappa`` from its stationary wait (0 with no arrivals: the servers' own rate)."""
    if servers <= 0:
        return 0.0, 0.0
    mu = 1.0 / service_s
    c = float(servers)
    lam = max(lam, 0.0)
    rho_fit = min(lam / (c * mu), RHO_CAP)
    kappa = max(w_stat * c * mu * (1.0 - rho_fit), 1e-12)
    y_end, _, wait = psffa_step(y0, lam, mu, c, kappa, c + max(room, 0.0), duration)
    return y_end, wait
