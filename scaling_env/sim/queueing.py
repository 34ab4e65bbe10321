"""Queueing formulas used by the compiled core (all ``numba.njit``; no Python objects).

- Erlang B and C: blocking in M/M/N/N and waiting in M/M/N (Erlang, 1917). For N <= 1000 exact, from the
  Erlang B recursion written for 1/B (``1/B(k) = 1 + (k/a) / B(k-1)``); above that, Erlang B = P(X=N)/P(X<=N)
  for X ~ Poisson(a) with the Wilson-Hilferty approximation of the Poisson CDF (relative error < 1e-3 there).
- A finite waiting room: M/M/N/(N+K) blocking and mean wait, written with Erlang B (``stationary_wait``).
- E_k/M/N (every k-th request of a Poisson stream, as round robin gives an instance): the exact GI/M/N wait
  (L. Takacs, *Introduction to the Theory of Queues*, 1962, ch. 5; Gross & Harris, *Fundamentals of Queueing
  Theory*, section GI/M/c); with a waiting room of 1-20 the exact E_k/M/N/(N+K) queue seen by arrivals (its
  embedded chain, ``erlang_arrivals_finite``), above that the geometric queue seen by arrivals cut at the room
  (``erlang_arrivals_wait``).
- GI/G/N mean wait: Whitt's approximation, W = phi(rho, ca2, cs2, N) * (ca2 + cs2)/2 * W(M/M/N)
  (W. Whitt, "Approximations for the GI/G/m queue", Production and Operations Management 2(2), 1993,
  eqs. 2.24-2.25). It reduces to Erlang C for ca2 = cs2 = 1 and to Allen-Cunneen when phi = 1.
- Fluid queue segments for overload, backlog and cold-start waits (deterministic flow in and out), and the FIFO
  waits of their requests from a few arrival cohorts (``fifo_waits``).
- The p95 of response time, from the mean wait, the waiting probability and the service-time shape.

The E_k/M/N functions are compiled with ``error_model="numpy"``: a division is then the plain IEEE one, without
numba's default check for a zero divisor before each (which raises ZeroDivisionError). Every divisor there is
kept away from zero by the guards in the code (rho >= 1e-12, the 0/0 points handled), so the results are the
same bit for bit, about 17 % faster per call (the exact E_k/M/N wait cost 244 ns against Whitt's 59 ns at k = 17,
N = 10; now 203 ns).
"""

from __future__ import annotations

import math

import numpy as np
from numba import config, njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from .instances import F_COHORTS, N_COHORTS
from .mgc import erlang_lognormal_factor, lognormal_wait_factor, scaled_room

EXACT_ERLANG_MAX_SERVERS = 1000
RHO_CAP = 0.99  # the stationary formulas are used up to this utilisation; the fluid backlog covers the rest
GIM_MAX_SERVERS = 256  # the exact E_k/M/N wait up to this N (checked against the Markov chain); Whitt's above
GIMK_MAX_ROOM = 20  # the exact E_k/M/N/(N+K) chain for waiting rooms of 1..20; the cut geometric tail above
GIMK_MAX_PHASES = 1024  # ... and k up to this (its stack buffer of k + 1 doubles)
_GIMK_BUFFER = GIMK_MAX_PHASES + 1
_TAKACS_BUFFER = GIM_MAX_SERVERS + 1  # _takacs_sums' two lanes of phi_j and t_j / t_{j-1}, j = 1..N
_INT_POWER_MAX = 0x10000  # numba's float ** int multiplies up to this exponent (math.pow above)


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
def lognormal_correction(rho: float, cs2: float, servers: int) -> float:
    """The lognormal M/G/N mean wait over the two-moment one (Whitt's phi (1 + cs2) / 2; Pollaczek-Khinchine's
    (1 + cs2) / 2 at N = 1, where it is 1), for cs2 > 1 (the request backend's law there; ``mgc.py``); 1 else."""
    if cs2 <= 1.0 or servers <= 1:
        return 1.0
    two_moment = whitt_phi(rho, 1.0, cs2, servers) * 0.5 * (1.0 + cs2)
    return lognormal_wait_factor(servers, rho, math.sqrt(cs2)) / two_moment


@njit(cache=True)
def stationary_wait(servers: int, arrival_rps: float, service_s: float, ca2: float, cs2: float, room: float):
    """Stationary queue of N = ``servers`` slots with a waiting room of ``room`` requests, at utilisation capped
    at RHO_CAP. Returns (mean wait of admitted requests in s, their probability of waiting, blocking probability).

    M/M/N/(N+K) from Erlang B: with B = ErlangB(N, a), rho = a/N, G = sum_{j=1..K} rho^j and
    H = sum_{j=1..K} j rho^j, the states above N have P(N+j) = B rho^j / (1 + B G), so
    blocking = B rho^K / (1 + B G), Lq = B H / (1 + B G), W = Lq / (lambda (1 - blocking)); K -> inf gives
    Erlang C. For GI/G/N the mean wait is scaled by Whitt's factor z = phi * (ca2 + cs2) / 2; for M/G/1 by
    z = (1 + cs2) / 2 (Pollaczek-Khinchine, exact without a room limit). With cs2 != 1 the room is taken as K / z
    places of the M/M/N queue (the waiting line stretched z-fold: ``mgc.scaled_room``), which sets the blocking
    and P(wait) too.
    """
    if arrival_rps <= 0.0 or servers <= 0:
        return 0.0, 0.0, 0.0
    mu = 1.0 / service_s
    rho = min(arrival_rps / (servers * mu), RHO_CAP)
    if rho < 1e-12:  # no queueing to speak of (and no 0/0 below)
        return 0.0, 0.0, 0.0
    if room < 0.5:
        # no waiting room: the Erlang loss system M/G/N/N, whose blocking is Erlang B at the offered load for any
        # service law (insensitivity: B. A. Sevastyanov, 1957; Gross & Harris, M/G/c/c) and which has a steady
        # state at every load, so the load is not capped (at utilisation 1.02 and 1.3, N = 80, the capped load
        # gave 7.8 % and 23.1 % against Erlang B's 9.6 % and 25.6 % and the request backend's 9.6 % and 25.5 %)
        return 0.0, 0.0, erlang_b(servers, arrival_rps * service_s)
    lam = rho * servers * mu
    blocking_n = erlang_b(servers, lam / mu)
    z = 1.0
    if (ca2 != 1.0 or cs2 != 1.0) and ca2 + cs2 > 0.0:
        if servers == 1 and ca2 == 1.0:  # M/G/1: Pollaczek-Khinchine's factor (below)
            z = 0.5 * (1.0 + cs2)
        elif ca2 == 1.0 and cs2 > 1.0:  # M/G/N, cs2 > 1: the lognormal's own factor (mgc.py)
            z = lognormal_wait_factor(servers, rho, math.sqrt(cs2))
        else:  # other arrivals: Whitt's, corrected by the lognormal's over his at Poisson arrivals for cs2 > 1
            z = whitt_phi(rho, ca2, cs2, servers) * 0.5 * (ca2 + cs2) * lognormal_correction(rho, cs2, servers)
    # service variability stretches the waiting line z-fold: the room is K / z places of the M/M/N queue (mgc.py)
    k = scaled_room(room, z) if cs2 != 1.0 else max(room, 0.0)
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
    # M/G/1: the Pollaczek-Khinchine mean wait (1 + cs2) / 2 * W(M/M/1) is exact (Pollaczek 1930, Khinchine 1932;
    # Gross & Harris, M/G/1), which Whitt's phi (not 1 here for cs2 != 1) would lower by up to 19 %
    return z * w_mmn, p_wait, p_block


@intrinsic
def _stack_doubles(typingctx, size):
    """A buffer of ``size`` (a literal) doubles on the caller's stack, as a float64 pointer: scratch memory for
    the compiled core, whose kernels run without numba's runtime (``_nrt=False``: no array can be allocated).
    Valid until the calling function returns."""
    if not isinstance(size, types.IntegerLiteral):
        return None
    n = size.literal_value

    def codegen(context, builder, sig, args):
        return cgutils.alloca_once(builder, context.get_value_type(types.float64), size=n)

    return types.CPointer(types.float64)(size), codegen


if config.DISABLE_JIT:  # uncompiled (NUMBA_DISABLE_JIT=1, for debugging): an intrinsic cannot run; an array can

    def _stack_doubles(size):  # noqa: F811
        return np.zeros(size)


@njit(cache=True, error_model="numpy")
def erlang_sigma(phases: int, rho: float) -> float:
    """The root sigma in (0, 1) of sigma = A*(N mu (1 - sigma)) for E_k/M/N, with A* the Laplace-Stieltjes
    transform of Erlang-k gaps of mean 1/lambda and rho = lambda / (N mu): sigma = (k rho / (k rho + 1 - sigma))^k
    (it depends on N only through rho; Gross & Harris, GI/M/c). sigma = rho for k = 1 (Poisson).

    Newton's method from sigma = 0: f(s) = s - A*(N mu (1 - s)) is concave with f(0) < 0 < f'(0), so the
    iterates rise monotonically to the root (5-10 steps to 1e-13)."""
    if phases <= 1:
        return rho
    kr = phases * rho
    sig = 0.0
    for _ in range(60):
        u = kr / (kr + 1.0 - sig)
        g = u**phases
        nxt = sig - (sig - g) / (1.0 - g * u / rho)  # d/ds u^k = u^(k+1) / rho
        if not nxt < 1.0:
            return sig
        if abs(nxt - sig) < 1e-13:
            return nxt
        sig = nxt
    return sig


