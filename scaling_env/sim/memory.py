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

Issue 16, item 10 (``passage_rate``, ``boot_crash_split``, ``serving_count``): the crossings of a rarely reached
level come in clumps (after one the count sits at the level and crosses again), and only the first of a clump
crashes, so the kernel draws the crash at the first-passage hazard per arrival, ``1 / D`` with ``D`` lambda
times the birth-death chain's mean first-passage time to L + 1 (J. Keilson, *Markov Chain Models: Rarity and
Exponentiality*, Springer 1979), not at ``r_L`` (``arrivals_at_level``, kept as the level law); a slot whose
arrivals come at two rates in the step (a pool change) takes the hazard at each; when every instance boots and
the arrivals wait on them, the first to pass the limit takes the later requests and spares the others; and a
queue built during a cold start counts once, not again as requests in service.

Issue 16, the escape from memory_pressure's crash spiral (``escape_probability``, ``draw_join_crash``): a
replacement whose cold start ends in the step is drawn on its own, at the rate it takes from its join and from
the count it joins with: the gambler's-ruin chance of its birth-death chain passing the limit before it falls
back to its bulk (Karlin & Taylor 1975), then the stationary first-passage hazard.

Issue 16 (mem28, ``erlang_passage``): round robin's first-passage hazard is the exact one of E_k/M/c, the mean
first passage of the (count, arrival phase) chain (Neuts 1981), not the birth-death sum on its arrival-epoch law
(``geometric_passage``, ``erlang_infinite_passage``: 26-49 % too high at memory_pressure's load; kept for the
record and their tests).
"""

from __future__ import annotations

import math

from numba import njit

from .instances import BOOTING, F_EARLY, F_QFLUID, F_SPLIT, F_TIMER, I_ARRIVALS, I_BACKLOG, I_STATE
from .load_balancer import LEAST_OUTSTANDING, ROUND_ROBIN, balancer_load
from .queueing import _stack_doubles, gim_wait_probability
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


@njit(cache=True)
def mmck_passage(servers: int, offered: float, level: float) -> float:
    """The first-passage hazard per arrival of the count to ``level + 1`` in the birth-death chain M/M/c/K
    (Poisson arrivals at rate lambda, ``min(n, c)`` servers at rate mu, offered load a = lambda / mu), started
    low: ``1 / D`` with

        D = sum_{n=0..L} S(n) / p_n,    S(n) = sum_{j<=n} p_j,

    lambda times the mean first-passage time from 0 to L + 1 of a birth-death chain (the passage n -> n + 1
    takes S(n) / (lambda p_n) on average: J. Keilson, *Markov Chain Models: Rarity and Exponentiality*,
    Springer 1979, ch. 5; W. Feller, vol. 1, XVII). Only the ratios of the p_n enter, so the waiting room does
    not. For a level the count rarely reaches the passage time is nearly exponential (Keilson, same book), so
    the crossings that crash an instance come at this hazard per arrival, not at ``p_L`` (the share of arrivals
    that find L, PASTA): those come in clumps (after one, the count sits at L and crosses again), and only the
    first of a clump crashes. Their ratio ``p_L D`` is the clump's mean size: 1.7 at a = 6.4, L = 16 (one
    instance at 0.4 x 16 in flight; the request backend crashes it in 33 % of its 15 s steps (100 seeds), the
    Poisson crossings gave 45 %, this gives 30 %). Hand check: a = 1, L = 1, two servers: p = (1, 1), D = 1 + 2,
    1/3 (mean passage 0 -> 2 of M/M/2 at lambda = mu = 1: 1 + 2 = 3 s), while p_1 = 0.4."""
    if offered <= 0.0:
        return 0.0
    big = 1e300
    p_n = 1.0  # p_n / p_0 = a^n / n! up to c, times (a / c) per level above
    s_n = 0.0
    d = 0.0
    n = 0
    while n <= level:
        s_n += p_n
        d += s_n / p_n
        if d > big:
            return 0.0
        n += 1
        p_n *= offered / min(n, servers)
        if p_n <= 0.0:
            return 0.0
    return 1.0 / d


@njit(cache=True)
def geometric_passage(p_wait: float, sigma: float, above: float) -> float:
    """Round robin's first-passage hazard per arrival to ``c + above + 1`` (``mmck_passage``'s sum) on the
    arrival-epoch law of E_k/M/c above c: arrivals find c + i with probability P(wait) (1 - sigma) sigma^i
    (Takacs 1962), so S(c + i) = 1 - P(wait) sigma^(i + 1). The terms below c are left out (each at most c / p_n
    with p_n >= p_c there: a few units against the sum's ~ 1 / p_L). E_k/M/c is not a birth-death chain in its
    count alone; the sum taken on its arrival-epoch law is the clumping correction's analogue (an approximation,
    26-49 % above the exact passage at a = 6.7-8, c = 10, L = 16: ``erlang_passage`` replaces it)."""
    if p_wait <= 0.0 or sigma <= 0.0:
        return 0.0
    d = 0.0
    i = 0.0
    while i <= above:
        p_i = p_wait * (1.0 - sigma) * math.pow(sigma, i)
        if p_i <= 0.0:
            return 0.0
        d += (1.0 - p_wait * math.pow(sigma, i + 1.0)) / p_i
        i += 1.0
    return 1.0 / d


@njit(cache=True)
def erlang_infinite_passage(phases: int, offered: float, level: int) -> float:
    """Round robin below its concurrency: ``mmck_passage``'s sum on E_k/M/infinity's arrival-epoch law
    (``erlang_infinite_level`` at each level 0..L), the clumping correction's analogue (E_k/M/infinity is not a
    birth-death chain in its count alone: an approximation)."""
    d = 0.0
    s_n = 0.0
    for n in range(level + 1):
        p_n = erlang_infinite_level(phases, offered, n)
        if p_n <= 0.0:
            return 0.0
        s_n += p_n
        d += s_n / p_n
    return 1.0 / d if d > 0.0 else 0.0


@njit(cache=True)
def passage_rate(
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
    """The crash hazard per arrival: the first passage of an instance's count past ``level`` (``mmck_passage``),
    in the balancer's stationary queue, where ``arrivals_at_level`` gives the share of arrivals that find
    ``level`` (every crossing, clumps and all). Least outstanding keeps that share (the pooled queue's first
    passage is not modelled). 0 when ``level`` is beyond the instance's room."""
    servers, lam, _, room = balancer_load(algorithm, offered_rps, n_pool, pool_time, healthy_time, conc, maxq)
    if algorithm == LEAST_OUTSTANDING or servers <= 0 or lam <= 0.0:
        return arrivals_at_level(algorithm, offered_rps, n_pool, pool_time, healthy_time, conc, svc, maxq, level)
    if level >= conc + room:  # a full waiting room turns the arrival away: the count cannot pass ``level``
        return 0.0
    a = lam * svc
    if algorithm == ROUND_ROBIN and n_pool > 1:
        return erlang_passage(n_pool, conc, a, level)
    return mmck_passage(conc, a, level)


