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

The finite-buffer form (``psffa_finite_wait``, a waiting room of K) has a fixed point at every rate. Its relation is
M/M/c/K's stretched by the diffusion factor z = (ca2 + cs2) / 2 (a room of K / z places, z times its number waiting:
the heavy-traffic reflected Brownian motion's law, J. M. Harrison, *Brownian Motion and Stochastic Flow Systems*,
1985; W. Whitt, Operations Research 52(6), 2004), and a growing queue grows at most as that motion's mean does
(``DIFFUSION_CAP``: PSFFA overshoots near critical load). docs/model.md 6.2.1, "Above capacity".
"""

from __future__ import annotations

import math

from numba import njit

from .queueing import RHO_CAP, _geometric_mean, drbm_step_wait, erlang_b, rbm_limit

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
    return _arrival_wait_at(psffa_utilisation(y, servers, kappa)[0], y, mu, servers, kappa)


@njit(cache=True)
def _arrival_wait_at(rho: float, y: float, mu: float, servers: float, kappa: float) -> float:
    """``psffa_arrival_wait`` at ``y`` given its utilisation ``rho`` = G(``y``) (``psffa_step`` has it already)."""
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
            wait += _arrival_wait_at(rho_m, y_mean, mu, servers, kappa) * h  # (a steady sub-step: most of them)
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


# ----------------------------------------------------------------------------------------------------------------
# The finite-buffer form (D. Tipper, M. K. Sundareshan, IEEE JSAC 8(9), 1990): a waiting room of K requests.

FINITE_FROM = 0.95  # the kernel follows the queue with this form from this utilisation on
# ... for a room the queue can reach: RHO_CAP^K above 1e-6 (K below about 1,375); a larger room is as good as none
FINITE_ROOM_MAX = math.log(1e-6) / math.log(RHO_CAP)
FINITE_POINTS = 2  # points per sub-step for the mean wait and blocking where the queue moves (finite_step)
FINITE_TOL = 1e-9  # the inverse of the finite relation is solved to this relative accuracy in rho
DIFFUSION_CAP = True  # the finite flow grows at most as a reflected Brownian motion (finite_step)
STRETCH_MIN = 0.05  # the diffusion stretch is kept at least this (a room of at most 20 K places)


@njit(cache=True)
def room_shape(rho: float, room: float):
    """The truncated geometric law of the number waiting behind ``c`` busy slots in M/M/c/K (ratio ``rho`` on
    0..K, K = ``room``): (its mean m / rho, P(j = K)). m / rho is 1 / (1 - rho) - (K + 1) rho^K / (1 - rho^(K+1))
    (-> 1 as rho -> 0, K / 2 at rho = 1); above 1 the law is the mirror image of the one at 1 / rho."""
    k = max(room, 0.0)
    if k <= 0.0:
        return 0.0, 1.0
    if rho <= 0.0:
        return 1.0, 0.0
    x = math.log(rho)
    if abs(x) * (k + 1.0) < 1e-4:  # near rho = 1: the expansions in x = ln rho (to first order)
        m = 0.5 * k + k * (k + 2.0) * x / 12.0
        top = (1.0 + 0.5 * k * x) / (k + 1.0)
        return m / rho, top
    # (1 - rho^j as -expm1(j ln rho): no cancellation near rho = 1)
    if rho < 1.0:
        rk = math.exp(k * x)
        gap, gap_k1 = -math.expm1(x), -math.expm1((k + 1.0) * x)
        return 1.0 / gap - (k + 1.0) * rk / gap_k1, rk * gap / gap_k1
    # mirror: m(rho) = K - m(1 / rho), P(j = K) at rho = P(j = 0) at 1 / rho
    gap, gap_k1 = -math.expm1(-x), -math.expm1(-(k + 1.0) * x)
    m_s = (1.0 - gap) / gap - (k + 1.0) * (1.0 - gap_k1) / gap_k1
    return (k - m_s) / rho, gap / gap_k1


@njit(cache=True)
def finite_relation(rho: float, servers: float, kappa: float, room: float, stretch: float = 1.0):
    """The stationary M/M/c/K relation at offered utilisation ``rho`` with ``kappa`` = P(every slot busy):
    (mean number in system y, the busy part of the slots G, the blocking P(full) = kappa P(j = K)).
    y = c G + kappa m(rho), G = min(rho (1 - blocking), 1).

    ``stretch`` z != 1: the diffusion form for arrivals and services that are not Poisson (``stretch_of``): the
    number waiting is z times that of M/M/c with a room of K / z places (``room`` is then K / z)."""
    m_rho, top = room_shape(rho, room)
    block = kappa * top
    busy = min(rho * (1.0 - block), 1.0)
    return servers * busy + stretch * kappa * m_rho * rho, busy, block


@njit(cache=True)
def finite_utilisation(
    y: float, servers: float, kappa: float, room: float, start: float, stretch: float = 1.0
) -> float:
    """The offered utilisation rho at which ``finite_relation`` holds ``y`` in system: y(rho) rises from 0
    (rho = 0) towards c + kappa K (rho -> infinity); solved by Newton's method inside a bisection bracket from
    ``start``. A ``y`` at or beyond the top gives the bracket's end (a full room)."""
    if y <= 0.0:
        return 0.0
    lo, hi = 0.0, max(start, 1e-3)
    for _ in range(200):  # widen until y(hi) >= y (or the room is as full as the relation allows)
        if finite_relation(hi, servers, kappa, room, stretch)[0] >= y or hi > 1e6:
            break
        lo = hi
        hi *= 2.0
    if hi > 1e6:
        return hi
    rho = min(max(start, lo), hi)
    for _ in range(100):
        f = finite_relation(rho, servers, kappa, room, stretch)[0] - y
        if f > 0.0:
            hi = rho
        else:
            lo = rho
        d = 1e-7 * (1.0 + rho)
        slope = (finite_relation(rho + d, servers, kappa, room, stretch)[0] - f - y) / d
        nxt = rho - f / slope if slope > 0.0 else 0.5 * (lo + hi)
        if not lo < nxt < hi:
            nxt = 0.5 * (lo + hi)
        if abs(nxt - rho) <= FINITE_TOL * (1.0 + rho) or hi - lo <= FINITE_TOL * (1.0 + rho):
            return nxt
        rho = nxt
    return rho