@njit(cache=True, error_model="numpy")
def _takacs_sums(phases: int, servers: int, rho: float, sigma: float):
    """(sum_{j=1..N} C(N, j) / (C_j (1 - phi_j)) * (N (1 - phi_j) - j) / (N (1 - sigma) - j),
    sum_{j=0..N} C(N, j) / C_j), with phi_j = A*(j mu) = (k rho N / (k rho N + j))^k and
    C_j = prod_{i<=j} phi_i / (1 - phi_i) (C_0 = 1). The terms t_j = C(N, j) / C_j follow
    t_j = t_{j-1} (N - j + 1) / j * (1 - phi_j) / phi_j (one power per term); (inf, inf) when they overflow (then
    nobody waits and nobody is turned away, to double precision)."""
    m = float(servers)
    kl = phases * rho * m  # k lambda / mu
    lanes = servers <= GIM_MAX_SERVERS and 0 <= phases <= _INT_POWER_MAX
    phis = _stack_doubles(_TAKACS_BUFFER)  # phi_j (by lanes)
    ratios = _stack_doubles(_TAKACS_BUFFER)  # t_j / t_{j-1} (by lanes)
    if lanes:
        # the terms' parts that do not depend on the running product, one j per SIMD lane (the divisions are
        # most of the time): phi_j = (k rho N / (k rho N + j))^k by numba's own integer power (float ** int:
        # r *= a for each set bit of k, from the lowest, a *= a between them), so the same bits as below
        for j in range(1, servers + 1):
            ratios[j] = kl / (kl + j)  # (the powers of the base, for now)
            phis[j] = 1.0
        e = phases
        while e != 0:
            if e & 1:
                for j in range(1, servers + 1):
                    phis[j] *= ratios[j]
            e >>= 1
            if e != 0:
                for j in range(1, servers + 1):
                    ratios[j] *= ratios[j]
        for j in range(1, servers + 1):
            ratios[j] = (m - j + 1.0) / j * (1.0 - phis[j]) / phis[j]
    t = 1.0
    total = 0.0
    loss = 1.0
    for j in range(1, servers + 1):
        if lanes:
            phi = phis[j]
            ratio = ratios[j]
        else:
            phi = (kl / (kl + j)) ** phases
            ratio = (m - j + 1.0) / j * (1.0 - phi) / phi
        one_minus = 1.0 - phi
        if phi < 1e-290:  # (a light load: phi underflows) the next term overflows
            return math.inf, math.inf
        t *= ratio
        if t > 1e290:
            return math.inf, math.inf
        loss += t
        if j < servers:
            total += t / one_minus * (m * one_minus - j) / (m * (1.0 - sigma) - j)
        else:  # (N (1 - phi_N) - N) / (N (1 - sigma) - N) = phi_N / sigma, without the cancellation at light load
            total += t / one_minus * phi / sigma
    return total, loss


@njit(cache=True, error_model="numpy")
def gim_wait_probability(phases: int, servers: int, rho: float) -> tuple[float, float]:
    """(P(an arrival waits), sigma) in E_k/M/N at utilisation rho < 1 (Takacs 1962; Gross & Harris, GI/M/c):

        P(wait) = 1 / (1 + (1 - sigma) * sum_{j=1..N} C(N, j) / (C_j (1 - phi_j)) * (N (1 - phi_j) - j)
                                                                                   / (N (1 - sigma) - j))

    Arrivals see N + i requests with probability P(wait) (1 - sigma) sigma^i, so a wait is exponential with rate
    N mu (1 - sigma). The terms' 0/0 where N (1 - sigma) is a whole number j (then sigma = phi_j) is removable:
    there it is the mean of the values at rho (1 -+ 1e-5)."""
    sigma = erlang_sigma(phases, rho)
    if sigma < 1e-200:  # (nobody waits, to double precision)
        return 0.0, sigma
    if servers == 1:  # GI/M/1: P(wait) = sigma
        return sigma, sigma
    x = servers * (1.0 - sigma)
    j = math.floor(x + 0.5)
    if 1.0 <= j <= servers - 1 and abs(x - j) < 1e-6 * servers:
        lo = erlang_sigma(phases, rho * (1.0 - 1e-5))
        hi = erlang_sigma(phases, rho * (1.0 + 1e-5))
        p_lo = 1.0 / (1.0 + (1.0 - lo) * _takacs_sums(phases, servers, rho * (1.0 - 1e-5), lo)[0])
        p_hi = 1.0 / (1.0 + (1.0 - hi) * _takacs_sums(phases, servers, rho * (1.0 + 1e-5), hi)[0])
        return 0.5 * (p_lo + p_hi), sigma
    return 1.0 / (1.0 + (1.0 - sigma) * _takacs_sums(phases, servers, rho, sigma)[0]), sigma


@njit(cache=True, error_model="numpy")
def erlang_arrivals_finite(phases: int, servers: int, rho: float, room: int):
    """The exact E_k/M/N/(N+K) queue seen by arrivals (k = ``phases``, N = ``servers``, K = ``room`` >= 1) at
    utilisation rho = lambda / (N mu): (blocking probability, P(wait) of admitted requests, their mean wait in
    service times), or (-1, -1, -1) where the chain's terms under- or overflow (a light load: use the unlimited
    queue's values). The GI/M/c/K embedded chain at arrival epochs (Gross & Harris, *Fundamentals of Queueing
    Theory*, GI/M/c and its finite-capacity form), solved without a matrix:

    - between arrivals the requests leave as a pure death process D (rate min(n, N) mu in state n) for an
      Erlang-k time, k phases of rate k lambda; one phase moves a row vector v to v M with
      M = (I - D / (k lambda))^-1, so the transition matrix from "an arrival saw i" is row min(i + 1, N + K) of
      M^k (an arrival that finds N + K turned away);
    - v' = v M is solved from the top state down: v'_j = (v_j + a_{j+1} v'_{j+1}) b_j, a_j = min(j, N) / (k
      lambda), b_j = 1 / (1 + a_j); so the states >= j of u M^m, for u the states seen after an arrival, need only
      u's states >= j;
    - the balance q = u M^k, with u_j = q_{j-1} (u_{N+K} = q_{N+K-1} + q_{N+K}), is solved from q_{N+K} = 1 down:
      at state j the k stage values are affine in the one unknown u_j, (u M^m)_j = b_j^m u_j + c_m, so
      u_j = (q_j - c_k) / b_j^k (O(k) per state, O(k (N + K)) in all), then normalised.

    An arrival that sees i >= N requests (i < N + K) waits for i - N + 1 departures at rate N mu (FIFO)."""
    cap = servers + room
    kl = phases * rho * servers  # k lambda / mu
    if (1.0 / (1.0 + servers / kl)) ** phases < 1e-100:  # P(nobody leaves between two arrivals) below 1e-100
        return -1.0, -1.0, -1.0
    v = _stack_doubles(_GIMK_BUFFER)  # v[m] = (u M^m)_j, for the state j of the last pass
    for m in range(phases + 1):
        v[m] = 0.0
    q_top = 1.0  # q_{N+K}, unnormalised
    q_j = 1.0
    total = 1.0
    waiting = 0.0
    ahead = 0.0
    for j in range(cap, 0, -1):
        a_up = min(j + 1, servers) / kl
        b_j = 1.0 / (1.0 + min(j, servers) / kl)
        c = 0.0
        for m in range(1, phases + 1):
            c = (c + a_up * v[m]) * b_j
            v[m] = c
        u = max(q_j - c, 0.0) / b_j**phases
        v[0] = u
        pw = 1.0
        for m in range(1, phases + 1):
            pw *= b_j
            v[m] += pw * u
        q_j = u - q_top if j == cap else u  # q_{j-1}
        total += q_j
        if j > servers:  # an arrival that sees j - 1 >= N requests waits for j - N departures
            waiting += q_j
            ahead += q_j * (j - servers)
        if u > 1e100:  # (light loads: the lower states outweigh the upper ones by far) keep the scale
            for m in range(phases + 1):
                v[m] *= 1e-100
            q_j *= 1e-100
            q_top *= 1e-100
            total *= 1e-100
            waiting *= 1e-100
            ahead *= 1e-100
    admitted = total - q_top
    return q_top / total, waiting / admitted, ahead / (servers * admitted)


@njit(cache=True, error_model="numpy")
def _whitt_scale(rho: float, ca2: float, cs2: float, servers: int) -> float:
    """Whitt's GI/G/N wait over his GI/M/N wait at the same arrivals: the two-moment correction for cs2 != 1."""
    if cs2 == 1.0:
        return 1.0
    with_cs = whitt_phi(rho, ca2, cs2, servers) * 0.5 * (ca2 + cs2)
    return with_cs / (whitt_phi(rho, ca2, 1.0, servers) * 0.5 * (ca2 + 1.0))


