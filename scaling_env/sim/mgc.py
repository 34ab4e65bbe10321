"""The waiting room of a GI/G/N/(N+K) queue seen through the M/M/N one (``numba.njit``; no Python objects).

The fast model's GI/G/N mean wait is the M/M/N wait times a variability factor z (Whitt's phi (ca2 + cs2) / 2,
or Pollaczek-Khinchine's (1 + cs2) / 2 for M/G/1; ``queueing.stationary_wait``). Before this module the room of K
places was applied to the M/M/N queue as it is, and the cut wait then multiplied by z: with heavy-tailed service
(lognormal, cv 2-3) near capacity that gave waits longer than a full room allows (1.57 s against the exact
0.41 s at N = 10, K = 100, cv 3, utilisation 0.98) and almost no blocking (0.28 % against 2.28 %).

The heavy-traffic (diffusion) picture of the queue (J. M. Harrison, *Brownian Motion and Stochastic Flow
Systems*, 1985, ch. 5; for many servers and a finite room, W. Whitt, "A diffusion approximation for the
G/GI/n/m queue", Operations Research 52(6), 2004): the number waiting is a reflected Brownian motion whose
variance per unit of time is z times that of the M/M/N queue at the same drift, so its stationary law is the
M/M/N one stretched z-fold (exponential with z times the mean). A room of K places in the GI/G/N queue is then a
room of K / z places of the M/M/N queue, stretched: the mean wait is z W(M/M/N/(N + K/z)) and the blocking
probability and P(wait) those of M/M/N/(N + K/z) (K/z need not be whole: ``stationary_wait`` takes the room as
a real number). Without a room limit (K -> inf) this is the previous z W(M/M/N) exactly; with z = 1 nothing
changes.

Checked against an exact event simulation of M/G/10/110 with lognormal service (mean 0.1 s; 4 x 6e6 arrivals
per cell, ``perf/mgc_sim.py``): at utilisation 0.98 the wait is within 2.3 % at cv 1.5, 2 and 3 (was +41 %,
+104 %, +284 %), the blocking 0.72 %, 1.37 %, 3.11 % against 0.71 %, 1.24 %, 2.28 %.

**The lognormal's own M/G/N wait** (``lognormal_wait_factor``; cv > 1, where the request backend draws a
lognormal). Far from capacity two moments do not determine the M/G/N wait of a heavy-tailed law (V. Gupta,
J. Dai, M. Harchol-Balter, B. Zwart, "On the inapproximability of M/G/K: why two moments of job size distribution
are not enough", Queueing Systems 64, 2010): Whitt's two-moment factor was +28 % to +107 % above the exact wait at
N = 10-20, cv 1.5-3, utilisation 0.3-0.5, +38 % at N = 10, cv 3, 0.7. The factor z = W / W(M/M/N) is taken
between its two limits, both known for the lognormal:

- light traffic (D. Y. Burman, D. R. Smith, "A light-traffic theorem for multi-server queues", Mathematics of
  Operations Research 8(1), 1983): a request waits only behind N busy slots, each with a stationary-excess
  remainder Se, for the least of them, so z -> L = N integral_0^inf P(Se > t)^N dt / s (1 for exponential
  service; (1 + cv^2) / 2 at N = 1; -> 1 as N grows, since the remainders' density at 0 is 1 / s whatever the
  law); the lognormal's P(Se > t) = E[(S - t)+] / s is closed-form, and L is tabulated at import
  (``LT_LOG``: every N up to 8, then about 25 % apart up to 1024; cv 1-10; bilinear in ln N and cv);
- heavy traffic (J. Köllerström, "Heavy traffic theory for queues with several servers. I", J. Appl. Prob. 11,
  1974): z -> H = (1 + cv^2) / 2;

    z = L + (H - L) exp(-kappa beta),   beta = (1 - rho) sqrt(N),   kappa = K0 + K_H ln H + K_BETA beta

(beta the Halfin-Whitt distance from capacity), the weight's three coefficients fitted to the exact simulation
(``perf/fit_mgc.py``: N = 1-100, cv 1.5-3, utilisation 0.3-0.95, 4 seeds x 3-4e6 arrivals a cell, no room limit):
rms error 2.6 %, at most 10.9 % over 100 cells (N = 20, cv 3, 0.5: a wait of 0.2 ms), against the two-moment
factor's rms 21 % (up to +102 %). N = 1 stays Pollaczek-Khinchine's exact H. The room is then K / z places as
above (z is the line's stretch). cv < 1 keeps Whitt's factor, cv = 1 is M/M/N itself.

**Round robin's E_k/G/N wait** (``erlang_lognormal_factor``; every k-th request of a Poisson stream, Erlang-k
gaps, k the instances). The model is Whitt's E_k/G/N over E_k/M/N factor (W. Whitt, "Approximations for the
GI/G/m queue", Production and Operations Management 2(2), 1993) times the lognormal correction of the Poisson
queue above (``queueing.lognormal_correction``). Against an exact E_8/G/N simulation (``perf/fit_mgc.py --phases
8 --scale 0.5``: N = 2-50, cv 1.5-3, utilisation 0.7-0.95, 4 seeds x 1.5e6 arrivals) that overstated the wait,
the more so the more slots, the farther from capacity and the smaller cv (+18 % at N = 10, cv 1.5, 0.7; +22 % /
+36 % at N = 20 / 50, cv 1.5, 0.8; rms 10.8 % over 40 cells): with smooth arrivals a request rarely finds all N
slots busy, and the Poisson light-traffic pull of the correction (towards L) is too weak for them. Both ends keep
the correction: at utilisation 1 the heavy-traffic wait depends on two moments only (Köllerström 1974, above),
and with k = 1 it is the Poisson queue. The multiplier in between is an empirical fit, not a derivation,

    exp(-(1 - 1/k) E_A (1 - rho)^E_P (N - 1)^E_Q H^-E_R),   H = (1 + cv^2) / 2,

1 at N = 1, k = 1 or utilisation 1; 1 - 1/k is the arrival variability 1 - ca2 that Erlang-k gaps remove. Fitted
by ``perf/fit_mgc.py --phases 8 --fit`` (least squares of the log error over the noise, at least 2 %): rms 2.4 %,
at most 7.8 % over the 40 cells (was 10.8 % / 36 %). Utilisation below E_RHO_MIN = 0.7 and N above
E_SERVERS_MAX = 50 are outside the fit and held at those bounds (below 0.7 the exact wait turns towards light
traffic, where the model is low at cv 2-3: -26 % at N = 10, cv 2, 0.5, a wait of 0.2 ms). The weight 1 - 1/k is
checked, not fitted, at k = 2, 4, 16 (``--phases k --scale 0.5``; cells of noise <= 4 %): rms 8.7 -> 5.1 %,
10.0 -> 2.5 %, 9.0 -> 3.0 % (max 23 %, 5.0 %, 7.8 %; k = 2's worst, N = 50, cv 2, 0.7 at -23 %, is light
traffic). Round robin over 8 instances in the request backend, c = 10, cv 1.5, utilisation 0.75: 8.37 -> 7.36 ms
against its 7.25 ms.

**The blocking under cv > 1** (``blocking_stretch``; docs/model.md 6.2.5). The room as K / z places overstates
the blocking of a lognormal queue (3.0 % against the exact 2.2 % at N = 10, K = 100, cv 3, utilisation 0.98;
10.4 % against 6.5 % at K = 20): the diffusion's variance c mu cs2 per unit of time is the services' count
variance in the long run, Var N(t) ~ cs2 t / s (W. L. Smith, "Renewal theory and its ramifications", J. Royal
Stat. Soc. B 20, 1958), which a heavy-tailed law approaches slowly (the next term involves E[S^3] = s^3 (1 +
cv^2)^3). Over the time in which a room fills and empties the services' variance is the smaller Var N_e(t)
of the stationary renewal process of the service law (``VARIANCE_RATIO``: Var N_e(t) / (cs2 t / s), tabulated at
import from its renewal function, ``_variance_ratio_table``); with the time scale t = T_A (K^2 / N)^T_P mean
services (K^2 / N: Harrison's K^2 / sigma^2 with sigma^2 ~ N mu, the room's fluctuation time; T_A, T_P fitted
by ``perf/fit_room_variance.py`` to an exact event simulation of M/G/N/(N+K) over N = 1-30, K = 20-300, cv 2
and 3, utilisation 0.98, least squares of the log blocking: rms 3.5 %, every cell within 5.4 % but K = 300, cv 2,
-11 %), the blocking is that of the room of K / z_b places (Cox, *Renewal Theory*, 1962, for Var N_e),
z_b = (ca2 + cs2 r) / 2, r = VARIANCE_RATIO(cv, t): at N = 10, K = 100, utilisation 0.98-1.02, within 6 % of the
exact episode drops at cv 1.5, 2, 3 for Poisson and Erlang-8 arrivals alike (``kernel.queue_segment``). The
time scale is a fit, not a derivation; only the lognormal's table exists (the request backend's law for cv > 1).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

# the lognormal M/G/N wait's interpolation weight exp(-kappa beta), kappa = K0 + K_H ln H + K_BETA beta
# (fitted by perf/fit_mgc.py to the exact simulation; the module docstring)
_K0, _K_H, _K_BETA = 0.5322, 0.1851, 0.1736


def _light_traffic_table(servers: np.ndarray, cvs: np.ndarray, points: int = 2400) -> np.ndarray:
    """ln L(N, cv) on a grid: L = N integral_0^inf Fe(t)^N dt / s, the light-traffic ratio of the lognormal M/G/N
    wait to the M/M/N one (Fe the stationary-excess tail of the service law, mean s; trapezoid rule in ln t)."""
    erfc = np.frompyfunc(math.erfc, 1, 1)
    u = np.linspace(-30.0, 14.0, points)
    t = np.exp(u)
    du = u[1] - u[0]
    out = np.empty((servers.size, cvs.size))
    for j, cv in enumerate(cvs):
        s2 = math.log1p(cv * cv)
        s = math.sqrt(s2)
        # E[(S - t)+] / s for a lognormal of mean 1: Phi-bar((ln t - m - s2)/s) - t Phi-bar((ln t - m)/s), m = -s2/2
        above = 0.5 * erfc((u - 0.5 * s2) / (s * math.sqrt(2.0))).astype(np.float64)
        tail = 0.5 * erfc((u + 0.5 * s2) / (s * math.sqrt(2.0))).astype(np.float64)
        log_fe = np.log(np.clip(above - t * tail, 1e-300, 1.0))
        for i, n in enumerate(servers):
            g = np.exp(n * log_fe + u)
            out[i, j] = math.log(n * (g.sum() - 0.5 * (g[0] + g[-1])) * du)
    return out


# the table's nodes: every N up to 8, then about 25 % apart up to 1024 (above: L(1024), within 0.1 % of the limit
# 1); cv 1-4 by 0.25, 4-10 by 0.5 (the config's bound is 10)
LT_SERVERS = np.array(
    [1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 16, 20, 24, 32, 40, 48, 64, 80, 96, 128, 160, 192, 256, 384, 512, 768, 1024],
    dtype=np.float64,
)
LT_CVS = np.concatenate((np.arange(1.0, 4.0, 0.25), np.arange(4.0, 10.001, 0.5)))
LT_LOG = _light_traffic_table(LT_SERVERS, LT_CVS)
_LT_LN_SERVERS = np.log(LT_SERVERS)


@njit(cache=True)
def scaled_room(room: float, scale: float) -> float:
    """The M/M/N waiting room that stands for a room of ``room`` places in a queue whose waiting line is
    ``scale`` times as long as the M/M/N one (the diffusion scaling above): room / scale, with a room of 0 kept 0
    (a loss system is insensitive to the service law) and a non-positive or non-finite scale leaving it as is."""
    r = max(room, 0.0)
    if not scale > 0.0 or scale == 1.0 or r == 0.0:
        return r
    return r / scale


@njit(cache=True)
def _bracket(nodes: np.ndarray, x: float) -> tuple[int, float]:
    """(i, f): x lies between nodes[i] and nodes[i + 1] at the fraction f (clamped at the ends)."""
    last = nodes.size - 1
    if x <= nodes[0]:
        return 0, 0.0
    if x >= nodes[last]:
        return last - 1, 1.0
    lo, hi = 0, last
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if nodes[mid] <= x:
            lo = mid
        else:
            hi = mid
    return lo, (x - nodes[lo]) / (nodes[lo + 1] - nodes[lo])


@njit(cache=True)
def lognormal_light_traffic(servers: int, cv: float) -> float:
    """L(N, cv): the light-traffic limit of the lognormal M/G/N mean wait over the M/M/N one, from the table
    (bilinear in ln N and cv; exact at the nodes, L(1, cv) = (1 + cv^2) / 2)."""
    i, fi = _bracket(_LT_LN_SERVERS, math.log(max(servers, 1)))
    j, fj = _bracket(LT_CVS, cv)
    a = LT_LOG[i, j] * (1.0 - fj) + LT_LOG[i, j + 1] * fj
    b = LT_LOG[i + 1, j] * (1.0 - fj) + LT_LOG[i + 1, j + 1] * fj
    return math.exp(a * (1.0 - fi) + b * fi)


@njit(cache=True)
def lognormal_wait_factor(servers: int, rho: float, cv: float) -> float:
    """The lognormal M/G/N mean wait over the M/M/N one at utilisation ``rho`` (cv >= 1; module docstring):
    z = L + (H - L) exp(-kappa beta), H = (1 + cv^2) / 2, beta = (1 - rho) sqrt(N),
    kappa = K0 + K_H ln H + K_BETA beta. N = 1 gives Pollaczek-Khinchine's H exactly (L = H)."""
    h = 0.5 * (1.0 + cv * cv)
    lt = lognormal_light_traffic(servers, cv)
    beta = max(1.0 - rho, 0.0) * math.sqrt(max(servers, 1))
    kappa = _K0 + _K_H * math.log(h) + _K_BETA * beta
    return lt + (h - lt) * math.exp(-kappa * beta)


