"""Queueing formulas used by the compiled core (all ``numba.njit``; no Python objects).

- Erlang B and C: blocking in M/M/N/N and waiting in M/M/N (Erlang, 1917). For N <= 1000 exact, from the
  Erlang B recursion written for 1/B (``1/B(k) = 1 + (k/a) / B(k-1)``); above that, Erlang B = P(X=N)/P(X<=N)
  for X ~ Poisson(a) with the Wilson-Hilferty approximation of the Poisson CDF (relative error < 1e-3 there).
- A finite waiting room: M/M/N/(N+K) blocking and mean wait, written with Erlang B (``stationary_wait``).
- GI/G/N mean wait: Whitt's approximation, W = phi(rho, ca2, cs2, N) * (ca2 + cs2)/2 * W(M/M/N)
  (W. Whitt, "Approximations for the GI/G/m queue", Production and Operations Management 2(2), 1993,
  eqs. 2.24-2.25). It reduces to Erlang C for ca2 = cs2 = 1 and to Allen-Cunneen when phi = 1.
- Fluid queue segments for overload, backlog and cold-start waits (deterministic flow in and out).
- The p95 of response time, from the mean wait, the waiting probability and the service-time shape.
"""

from __future__ import annotations

import math

from numba import njit

EXACT_ERLANG_MAX_SERVERS = 1000
RHO_CAP = 0.99  # the stationary formulas are used up to this utilisation; the fluid backlog covers the rest


@njit(cache=True)
def erlang_b(servers: int, offered: float) -> float:
    """Blocking probability of M/M/N/N (Erlang B) with N = ``servers`` and offered load a = lambda/mu."""
    if offered <= 0.0:
        return 0.0
    if servers <= 0:
        return 1.0
    if servers <= EXACT_ERLANG_MAX_SERVERS:
        inv_a = 1.0 / offered
        r = 1.0
        for k in range(1, servers + 1):
            r = 1.0 + r * k * inv_a
            if r > 1e250:
                return 0.0
        return 1.0 / r
    nu = 2.0 * (servers + 1.0)
    z = ((2.0 * offered / nu) ** (1.0 / 3.0) - (1.0 - 2.0 / (9.0 * nu))) / math.sqrt(2.0 / (9.0 * nu))
    cdf = 0.5 * math.erfc(z / math.sqrt(2.0))  # P(chi2_nu > 2a) = P(X <= N)
    log_pmf = servers * math.log(offered) - offered - math.lgamma(servers + 1.0)
    return min(math.exp(log_pmf) / max(cdf, 1e-300), 1.0)


@njit(cache=True)
def erlang_c(servers: int, offered: float) -> float:
    """P(wait) in M/M/N with N = ``servers`` and offered load a = lambda/mu (requires a < N)."""
    if offered <= 0.0:
        return 0.0
    if offered >= servers:
        return 1.0
    blocking = erlang_b(servers, offered)
    rho = offered / servers
    return blocking / (1.0 - rho * (1.0 - blocking))


@njit(cache=True)
def whitt_phi(rho: float, ca2: float, cs2: float, servers: int) -> float:
    """Whitt's (1993) correction factor phi for the GI/G/m mean wait (1 when ca2 = cs2 = 1)."""
    m = float(servers)
    gamma = min(0.24, (1.0 - rho) * (m - 1.0) * (math.sqrt(4.0 + 5.0 * m) - 2.0) / (16.0 * m * rho))
    phi1 = 1.0 + gamma
    phi3 = (1.0 - 4.0 * gamma) * math.exp(-2.0 * (1.0 - rho) / (3.0 * rho))
    phi4 = min(1.0, 0.5 * (phi1 + phi3))
    c2 = 0.5 * (ca2 + cs2)
    psi = 1.0 if c2 >= 1.0 else phi4 ** (2.0 * (1.0 - c2))
    if ca2 >= cs2:
        den = 4.0 * ca2 - 3.0 * cs2
        return (4.0 * (ca2 - cs2) / den) * phi1 + (cs2 / den) * psi
    den = 2.0 * (ca2 + cs2)
    return ((cs2 - ca2) / den) * phi3 + ((cs2 + 3.0 * ca2) / den) * psi