@njit(cache=True, error_model="numpy")
def erlang_arrivals_wait(phases: int, servers: int, arrival_rps: float, service_s: float, cs2: float, room: float):
    """Stationary queue fed by every ``phases``-th request of a Poisson stream (Erlang-k gaps: round robin over k
    instances), N = ``servers`` slots, a waiting room of ``room``, utilisation capped at RHO_CAP. Returns (mean
    wait of admitted requests s, their probability of waiting, blocking probability), as ``stationary_wait``
    (the finite chain below takes the utilisation as it is: a finite queue has a steady state above 1 too).

    Exponential service, a waiting room K of 1..GIMK_MAX_ROOM: the exact E_k/M/N/(N+K) queue seen by arrivals
    (``erlang_arrivals_finite``). A larger room: the exact E_k/M/N queue seen by arrivals
    (``gim_wait_probability``): with D = P(wait) of the unlimited queue, arrivals see N + i requests w.p.
    D (1 - sigma) sigma^i; the waiting room K keeps i = 0..K of that geometric tail (exact for k = 1, where it is
    M/M/N/(N+K); for k > 1 it overstates the blocking about 1.7-fold, 4.5 % against the chain's 2.7 % at k = 8,
    N = 10, K = 5, rho = 0.9, 0.18 % against 0.11 % at K = 21: the chain costs O(k (N + K)) per call, so the
    default room of 100 keeps this):

        Z = 1 - D sigma^(K+1),  P_block = D (1 - sigma) sigma^K / Z,  P_wait = D (1 - sigma^K) / (1 - D sigma^K)
        W = D (1 - (K+1) sigma^K + K sigma^(K+1)) / ((1 - sigma) N mu (1 - D sigma^K))

    (K -> inf: W = D / (N mu (1 - sigma)).) No waiting room (K < 1/2): the exact GI/M/N/N loss probability
    1 / sum_{j=0..N} C(N, j) / C_j (Takacs 1962; Erlang B for k = 1). Other service: W times Whitt's GI/G/N
    over GI/M/N factor (1993, ``whitt_phi``), with the room taken as K over that factor (the waiting line
    stretched: ``mgc.scaled_room``). k = 1 or N > GIM_MAX_SERVERS: ``stationary_wait`` with ca2 = 1/k.
    """
    if phases <= 1 or servers > GIM_MAX_SERVERS:
        return stationary_wait(servers, arrival_rps, service_s, 1.0 / max(phases, 1), cs2, room)
    if arrival_rps <= 0.0 or servers <= 0:
        return 0.0, 0.0, 0.0
    mu = 1.0 / service_s
    rho = min(arrival_rps / (servers * mu), RHO_CAP)
    if rho < 1e-12:
        return 0.0, 0.0, 0.0
    if room < 0.5:
        # a loss system has a steady state at every load: the offered utilisation uncapped (RHO_CAP would leave
        # the overload's drops to the fluid excess 1 - 1/rho, 0.231 against the request backend's 0.305 at
        # utilisation 1.3, n = 8, N = 10)
        loss = _takacs_sums(phases, servers, arrival_rps * service_s / servers, -1.0)[1]  # (sigma: first sum only)
        return 0.0, 0.0, 1.0 / loss
    scale = _whitt_scale(rho, 1.0 / phases, cs2, servers) * lognormal_correction(rho, cs2, servers)
    if cs2 > 1.0:  # the lognormal's E_k/G/N correction over the Poisson one (mgc.erlang_lognormal_factor)
        scale *= erlang_lognormal_factor(phases, servers, rho, math.sqrt(cs2))
    room = scaled_room(room, scale) if cs2 != 1.0 else room  # the line stretched scale-fold (mgc.py)
    k_room = max(int(math.floor(room + 0.5)), 1)
    if k_room <= GIMK_MAX_ROOM and phases <= GIMK_MAX_PHASES:
        # a finite queue has a steady state at any utilisation: no cap (at 1.02 and 1.3 it turns away 3.5 % and
        # 23.1 % with 20 places, where the request backend drops 3.4 % and 23.1 %)
        p_block, p_wait, ahead = erlang_arrivals_finite(phases, servers, arrival_rps * service_s / servers, k_room)
        if p_block >= 0.0:
            return ahead * service_s * scale, p_wait, p_block
    d, sigma = gim_wait_probability(phases, servers, rho)
    k = max(room, 0.0)
    sk = sigma**k
    p_block = d * (1.0 - sigma) * sk / (1.0 - d * sk * sigma)
    admitted = 1.0 - d * sk
    p_wait = d * (1.0 - sk) / admitted
    w = d * (1.0 - (k + 1.0) * sk + k * sk * sigma) / ((1.0 - sigma) * servers * mu * admitted)
    return w * scale, p_wait, p_block


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
def _cohort(n: float, a0: float, a1: float, x0: float, served: float, idle: float, gap: float):
    """One cohort of a FIFO fluid queue: ``n`` requests that arrived evenly over [a0, a1] (s from the step start;
    negative: an earlier step), at queue positions [x0, x0 + n). The first ``served`` positions of the queue leave,
    position x at ``idle + x * gap``. Returns (total wait of its served part request-s, longest wait of its served
    part s, requests left, arrival time of the first one left)."""
    m = min(max(served - x0, 0.0), n)  # its served part: positions [x0, x0 + m)
    slope = (a1 - a0) / n  # arrival time per position
    wait_sum = 0.0
    longest = 0.0
    if m > 0.0:
        # wait at position x0 + u is (idle + (x0 + u) gap) - (a0 + u slope), linear in u. Requests are whole: the
        # j-th served one is at u = j (it leaves as its place in the queue comes up, it arrived at the front of its
        # place), so the sum runs over u = 0, 1, ..., m - 1: m w0 + (gap - slope) m (m - 1) / 2, not the
        # integral (which would add half a place, gap / 2, to every wait: 0.5 s for one 1 s request per step)
        w0 = idle + x0 * gap - a0
        wait_sum = max(m * w0 + (gap - slope) * 0.5 * m * (m - 1.0), 0.0)
        longest = max(w0, w0 + (gap - slope) * max(m - 1.0, 0.0))
    return wait_sum, longest, n - m, a0 + slope * m


@njit(cache=True)
def merge_cohorts(n1: float, old1: float, young1: float, n2: float, old2: float, young2: float):
    """One cohort for two (1 older than 2; ages s): the total age is kept, and the spread is the widest one
    centred on the mean age that stays within [young2, old1] (exact for two adjacent cohorts of equal density)."""
    n = n1 + n2
    mean = (n1 * (old1 + young1) + n2 * (old2 + young2)) / (2.0 * n)
    half = max(min(old1 - mean, mean - young2), 0.0)
    return n, mean + half, mean - half


@njit(cache=True)
def _density_gap(n1: float, old1: float, young1: float, n2: float, old2: float, young2: float) -> float:
    """How unlike two cohorts are: |log of their density ratio| plus the gap between them relative to their span
    (0 for two adjacent cohorts of equal density, whose merge is exact)."""
    d1 = n1 / max(old1 - young1, 1e-9)
    d2 = n2 / max(old2 - young2, 1e-9)
    span = max(old1 - young2, 1e-9)
    return abs(math.log(d1 / d2)) + max(young1 - old2, 0.0) / span


@njit(cache=True)
def _put(inst_f, b, i, c, n, old, young):
    inst_f[b, i, F_COHORTS + 3 * c] = n
    inst_f[b, i, F_COHORTS + 3 * c + 1] = old
    inst_f[b, i, F_COHORTS + 3 * c + 2] = young


@njit(cache=True)
def _append_cohort(inst_f, b, i, kept, n_c, old_c, young_c):
    """Store a cohort after the ``kept`` ones of slot i; with no place left, merge the two most alike neighbours
    among the stored ones and the new one first. Returns how many cohorts are stored."""
    if kept == N_COHORTS:
        # one too many: merge the two most alike neighbours among the stored ones and this step's
        best = 0
        best_d = 1e300
        for c in range(N_COHORTS):
            n1 = inst_f[b, i, F_COHORTS + 3 * c]
            o1 = inst_f[b, i, F_COHORTS + 3 * c + 1]
            y1 = inst_f[b, i, F_COHORTS + 3 * c + 2]
            if c + 1 < N_COHORTS:
                n2 = inst_f[b, i, F_COHORTS + 3 * c + 3]
                o2 = inst_f[b, i, F_COHORTS + 3 * c + 4]
                y2 = inst_f[b, i, F_COHORTS + 3 * c + 5]
            else:
                n2, o2, y2 = n_c, old_c, young_c
            d = _density_gap(n1, o1, y1, n2, o2, y2)
            if d < best_d:
                best_d = d
                best = c
        n1 = inst_f[b, i, F_COHORTS + 3 * best]
        o1 = inst_f[b, i, F_COHORTS + 3 * best + 1]
        y1 = inst_f[b, i, F_COHORTS + 3 * best + 2]
        if best + 1 < N_COHORTS:
            n2 = inst_f[b, i, F_COHORTS + 3 * best + 3]
            o2 = inst_f[b, i, F_COHORTS + 3 * best + 4]
            y2 = inst_f[b, i, F_COHORTS + 3 * best + 5]
            mn, mo, my = merge_cohorts(n1, o1, y1, n2, o2, y2)
            _put(inst_f, b, i, best, mn, mo, my)
            for c in range(best + 1, N_COHORTS - 1):  # shift the younger ones down
                _put(
                    inst_f,
                    b,
                    i,
                    c,
                    inst_f[b, i, F_COHORTS + 3 * c + 3],
                    inst_f[b, i, F_COHORTS + 3 * c + 4],
                    inst_f[b, i, F_COHORTS + 3 * c + 5],
                )
            _put(inst_f, b, i, N_COHORTS - 1, n_c, old_c, young_c)
        else:
            mn, mo, my = merge_cohorts(n1, o1, y1, n_c, old_c, young_c)
            _put(inst_f, b, i, best, mn, mo, my)
        return N_COHORTS
    _put(inst_f, b, i, kept, n_c, old_c, young_c)
    return kept + 1


@njit(cache=True)
def _joining(in1: float, adm1: float, q1: float, in2: float, adm2: float, tau: float, cap_rps: float):
    """When the admitted arrivals of a step joined the queue: phase 1 from its start for ``f1`` s (until the
    queue is full); phase 2 ``n2a`` at ``in2`` over its first ``t_a`` s (until the queue is full, or, with
    ``in2 <= cap_rps``, until it empties), then ``n2b`` at ``cap_rps`` (a place frees as a request leaves).
    Returns (f1, t_a, n2a, n2b)."""
    f1 = adm1 / in1 if (in1 > 0.0 and adm1 > 0.0) else 0.0
    n2a = 0.0
    n2b = 0.0
    t_a = 0.0
    if tau > 0.0 and in2 > 0.0 and adm2 > 0.0:
        if in2 > cap_rps:
            t_a = min(max(tau - (in2 * tau - adm2) / (in2 - cap_rps), 0.0), tau)
            n2a = in2 * t_a
            n2b = max(adm2 - n2a, 0.0)
        else:
            if in2 < cap_rps:
                t_a = min(q1 / (cap_rps - in2), tau)  # the queue empties after t_a s
            else:
                t_a = tau if q1 > 0.0 else 0.0
            n2a = min(in2 * t_a, adm2)
    return f1, t_a, n2a, n2b