# round robin's E_k/G/N wait under lognormal service: the multiplier over the Poisson-fitted correction,
# exp(-(1 - 1/k) E_A (1 - rho)^E_P (N - 1)^E_Q H^-E_R) (fitted by perf/fit_mgc.py --phases 8 --fit to the exact
# E_8/G/N simulation, utilisation >= E_RHO_MIN, N <= E_SERVERS_MAX; held at those bounds beyond; module docstring)
_E_A, _E_P, _E_Q, _E_R = 0.1886, 0.7341, 0.6671, 1.4442
E_RHO_MIN, E_SERVERS_MAX = 0.7, 50


@njit(cache=True)
def erlang_lognormal_factor(phases: int, servers: int, rho: float, cv: float) -> float:
    """The lognormal E_k/G/N mean wait (Erlang-``phases`` arrivals: round robin over k instances) over the
    model's Whitt E_k/G/N factor times the Poisson lognormal correction (cv > 1; 1 for cv <= 1, k <= 1 or N <= 1;
    module docstring): exp(-(1 - 1/k) E_A (1 - rho)^E_P (N - 1)^E_Q H^-E_R), H = (1 + cv^2) / 2, with rho held
    at E_RHO_MIN or more and N at E_SERVERS_MAX or less (the fit's range)."""
    if cv <= 1.0 or phases <= 1 or servers <= 1:
        return 1.0
    d = 1.0 - min(max(rho, E_RHO_MIN), 1.0)
    n1 = min(servers, E_SERVERS_MAX) - 1.0
    h = 0.5 * (1.0 + cv * cv)
    return math.exp(-(1.0 - 1.0 / phases) * _E_A * d**_E_P * n1**_E_Q * h ** (-_E_R))