@njit(cache=True)
def finite_fit(w_stat: float, rho_fit: float, mu: float, servers: float, room: float, stretch: float = 1.0) -> float:
    """``kappa`` (P(every slot busy)) at which the finite relation's waiting queue gives the stationary mean wait
    ``w_stat`` of an admitted request at ``rho_fit``: Little, z kappa m = w lambda (1 - kappa P(j = K)) with
    lambda = c mu rho, solved for kappa: w c mu / (z m / rho + w c mu P(j = K)); at most 1."""
    m_rho, top = room_shape(rho_fit, room)
    wc = w_stat * servers * mu
    return min(wc / max(stretch * m_rho + wc * top, 1e-300), 1.0)


@njit(cache=True)
def all_busy(servers: int, rho: float, room: float) -> float:
    """P(every slot busy) in M/M/c/K at offered utilisation ``rho`` (any, above 1 too): with Erlang B's
    B = B(c, c rho) and S = rho + ... + rho^K, B (1 + S) / (1 + B S)."""
    if rho <= 0.0 or servers <= 0:
        return 0.0
    b = erlang_b(servers, servers * rho)
    k = max(room, 0.0)
    if k <= 0.0:
        return b
    if rho > 1.0:  # divided through by S, whose rho^K overflows far above capacity: 1 / S -> 0, the ratio -> 1
        x = math.log(rho)
        inv_s = (1.0 - 1.0 / rho) * math.exp(-k * x) / -math.expm1(-k * x)
        return b * (1.0 + inv_s) / (inv_s + b)
    s = k if abs(rho - 1.0) < 1e-12 else rho * (1.0 - rho**k) / (1.0 - rho)
    return b * (1.0 + s) / (1.0 + b * s)