@njit(cache=True)
def fifo_waits(
    inst_f,
    b: int,
    i: int,
    q0: float,
    in1: float,
    adm1: float,
    q1: float,
    in2: float,
    adm2: float,
    q2: float,
    idle: float,
    tau: float,
    cap_rps: float,
):
    """FIFO bookkeeping of the fluid queue of slot i over a step: phase 1 (``idle`` s, no service, arrivals at
    ``in1`` requests/s of which ``adm1`` were admitted, the queue ``q1`` after it), then phase 2 (``tau`` s of
    service at ``cap_rps``, arrivals at ``in2``, ``adm2`` admitted, the queue ``q2`` at the end).

    The queue is kept as up to N_COHORTS arrival cohorts (``inst_f[b, i, F_COHORTS:]``, oldest first), each with
    its requests' ages spread evenly between its oldest and youngest. The step adds, in order of arrival:

    - phase-1 arrivals, admitted at ``in1`` from the step start until the queue is full;
    - phase-2 arrivals that join the queue: at ``in2`` until the queue is full, then at ``cap_rps`` (a place frees
      as a request leaves); with ``in2 < cap_rps`` only those that arrive before the queue empties (the others
      pass through without a fluid wait).

    The first ``q0 + admitted - q2`` of the queue are served, leaving one after another at ``cap_rps`` from the
    start of phase 2. The requests left are stored as cohorts again: this step's pieces as one cohort, and if that
    makes one too many, the two most alike neighbours are merged (``merge_cohorts``). Every wait is a departure
    time minus an arrival time within what has happened, so none is longer than the time since the oldest request
    arrived. Returns (total age of the requests left at the end request-s, total wait of the requests served from
    the queue request-s, longest wait of a served request s).
    """
    dt = idle + tau
    # the stored cohorts hold q0 requests unless the integer queue was changed elsewhere: then scale them to q0
    # (or, with none stored, take the q0 as arrived at the step start)
    stored = 0.0
    for c in range(N_COHORTS):
        stored += inst_f[b, i, F_COHORTS + 3 * c]
    scale = q0 / stored if stored > 0.0 else 0.0
    f1, t_a, n2a, n2b = _joining(in1, adm1, q1, in2, adm2, tau, cap_rps)
    total = q0 + adm1 + n2a + n2b
    served = min(max(total - q2, 0.0), total)
    gap = 1.0 / cap_rps
    if served * gap > tau:  # (rounding of the whole-request counts) the served ones fit in the serving time
        gap = tau / served if served > 0.0 else 0.0
    waited = 0.0
    longest = 0.0
    age_end = 0.0
    kept = 0  # cohorts written back
    new_n = 0.0  # this step's requests left, as one cohort: count, total age at the end, oldest and youngest age
    new_age = 0.0
    new_old = 0.0
    new_young = 0.0
    x0 = 0.0
    for c in range(N_COHORTS + 3):
        if c < N_COHORTS:
            if scale > 0.0:
                n = inst_f[b, i, F_COHORTS + 3 * c] * scale
                a0 = -inst_f[b, i, F_COHORTS + 3 * c + 1]
                a1 = -inst_f[b, i, F_COHORTS + 3 * c + 2]
            else:
                n = q0 if c == 0 else 0.0
                a0 = 0.0
                a1 = 0.0
        elif c == N_COHORTS:
            n, a0, a1 = adm1, 0.0, f1
        elif c == N_COHORTS + 1:
            n, a0, a1 = n2a, idle, idle + t_a
        else:
            n, a0, a1 = n2b, idle + t_a, dt
        if n <= 1e-12:
            continue
        w, lw, left, a_left = _cohort(n, a0, a1, x0, served, idle, gap)
        waited += w
        longest = max(longest, lw)
        x0 += n
        if left <= 1e-12:
            continue
        age_end += left * (dt - 0.5 * (a_left + a1))
        if c < N_COHORTS:
            _put(inst_f, b, i, kept, left, dt - a_left, dt - a1)  # (kept <= c: nothing unread is overwritten)
            kept += 1
        else:
            if new_n <= 0.0:
                new_old = dt - a_left
            new_n += left
            new_age += left * (dt - 0.5 * (a_left + a1))
            new_young = dt - a1
    if new_n > 0.0:
        # this step's pieces as one cohort: the total age kept, centred on the mean within [youngest, oldest]
        mean = new_age / new_n
        half = max(min(new_old - mean, mean - new_young), 0.0)
        kept = _append_cohort(inst_f, b, i, kept, new_n, mean + half, mean - half)
    for c in range(kept, N_COHORTS):
        _put(inst_f, b, i, c, 0.0, 0.0, 0.0)
    return max(age_end, 0.0), max(waited, 0.0), longest


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
def service_shape(service_s: float, service_cv: float):
    """The service time as a constant plus an exponential (const, mean of the exponential), for the p95 model.

    - cv = 0: a constant s; cv = 1: exponential (const 0, mean s);
    - otherwise the service is lognormal, as the request-level backend draws it (sigma^2 = ln(1 + cv^2),
      median s / sqrt(1 + cv^2)): an exponential tail fitted to its mean and its 95th percentile
      q95 = s exp(z95 sqrt(ln(1 + cv^2))) / sqrt(1 + cv^2) (z95 = 1.6449, the standard normal quantile):
      e = (q95 - s) / (ln 20 - 1), const = s - e (const < 0 for cv > 1.27; only the tail beyond it is used).
      With no wait the p95 is then the lognormal's q95 exactly (0.331, 0.360, 0.384 s for s = 0.1 s and
      cv = 1.5, 2, 3); with a wait, the convolution of that fitted tail with the wait's.
    """
    if service_cv <= 0.0:
        return service_s, 0.0
    if service_cv == 1.0:
        return 0.0, service_s
    v = math.log(1.0 + service_cv * service_cv)
    q95 = service_s * math.exp(1.6448536269514722 * math.sqrt(v) - 0.5 * v)
    e = (q95 - service_s) / (math.log(20.0) - 1.0)
    return service_s - e, e


@njit(cache=True)
def response_p95(service_s: float, service_cv: float, mean_wait: float, p_wait: float) -> float:
    """p95 of response time = service + wait.

    Service is a constant plus an exponential (``service_shape``: exact for cv = 0 and 1, a fit to the lognormal's
    mean and 95th percentile otherwise); the wait is 0 with probability 1 - p_wait and exponential with mean
    mean_wait / p_wait otherwise, as in M/M/N (and E_k/M/N), where this is exact. The quantile is found by
    Newton's method on the log of the tail, kept inside a bracket (bisection when a Newton step leaves it).
    """
    const, e = service_shape(service_s, service_cv)
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


# Gauss-Legendre nodes and weights on [-1, 1], 12 points (Abramowitz & Stegun, Handbook of Mathematical
# Functions, table 25.4)
_GL_X = np.array([-0.9815606342467192, -0.9041172563704749, -0.7699026741943047, -0.5873179542866175,
                  -0.3678314989981802, -0.1252334085114689, 0.1252334085114689, 0.3678314989981802,
                  0.5873179542866175, 0.7699026741943047, 0.9041172563704749, 0.9815606342467192])  # fmt: skip
_GL_W = np.array([0.0471753363865118, 0.1069393259953184, 0.1600783285433462, 0.2031674267230659,
                  0.2334925365383548, 0.2491470458134028, 0.2491470458134028, 0.2334925365383548,
                  0.2031674267230659, 0.1600783285433462, 0.1069393259953184, 0.0471753363865118])  # fmt: skip


# 4 points (the same table)
_GL4_X = np.array([-0.8611363115940526, -0.3399810435848563, 0.3399810435848563, 0.8611363115940526])
_GL4_W = np.array([0.3478548451374538, 0.6521451548625461, 0.6521451548625461, 0.3478548451374538])


@njit(cache=True)
def _geometric_mean(x: float, room: int) -> float:
    """Mean of the truncated geometric law P(j) ~ exp(j x) on j = 0 .. room - 1."""
    if abs(x) * room < 1e-4:  # near r = 1: the uniform law's mean and its first-order term
        return 0.5 * (room - 1) + x * (room * room - 1.0) / 12.0
    if x > 0.0:  # mirrored: j -> room - 1 - j turns ratio r into 1 / r
        return room - 1.0 - _geometric_mean(-x, room)
    r = math.exp(x)
    rk = math.exp(x * room)
    return r / (1.0 - r) - room * rk / (1.0 - rk)


@njit(cache=True)
def _geometric_ratio(mean_ahead: float, room: int) -> float:
    """log r of the truncated geometric law P(j) ~ r^j on j = 0 .. room - 1 whose mean is ``mean_ahead``
    (bisection; the mean grows with r, from 0 to room - 1)."""
    lo, hi = -30.0, 30.0
    for _ in range(50):
        x = 0.5 * (lo + hi)
        if _geometric_mean(x, room) < mean_ahead:
            lo = x
        else:
            hi = x
        if hi - lo < 1e-9:
            break
    return 0.5 * (lo + hi)


