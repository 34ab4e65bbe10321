"""Random draws of the request-level backend: service times and the step's arrival stream.

Service time, mean ``s`` and coefficient of variation ``cv`` (``instances.service_cv``): deterministic for
``cv = 0``, exponential for ``cv = 1`` (the M/M/c case of docs/model.md 6.4), otherwise lognormal with
``sigma^2 = ln(1 + cv^2)``, ``mu = ln(s) - sigma^2/2`` (the family the issue's independent simulation used).

Arrivals: the rate is taken piecewise constant over sub-intervals of the step (at most ``SUB_SECONDS`` long), each
with the exact integral of lambda over it (``EpisodeWorkload.mean_rate``), so a rate change inside a step lands
within a sub-interval of its time. Poisson arrivals are exponential gaps at the sub-interval's rate (restarted at
each boundary: memoryless, so exactly a Poisson process); deterministic arrivals take the running total rounded
down per sub-interval (as the fast model does per step, so a step's count is the same) and spread them evenly
over it.
"""

from __future__ import annotations

import math

from numba import njit

from ..rng import uniform
from ..state import E_CARRY, P_DT, P_POISSON, P_SVC, P_SVC_CV
from .layout import G_COUNT, G_LEFT, G_NEXT, G_SUB

_OPTS = {"cache": True, "_nrt": False}  # no allocation here: no reference counting (see kernel._KERNEL)


@njit(**_OPTS)
def exponential(rng, b):
    """Exp(1)."""
    return -math.log(1.0 - uniform(rng, b))


@njit(**_OPTS)
def service_time(s, b):
    """One service time of cluster b's law (module docstring)."""
    svc = s.params[b, P_SVC]
    cv = s.params[b, P_SVC_CV]
    if cv <= 0.0:
        return svc
    if abs(cv - 1.0) < 1e-12:
        return svc * exponential(s.rng, b)
    # lognormal: a standard normal by Box-Muller (one of the pair used, so each draw is self-contained)
    sigma2 = math.log(1.0 + cv * cv)
    u1 = 1.0 - uniform(s.rng, b)
    u2 = uniform(s.rng, b)
    z = math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)
    return svc * math.exp(math.sqrt(sigma2) * z - 0.5 * sigma2)


@njit(**_OPTS)
def start_arrivals(r, s, b, t0, k):
    """Start the arrival stream of step k (at ``t0``) and draw its first arrival."""
    r.gen[b, G_SUB] = 0.0
    r.gen[b, G_LEFT] = -1.0
    next_arrival(r, s, b, t0, t0, k)


@njit(**_OPTS)
def next_arrival(r, s, b, t, t0, k):
    """Draw the arrival after the one at ``t`` into ``G_NEXT`` (inf when the step has no more)."""
    dt = s.params[b, P_DT]
    sub = r.sub
    h = dt / sub
    row = b if r.fine.shape[0] > 1 else 0
    poisson = s.params[b, P_POISSON] > 0.5
    j = int(r.gen[b, G_SUB])
    while j < sub:
        col = k * sub + j
        mean = r.fine[row, col] if col < r.fine.shape[1] else 0.0
        start = t0 + j * h
        end = t0 + dt if j == sub - 1 else start + h
        if poisson:
            if mean > 0.0:
                tt = max(t, start) + exponential(s.rng, b) * h / mean
                if tt < end:
                    r.gen[b, G_SUB] = j
                    r.gen[b, G_NEXT] = tt
                    return
        else:
            if r.gen[b, G_LEFT] < 0.0:  # entering the sub-interval: its whole requests (the fraction carried)
                due = s.env_state[b, E_CARRY] + mean
                n = math.floor(due + 1e-9)
                s.env_state[b, E_CARRY] = due - n
                r.gen[b, G_COUNT] = n
                r.gen[b, G_LEFT] = n
            left = r.gen[b, G_LEFT]
            if left > 0.0:
                n = r.gen[b, G_COUNT]
                r.gen[b, G_LEFT] = left - 1.0
                r.gen[b, G_SUB] = j
                r.gen[b, G_NEXT] = start + (n - left + 0.5) * (end - start) / n
                return
        j += 1
        r.gen[b, G_LEFT] = -1.0
    r.gen[b, G_SUB] = sub
    r.gen[b, G_NEXT] = math.inf


@njit(**_OPTS)
def crash_time(s, b, t0, dt, p):
    """Time of a crash in [t0, t0 + dt) given that one happens (probability ``p``): an exponential lifetime
    conditioned on ending in the step, ``dt * ln(1 - U p) / ln(1 - p)``."""
    u = uniform(s.rng, b)
    if p >= 1.0 - 1e-15:
        return t0 + dt * u
    return t0 + dt * math.log(1.0 - u * p) / math.log(1.0 - p)