@njit(cache=True)
def erlang_passage(phases: int, servers: int, offered: float, level: float) -> float:
    """Round robin's first-passage hazard per arrival of an instance's count to ``level + 1``, exactly: the
    instance takes every k-th request of a Poisson stream (k = ``phases``, the members), Erlang-k gaps of mean
    1 / lambda, and serves with ``min(n, c)`` exponential servers (E_k/M/c). Its state is (count n, arrival phase
    j = 0..k-1), a level-structured Markov chain (M. F. Neuts, *Matrix-Geometric Solutions in Stochastic Models*,
    Johns Hopkins 1981, ch. 3: the phase-type arrival process), and the hazard is ``1 / (lambda T)`` with ``T``
    its mean first-passage time from (0, 0) to the level L + 1 (J. Keilson, *Markov Chain Models: Rarity and
    Exponentiality*, 1979: a rarely reached level's passage time is nearly exponential). An upward step only
    comes from phase k - 1 and enters the level above at phase 0, so ``T = sum_n t_n(0)``, with ``t_n(j)`` the
    mean time from (n, j) to level n + 1, and first-step analysis (rates k lambda up a phase, d = min(n, c) mu
    down a level, keeping the phase) gives, with ``x = t_n(0)``,

        t_n(j) = (1 + k lambda t_n(j + 1) + d (t_(n-1)(j) + x)) / (k lambda + d),   t_n(k) = 0,

    linear in ``x``: t_n(j) = alpha_j + beta_j x, solved from j = k - 1 down to 0 (O(k) a level, O(k L) in all;
    ``1 - beta_0 = (k lambda / (k lambda + d))^k`` in closed form, so no cancellation). For k = 1 it is the
    birth-death sum of ``mmck_passage``. It replaces the birth-death sum on E_k/M/c's arrival-epoch law
    (``geometric_passage``, ``erlang_infinite_passage``, kept for the record), which overstated the hazard of
    memory_pressure's instance (c = 10, L = 16) at a = 6.7 by 26 % (k = 2) to 40 % (k = 4): one step of 3 warm
    members at 200 requests/s crashed 0.349 of them a step, the request backend 0.276 (600 seeds). Time in
    service times (mu = 1, lambda = a). Hand check: k = 2, c = 1, a = 1, L = 0: t_0(1) = 1/2, t_0(0) = 1/2 + 1/2
    = 1, h = 1 (one arrival); L = 1: see tests/test_memory_escape.py."""
    if offered <= 0.0:
        return 0.0
    k = max(phases, 1)
    if k > PHASES_MAX:
        k = PHASES_MAX
    up = k * offered
    prev = _stack_doubles(_PHASES_BUFFER)  # t_(n-1)(j), then alpha_j of the level in hand (no allocation)
    for j in range(k):
        prev[j] = 0.0
    total = 0.0
    n = 0
    while n <= level:
        d = float(min(n, servers))
        r = up / (up + d)
        alpha = 0.0  # alpha_k = 0: the up step from phase k - 1 reaches the level above
        for j in range(k - 1, -1, -1):
            alpha = (1.0 + up * alpha + d * prev[j]) / (up + d)
            prev[j] = alpha
        rk = r**k
        if rk == 0.0:  # (k lambda / (k lambda + d))^k underflows: the level is out of reach at this load
            return 0.0
        x = alpha / rk  # x = alpha_0 + (1 - r^k) x
        if not x < 1e300:
            return 0.0
        total += x
        for j in range(k):
            prev[j] += (1.0 - r ** (k - j)) * x
        n += 1
    return 1.0 / (offered * total)