@njit(cache=True)
def _geometric_above(k: int, x: float, room: int) -> float:
    """P(J >= k) for the truncated geometric law P(j) ~ exp(j x) on j = 0 .. room - 1."""
    if abs(x) * room < 1e-9:
        return (room - k) / room
    if x < 0.0:
        return (math.exp(k * x) - math.exp(room * x)) / (1.0 - math.exp(room * x))
    return (1.0 - math.exp((k - room) * x)) / (1.0 - math.exp(-room * x))


_ROOM_TABLE = 2048  # rooms up to this keep ``_erlang_mix_tail``'s P(J >= k) and lgamma(k + 1) for the root find
_ROOM_SCRATCH = 3 * _ROOM_TABLE  # (the third part: ``_room_weights``' cumulative weights A(k))


@njit(cache=True, error_model="numpy")
def _erlang_mix_tail(x: float, theta: float, lr: float, room: int, scratch) -> float:
    """P(W > x) for W = Erlang(J + 1, theta), J the truncated geometric law of ``_geometric_above``: the
    probability that fewer than J + 1 completions of a Poisson(theta) stream come by x,
    sum_k Poisson(k; theta x) P(J >= k).

    ``scratch`` (``_ROOM_SCRATCH`` doubles, set to -1 by the caller; used for rooms up to ``_ROOM_TABLE``) keeps
    P(J >= k) at [k] and lgamma(k + 1) at [``_ROOM_TABLE`` + k] once computed, for the root find's next
    evaluations with the same law: the same values from the same calls, so the same bits, with no exp per term
    (both are >= 0, so -1 marks one not yet computed). Divisors: lam > 0 (x > 0 and theta > 0), the room's sums."""
    if x <= 0.0:
        return 1.0
    lam = theta * x
    mode = min(int(lam), room - 1)
    kept = room <= _ROOM_TABLE
    if kept:
        lg = scratch[_ROOM_TABLE + mode]
        if lg < 0.0:
            lg = math.lgamma(mode + 1.0)
            scratch[_ROOM_TABLE + mode] = lg
    else:
        lg = math.lgamma(mode + 1.0)
    log_mode = -lam + mode * math.log(lam) - lg
    total = 0.0
    at_mode = math.exp(log_mode)
    pmf = at_mode
    k = mode
    while k >= 0 and pmf > 1e-13:  # down from the mode (the terms fall off on both sides)
        if kept:
            above = scratch[k]
            if above < 0.0:
                above = _geometric_above(k, lr, room)
                scratch[k] = above
        else:
            above = _geometric_above(k, lr, room)
        total += pmf * above
        pmf *= k / lam
        k -= 1
    pmf = at_mode * lam / (mode + 1.0)
    k = mode + 1
    while k < room and pmf > 1e-13:
        if kept:
            above = scratch[k]
            if above < 0.0:
                above = _geometric_above(k, lr, room)
                scratch[k] = above
        else:
            above = _geometric_above(k, lr, room)
        total += pmf * above
        k += 1
        pmf *= lam / k
    return min(total, 1.0)


_ROOM_WEIGHT_MAX = 20.0  # the closed form's weights P(J = j) (theta / delta)^(j + 1) up to e^20 (else quadrature)


@njit(cache=True)
def _room_weights(x: float, room: int, lr: float, scratch) -> bool:
    """``_room_exp_part``'s cumulative weights A(k) = sum_{j < k} P(J = j) r^(j + 1) (r = e^``lr``, J the truncated
    geometric law of ``_geometric_above``) at scratch[2 ``_ROOM_TABLE`` + k], k = 1 .. room (A(0) = 0). Returns
    False (nothing usable) where a weight exceeds e^``_ROOM_WEIGHT_MAX`` (then the sum cancels too much: the
    caller keeps the quadrature)."""
    if abs(x) * room < 1e-9:
        log_c = -math.log(room)
        shift = 0.0
    elif x < 0.0:  # P(J = j) = e^(j x) (1 - e^x) / (1 - e^(room x))
        log_c = math.log(-math.expm1(x)) - math.log(-math.expm1(room * x))
        shift = 0.0
    else:  # mirrored, P(J = j) = e^((j - room + 1) x) (1 - e^-x) / (1 - e^(-room x))
        log_c = math.log(-math.expm1(-x)) - math.log(-math.expm1(-room * x))
        shift = -(room - 1.0) * x
    base = 2 * _ROOM_TABLE
    total = 0.0
    scratch[base] = 0.0
    for j in range(room):
        log_w = j * (x + lr) + lr + log_c + shift
        if log_w > _ROOM_WEIGHT_MAX:
            return False
        total += math.exp(log_w)
        scratch[base + j + 1] = total
    return True


@njit(cache=True, error_model="numpy")
def _room_exp_part(y: float, theta: float, rate: float, room: int, scratch) -> float:
    """P(E + W > y) - P(W > y) for E exponential at ``rate`` and W = Erlang(J + 1, theta) (``_erlang_mix_tail``),
    theta > rate, in closed form: integrating the Erlang density against P(E > y - w),

        sum_j P(J = j) e^(-rate y) (theta / delta)^(j + 1) P(Poisson(delta y) >= j + 1),  delta = theta - rate,

    = e^(-rate y) sum_k Poisson(k; delta y) A(min(k, room)) with ``_room_weights``' A (in ``scratch``), summed from
    the mode outwards until the terms fall below 1e-17 of the sum (all terms are positive). Divisors: lam > 0."""
    lam = (theta - rate) * y
    if lam <= 0.0:
        return 0.0
    base = 2 * _ROOM_TABLE
    mode = int(lam)
    log_mode = -lam + mode * math.log(lam) - math.lgamma(mode + 1.0) - rate * y
    at_mode = math.exp(log_mode)
    total = 0.0
    pmf = at_mode
    k = mode
    while k >= 1:
        term = pmf * scratch[base + min(k, room)]
        total += term
        if term <= 1e-17 * total:
            break
        pmf *= k / lam
        k -= 1
    pmf = at_mode * lam / (mode + 1.0)
    k = mode + 1
    while True:
        term = pmf * scratch[base + min(k, room)]
        total += term
        if term <= 1e-17 * total or pmf <= 0.0:
            break
        k += 1
        pmf *= lam / k
    return total


_ROOM_LAW = 0  # the wait of a request that waits: ``room_wait_p95``'s Erlang mixture over a truncated geometric
_RBM_LAW = 1  # ``transient_wait_p95``'s reflected Brownian motion from empty, below the room
_NORMAL_LAW = 2  # ``window_wait_p95``'s level within a step, normal and cut at 0
_ROOM_CLOSED_LAW = 3  # ``_ROOM_LAW`` with the service's exponential part in closed form (``_room_exp_part``)


@njit(cache=True)
def _wait_tail(w, law, theta, k_room, x1, x2, x3, x4, x5, scratch):
    """P(W > w) of a request that waits, under ``law``, with its parameters ``x1`` .. ``x5``:

    - ``_ROOM_LAW``: ``_erlang_mix_tail`` with the geometric ratio ``x1`` on ``k_room`` places;
    - ``_RBM_LAW``: R / theta, R the reflected motion at age ``x2`` (drift ``x3``, variance ``x4``) below the room
      ``x1``, ``x5`` its mass at or above the room;
    - ``_NORMAL_LAW``: max(N(``x1``, ``x2``^2), 0) / theta."""
    if law == _ROOM_LAW:
        return _erlang_mix_tail(w, theta, x1, k_room, scratch)
    if law == _NORMAL_LAW:
        if w < 0.0:
            return 1.0
        return 0.5 * math.erfc((w * theta - x1) / (x2 * math.sqrt(2.0)))
    x = w * theta
    if x >= x1:
        return 0.0
    return max(_rbm_survival(x, x2, x3, x4) - x5, 0.0) / (1.0 - x5)


@njit(cache=True)
def _response_tail(t, const, e, p, law, theta, k_room, x1, x2, x3, x4, x5, scratch):
    """P(response > t) for a service of constant ``const`` plus an exponential of mean ``e`` (``service_shape``)
    and a wait that is 0 with probability 1 - ``p`` and ``_wait_tail``'s otherwise: the sum's tail integrated over
    the exponential (12-point Gauss-Legendre)."""
    y = t - const
    if y < 0.0:
        return (1.0 - p) + p
    if law == _ROOM_CLOSED_LAW:  # (e > 0 and theta > 1 / e: ``room_wait_p95``)
        if y <= 0.0:
            return 1.0
        served = math.exp(-y / e)
        waited = _erlang_mix_tail(y, theta, x1, k_room, scratch) + _room_exp_part(y, theta, 1.0 / e, k_room, scratch)
        return (1.0 - p) * served + p * min(waited, 1.0)
    if e <= 0.0:
        served = 0.0
        waited = _wait_tail(y, law, theta, k_room, x1, x2, x3, x4, x5, scratch)
    else:
        served = math.exp(-y / e) if y > 0.0 else 1.0
        waited = served  # P(E > y), plus the part where E <= y and W > y - E
        if y > 0.0:
            half = 0.5 * y
            for n in range(12):
                u = half * (_GL_X[n] + 1.0)
                w_tail = _wait_tail(y - u, law, theta, k_room, x1, x2, x3, x4, x5, scratch)
                waited += half * _GL_W[n] * math.exp(-u / e) / e * w_tail
    return (1.0 - p) * served + p * waited


@njit(cache=True)
def _response_p95_between(hi, const, e, p, law, theta, k_room, x1, x2, x3, x4, x5, scratch):
    """The 95th percentile of ``_response_tail``'s law, found by regula falsi (Illinois) between 0 and ``hi``
    (doubled until the tail there is below 5 %)."""
    return _response_quantile_between(0.05, hi, const, e, p, law, theta, k_room, x1, x2, x3, x4, x5, scratch)