@njit(cache=True)
def finite_step(
    y0: float, lam: float, mu: float, servers: float, kappa: float, room: float, duration: float, stretch: float = 1.0
):
    """Integrate the finite-buffer flow ``dy/dt = lam (1 - P_K(y)) - mu c G(y)`` over ``duration`` s from ``y0``
    (``lam``: the offered rate, before the room turns requests away).

    It has a fixed point at every rate (``G(y*) (1 - P_K) = rho (1 - P_K)``: y* = y(rho_in) of the stationary
    M/M/c/K relation, above capacity too), approached in ``PSFFA_SUBSTEPS`` sub-steps at the flow's secant rate
    (as ``psffa_step`` below capacity). Returns (y at the end, mean wait: of an admitted request arriving in the
    duration, the queue ahead over the throughput, Lq(y) / (c mu G(y)), at FINITE_POINTS points of each sub-step,
    or where the queue grows that of a request starting service, Little with the admitted rate, Lq / (lam (1 - P_K));
    the share of arrivals turned away: P_K(y) over the same points). ``room`` and ``stretch``: ``finite_relation``'s
    (the queue holds at most c + z room)."""
    rho_in = lam / (mu * servers)
    y_star = finite_relation(rho_in, servers, kappa, room, stretch)[0]
    y = min(max(y0, 0.0), servers + stretch * room)
    if duration <= 0.0:  # the queue as it is
        rho = finite_utilisation(y, servers, kappa, room, rho_in, stretch)
        yq, busy, p_k = finite_relation(rho, servers, kappa, room, stretch)
        return y, max(yq - servers * busy, 0.0) / (mu * servers * max(busy, 1e-12)), p_k
    n_sub = PSFFA_SUBSTEPS
    h = duration / n_sub
    rho = rho_in
    wait = 0.0
    block = 0.0
    for _ in range(n_sub):
        if abs(y_star - y) <= 1e-9 * (1.0 + y_star):  # at the fixed point (a steady step): no inversion needed
            _, busy, p_k = finite_relation(rho_in, servers, kappa, room, stretch)
            lq = max(y_star - servers * busy, 0.0)
            wait += lq / (mu * servers * max(busy, 1e-12))
            block += p_k
            y = y_star
            continue
        rho = finite_utilisation(y, servers, kappa, room, rho, stretch)
        _, busy, p_k = finite_relation(rho, servers, kappa, room, stretch)
        f = lam * (1.0 - p_k) - mu * servers * busy
        # (a flow that does not point at y*, where the busy part is capped at 1 far above capacity, is taken to
        # be at its fixed point at once: the queue there is full within a fraction of the sub-step)
        r = f / (y_star - y) if f / (y_star - y) > 0.0 else 1e3 / h
        growing = y_star > y and lam > 0.0
        if growing and DIFFUSION_CAP:
            # near capacity the flow fills faster than the queue can (PSFFA's known overshoot at critical load):
            # the number waiting grows at most as a reflected Brownian motion's mean does, the drift's part plus
            # its diffusion's, E Lq(t) = sqrt(Lq0^2 + 2 sigma^2 t / pi) at zero drift (from Lq0 = 0 exact), with
            # sigma^2 = z (lambda + c mu) (lambda ca2 + c mu cs2 at capacity); the idle slots fill freely
            lq0 = max(y - servers * busy, 0.0)
            grow = max(lam - mu * servers, 0.0) * h + math.sqrt(
                lq0 * lq0 + 2.0 * stretch * (lam + mu * servers) * h / math.pi
            )
            y_cap = y + servers * (1.0 - busy) + grow - lq0
            if y_cap < y_star and y_cap < y_star + (y - y_star) * math.exp(-r * h):
                r = -math.log((y_star - y_cap) / (y_star - y)) / h
        for j in range(FINITE_POINTS):
            t = (j + 0.5) * h / FINITE_POINTS
            y_t = y_star + (y - y_star) * math.exp(-r * t)
            rho_t = finite_utilisation(y_t, servers, kappa, room, rho, stretch)
            yt, busy_t, p_t = finite_relation(rho_t, servers, kappa, room, stretch)
            lq = max(yt - servers * busy_t, 0.0)
            if growing:
                # a growing queue: Little with the admitted rate, the FIFO wait of the requests that start service
                # (those ahead arrived at that rate; exact for a queue that grows linearly), as psffa_step does
                wait += lq / max(lam * (1.0 - p_t), 1e-12) / FINITE_POINTS
            else:
                wait += lq / (mu * servers * max(busy_t, 1e-12)) / FINITE_POINTS
            block += p_t / FINITE_POINTS
        y = y_star + (y - y_star) * math.exp(-r * h)
    return y, wait / n_sub, block / n_sub