PHASES_MAX = 256  # (Erlang-k with more phases than this is all but deterministic: taken as 256)
_PHASES_BUFFER = PHASES_MAX  # ``erlang_passage``'s scratch, one double a phase, on the stack


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
def draw_memory_crash_split(rng, b: int, m_a: float, m_b: float, split: float) -> float:
    """``draw_memory_crash`` for a slot that serves all step and takes its arrivals at two rates, around a pool
    change (or the rate change) ``split`` (a part of the step, in (0, 1)): the crossings are a Poisson stream of
    mean ``m_a`` before it and ``m_b`` after it (each part's arrivals times the hazard at its rate). The crash
    chance is ``1 - exp(-(m_a + m_b))`` and, given a crash, its time is the inverse transform of the piecewise
    exponential: the cumulative hazard ``x = -ln(1 - U P)`` is reached at ``split x / m_a`` if ``x < m_a``, else
    at ``split + (1 - split) (x - m_a) / m_b``. Returns the part of the step before the crash (0: none)."""
    m = m_a + m_b
    p = -math.expm1(-m)
    if p < NEGLIGIBLE or uniform(rng, b) >= p:
        return 0.0
    u = uniform(rng, b)
    x = -math.log1p(-u * p)
    if x < m_a:
        at = split * x / m_a
    else:
        at = split + (1.0 - split) * (x - m_a) / m_b if m_b > 0.0 else split
    return min(max(at, 1e-9), 1.0)