@njit(cache=True)
def _response_quantile_between(tail, hi, const, e, p, law, theta, k_room, x1, x2, x3, x4, x5, scratch):
    """The quantile of ``_response_tail``'s law with ``tail`` of it above, as ``_response_p95_between``."""
    lo = 0.0
    f_lo = _response_tail(lo, const, e, p, law, theta, k_room, x1, x2, x3, x4, x5, scratch) - tail
    f_hi = _response_tail(hi, const, e, p, law, theta, k_room, x1, x2, x3, x4, x5, scratch) - tail
    while f_hi > 0.0:
        hi *= 2.0
        f_hi = _response_tail(hi, const, e, p, law, theta, k_room, x1, x2, x3, x4, x5, scratch) - tail
    r = hi
    side = 0
    for _ in range(40):
        r = (lo * f_hi - hi * f_lo) / (f_hi - f_lo)
        f = _response_tail(r, const, e, p, law, theta, k_room, x1, x2, x3, x4, x5, scratch) - tail
        if abs(f) < 1e-6 or hi - lo < 1e-7 * hi:
            break
        if f > 0.0:
            lo, f_lo = r, f
            if side == 1:
                f_hi *= 0.5
            side = 1
        else:
            hi, f_hi = r, f
            if side == -1:
                f_lo *= 0.5
            side = -1
    return r


@njit(cache=True)
def room_wait_p95(service_s: float, service_cv: float, mean_wait: float, p_wait: float, servers: int, room: float):
    """p95 of response time = service + wait when the waiting room of ``room`` places is what bounds the wait.

    A request that waits has j = 0 .. room - 1 requests ahead in the room and waits for j + 1 completions of the
    ``servers`` busy slots, Erlang(j + 1, servers / s) (as in M/M/c/K: Gross & Harris, *Fundamentals of Queueing
    Theory*). Near and above capacity the number waiting is a reflected random walk on the room, whose stationary
    law in heavy traffic is a truncated exponential (the reflected Brownian motion on [0, K]: J. M. Harrison,
    *Brownian Motion and Stochastic Flow Systems*, 1985): j is taken geometric on 0 .. room - 1 with its ratio
    fitted to the mean wait of the requests that wait. With an unbounded room this law is geometric and the wait
    exponential, which is :func:`response_p95`, returned when the room's cut holds under 1e-6 of the law. The
    service is ``service_shape``'s constant plus exponential; the tail of the sum is in closed form where the
    completions are faster than the service's exponential part (theta e > 1, the Erlang-exponential convolution:
    ``_room_exp_part``; S. M. Ross, *Introduction to Probability Models*, the hypoexponential law), otherwise
    integrated over the exponential (12-point Gauss-Legendre), and the quantile found by regula falsi. The closed
    form is exact where the quadrature errs by up to 1e-3 of the p95 (cv >= 2, c = 32, rooms of 5-20).
    """
    k_room = int(room)
    if mean_wait <= 0.0 or p_wait <= 0.0 or k_room < 1 or servers < 1:
        return response_p95(service_s, service_cv, mean_wait, p_wait)
    p = min(p_wait, 1.0)
    theta = servers / service_s
    mean_ahead = mean_wait / p * theta - 1.0
    if mean_ahead <= 0.0:
        return response_p95(service_s, service_cv, mean_wait, p_wait)
    if mean_ahead >= 0.9 * (k_room - 1.0):
        # a nearly full room (well above capacity): the wait is about a full room's, whose spread is the services
        # ahead (the caller's full-room cap, ``fluid_p95``); the mixture would cost ~30 us a step for the same
        return response_p95(service_s, service_cv, mean_wait, p_wait)
    x = _geometric_ratio(mean_ahead, k_room)
    if x < 0.0 and k_room * x < math.log(1e-6):
        return response_p95(service_s, service_cv, mean_wait, p_wait)
    const, e = service_shape(service_s, service_cv)
    # the wait is at most a full room's Erlang(room, theta), so its p95 is below that law's mean plus five of its
    # standard deviations, plus the service's p95
    hi = (k_room + 5.0 * math.sqrt(k_room)) / theta + response_p95(service_s, service_cv, 0.0, 0.0)
    scratch = _stack_doubles(_ROOM_SCRATCH)  # (the mixture's terms, kept across the root find's evaluations)
    law = _ROOM_LAW
    if k_room <= _ROOM_TABLE:
        for k in range(k_room):
            scratch[k] = -1.0
            scratch[_ROOM_TABLE + k] = -1.0
        # the service's exponential part in closed form where the waiting requests' completions are the faster
        # (theta > 1 / e; otherwise, or where the weights grow too large, the quadrature)
        if e > 0.0 and theta * e > 1.0 and _room_weights(x, k_room, math.log(theta / (theta - 1.0 / e)), scratch):
            law = _ROOM_CLOSED_LAW
    return _response_p95_between(hi, const, e, p, law, theta, k_room, x, 0.0, 0.0, 0.0, 0.0, scratch)


@njit(cache=True)
def _rbm_survival(x: float, t: float, drift: float, var: float) -> float:
    """P(R(t) > x) for the reflected Brownian motion R started at 0 with ``drift`` and variance ``var`` per s:
    R(t) has the law of the running maximum of the free motion, Phi-bar((x - m t) / sd) + exp(2 m x / v)
    Phi-bar((x + m t) / sd), sd = sqrt(v t) (Harrison 1985, section 1.8; Abate & Whitt 1987)."""
    sd = math.sqrt(var * t) * math.sqrt(2.0)
    a = 0.5 * math.erfc((x - drift * t) / sd)
    tail = 0.5 * math.erfc((x + drift * t) / sd)
    if tail <= 0.0:
        return a
    return min(a + math.exp(min(2.0 * drift * x / var + math.log(tail), 0.0)), 1.0)


@njit(cache=True)
def _rbm_room_mean(t: float, drift: float, var: float, room: float) -> float:
    """E[R(t) | R(t) < room] for ``_rbm_survival``'s law (two 12-point Gauss-Legendre panels over the part of
    [0, room] that holds all but 1e-15 of it)."""
    s_room = _rbm_survival(room, t, drift, var)
    if s_room >= 1.0 - 1e-12:
        return room
    top = min(room, max(drift * t, 0.0) + 8.0 * math.sqrt(var * t))
    half = 0.25 * top
    total = 0.0
    for panel in range(2):
        mid = half * (2.0 * panel + 1.0)
        for n in range(12):
            total += _GL_W[n] * (_rbm_survival(mid + half * _GL_X[n], t, drift, var) - s_room)
    return total * half / (1.0 - s_room)


@njit(cache=True)
def transient_wait_p95(
    service_s: float, service_cv: float, mean_wait: float, servers: int, room: float, drift: float, var: float
) -> float:
    """p95 of response time = service + wait when the number waiting is a reflected random walk on the room that
    started empty and has not reached its stationary law (``room_wait_p95``) within the step.

    In heavy traffic the number in queue is the reflected Brownian motion with the walk's ``drift`` (arrival rate
    less service rate, requests/s) and variance ``var`` (lambda ca^2 + c mu cs^2 per s: the GI/G/c diffusion;
    Whitt, *Stochastic-Process Limits*, 2002, ch. 9); started empty its law at time t is ``_rbm_survival``'s. Its
    age t is fitted so that its mean below the room (the admitted requests') is the flow's mean number ahead,
    mean_wait c / s, and a request behind R waits R s / c. The service is ``service_shape``'s constant plus
    exponential, integrated over (12-point Gauss-Legendre), and the quantile found by regula falsi. Returns -1
    where no age fits (a mean at or beyond the stationary law's, or a queue that grows above capacity): the
    caller then takes the stationary law (``room_wait_p95``).
    """
    theta = servers / service_s
    target = mean_wait * theta
    if target <= 0.0 or room < 1.0 or var <= 0.0 or target >= 0.9 * (room - 1.0):
        # (a nearly full room, well above capacity: its wait is a full room's, whose spread is the services ahead,
        # which this continuous law leaves out: ``room_wait_p95`` and the caller's full-room cap)
        return -1.0
    t = _rbm_fit_age(target, drift, var, room)
    if t < 0.0:
        return -1.0
    s_room = _rbm_survival(room, t, drift, var)
    const, e = service_shape(service_s, service_cv)
    hi = room / theta + response_p95(service_s, service_cv, 0.0, 0.0)
    return _response_p95_between(hi, const, e, 1.0, _RBM_LAW, theta, 0, room, t, drift, var, s_room, _stack_doubles(1))


@njit(cache=True)
def _rbm_fit_age(target: float, drift: float, var: float, room: float) -> float:
    """The age t at which ``_rbm_room_mean`` is ``target`` (bisected on log t), or -1 if none is (the mean at
    many times the room's crossing time is still below it)."""
    # ages from a fraction of a request's diffusion time to many times the room's (the walk crosses the room in
    # about room^2 / var s): the admitted mean grows with the age from 0
    lo = math.log(1e-4 / var)
    hi = math.log(100.0 * room * room / var + 100.0 * room / max(abs(drift), 1e-9))
    if _rbm_room_mean(math.exp(hi), drift, var, room) <= target:
        return -1.0
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        if _rbm_room_mean(math.exp(mid), drift, var, room) < target:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-4:
            break
    return math.exp(0.5 * (lo + hi))


@njit(cache=True)
def _rbm_room_variance(t: float, drift: float, var: float, room: float, mean: float) -> float:
    """Var[R(t) | R(t) < room] for ``_rbm_survival``'s law, ``mean`` its ``_rbm_room_mean``: E[R^2 | R < room] =
    integral of 2 x (P(R > x) - P(R > room)) over [0, room] / P(R < room), on ``_rbm_room_mean``'s panels."""
    s_room = _rbm_survival(room, t, drift, var)
    if s_room >= 1.0 - 1e-12:
        return 0.0
    top = min(room, max(drift * t, 0.0) + 8.0 * math.sqrt(var * t))
    half = 0.25 * top
    total = 0.0
    for panel in range(2):
        mid = half * (2.0 * panel + 1.0)
        for n in range(12):
            x = mid + half * _GL_X[n]
            total += _GL_W[n] * 2.0 * x * (_rbm_survival(x, t, drift, var) - s_room)
    return max(total * half / (1.0 - s_room) - mean * mean, 0.0)