@njit(cache=True)
def psffa_finite_wait(
    y0: float,
    lam: float,
    service_s: float,
    servers: int,
    w_stat: float,
    room: float,
    duration: float,
    stretch: float = 1.0,
):
    """``psffa_wait`` with the finite-buffer relation (``finite_step``): ``lam`` is the offered rate; ``kappa`` is
    fitted to the stationary wait ``w_stat`` at the step's utilisation capped at RHO_CAP (``finite_fit``), and
    above RHO_CAP its complement 1 - kappa (some slot idle) scaled as M/M/c/K's moves from RHO_CAP to the step's
    utilisation (towards 0: the stationary queue above capacity is M/M/c/K's, not the one at RHO_CAP, and a room
    fills far above capacity whatever the fitted wait; for M/M/c, kappa is then M/M/c/K's own P(every slot busy)).
    ``stretch`` z (``stretch_of``): arrivals or services that are not Poisson; the relation is M/M/c's with a room
    of K / z places and z times its number waiting (the diffusion form, as ``mgc.scaled_room`` does for the
    stationary queue), so above capacity the room holds about K - z / (rho - 1) rather than K - 1 / (rho - 1).
    Returns (y at the end, mean wait s of an admitted request arriving in the step, the share turned away)."""
    if servers <= 0:
        return 0.0, 0.0, 0.0
    z = max(stretch, STRETCH_MIN)
    room = max(room, 0.0) / z
    mu = 1.0 / service_s
    c = float(servers)
    lam = max(lam, 0.0)
    rho_fit = min(lam / (c * mu), RHO_CAP)
    kappa = max(finite_fit(w_stat, max(rho_fit, 1e-9), mu, c, room, z), 1e-12)
    rho_in = lam / (c * mu)
    if rho_in > RHO_CAP:
        # the part of the time some slot is idle shrinks as M/M/c/K's does (to 0 far above capacity, where the
        # room fills whatever the arrival and service laws)
        idle_cap = 1.0 - all_busy(servers, RHO_CAP, room)
        if idle_cap > 0.0:
            kappa = 1.0 - (1.0 - kappa) * (1.0 - all_busy(servers, rho_in, room)) / idle_cap
    return finite_step(y0, lam, mu, c, kappa, room, duration, z)


@njit(cache=True)
def stretch_of(ca2: float, cs2: float) -> float:
    """The diffusion stretch z = (ca2 + cs2) / 2 of a queue whose arrivals and services have squared coefficients
    of variation ``ca2`` and ``cs2`` (1 for M/M/c): in the heavy-traffic limit the number waiting is a reflected
    Brownian motion with drift lambda - c mu and variance lambda ca2 + c mu cs2, whose stationary law on a room
    [0, K] is the truncated exponential of rate 2 (rho - 1) / (ca2 + cs2) (J. M. Harrison, *Brownian Motion and
    Stochastic Flow Systems*, 1985; W. Whitt, "A diffusion approximation for the G/GI/n/m queue", Operations
    Research 52(6), 2004): M/M/c's law (rate ln rho ~ rho - 1) stretched z-fold. Round robin's members see
    Erlang-n gaps (ca2 = 1 / n)."""
    return 0.5 * (max(ca2, 0.0) + max(cs2, 0.0))


@njit(cache=True)
def mmck_blocking(servers: int, rho: float, room: float) -> float:
    """The blocking of M/M/c/K (c = ``servers`` slots, a waiting room of K = ``room``) at offered utilisation
    ``rho``, any (above 1 too: a finite queue has a steady state at every load): P(c + K in system) =
    B rho^K / (1 + B S), B = Erlang B(c, c rho), S = rho + ... + rho^K (the product form; Gross & Harris,
    *Fundamentals of Queueing Theory*, M/M/c/K). Above 1 it is divided through by rho^K (no overflow):
    B / (rho^-K + B (1 - rho^-K) / (1 - 1/rho)), which tends to 1 - 1/rho as K grows."""
    if rho <= 0.0 or servers <= 0:
        return 0.0
    b = erlang_b(servers, servers * rho)
    k = max(room, 0.0)
    if k <= 0.0:
        return b
    if rho > 1.0:
        inv_k = math.exp(-k * math.log(rho))
        return b / (inv_k + b * (1.0 - inv_k) / (1.0 - 1.0 / rho))
    s = k if abs(rho - 1.0) < 1e-12 else rho * (1.0 - rho**k) / (1.0 - rho)
    return b * rho**k / (1.0 + b * s)