@njit(cache=True)
def escape_probability(servers: int, offered: float, start: float, level: float) -> float:
    """The chance that the count of outstanding requests of an instance that starts serving with ``start`` of
    them passes ``level`` (reaches ``level + 1``) before it falls back to the bulk of its stationary law, the
    level ``m = floor(a)`` (a = lambda / mu, its offered load; ``level - 1`` at most): 0 if it starts at or
    below ``m``. The count as the birth-death chain M/M/c (arrivals at rate lambda, ``min(n, c)`` servers at
    rate mu), the gambler's-ruin law of a birth-death chain,

        P_start(hit L + 1 before m) = sum_{j=m..start-1} rho_j / sum_{j=m..L} rho_j,
        rho_m = 1,  rho_j = rho_(j-1) min(j, c) / a

    (S. Karlin and H. M. Taylor, *A First Course in Stochastic Processes*, 2nd ed., Academic Press 1975, ch. 4,
    section 7; W. Feller, *An Introduction to Probability Theory*, vol. 1, ch. XIV). This is the part of the
    first passage that the stationary hazard (``passage_rate``, a passage from low) leaves out: a replacement that
    kept ``L`` requests while the first booting instance crashed (``boot_crash_split``) joins the pool at its
    limit, and its first arrival before a completion crashes it. Hand check: one server, a = 1 (the fair random
    walk), m = 1: from 3, L = 4: (rho_1 + rho_2) / (rho_1 + .. + rho_4) = 2/4. Round robin's smoother arrivals
    (Erlang-k gaps) cross less often: the Poisson chain is an upper bound there."""
    if offered <= 0.0 or start <= 0.0:
        return 0.0
    m = min(math.floor(offered), level - 1.0)
    n0 = math.floor(start + 1e-9)
    if n0 <= m:
        return 0.0
    if n0 > level:
        return 1.0
    rho = 1.0
    below = 0.0
    total = 0.0
    j = m
    while j <= level:
        if j > m:
            rho *= min(j, servers) / offered
        if j < n0:
            below += rho
        total += rho
        j += 1.0
    return below / total


@njit(cache=True)
def draw_join_crash(rng, b: int, arrivals: float, hazard: float, quick: float, quick_at: float) -> float:
    """``draw_memory_crash`` for an instance that joins the pool in the step with a count near its limit: it
    crashes at once (at the part ``quick_at`` of its serving time) with probability ``quick``
    (``escape_probability``), else its count falls back to the bulk and it crashes at the stationary hazard
    ``hazard`` per arrival as any member: P = quick + (1 - quick) (1 - exp(-arrivals hazard)). With ``quick = 0``
    it is ``draw_memory_crash``, draw for draw. Returns the part of its serving time before the crash (0: none)."""
    m = arrivals * hazard
    p_slow = -math.expm1(-m)
    p = quick + (1.0 - quick) * p_slow
    if p < NEGLIGIBLE or uniform(rng, b) >= p:
        return 0.0
    u = uniform(rng, b)
    if u * p < quick:
        return min(max(quick_at, 1e-9), 1.0)
    v = (u * p - quick) / (1.0 - quick)  # uniform on [0, p_slow): the slow crash's inverse transform
    return min(max(-math.log1p(-v) / m, 1e-9), 1.0)


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
    if serving_a < 0.5 and la > 0.0:
        # after a cold start: the requests it serves come out of the queue it built (``serving_count``)
        t = 0.0 if busy > limit else segment_crossing(limit, 0.0, qb, rb, lb)
    else:
        t = segment_crossing(limit, busy, qb, rb, lb)
    if t >= 0.0:
        return la + t
    return dt


