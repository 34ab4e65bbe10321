"""Counter-based random numbers for the compiled simulation core.

Every simulated cluster owns one 64-bit state (SplitMix64, Steele, Lea & Flood, OOPSLA 2014), seeded at reset
from the env's numpy ``Generator``. A cluster's draws never depend on the other clusters of a batch, so a
cluster gives the same trajectory alone or in a batch of any size.

Samplers (all exact, no normal approximation):
- Poisson: multiplication method for mean < 10; PTRS transformed rejection for mean >= 10
  (W. Hoermann, "The transformed rejection method for generating Poisson random variables",
  Insurance: Mathematics and Economics 12, 1993).
- Binomial: inversion for n*min(p, 1-p) < 10; BTRS transformed rejection otherwise
  (W. Hoermann, "The generation of binomial random variates", J. Stat. Comput. Simul. 46, 1993).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S11 = np.uint64(11)
_INV53 = 1.0 / 9007199254740992.0  # 2**-53


@njit(cache=True, inline="always")
def next_u64(rng: np.ndarray, b: int) -> np.uint64:
    z = rng[b] + _GOLDEN
    rng[b] = z
    z = (z ^ (z >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    return z ^ (z >> _S31)


@njit(cache=True, inline="always")
def uniform(rng: np.ndarray, b: int) -> float:
    """U[0, 1) with 53 random bits."""
    return float(next_u64(rng, b) >> _S11) * _INV53


@njit(cache=True)
def poisson(rng: np.ndarray, b: int, mean: float) -> int:
    if mean <= 0.0:
        return 0
    if mean < 10.0:
        limit = math.exp(-mean)
        k = 0
        prod = uniform(rng, b)
        while prod > limit:
            k += 1
            prod *= uniform(rng, b)
        return k
    slam = math.sqrt(mean)
    loglam = math.log(mean)
    bb = 0.931 + 2.53 * slam
    a = -0.059 + 0.02483 * bb
    inv_alpha = 1.1239 + 1.1328 / (bb - 3.4)
    vr = 0.9277 - 3.6224 / (bb - 2.0)
    while True:
        u = uniform(rng, b) - 0.5
        v = uniform(rng, b)
        us = 0.5 - abs(u)
        k = math.floor((2.0 * a / us + bb) * u + mean + 0.43)
        if us >= 0.07 and v <= vr:
            return int(k)
        if k < 0.0 or (us < 0.013 and v > us):
            continue
        if math.log(v) + math.log(inv_alpha) - math.log(a / (us * us) + bb) <= (
            -mean + k * loglam - math.lgamma(k + 1.0)
        ):
            return int(k)


@njit(cache=True)
def binomial(rng: np.ndarray, b: int, n: int, p: float) -> int:
    if n <= 0 or p <= 0.0:
        return 0
    if p >= 1.0:
        return n
    if p > 0.5:
        return n - binomial(rng, b, n, 1.0 - p)
    q = 1.0 - p
    if n * p < 10.0:
        # inversion: walk the pmf from 0
        s = p / q
        pk = q**n
        u = uniform(rng, b)
        k = 0
        while u > pk and k < n:
            u -= pk
            k += 1
            pk *= s * (n - k + 1) / k
        return k
    spq = math.sqrt(n * p * q)
    bb = 1.15 + 2.53 * spq
    a = -0.0873 + 0.0248 * bb + 0.01 * p
    c = n * p + 0.5
    vr = 0.92 - 4.2 / bb
    alpha = (2.83 + 5.1 / bb) * spq
    lpq = math.log(p / q)
    m = math.floor((n + 1) * p)
    h = math.lgamma(m + 1.0) + math.lgamma(n - m + 1.0)
    while True:
        u = uniform(rng, b) - 0.5
        v = uniform(rng, b)
        us = 0.5 - abs(u)
        k = math.floor((2.0 * a / us + bb) * u + c)
        if k < 0.0 or k > n:
            continue
        if us >= 0.07 and v <= vr:
            return int(k)
        v = math.log(v * alpha / (a / (us * us) + bb))
        if v <= h - math.lgamma(k + 1.0) - math.lgamma(n - k + 1.0) + (k - m) * lpq:
            return int(k)
