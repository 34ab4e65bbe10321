"""Memory crashes of the fast model: the chance that an instance's momentary count of outstanding requests
(in service + queued) passes its memory limit within a step (docs/model.md 7).

An out-of-memory kill is momentary: the request backend crashes an instance the moment an admitted request
brings its count above ``L``, the largest count whose memory fits the limit. The fast model knows the step's
mean count, not its path, so it takes the count's stationary distribution in the instance's queue model and
counts level crossings: the count goes from ``L`` to ``L + 1`` exactly when an admitted arrival finds ``L``
requests there, so the expected number of crossings among ``a`` arrivals is ``a * r_L``, with ``r_L`` the share
of arrivals that find ``L`` (for Poisson arrivals the time-average P(N = L), PASTA: R. W. Wolff, "Poisson
arrivals see time averages", Operations Research 30(2), 1982; level crossing: P. H. Brill, *Level Crossing
Methods in Stochastic Models*, Springer 2008, ch. 2). Crossings taken as a Poisson stream, an instance that
takes ``a`` arrivals in the step crashes in it with probability ``1 - exp(-a r_L)`` (``crash_probability``).

``r_L`` per balancer (the instance queue of ``load_balancer.balancer_load``):

- random: a Poisson stream per instance, M/M/c/K (K = c + waiting room): P(N = L);
- round robin: every n-th request of a Poisson stream, E_n/M/c. For L >= c arrivals find c + i with probability
  P(wait) (1 - sigma) sigma^i (Takacs 1962; Gross & Harris, GI/M/c; ``queueing.gim_wait_probability``); below c
  the E_n/M/infinity law (``erlang_infinite_level``; above a load of 16 the M/M/c/K value, an upper bound);
- least outstanding: the pooled queue of n instances, M/M/(n c)/(n K). Join-the-shortest-queue keeps the
  instances within one request of each other, so an arrival brings its instance from L to L + 1 when it finds
  n L to n L + n - 1 in the pool: r_L = P(n L <= N <= n L + n - 1).

Where the step's fluid count itself (in service + the fluid queue) passes the limit the crash is sure, and it
acts at the moment the fluid count reaches the limit (``fluid_crossing``: the queue is linear in each of the
step's fluid segments), as the request backend kills the instance the moment its count passes it.
"""

from __future__ import annotations

import math

from numba import njit

from .load_balancer import LEAST_OUTSTANDING, ROUND_ROBIN, balancer_load
from .queueing import gim_wait_probability
from .rng import uniform

NEGLIGIBLE = 1e-6  # a per-step crash chance below this is not drawn (``draw_memory_crash``)


MAX_SLOTS = 1e12  # more requests than any instance holds: the memory never limits the count


@njit(cache=True)
def memory_slots(base_mb: float, per_request_mb: float, limit_mb: float) -> float:
    """The largest count of outstanding requests whose memory ``base + per_request * n`` fits ``limit_mb`` (the
    request backend's test, ``(base + per_request n) / limit > 1``, taken exactly); inf without a per-request
    share."""
    if per_request_mb <= 0.0:
        return math.inf
    q = (limit_mb - base_mb) / per_request_mb
    if q > MAX_SLOTS:  # (e.g. 1.8e-233 MB per request; compiled, floor is an int64, which overflows)
        return math.inf
    n = float(math.floor(q))
    while (base_mb + per_request_mb * (n + 1.0)) / limit_mb <= 1.0:  # (rounding at the boundary)
        n += 1.0
    while n >= 0.0 and (base_mb + per_request_mb * n) / limit_mb > 1.0:
        n -= 1.0
    return n