@njit(cache=True)
def serving_count(busy: float, peak_q: float, after_boot: bool) -> float:
    """The step's peak count of outstanding requests of a slot that serves (the fluid's), for the sure crash: the
    requests in service plus the fluid queue's peak, except after a cold start in the step. A queue built while
    the slot booted holds every request it has (none is in service yet): when it starts serving, ``min(q, c)``
    of them go into service and the count stays ``q`` (the request backend's ``note_load`` counts in service +
    queued, and a request moving from the queue to a server changes neither), so there the count is the larger
    of the queue and the requests in service, not their sum. (Their sum made every replacement that booted with
    a queue near the limit crash the moment its cold start ended.)"""
    if after_boot:
        return max(busy, peak_q)
    return busy + peak_q


JOINS = -1.0  # ``F_SPLIT`` of a slot that joins the pool at its cold start's end in a step that had none (below)


@njit(cache=True)
def boot_crash_split(inst_f, inst_i, b: int, hi: int, limit: float, maxq: float, dt: float, share_later: bool) -> int:
    """A step with no pool member at its start, whose arrivals wait on the booting instances, dealt to them in
    turn (``kernel.route_arrivals``: ``I_ARRIVALS`` holds each one's even share). The request backend deals them
    so until the first of them passes its memory limit (``request.lifecycle.note_load``): that instance crashes,
    becomes a (failed, not yet detected) pool member and takes the later requests (``request.loop.pick_target``
    before ``pick_booting``), so the others stop filling and keep what they hold, below the limit; each joins the
    pool when its cold start ends. The fast model used to go on splitting evenly, so that every booting instance
    passed the limit at about the same moment and all crashed (docs/fidelity.md item 10).

    Here the first crossing is found on the fluid path each booting slot takes in ``kernel.fluid_queue`` (its
    queue ``q_i`` growing at ``a_i / dt`` while it boots: ``segment_crossing`` over its cold start's part of the
    step), ``t_c = min_i t_i``, the first slot in slot order on a tie (in the request backend whichever the
    rotation reaches first). If it comes before the step's end and before any booting slot's cold start ends
    (a cold start that ends first makes that slot the pool member instead, which this does not model), the
    crashing slot keeps its share (so that its fluid count reaches the limit at ``t_c`` in ``serve_slot``) and
    each other slot keeps what came before ``t_c``, the nearest whole count to ``a_i t_c / dt`` (at most the
    limit: in the request backend, dealt in turn, each holds ``L`` when the first takes its ``L + 1``-th). After
    ``t_c`` the pool is the crashed slot and the slots whose cold start has ended: with ``share_later`` (round
    robin, random) each takes an equal part of the arrivals at each moment, the arrivals
    coming evenly over the step, so a slot that joins at ``e_j`` takes ``sum over the pool's intervals after
    e_j of (arrivals in the interval) / (members then)``; without it (least outstanding: the crashed member has
    no outstanding requests and takes them all, docs/model.md 5) the crashed slot takes them all. A slot that
    joins gets ``F_SPLIT = JOINS`` and ``F_EARLY`` = its rate right after its join (requests/s, the members
    then): its kept requests are moved to its queue and ``I_ARRIVALS`` holds the
    later ones, which ``kernel.serve`` serves from its cold start's end as a pool member's. The rest went to the
    crashed slot and failed: returned, for ``M_FAILED``.

    Hand check (tests/test_memory_boot.py): 4 slots booting 5 s from empty, 16 fit, 200 arrivals in a 15 s step
    (50 each, 10/3 per s): each passes 16 at 4.8 s; the first crashes there and the others keep
    floor(50 * 4.8 / 15) = 16; from 5 s to 15 s the pool has 4 members, each of the 3 joined ones takes a
    quarter of those 10 s's 133.3 arrivals, floor(33.3) = 33; the crashed slot's 50 and 200 - 50 - 3 * 16 -
    3 * 33 = 3 fail."""
    t_c = math.inf
    k = -1
    e_min = math.inf
    for i in range(hi):
        if inst_i[b, i, I_STATE] == BOOTING:
            inst_f[b, i, F_SPLIT] = 0.0
            inst_f[b, i, F_EARLY] = 0.0
    if limit >= maxq:  # a booting queue never holds more than the waiting room: it cannot pass the limit
        return 0
    total = 0
    for i in range(hi):
        if inst_i[b, i, I_STATE] != BOOTING:
            continue
        total += inst_i[b, i, I_ARRIVALS]
        e = inst_f[b, i, F_TIMER]  # its cold start's remaining s (it serves from there if inside the step)
        e_min = min(e_min, e)
        q = float(inst_i[b, i, I_BACKLOG])
        qf = inst_f[b, i, F_QFLUID]
        if abs(qf - q) >= 1.0:  # (as kernel.fluid_queue)
            qf = q
        t = segment_crossing(limit, 0.0, qf, inst_i[b, i, I_ARRIVALS] / dt, min(e, dt))
        if 0.0 <= t < t_c:
            t_c = t
            k = i
    if k < 0 or t_c >= e_min or t_c >= dt:
        return 0
    rate = total / dt
    failed = total - inst_i[b, k, I_ARRIVALS]
    for j in range(hi):
        if inst_i[b, j, I_STATE] != BOOTING or j == k:
            continue
        a = inst_i[b, j, I_ARRIVALS]
        # dealt in turn, the others hold as many as the crashed one had when it passed the limit: the nearest
        # whole count of their (equal, +-1) shares, at most the limit (floor'd, a share one request smaller kept
        # one less than the request backend's L)
        kept = min(int(math.floor(a * t_c / dt + 0.5)), int(math.floor(limit + 1e-9)), a)
        e_j = inst_f[b, j, F_TIMER]
        later = 0
        if share_later and e_j < dt:
            # its part of the arrivals from its join to the step's end: walk the later joins (few)
            part = 0.0
            t = e_j
            first = 0.0
            while t < dt:
                members = 1  # the crashed slot
                nxt = dt
                for i in range(hi):
                    if inst_i[b, i, I_STATE] == BOOTING and i != k:
                        e_i = inst_f[b, i, F_TIMER]
                        if e_i <= t:
                            members += 1
                        elif e_i < nxt:
                            nxt = e_i
                part += rate * (nxt - t) / members
                if first <= 0.0:
                    first = rate / members
                t = nxt
            later = int(math.floor(part + 1e-9))
            inst_f[b, j, F_EARLY] = first  # (its rate right after its join: ``kernel.joined_level``'s escape)
        if e_j < dt:  # it joins in the step: what it kept waits in its queue, its arrivals are the later ones
            inst_i[b, j, I_BACKLOG] += kept
            inst_f[b, j, F_QFLUID] += kept
            inst_f[b, j, F_SPLIT] = JOINS
            inst_i[b, j, I_ARRIVALS] = later
        else:
            inst_i[b, j, I_ARRIVALS] = kept
        failed -= kept + later
    return max(failed, 0)