@njit(cache=True)
def members_tail(members: float, spread_var: float, within_var: float) -> float:
    """The tail share at which the law of one member's number waiting is read for the 95th percentile of the step's
    pooled completions when ``members`` queues each follow that law independently (round robin near capacity).

    The pooled completions of n members that each hold a near-point mass (their levels far apart against how far
    each moves within the step) have as 95th percentile the r-th lowest member's level, r = ceil(0.95 n), whose
    mean is about the law's quantile at (r - 3/8) / (n + 1/4) (G. Blom, *Statistical Estimates and Transformed
    Beta-Variables*, 1958): for 8 members the top one, at 0.924 rather than 0.95. Members that each move over the
    law within the step pool to the law itself (0.95). The two are blended by the share of the law's variance
    ``spread_var`` that is between members: 1 - ``within_var`` / ``spread_var``, the within-step variance of a walk
    about its step mean being var h / 6 (docs/model.md 6.4.3)."""
    if members < 1.0 or spread_var <= 0.0:
        return 0.05
    n = int(members + 0.5)
    r = math.ceil(0.95 * n - 1e-9)
    blom = (r - 0.375) / (n + 0.25)
    share = min(max(1.0 - within_var / spread_var, 0.0), 1.0)
    return 0.05 + share * (1.0 - blom - 0.05)


@njit(cache=True)
def members_wait_p95(
    service_s: float,
    service_cv: float,
    mean_wait: float,
    servers: int,
    room: float,
    drift: float,
    var: float,
    members: float,
    window: float,
) -> float:
    """``transient_wait_p95`` for the step's pooled completions of ``members`` independent queues (round robin's
    members), each following the walk's law from empty: that law's quantile at ``members_tail``'s tail share, the
    within-step variance var ``window`` / 6. Returns -1 where ``transient_wait_p95`` does."""
    theta = servers / service_s
    target = mean_wait * theta
    if target <= 0.0 or room < 1.0 or var <= 0.0 or target >= 0.9 * (room - 1.0):
        return -1.0
    t = _rbm_fit_age(target, drift, var, room)
    if t < 0.0:
        return -1.0
    spread = _rbm_room_variance(t, drift, var, room, _rbm_room_mean(t, drift, var, room))
    tail = members_tail(members, spread, var * window / 6.0)
    s_room = _rbm_survival(room, t, drift, var)
    const, e = service_shape(service_s, service_cv)
    hi = room / theta + response_p95(service_s, service_cv, 0.0, 0.0)
    return _response_quantile_between(
        tail, hi, const, e, 1.0, _RBM_LAW, theta, 0, room, t, drift, var, s_room, _stack_doubles(1)
    )


@njit(cache=True)
def rbm_limit(drift: float, var: float, room: float) -> float:
    """The mean of the reflected Brownian motion on [0, ``room``] (reflected at both ends) in its steady state:
    the exponential law at rate 2 drift / var truncated to the room (Harrison 1985, section 5.6), uniform at
    zero drift. It is also the limit of ``_rbm_room_mean`` as the age grows below capacity (drift <= 0)."""
    if room <= 0.0:
        return 0.0
    a = 2.0 * drift / var
    x = a * room
    if abs(x) < 1e-6:
        return 0.5 * room * (1.0 + x / 6.0)
    if x > 0.0:  # mirrored: j -> room - j turns the rate a into -a
        return room - rbm_limit(-drift, var, room)
    return -1.0 / a - room / math.expm1(-x)


@njit(cache=True)
def rbm_age(count: float, drift: float, var: float, room: float) -> float:
    """The age t at which the reflected Brownian motion from empty (``_rbm_survival``) has ``count`` as its mean
    below ``room`` (``_rbm_room_mean``): 0 for an empty queue, inf at or beyond the limit. Regula
    falsi (Illinois) in log t from the driftless motion's t = pi count^2 / (2 var) (its mean sqrt(2 var t / pi)). The
    limit is ``rbm_limit``'s below capacity and the room above it (the motion below the room, not reflected there,
    crowds against it)."""
    if count <= 0.0 or var <= 0.0:
        return 0.0
    if count >= 0.999 * (room if drift > 0.0 else rbm_limit(drift, var, room)):
        return math.inf
    guess = math.log(0.5 * math.pi * count * count / var)
    lo = guess - 1.0
    f_lo = _rbm_room_mean(math.exp(lo), drift, var, room) - count
    while f_lo > 0.0:
        lo -= 2.0
        f_lo = _rbm_room_mean(math.exp(lo), drift, var, room) - count
    hi = guess + 1.0
    f_hi = _rbm_room_mean(math.exp(hi), drift, var, room) - count
    while f_hi < 0.0 and hi < guess + 40.0:
        hi += 2.0
        f_hi = _rbm_room_mean(math.exp(hi), drift, var, room) - count
    if f_hi < 0.0:
        return math.inf
    x = hi
    side = 0
    for _ in range(30):
        x = (lo * f_hi - hi * f_lo) / (f_hi - f_lo)
        f = _rbm_room_mean(math.exp(x), drift, var, room) - count
        if abs(f) < 1e-4 * count or hi - lo < 1e-5:
            break
        if f < 0.0:
            lo, f_lo = x, f
            if side == -1:
                f_hi *= 0.5
            side = -1
        else:
            hi, f_hi = x, f
            if side == 1:
                f_lo *= 0.5
            side = 1
    return math.exp(x)


@njit(cache=True)
def rbm_step_wait(count0: float, lam: float, service_s: float, servers: int, cs2: float, room: float, duration: float):
    """One step of a queue of ``servers`` slots fed at ``lam`` requests/s, whose number waiting near capacity is
    the reflected Brownian motion from empty (``_rbm_survival``; drift lambda - c mu, variance lambda + c mu cs2 per
    s: the M/G/c diffusion, Whitt, *Stochastic-Process Limits*, 2002, ch. 9; J. M. Harrison, *Brownian Motion and
    Stochastic Flow Systems*, 1985) kept below ``room`` (the admitted requests' law is the motion's below it,
    as ``transient_wait_p95``). Its age is fitted to the mean number waiting at the step start ``count0``
    (``rbm_age``), so a queue carried from a step at another rate goes on from where it was, and advanced by
    ``duration`` s. Returns (the admitted requests' mean wait over the step s: the time average, weighted by the
    share admitted, of the mean number waiting over c mu (Little), the mean number waiting at the end)."""
    theta = servers / service_s
    if theta <= 0.0 or lam <= 0.0 or duration <= 0.0:
        return 0.0, 0.0
    drift = lam - theta
    var = lam + theta * cs2
    t0 = rbm_age(count0, drift, var, room)
    if t0 == math.inf:
        q = room if drift > 0.0 else rbm_limit(drift, var, room)
        return q / theta, q
    # the mean over [t0, t0 + duration] in s = sqrt(t) (the mean grows as sqrt(t) from empty: nearly linear in s),
    # with 4-point Gauss-Legendre (exact for the driftless motion's s^2 integrand; 12 points moved the grid's
    # least outstanding cells' waits by under 0.1 %); each point weighted by dt = 2 s ds and the share admitted
    # 1 - P(R > room)
    s0 = math.sqrt(t0)
    s1 = math.sqrt(t0 + duration)
    half = 0.5 * (s1 - s0)
    num = 0.0
    den = 0.0
    for n in range(4):
        sp = s0 + half * (_GL4_X[n] + 1.0)
        t = sp * sp
        # (at least 1e-9: above capacity a room full all step admits next to nothing at every point, and the
        # admitted few then see the room's mean)
        adm = max(1.0 - _rbm_survival(room, t, drift, var), 1e-9)
        w = _GL4_W[n] * 2.0 * sp * adm
        num += w * _rbm_room_mean(t, drift, var, room)
        den += w
    q1 = _rbm_room_mean(t0 + duration, drift, var, room)
    return num / max(den, 1e-300) / theta, q1


@njit(cache=True)
def window_wait_p95(service_s: float, service_cv: float, mean_wait: float, servers: int, spread: float) -> float:
    """p95 of response time = service + wait over one step of one queue whose level moves less within the step
    than across episodes (least outstanding's pooled queue near capacity: one queue, not n independent ones).

    The step's requests meet the level the queue has in that step: its mean count m = mean_wait c / s, spread by
    the walk over the step (``spread``: the variance of a Brownian path about its time average over a window of h
    s is var h / 6) and by the services ahead of each request (an Erlang of m stages: variance m in requests). The
    number ahead is taken as normal with that variance, cut at 0, and a request behind R waits R s / c; the
    service is ``service_shape``'s constant plus exponential (12-point Gauss-Legendre), the quantile by regula
    falsi. The p95 averaged over episodes is that of the level's mean (the level enters linearly), not the
    ensemble's law across episodes (``transient_wait_p95``), which spreads the waits by how far the episodes'
    queues lie apart. docs/model.md 6.2.4."""
    theta = servers / service_s
    const, e = service_shape(service_s, service_cv)
    m = max(mean_wait, 0.0) * theta
    sd = math.sqrt(max(spread, 0.0) + m)
    if theta <= 0.0 or sd <= 0.0:
        return response_p95(service_s, service_cv, mean_wait, 1.0 if mean_wait > 0.0 else 0.0)

    hi = (m + 3.0 * sd) / theta + response_p95(service_s, service_cv, 0.0, 0.0)
    return _response_p95_between(hi, const, e, 1.0, _NORMAL_LAW, theta, 0, m, sd, 0.0, 0.0, 0.0, _stack_doubles(1))