@njit(cache=True)
def mmck_range(servers: int, offered: float, capacity: float, lo: float, hi: float) -> float:
    """P(lo <= N <= hi) in M/M/c/K: ``servers`` c, offered load ``offered`` = lambda / mu, at most ``capacity``
    K >= c in system. p_n is proportional to a^n / n! up to c and to a^c / c! rho^(n - c) above (Erlang); taken
    in logarithms, the tail's geometric sums in closed form, so that a waiting room of any size costs O(c)."""
    if offered <= 0.0:
        return 1.0 if lo <= 0.0 <= hi else 0.0
    hi = min(hi, capacity)
    if hi < lo or lo > capacity:
        return 0.0
    la = math.log(offered)
    lc = servers * la - math.lgamma(servers + 1.0)  # log(a^c / c!)
    top = lc
    for n in range(servers):
        top = max(top, n * la - math.lgamma(n + 1.0))
    head = 0.0  # sum over n <= c, relative to exp(top)
    part = 0.0
    for n in range(servers + 1):
        t = math.exp(n * la - math.lgamma(n + 1.0) - top)
        head += t
        if lo <= n <= hi:
            part += t
    rho = offered / servers
    tail = _geometric(rho, 1.0, capacity - servers)
    if hi > servers:
        part += _geometric(rho, max(lo - servers, 1.0), hi - servers) * math.exp(lc - top)
    return part / (head + tail * math.exp(lc - top))


@njit(cache=True)
def _geometric(rho: float, first: float, last: float) -> float:
    """sum_{j = first..last} rho^j (0 if last < first)."""
    if last < first:
        return 0.0
    if abs(rho - 1.0) < 1e-12:
        return last - first + 1.0
    if rho < 1.0:
        return (math.pow(rho, first) - math.pow(rho, last + 1.0)) / (1.0 - rho)
    # rho > 1: factor out the largest term, rho^last (a long waiting room would overflow rho^(last + 1))
    k = last - first + 1.0
    return math.exp(last * math.log(rho)) * (1.0 - math.pow(rho, -k)) / (1.0 - 1.0 / rho)


@njit(cache=True)
def arrivals_at_level(
    algorithm: int,
    offered_rps: float,
    n_pool: int,
    pool_time: float,
    healthy_time: float,
    conc: int,
    svc: float,
    maxq: float,
    level: float,
) -> float:
    """r_L: the share of arrivals that find ``level`` requests at their instance and are admitted, in the
    balancer's stationary queue (module docstring). 0 when ``level`` is beyond the instance's room."""
    servers, lam, _, room = balancer_load(algorithm, offered_rps, n_pool, pool_time, healthy_time, conc, maxq)
    if servers <= 0 or lam <= 0.0:
        return 0.0
    if algorithm == LEAST_OUTSTANDING:
        n = max(math.floor(servers / conc + 0.5), 1.0)  # (healthy instances)
        full = servers + room  # an arrival that finds the pool full is turned away
        return mmck_range(servers, lam * svc, full, n * level, min(n * level + n - 1.0, full - 1.0))
    if level >= conc + room:  # a full waiting room turns the arrival away: the count cannot pass ``level``
        return 0.0
    a = lam * svc
    if algorithm == ROUND_ROBIN and n_pool > 1 and a < conc:
        if level >= conc:
            p_wait, sigma = gim_wait_probability(n_pool, conc, a / conc)
            return p_wait * (1.0 - sigma) * math.pow(sigma, level - conc)
        if a <= INFINITE_MAX_LOAD:
            return erlang_infinite_level(n_pool, a, int(level))
    return mmck_range(conc, a, conc + room, level, level)


INFINITE_MAX_LOAD = 16.0  # ``erlang_infinite_level``'s alternating sum loses about e^(2 a) 1e-16 of its value


@njit(cache=True)
def erlang_infinite_level(phases: int, offered: float, level: int) -> float:
    """The share of arrivals that find ``level`` requests in E_k/M/infinity (Erlang-k gaps of mean 1/lambda,
    offered load a = lambda / mu): the arrival-epoch binomial moments of GI/M/infinity are
    B_r = prod_{i=1..r} phi_i / (1 - phi_i), phi_i = A*(i mu) = (k a / (k a + i))^k (L. Takacs, *Introduction to
    the Theory of Queues*, 1962, ch. 4), and P(N = L) = sum_{r >= L} (-1)^(r - L) C(r, L) B_r. For k = 1 it is
    Poisson's a^L e^-a / L!. The round-robin instance below its concurrency (L < c): E_k/M/c moves as
    E_k/M/infinity while fewer than c are in it."""
    ka = phases * offered
    logb = 0.0
    for i in range(1, level + 1):
        phi = (ka / (ka + i)) ** phases
        if phi <= 0.0:
            return 0.0
        logb += math.log(phi) - math.log1p(-phi)
    total = 0.0
    r = level
    lg = math.lgamma(level + 1.0)
    while r < level + 1000:
        t = math.exp(math.lgamma(r + 1.0) - lg - math.lgamma(r - level + 1.0) + logb)
        total += t if (r - level) % 2 == 0 else -t
        if r > level + 2 and t < 1e-18 * abs(total):
            break
        r += 1
        phi = (ka / (ka + r)) ** phases
        logb += math.log(phi) - math.log1p(-phi)
    return max(total, 0.0)