LONE_STATES = 512  # (count, phase) states ``lone_part`` / ``lone_escape`` hold on the stack: (L + 1) k at most
LONE_WORK = 4_000_000  # state updates ``lone_part`` may spend (a chain past it is left to the mean-rate law)
_LONE_BUFFER = 3 * LONE_STATES + 3  # (``lone_part``'s three vectors, the absorbed state in each)
_ESCAPE_BUFFER = 2 * LONE_STATES  # (``lone_escape``'s alpha and beta; ``_LONE_BUFFER`` holds them too)
_LAW_BUFFER = LONE_STATES  # a count law over 0..L (L + 1 <= LONE_STATES)


@njit(cache=True)
def lone_part(law, scratch, phases: int, servers: int, offered: float, level: int, span: float) -> float:
    """The count of an instance through a part of its step at one arrival rate, exactly: it takes every k-th
    request of a Poisson stream (k = ``phases``; 1: a Poisson stream) of ``offered`` requests per service time
    and serves with ``min(n, c)`` exponential servers, so its state (count n, arrival phase j) is a Markov
    chain (Neuts 1981, as ``erlang_passage``), here absorbed when the count passes ``level``. ``law[0..level]``
    is the count's law at the part's start, the arrival phase uniform (its place in the rotation taken at
    random: a pool change re-deals the rotation); it is overwritten with the law at the part's end (summed over
    phases, the mass not absorbed), and the absorbed mass (the chance of a crash in the part) is returned; -1 if
    the chain is larger than ``LONE_STATES`` or the work than ``LONE_WORK`` (``law`` then unchanged). ``span``
    in service times. Solved by uniformization (A. Jensen, "Markoff chains as an aid in the study of Markoff
    processes", Skandinavisk Aktuarietidskrift 36, 1953; W. K. Grassmann, "Transient solutions in Markovian
    queueing systems", Computers & Operations Research 4, 1977): with ``Lam`` the largest exit rate and
    ``P = I + Q / Lam``, ``v(t) = sum_m e^(-Lam t) (Lam t)^m / m! v(0) P^m``, over sub-spans of ``Lam t <= 40``
    (no underflow of ``e^(-Lam t)``), each summed until the Poisson weights left are below 1e-13."""
    k = max(phases, 1)
    size = (level + 1) * k
    if size > LONE_STATES or span <= 0.0 or offered < 0.0 or level < 0:
        return -1.0 if size > LONE_STATES else 0.0
    up = k * offered
    lam = up + min(level, servers)
    x_all = lam * span
    n_sub = max(int(math.ceil(x_all / 40.0)), 1)
    x = x_all / n_sub
    terms = int(x + 12.0 * math.sqrt(x) + 30.0)
    if n_sub * terms * (size + 1) > LONE_WORK:
        return -1.0
    v = scratch  # v at 0, the next iterate at size + 1, the Poisson-weighted sum at 2 (size + 1)
    w = scratch
    wo = size + 1
    ao = 2 * (size + 1)
    for n in range(level + 1):
        for j in range(k):
            v[n * k + j] = law[n] / k
    v[size] = 0.0
    for _ in range(n_sub):
        weight = math.exp(-x)
        cum = weight
        for s in range(size + 1):
            w[ao + s] = weight * v[s]
        m = 0
        while cum < 1.0 - 1e-13 and m < terms:
            # one step of P, gathered into each state t = n k + j from the states that feed it: an arrival phase
            # from t - 1 (from phase k - 1 of the count below to (n, 0): the previous index), staying at t, a
            # completion from t + k. The terms are added in the order of the source index, with +0.0 for an
            # empty source, so each state's sum is the same, bit for bit, as scattering from each source in
            # increasing order (all terms >= 0); this form has no integer division, one float division fewer and
            # no data-dependent branch per state (``LONE_WORK``: up to 4M state updates a call).
            for n in range(level + 1):
                stay = 1.0 - (up + float(min(n, servers))) / lam
                d_above = float(min(n + 1, servers))  # (the completion rate of the count above)
                for j in range(k):
                    t = n * k + j
                    acc = 0.0
                    if t > 0:
                        acc += v[t - 1] * up / lam
                    acc += v[t] * stay
                    if n < level:
                        acc += v[t + k] * d_above / lam
                    w[wo + t] = acc
            w[wo + size] = v[size] + v[size - 1] * up / lam  # (the absorbed state: from the last phase of the top)
            m += 1
            weight *= x / m
            cum += weight
            for s in range(size + 1):
                v[s] = w[wo + s]
                w[ao + s] += weight * v[s]
        for s in range(size + 1):
            v[s] = w[ao + s]
    for n in range(level + 1):
        t = 0.0
        for j in range(k):
            t += v[n * k + j]
        law[n] = t
    return min(max(v[size], 0.0), 1.0)