@njit(cache=True)
def stationary_wait(servers: int, arrival_rps: float, service_s: float, ca2: float, cs2: float, room: float):
    """Stationary queue of N = ``servers`` slots with a waiting room of ``room`` requests, at utilisation capped
    at RHO_CAP. Returns (mean wait of admitted requests in s, their probability of waiting, blocking probability).

    M/M/N/(N+K) from Erlang B: with B = ErlangB(N, a), rho = a/N, G = sum_{j=1..K} rho^j and
    H = sum_{j=1..K} j rho^j, the states above N have P(N+j) = B rho^j / (1 + B G), so
    blocking = B rho^K / (1 + B G), Lq = B H / (1 + B G), W = Lq / (lambda (1 - blocking)); K -> inf gives
    Erlang C. For GI/G/N the mean wait is scaled by Whitt's factor phi * (ca2 + cs2) / 2.
    """
    if arrival_rps <= 0.0 or servers <= 0:
        return 0.0, 0.0, 0.0
    mu = 1.0 / service_s
    rho = min(arrival_rps / (servers * mu), RHO_CAP)
    if rho < 1e-12:  # no queueing to speak of (and no 0/0 below)
        return 0.0, 0.0, 0.0
    lam = rho * servers * mu
    blocking_n = erlang_b(servers, lam / mu)
    k = max(room, 0.0)
    rho_k = rho**k
    g = rho * (1.0 - rho_k) / (1.0 - rho)
    h = rho * (1.0 - (k + 1.0) * rho_k + k * rho_k * rho) / ((1.0 - rho) * (1.0 - rho))
    norm = 1.0 + blocking_n * g
    p_block = blocking_n * rho_k / norm
    admitted = 1.0 - p_block
    p_wait = blocking_n * (1.0 - rho_k) / (1.0 - rho) / norm / admitted if admitted > 0.0 else 0.0
    w_mmn = blocking_n * h / norm / (lam * admitted) if admitted > 0.0 else 0.0
    if ca2 + cs2 <= 0.0:
        return 0.0, 0.0, p_block
    if ca2 == 1.0 and cs2 == 1.0:
        return w_mmn, p_wait, p_block
    return whitt_phi(rho, ca2, cs2, servers) * 0.5 * (ca2 + cs2) * w_mmn, p_wait, p_block


@njit(cache=True)
def fluid_segment(q0: float, net_rps: float, duration: float, cap: float):
    """A fluid queue starting at ``q0`` that changes at ``net_rps`` (in - out) for ``duration`` seconds.

    The queue stays within [0, cap]; inflow beyond the cap is dropped. Returns (q_end, area, dropped), where
    ``area`` is the integral of the queue length over the segment (request-seconds of waiting).
    """
    if duration <= 0.0:
        return q0, 0.0, 0.0
    if net_rps >= 0.0:
        if net_rps == 0.0 or q0 + net_rps * duration <= cap:
            q1 = q0 + net_rps * duration
            return q1, 0.5 * (q0 + q1) * duration, 0.0
        t_full = max(cap - q0, 0.0) / net_rps
        area = 0.5 * (q0 + cap) * t_full + cap * (duration - t_full)
        return cap, area, net_rps * (duration - t_full)
    t_empty = q0 / -net_rps
    if t_empty >= duration:
        q1 = q0 + net_rps * duration
        return q1, 0.5 * (q0 + q1) * duration, 0.0
    return 0.0, 0.5 * q0 * t_empty, 0.0


