"""How many warm instances a step of Poisson arrivals uses, and how many of its requests find them all busy (the
serverless platform mode's warm pool; docs/model.md section 12, "Warm pool").

The platform places a request on the first instance with a free slot, provisioned ones first and then on-demand
ones in slot order (``request.serverless.place``: packing), and starts a new instance when every warm one is
full. Over an unbounded pool this is ordered hunting: the first ``k`` slots form an M/G/k/k loss system whose
lost requests go on to the next slots. So, with ``a = lambda * svc`` (the requests in service of M/G/inf are
Poisson with mean ``a``; Gross & Harris, *Fundamentals of Queueing Theory*, M/G/inf):

- the share of the arrivals that finds the first ``n`` instances (``n * conc`` slots) all busy is Erlang B's
  blocking ``B(n * conc, a)``, which does not depend on the service-time law beyond its mean (Sevastyanov's
  insensitivity of M/G/k/k; Gross & Harris, M/G/c/c). These are the requests that start new instances;
- instance ``j + 1`` serves in a step of length ``dt`` if the first ``j`` instances overflow at least once in it.
  Their full periods start at rate ``lambda * P(N = k - 1) = lambda * B(k, a) * k / a`` (level crossing: the
  upcrossings into the full state ``k = j * conc``, by PASTA), a full period lasts ``Exp(k mu)`` in M/M/k/k,
  so one has an arrival with probability ``a / (a + k)``: overflow episodes come at rate
  ``nu_j = lambda * B(k, a) * k / (a + k)`` (instance 1 serves if anything arrives: the step's count is known).
  Counting the episodes of a step as Poisson (the Poisson clumping heuristic: D. Aldous, *Probability
  Approximations via the Poisson Clumping Heuristic*, Springer 1989), ``P(M > j) = 1 - exp(-nu_j dt)`` for the
  number ``M`` of instances the step uses: the running maximum of the occupancy over the step, in instances.

``instances_used`` draws ``M`` with one uniform by inversion, so the instances used form a prefix of the hunting
order, and independent steps give the maximum over a keep-alive window of several steps (the warm fleet a
keep-alive holds is the peak, not the mean, of the concurrency).
"""

from __future__ import annotations

import math

from numba import njit

from .queueing import erlang_b

_OPTS = {"cache": True, "_nrt": False}


@njit(**_OPTS)
def episode_rate(lam: float, offered: float, slots: int, blocking: float) -> float:
    """Rate (1/s) of the overflow episodes of the first ``slots`` slots (``blocking`` = B(slots, offered)): full
    periods in which at least one request arrives; with no slot, every arrival."""
    if slots <= 0:
        return lam
    return lam * blocking * slots / (offered + slots)


@njit(**_OPTS)
def overflow_share(instances: int, conc: int, lam: float, svc: float) -> float:
    """The share of the step's arrivals that finds the first ``instances`` instances (``conc`` slots each) all
    busy: Erlang B with ``instances * conc`` servers and ``lam * svc`` offered load (``queueing.erlang_b``)."""
    return erlang_b(instances * conc, lam * svc)


@njit(**_OPTS)
def use_probability(j: int, conc: int, lam: float, svc: float, dt: float) -> float:
    """P(M > j): the step of ``dt`` s uses instance ``j + 1`` of the hunting order (its first ``j`` overflow)."""
    if lam <= 0.0:
        return 0.0
    slots = j * conc
    return -math.expm1(-episode_rate(lam, lam * svc, slots, overflow_share(j, conc, lam, svc)) * dt)


@njit(**_OPTS)
def instances_used(lam: float, svc: float, dt: float, conc: int, u: float) -> int:
    """The number ``M`` of instances of the hunting order a step of Poisson arrivals at ``lam``/s uses, drawn by
    inversion with the uniform ``u``: the largest ``j`` with ``P(M >= j) > u``. Erlang B is carried along the
    slots by its recursion (``1/B(k) = 1 + (k/a) / B(k-1)``, as ``queueing.erlang_b``), so the cost is about
    ``M * conc`` multiplications; the probabilities are made non-increasing (a prefix)."""
    if lam <= 0.0:
        return 0
    a = lam * svc
    inv_b = 1.0  # 1 / B(0, a)
    n = 0
    p_prev = 1.0
    j = 0
    while True:
        slots = j * conc
        while n < slots and inv_b < 1e250:
            n += 1
            inv_b = 1.0 + inv_b * n / a
        if inv_b >= 1e250:
            return j
        # the step's arrivals are known to be there: the first instance serves for sure
        p = 1.0 if j == 0 else min(-math.expm1(-episode_rate(lam, a, slots, 1.0 / inv_b) * dt), p_prev)
        if p <= u or p < 1e-300:
            return j
        p_prev = p
        j += 1


@njit(**_OPTS)
def erlang_b_advance(blocking: float, slots: int, more: int, offered: float) -> float:
    """Erlang B at ``slots + more`` servers from its value at ``slots``, by its recursion ``B(n) = a B(n-1) / (n +
    a B(n-1))`` (to walk the hunting order one instance at a time)."""
    for n in range(slots + 1, slots + more + 1):
        x = offered * blocking
        blocking = x / (n + x) if x > 0.0 else 0.0
    return blocking


@njit(**_OPTS)
def last_use_age(lam: float, svc: float, slots: int, blocking: float, dt: float) -> float:
    """How long before the step end the instance after the first ``slots`` slots of the hunting order (``blocking``
    = their Erlang B) last served, given that it served in the step: for Poisson episodes at rate ``nu`` over
    ``dt``, ``E[dt - last | at least one] = 1/nu - dt / (exp(nu dt) - 1)``, about ``1/nu`` for a busy instance
    and ``dt/2`` for a rarely used one. The keep-alive counts from then, as the platform's does from the last
    completion."""
    if lam <= 0.0:
        return 0.0
    x = episode_rate(lam, lam * svc, slots, blocking) * dt
    if x < 1e-6:
        return 0.5 * dt
    return dt * (1.0 / x - 1.0 / math.expm1(x))