@njit(cache=True)
def room_fill_time(room: float, lam: float, servers: float, mu: float) -> float:
    """The time a waiting room of ``room`` places takes to fill to half (M/M/c/K's mean at utilisation 1) from
    empty near capacity: the driftless reflected Brownian motion's mean sqrt(2 sigma^2 t / pi) reaches K / 2 at
    t = pi K^2 / (8 sigma^2), sigma^2 = lambda + c mu (J. M. Harrison, *Brownian Motion and Stochastic Flow
    Systems*, 1985; as ``DIFFUSION_CAP``). A queue whose room fills within a step is at its steady state in
    every step, so its stationary blocking holds at the step's own load (no RHO_CAP)."""
    var = max(lam, 0.0) + servers * mu
    if var <= 0.0:
        return math.inf
    return math.pi * room * room / (8.0 * var)


@njit(cache=True)
def pooled_transient_wait(
    count0: float, lam: float, service_s: float, servers: int, cs2: float, room: float, duration: float, w_stat: float
):
    """Least outstanding's pooled queue near capacity (``servers`` = n c slots, a room of n q) over ``duration`` s
    from ``count0`` waiting: (the admitted requests' mean wait s, the mean number waiting at the end).

    The pooled room fills by diffusion far slower than a step (n q = 800 at q = 100: pi K^2 / (8 sigma^2), 250 s
    at c = 1, ``room_fill_time``), so the queue that started empty is not at its steady state within an episode.
    Its number waiting is followed as the reflected Brownian motion from empty, reflected at the room's top too
    (``queueing.drbm_step_wait``, age fitted each step to the carried count; the one-sided motion's mean below the
    room, ``rbm_step_wait``, was 9-10 % under the exact chain at utilisation 1.02), at most the steady state it
    tends to: ``w_stat`` (the stationary
    pooled queue times the JSQ factors, ``load_balancer.balancer_queue``) below RHO_CAP, and from RHO_CAP on, where
    ``w_stat`` is held at RHO_CAP, the larger of it and the steady state at the true load: M/M/c/K's
    (``mmck_wait``) with exponential services, otherwise the motion reflected at both ends of the room
    (``queueing.rbm_limit``: uniform at capacity, exponential tilted towards the top above it). The motion from
    empty overshoots M/M/c's steady state below capacity (its limit var / (2 |drift|) ~ 1 / (1 - rho) leaves out
    Erlang C's P(wait)), hence the cap; it rises monotonically to it from empty. A room that fills within the step
    (``room_fill_time`` at most ``duration``) is at the steady state: the cap alone.

    Against the exact birth-death chain of M/M/N/(N + K) from empty (``perf/lo_transient.py``, 8 instances, 15 s
    steps, steps 4-47): within 2 % at utilisation 1.00 and 1.02 (c = 1-10, q = 100 and 1000; lo28), and the chain's
    own steady state where it is reached (0.95, 0.98, small rooms). docs/model.md 6.2.4.
    """
    theta = servers / service_s
    if theta <= 0.0 or lam <= 0.0:
        return 0.0, 0.0
    rho = lam / theta
    cap = w_stat
    if rho >= RHO_CAP and cs2 == 1.0:
        cap = max(w_stat, mmck_wait(servers, rho, room, service_s))
    elif rho >= RHO_CAP:
        cap = max(w_stat, rbm_limit(lam - theta, lam + theta * cs2, room) / theta)
    if room_fill_time(room, lam, servers, 1.0 / service_s) <= duration:
        return cap, cap * theta
    w, q1 = drbm_step_wait(count0, lam, service_s, servers, cs2, room, duration)
    return min(w, cap), min(q1, cap * theta)


@njit(cache=True)
def mmck_wait(servers: int, rho: float, room: float, service_s: float) -> float:
    """The admitted requests' mean wait s in M/M/c/K at offered utilisation ``rho`` (any, above 1 too): with
    every slot busy (``all_busy``) the number waiting j = 0 .. K has the truncated geometric law rho^j, so
    Lq = P(all busy) E[j], and Little's law over the admitted rate, W = Lq / (c rho mu (1 - P_K)) (the product
    form; Gross & Harris, *Fundamentals of Queueing Theory*, M/M/c/K)."""
    k = int(math.floor(room + 0.5))
    if rho <= 0.0 or servers <= 0 or k <= 0:
        return 0.0
    lq = all_busy(servers, rho, float(k)) * _geometric_mean(math.log(rho), k + 1)
    admitted = servers * rho / service_s * (1.0 - mmck_blocking(servers, rho, float(k)))
    return lq / max(admitted, 1e-300)