@njit(cache=True)
def fifo_waits(
    q0: float, age0: float, adm1: float, adm2: float, q_end: float, area: float, idle: float, tau: float, cap_rps: float
):
    """FIFO bookkeeping of one fluid queue over a step: phase 1 (``idle`` s, no service, ``adm1`` admitted
    arrivals), then phase 2 (``tau`` s of service at ``cap_rps``, ``adm2`` admitted arrivals).

    The queue starts with ``q0`` requests that have waited ``age0`` request-seconds so far (ages spread evenly
    between 0 and twice their mean); arrivals are spread evenly over their phase; ``area`` is the integral of the
    queue length over the step. First in, first out: the ``q_end`` requests left are the newest.
    Returns (age of those left at the end, total wait of the requests served in the step, longest wait of a
    served request), all from the fluid queue alone.
    """
    dt = idle + tau
    mean_age0 = age0 / q0 if q0 > 0.0 else 0.0
    # the newest q_end requests stay: phase-2 arrivals first, then phase-1 arrivals, then the youngest old ones
    n2 = min(q_end, adm2) if adm2 > 0.0 else 0.0
    n1 = min(q_end - n2, adm1) if adm1 > 0.0 else 0.0
    n0 = min(max(q_end - n2 - n1, 0.0), q0)
    age_end = 0.0
    if n2 > 0.0:
        age_end += n2 * n2 * tau / (2.0 * adm2)
    if n1 > 0.0:
        age_end += n1 * tau + n1 * n1 * idle / (2.0 * adm1)
    if n0 > 0.0:
        age_end += n0 * dt + mean_age0 * n0 * n0 / q0
    waited = max(age0 + area - age_end, 0.0)
    # longest wait of a served request: the ends of each piece of the served part of the queue
    served = q0 + adm1 + adm2 - q_end
    longest = 0.0
    if served > 1e-9 and area + age0 > 0.0:
        if q0 > 0.0:
            longest = 2.0 * mean_age0 + idle  # the head of the old queue
        if adm1 > 0.0 and served > q0:
            longest = max(longest, idle + q0 / cap_rps)  # the first request that came during the cold start
        if q_end > 1e-9:
            # service ran to the end of the step: the last one served left at dt
            if served <= q0:
                last = dt + 2.0 * mean_age0 * (1.0 - served / q0)
            elif served <= q0 + adm1:
                last = dt - (served - q0) * idle / adm1
            else:
                last = dt - idle - (served - q0 - adm1) * tau / adm2
            longest = max(longest, last)
        else:
            # the queue emptied: the last old request and the last cold-start arrival are the candidates
            if q0 > 0.0:
                longest = max(longest, idle + q0 / cap_rps)
            if adm1 > 0.0:
                longest = max(longest, (q0 + adm1) / cap_rps)
    return age_end, waited, longest


@njit(cache=True)
def _tail(t: float, p: float, e: float, w: float):
    """P(Exp(e) + W > t) and its derivative in t, with W = 0 w.p. 1-p and Exp(w) w.p. p (means e, w)."""
    te = math.exp(-t / e)
    if abs(w - e) < 1e-9 * (w + e):
        hypo = (1.0 + t / e) * te
        d_hypo = -(t / (e * e)) * te
    else:
        tw = math.exp(-t / w)
        hypo = (w * tw - e * te) / (w - e)
        d_hypo = (te - tw) / (w - e)
    return (1.0 - p) * te + p * hypo, -(1.0 - p) * te / e + p * d_hypo


@njit(cache=True)
def response_p95(service_s: float, service_cv: float, mean_wait: float, p_wait: float) -> float:
    """p95 of response time = service + wait.

    Service is modelled as a constant (1 - cv) * s plus an exponential of mean cv * s (cv <= 1; exponential
    for cv >= 1); the wait is 0 with probability 1 - p_wait and exponential with mean mean_wait / p_wait
    otherwise, as in M/M/N, where this is exact. The quantile is found by Newton's method on the log of the
    tail, kept inside a bracket (bisection when a Newton step leaves it).
    """
    cv = min(service_cv, 1.0)
    const = (1.0 - cv) * service_s
    e = cv * service_s
    if mean_wait <= 0.0 or p_wait <= 0.0:
        return const + e * math.log(20.0)
    p = min(p_wait, 1.0)
    w = mean_wait / p
    if e <= 0.0:  # deterministic service: quantile of the wait alone
        return const + (w * math.log(p / 0.05) if p > 0.05 else 0.0)
    target = math.log(0.05)
    lo = 0.0
    hi = (e + w) * (math.log(20.0) + 2.0)
    while _tail(hi, p, e, w)[0] > 0.05:
        hi *= 2.0
    t = e * math.log(20.0) + (w * math.log(20.0 * p) if p > 0.05 else 0.0)
    if not lo < t < hi:
        t = 0.5 * (lo + hi)
    for _ in range(60):
        f, slope = _tail(t, p, e, w)
        g = math.log(f) - target
        if abs(g) < 1e-7:
            break
        if g > 0.0:
            lo = t
        else:
            hi = t
        nxt = t - g * f / slope if slope < 0.0 else 0.5 * (lo + hi)
        if not lo < nxt < hi:
            nxt = 0.5 * (lo + hi)
        t = nxt
        if hi - lo < 1e-9 * hi:
            break
    return const + t