@njit(cache=True)
def crash_probability(arrivals: float, r_level: float) -> float:
    """P(at least one crossing) among ``arrivals`` arrivals, each finding the level with probability ``r_level``:
    the crossings as a Poisson stream of mean ``arrivals * r_level``."""
    return -math.expm1(-arrivals * r_level)


@njit(cache=True)
def draw_memory_crash(rng, b: int, arrivals: float, r_level: float) -> float:
    """Whether an instance that takes ``arrivals`` while it serves passes its memory limit, and when: 0 for no
    crash, else the part of its serving time before the first crossing (in (0, 1]). The crossings are a Poisson
    stream of ``m = arrivals * r_level`` over the serving time, so the first one, given that it falls in it, is at
    the fraction ``-ln(1 - U (1 - e^-m)) / m`` (inverse transform of the truncated exponential; early in the step
    when m is large, as in a step where the count passes the limit many times).

    Draws nothing where the chance is below ``NEGLIGIBLE`` (1e-6 per instance-step: at most 0.015 crashes left
    out of an episode of 240 steps with 64 instances all at that chance), so that a config far from its memory
    limit keeps its random stream and the trajectory it had without the drawn crash."""
    m = arrivals * r_level
    p = crash_probability(arrivals, r_level)
    if p < NEGLIGIBLE or uniform(rng, b) >= p:
        return 0.0
    u = uniform(rng, b)
    return min(max(-math.log1p(-u * p) / m, 1e-9), 1.0)


@njit(cache=True)
def count_limit(base_mb: float, per_request_mb: float, limit_mb: float) -> float:
    """The count of outstanding requests (a real number, as the fluid's) above which the memory passes its limit:
    ``(limit - base) / per_request`` (inf without a per-request share). The fluid count ``n`` passes the limit when
    ``n > count_limit``, the same test as ``(base + per_request n) / limit > 1`` (``kernel.serve_slot``'s)."""
    if per_request_mb <= 0.0:
        return math.inf
    return (limit_mb - base_mb) / per_request_mb


@njit(cache=True)
def segment_crossing(limit: float, busy: float, q0: float, rate: float, length: float) -> float:
    """When the fluid count ``busy + q(t)`` first passes ``limit`` in a segment whose queue goes linearly from
    ``q0`` at ``rate`` requests/s for ``length`` s: s from the segment start, -1 if it does not in the segment.
    (The fluid queue is linear in a segment until it empties or fills its room: ``queueing.fluid_segment``; it
    can pass a level only while it rises, so the clamps never come first.)"""
    if busy + q0 > limit:
        return 0.0
    if rate > 0.0 and busy + q0 + rate * length > limit:
        return (limit - busy - q0) / rate
    return -1.0


@njit(cache=True)
def fluid_crossing(limit: float, segs, busy: float, dt: float) -> float:
    """The moment in the step (s from its start) at which a slot's fluid count of outstanding requests first
    passes ``limit`` (``count_limit``), from its queue's two segments ``segs`` = (q at the start of the first,
    its rate, its length, whether the slot serves in it (0: a cold start, nothing in service), q at the start of
    the second, its rate, its length), the count being the queue plus ``busy`` requests in service while it
    serves. ``dt`` (the step's end) when it passes only by the step's rounding (the caller found the step's peak
    over the limit), so that the crash then acts at the end as before."""
    qa, ra, la, serving_a, qb, rb, lb = segs
    t = segment_crossing(limit, busy if serving_a > 0.5 else 0.0, qa, ra, la)
    if t >= 0.0:
        return t
    t = segment_crossing(limit, busy, qb, rb, lb)
    if t >= 0.0:
        return la + t
    return dt