@njit(cache=True)
def lone_escape(law, scratch, phases: int, servers: int, offered: float, level: int) -> float:
    """``sum_n law[n] u(n)``: the chance that the count of an instance that starts with the count law ``law``
    (a sub-probability over 0..``level``; the arrival phase uniform) passes ``level`` before it falls back to its
    stationary bulk ``m = floor(a)`` (``escape_probability``'s gambler's ruin) when it takes every k-th request
    of a Poisson stream (k = ``phases``; Erlang-k gaps, round robin) of ``offered`` per service time: the
    first-step equations of the (count, phase) chain (Neuts 1981). An upward step leaves from phase k - 1 and
    enters the level above at phase 0, so each level's ``u(n, j)`` is affine in ``x = u(n + 1, 0)``,
    ``u(n, j) = alpha_n(j) + beta_n(j) x``, solved from ``n = m + 1`` (where ``u(m, .) = 0``) up, with rates
    k lambda (a phase) and d = min(n, c) (a completion, the phase kept):

        u(n, j) = (k lambda u(n, j + 1) + d (alpha_(n-1)(j) + beta_(n-1)(j) y)) / (k lambda + d),
        u(n, k) = x,   y = u(n, 0),

    then ``u(level, j) = alpha + beta`` (x = 1: passing the level) and down. k = 1 is ``escape_probability``.
    -1 if the chain is larger than ``LONE_STATES``."""
    k = max(phases, 1)
    if offered <= 0.0:
        return 0.0
    m = int(min(math.floor(offered), level - 1.0))
    if m < 0:
        m = 0
    size = (level - m) * k
    if size > LONE_STATES:
        return -1.0
    up = k * offered
    al = scratch  # alpha_n(j) at (n - m - 1) k + j, beta_n(j) at LONE_STATES + the same
    bo = LONE_STATES
    for n in range(m + 1, level + 1):
        d = float(min(n, servers))
        a_j, b_j, c_j = 0.0, 0.0, 1.0  # u(n, k) = x
        r = (n - m - 1) * k
        # first pass: A_0, B_0, C_0 (the coefficients of u(n, 0) in 1, y, x)
        for j in range(k - 1, -1, -1):
            pa = al[r - k + j] if n > m + 1 else 0.0
            pb = al[bo + r - k + j] if n > m + 1 else 0.0
            a_j = (up * a_j + d * pa) / (up + d)
            b_j = (up * b_j + d * pb) / (up + d)
            c_j = up * c_j / (up + d)
        den = 1.0 - b_j
        if not den > 1e-300:
            return 1.0
        y_a = a_j / den  # y = y_a + y_c x
        y_c = c_j / den
        a_j, b_j, c_j = 0.0, 0.0, 1.0
        for j in range(k - 1, -1, -1):
            pa = al[r - k + j] if n > m + 1 else 0.0
            pb = al[bo + r - k + j] if n > m + 1 else 0.0
            a_j = (up * a_j + d * pa) / (up + d)
            b_j = (up * b_j + d * pb) / (up + d)
            c_j = up * c_j / (up + d)
            al[r + j] = a_j + b_j * y_a
            al[bo + r + j] = c_j + b_j * y_c
    total = 0.0
    x = 1.0
    for n in range(level, m, -1):
        r = (n - m - 1) * k
        mean = 0.0
        for j in range(k):
            mean += al[r + j] + al[bo + r + j] * x
        total += law[n] * min(max(mean / k, 0.0), 1.0)
        x = al[r] + al[bo + r] * x
    return total