# the blocking's time scale t = T_A (K^2 / N)^T_P mean services (fitted by perf/fit_room_variance.py; module
# docstring, docs/model.md 6.2.5)
T_A, T_P = 0.44, 0.68
# the variance ratio's table: the lattice step (in mean services) of its renewal function, and its time nodes
_RV_STEP = 0.1
RV_TIMES = np.exp(np.linspace(0.0, math.log(1000.0), 22))
_RV_LN_TIMES = np.log(RV_TIMES)


@njit(cache=True)
def _lognormal_lattice(cv: float, step: float, size: int) -> np.ndarray:
    """The lognormal service law of mean 1 (coefficient of variation ``cv``) on the lattice step, 2 step, ...:
    P((j - 1) step < S <= j step) at j (the law's tail beyond the last point put on it)."""
    s = math.sqrt(math.log1p(cv * cv))
    f = np.zeros(size)
    below = 0.0
    for j in range(1, size):
        cdf = 0.5 * math.erfc(-(math.log(j * step) + 0.5 * s * s) / (s * math.sqrt(2.0)))
        f[j] = cdf - below
        below = cdf
    f[size - 1] += 1.0 - below
    return f


def renewal_variance_ratio(f: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Var N_e(t) / (cs2 t / m) of the stationary renewal process whose gaps take the lattice law ``f`` (f[j] =
    P(gap = j) on 0, 1, 2, ..., f[0] = 0; m, cs2 its mean and squared coefficient of variation) at t = ``times``
    mean gaps: with u_d the renewal sequence (P(a renewal at d | one at 0), u = f + f * u, solved by FFT with the
    sequences damped by r^d, r^size = 1e-16, against wrap-around; ``f`` at least 4 times the longest window),
    Var N_e(n) = n / m + (2 / m) sum_{d < n} (n - d) u_d - (n / m)^2 (D. R. Cox, *Renewal Theory*, 1962, ch. 4),
    which tends to cs2 n / m as n grows. (Geometric gaps, the Bernoulli process: 1 at every t.)"""
    size = f.size
    k = np.arange(size, dtype=np.float64)
    mean = float((k * f).sum())
    cs2 = float((k * k * f).sum()) / (mean * mean) - 1.0
    n = np.maximum(np.rint(np.asarray(times) * mean).astype(np.int64), 2)
    n_max = int(n.max()) + 1
    damp = 10.0 ** (-16.0 * k / size)
    u = np.fft.irfft(1.0 / (1.0 - np.fft.rfft(f * damp)), size)[:n_max] / damp[:n_max]
    u[0] = 0.0
    pairs = np.cumsum(np.cumsum(u))
    var = n / mean + 2.0 / mean * pairs[n - 1] - (n / mean) ** 2
    return var / (n * cs2 / mean)


def _variance_ratio_table(cvs: np.ndarray, times: np.ndarray, step: float = _RV_STEP) -> np.ndarray:
    """``renewal_variance_ratio`` of the lognormal service law (mean 1) at each cv > 1 and t (mean services), the
    law rounded up to the lattice ``step`` (1 for cv <= 1). The table, read by ``variance_ratio``, is within 1 % of
    a Monte Carlo estimate (4e7 lognormal gaps) at cv 1.5-3, t = 10-300, 1.8 % at cv 3, t = 3
    (``perf/fit_room_variance.py --table``)."""
    size = 4 * (int(math.ceil(times[-1] * 1.2 / step)) + 2)
    out = np.ones((cvs.size, times.size))
    for i, cv in enumerate(cvs):
        if cv > 1.0:
            out[i] = renewal_variance_ratio(_lognormal_lattice(float(cv), step, size), times)
    return out


VARIANCE_RATIO = _variance_ratio_table(LT_CVS, RV_TIMES)


@njit(cache=True)
def variance_ratio(cv: float, t: float) -> float:
    """Var N_e(t) / (cs2 t / s): the share of the long-run count variance of the lognormal services (``cv`` > 1)
    that they have over t mean services, from the table (bilinear in cv and ln t); 1 for cv <= 1; beyond the last
    node the renewal variance's asymptotic form cs2 t + const (Smith 1958): 1 - (1 - r_last) t_last / t."""
    if cv <= 1.0:
        return 1.0
    j, fj = _bracket(LT_CVS, cv)
    last = RV_TIMES.size - 1
    if t >= RV_TIMES[last]:
        r_last = VARIANCE_RATIO[j, last] * (1.0 - fj) + VARIANCE_RATIO[j + 1, last] * fj
        return 1.0 - (1.0 - r_last) * RV_TIMES[last] / t
    i, fi = _bracket(_RV_LN_TIMES, math.log(max(t, 1e-12)))
    a = VARIANCE_RATIO[j, i] * (1.0 - fj) + VARIANCE_RATIO[j + 1, i] * fj
    c = VARIANCE_RATIO[j, i + 1] * (1.0 - fj) + VARIANCE_RATIO[j + 1, i + 1] * fj
    return a * (1.0 - fi) + c * fi


@njit(cache=True)
def blocking_stretch(ca2: float, servers: int, room: float, cv: float) -> float:
    """The stretch z_b = (ca2 + cs2 r) / 2 whose room of ``room`` / z_b M/M/N places gives the blocking of a queue
    of ``servers`` slots with lognormal service (``cv`` > 1) and arrivals of squared coefficient ``ca2``: r the
    services' variance share over the room's time scale t = T_A (K^2 / N)^T_P mean services (``variance_ratio``;
    module docstring). cv <= 1: the diffusion stretch (ca2 + cv^2) / 2 as it is."""
    cs2 = cv * cv
    if cv > 1.0 and servers > 0 and room > 0.0:
        cs2 *= variance_ratio(cv, T_A * (room * room / servers) ** T_P)
    return 0.5 * (max(ca2, 0.0) + cs2)