@njit(cache=True)
def fluid_p95(longest_wait: float, service_s: float, service_cv: float, servers: int, ahead: float) -> float:
    """p95 response time of a request that waited ``longest_wait`` s in a fluid queue served by ``servers``
    slots behind ``ahead`` requests. The fluid wait is deterministic, but the time for the k requests ahead to
    leave has a spread: for exponential service it is Gamma(k, servers / s) (the M/M/c wait behind k requests;
    Gross & Harris), in general sd = cv s sqrt(k) / servers (the central limit theorem for the sum of the
    services ahead), with k = min(ahead, longest_wait * servers / s). With the request's own service S, the p95
    is a normal combination of the two spreads above their means (exact when both are normal; the service's own
    p95 for cv = 0 or nothing ahead):

        p95 = longest_wait + s + sqrt((p95(S) - s)^2 + (1.6449 cv s sqrt(k) / servers)^2)
    """
    svc95 = response_p95(service_s, service_cv, 0.0, 0.0)
    if ahead <= 0.0 or longest_wait <= 0.0:
        return longest_wait + svc95
    c = max(servers, 1)
    k = min(ahead, longest_wait * c / service_s)
    spread = 1.6448536269514722 * service_cv * service_s * math.sqrt(k) / c
    return longest_wait + service_s + math.sqrt((svc95 - service_s) ** 2 + spread * spread)


@njit(cache=True)
def waiting_latency(service_s: float, age_sum: float, backlog: int, t_end: float):
    """(mean, p95) latency of a step that served nothing: how long its ``backlog`` queued requests have waited so
    far (``age_sum`` request-s), at most the time since the episode start ``t_end``, plus a service time; (0, 0)
    with nothing queued either (the kernel's and the platform mode's latency phases)."""
    if backlog > 0:
        lat = service_s + min(age_sum / backlog, t_end)
        return lat, lat
    return 0.0, 0.0


@njit(cache=True)
def drbm_mean(t: float, drift: float, var: float, room: float) -> float:
    """The mean at time t of the reflected Brownian motion on [0, ``room``] (reflected at both ends: a full room
    turns arrivals away and the count stays at the top, where ``_rbm_room_mean`` only leaves out the motion's
    part above it) started empty, by its spectral expansion (the regulated motion's generator with Neumann
    conditions: eigenvalues var (a^2 + k_n^2) / 2, k_n = n pi / room, a = drift / var; eigenfunctions
    exp(-a x) (cos k_n x + a / k_n sin k_n x); V. Linetsky, "On the transition densities for reflected diffusions",
    Adv. Appl. Probab. 37, 2005; Harrison 1985, section 5.6 for its limit):

        E_0 R(t) = rbm_limit - sum_n exp(-var (a^2 + k_n^2) t / 2) 2 k_n^2 (1 - (-1)^n exp(a room))
                                   / (room (a^2 + k_n^2)^2).

    While the top is out of reach (P(free motion > room) < 1e-12) it is the one-sided motion's mean; where the
    drift up is steep (a room > 20: the series' terms cancel in floating point) the one-sided motion's mean
    below the room (``_rbm_room_mean``; such a room fills within a few of its own diffusion times)."""
    if t <= 0.0 or var <= 0.0:
        return 0.0
    if room <= 0.0:
        return 0.0
    a = drift / var
    if _rbm_survival(room, t, drift, var) < 1e-12 or a * room > 20.0:
        return _rbm_room_mean(t, drift, var, room)
    total = 0.0
    up = math.exp(a * room)
    for n in range(1, 100000):
        k = n * math.pi / room
        e = var * (a * a + k * k) * 0.5 * t
        if e - max(a * room, 0.0) > 40.0:
            break
        sign = 1.0 if n % 2 == 0 else -1.0
        d = a * a + k * k
        total += math.exp(-e) * 2.0 * k * k * (1.0 - sign * up) / (room * d * d)
    return min(max(rbm_limit(drift, var, room) - total, 0.0), room)


@njit(cache=True)
def drbm_age(count: float, drift: float, var: float, room: float) -> float:
    """The age t at which the two-sided motion from empty (``drbm_mean``) has the mean ``count``: 0 for an empty
    queue, inf at or beyond its limit (``rbm_limit``). Bisection in log t from the driftless motion's
    t = pi count^2 / (2 var)."""
    if count <= 0.0 or var <= 0.0:
        return 0.0
    if count >= 0.999 * rbm_limit(drift, var, room):
        return math.inf
    guess = math.log(0.5 * math.pi * count * count / var)
    lo = guess - 1.0
    while drbm_mean(math.exp(lo), drift, var, room) > count:
        lo -= 2.0
    hi = guess + 1.0
    while drbm_mean(math.exp(hi), drift, var, room) < count:
        hi += 2.0
        if hi > guess + 40.0:
            return math.inf
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if drbm_mean(math.exp(mid), drift, var, room) < count:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-7:
            break
    return math.exp(0.5 * (lo + hi))


@njit(cache=True)
def drbm_step_wait(count0: float, lam: float, service_s: float, servers: int, cs2: float, room: float, duration: float):
    """``rbm_step_wait`` with the motion reflected at the room's top too (``drbm_mean``, ``drbm_age``): the
    pooled queue of least outstanding near capacity, whose room of n q is reached within an episode above
    capacity. Returns (the mean wait over the step s: the time average of the mean number waiting over c mu, by
    Little; the mean number waiting at the end)."""
    theta = servers / service_s
    if theta <= 0.0 or lam <= 0.0 or duration <= 0.0:
        return 0.0, 0.0
    drift = lam - theta
    var = lam + theta * cs2
    t0 = drbm_age(count0, drift, var, room)
    if t0 == math.inf:
        q = rbm_limit(drift, var, room)
        return q / theta, q
    s0 = math.sqrt(t0)
    s1 = math.sqrt(t0 + duration)
    half = 0.5 * (s1 - s0)
    num = 0.0
    den = 0.0
    for n in range(4):
        sp = s0 + half * (_GL4_X[n] + 1.0)
        w = _GL4_W[n] * 2.0 * sp
        num += w * drbm_mean(sp * sp, drift, var, room)
        den += w
    q1 = drbm_mean(t0 + duration, drift, var, room)
    return num / max(den, 1e-300) / theta, q1


@njit(cache=True)
def drbm_overflow(t0: float, t1: float, drift: float, var: float, room: float) -> float:
    """What the two-sided motion on [0, ``room``] started empty pushes back at its top over [t0, t1]: the expected
    increase of its upper regulator (local time), the requests a full room turns away. Its rate is var / 2 times
    the transition density at the top, p(t, 0, room) (the motion's generator has Neumann conditions; density by the
    eigenfunctions of ``drbm_mean``, Linetsky 2005):

        p(t, 0, room) = 2 a / (1 - exp(-2 a room))
                        + sum_n (-1)^n exp(a room) 2 k_n^2 / (room (a^2 + k_n^2)) exp(-var (a^2 + k_n^2) t / 2),

    a = drift / var, k_n = n pi / room (1 / room + 2 / room sum_n (-1)^n exp(-var k_n^2 t / 2) at zero drift), whose
    time integral is term by term. -1 where the drift up is steep (a room > 20: the terms cancel in floating point,
    as in ``drbm_mean``)."""
    if t1 <= t0 or var <= 0.0 or room <= 0.0:
        return 0.0
    a = drift / var
    if a * room > 20.0:
        return -1.0
    if _rbm_survival(room, t1, drift, var) < 1e-12:
        return 0.0  # the top is out of reach within [t0, t1]
    x = -2.0 * a * room
    stat = 1.0 / room if abs(x) < 1e-9 else 2.0 * a / -math.expm1(x)
    total = stat * (t1 - t0)
    up = math.exp(a * room)
    for n in range(1, 4000):
        k = n * math.pi / room
        d = a * a + k * k
        lam_n = 0.5 * var * d
        term = up * 2.0 * k * k / (room * d) * (math.exp(-lam_n * t0) - math.exp(-lam_n * t1)) / lam_n
        total += term if n % 2 == 0 else -term
        if lam_n * t0 > 40.0 + max(a * room, 0.0):
            break
    return 0.5 * var * max(total, 0.0)


@njit(cache=True)
def drbm_step_blocking(
    count0: float, lam: float, service_s: float, servers: int, ca2: float, cs2: float, room: float, duration: float
) -> float:
    """The share of a step's arrivals that a queue of ``servers`` slots fed at ``lam`` requests/s turns away from its
    waiting room of ``room`` places near capacity, its number waiting the two-sided reflected motion (drift
    lambda - c mu, variance lambda ca2 + c mu cs2 per s: the GI/G/c diffusion, Whitt 2002, ch. 9; Harrison 1985)
    whose age is fitted to the number waiting at the step start ``count0`` (``drbm_age``): ``drbm_overflow`` over
    the step divided by its arrivals. -1 where ``drbm_overflow`` is (a steep drift up) or the count is at the
    motion's limit (the caller keeps its own blocking)."""
    theta = servers / service_s
    if theta <= 0.0 or lam <= 0.0 or duration <= 0.0 or room <= 0.0:
        return 0.0
    drift = lam - theta
    var = lam * ca2 + theta * cs2
    if drift / var * room > 20.0:
        return -1.0
    t0 = drbm_age(count0, drift, var, room)
    if t0 == math.inf:
        return -1.0
    over = drbm_overflow(t0, t0 + duration, drift, var, room)
    return -1.0 if over < 0.0 else min(over / (lam * duration), 1.0)
