"""Instance slots and their lifecycle (compiled helpers).

Each cluster has ``2 * max_instances`` slots (room for draining and terminating instances beside a full
fleet). A slot is in one state::

    OFF -> BOOTING -> WARM -> DRAINING -> OFF            (scale-out, cold start, scale-in)
                      WARM -> FAILED -> UNHEALTHY -> OFF (crash, health-check detection, termination)

Per-slot data lives in two arrays: ``inst_f[b, i, F_*]`` (float64) and ``inst_i[b, i, I_*]`` (int64).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit
from numpy.typing import ArrayLike

from .rng import uniform
from .state import check_columns

OFF, BOOTING, WARM, FAILED, UNHEALTHY, DRAINING = 0, 1, 2, 3, 4, 5
STATE_NAMES = ("off", "booting", "warm", "failed", "unhealthy", "draining")

# columns of inst_f[b, i, :] (float64), from one tuple of names (checked against the F_* constants at import)
INST_F_FIELDS: tuple[tuple[str, str], ...] = (
    ("timer", "booting: remaining boot s; draining: elapsed drain s; unhealthy: remaining termination s (<0: kept)"),
    ("load", "CPU utilisation in the last step (scale-in picks the least loaded)"),
    ("weight", "share of the current step spent in the load balancer's pool"),
    ("serve", "seconds of the current step spent serving"),
    ("share", "share of the current step's arrivals routed to the slot (load_balancer.pool_shares)"),
    ("qfluid", "the fluid queue, unrounded (I_BACKLOG is it rounded); carries fractions of requests over steps"),
    ("dropc", "fractional drops not yet counted (carried over steps, so drop counts are exact in the long run)"),
    # the queue as up to N_COHORTS arrival cohorts, oldest first (queueing.fifo_waits): cohort c holds n requests
    # whose ages (s waited so far) are spread evenly between "old" and "young"
    ("c0_n", "queued requests in the oldest arrival cohort"),
    ("c0_old", "age of the oldest request of cohort 0, s"),
    ("c0_young", "age of the youngest request of cohort 0, s"),
    ("c1_n", "queued requests in arrival cohort 1"),
    ("c1_old", "age of the oldest request of cohort 1, s"),
    ("c1_young", "age of the youngest request of cohort 1, s"),
    ("c2_n", "queued requests in arrival cohort 2 (the newest)"),
    ("c2_old", "age of the oldest request of cohort 2, s"),
    ("c2_young", "age of the youngest request of cohort 2, s"),
    # serverless platform mode (issue 17)
    ("idle", "platform mode: seconds since the instance last served (keep-alive clock)"),
    ("boot_len", "platform mode: length of the instance's cold start, s (what its waiting requests wait)"),
    ("crash_at", "crashed in the current step: the part of the step before the crash, in (0, 1) (0 otherwise)"),
    ("pre_crash", "crashed in the current step: the part of its arrivals that came before the crash"),
    ("split", "the first pool change inside the current step, s from its start (0: none; load_balancer.pool_shares)"),
    ("early", "the part of the slot's arrivals of the step that arrive before that pool change"),
)
(
    F_TIMER,
    F_LOAD,
    F_WEIGHT,
    F_SERVE,
    F_SHARE,
    F_QFLUID,
    F_DROPC,
    F_C0_N,
    F_C0_OLD,
    F_C0_YOUNG,
    F_C1_N,
    F_C1_OLD,
    F_C1_YOUNG,
    F_C2_N,
    F_C2_OLD,
    F_C2_YOUNG,
    F_IDLE,
    F_BOOT_LEN,
    F_CRASH_AT,
    F_PRE_CRASH,
    F_SPLIT,
    F_EARLY,
) = range(len(INST_F_FIELDS))
F_COHORTS = F_C0_N  # cohort c's (n, old, young) are columns F_COHORTS + 3c + (0, 1, 2)
N_COHORTS = 3
N_INST_F = check_columns("F_", tuple(f[0] for f in INST_F_FIELDS), globals())
# columns of inst_i[b, i, :] (int64)
INST_I_FIELDS: tuple[tuple[str, str], ...] = (
    ("state", "slot state (OFF, BOOTING, ...)"),
    ("backlog", "queued requests"),
    ("checks", "consecutive failed health checks"),
    ("arrivals", "requests routed to the slot in the current step"),
    ("event", "per-step flag: 1 = becomes warm in this step, 2 = detected unhealthy in this step"),
    ("prov", "platform mode: 1 = a provisioned (pre-warmed) instance, 0 = on demand"),
)
I_STATE, I_BACKLOG, I_CHECKS, I_ARRIVALS, I_EVENT, I_PROV = range(len(INST_I_FIELDS))
N_INST_I = check_columns("I_", tuple(f[0] for f in INST_I_FIELDS), globals())


@njit(cache=True)
def clear_cohorts(inst_f, b: int, i: int) -> None:
    """Forget the arrival cohorts of slot i (its queue was emptied)."""
    for j in range(3 * N_COHORTS):
        inst_f[b, i, F_COHORTS + j] = 0.0


@njit(cache=True)
def boot_seconds(rng, b: int, mean: float, jitter: float) -> float:
    """Cold-start length: mean * U(1 - jitter, 1 + jitter)."""
    if jitter <= 0.0:
        return mean
    return mean * (1.0 + jitter * (2.0 * uniform(rng, b) - 1.0))


@njit(cache=True)
def launch(inst_f, inst_i, rng, b: int, count: int, boot_mean: float, boot_jitter: float):
    """Start ``count`` cold starts in the lowest free slots.

    Returns (how many were started, 1 + the highest slot index used, 0 if none).
    """
    started = 0
    top = 0
    n_slots = inst_i.shape[1]
    for i in range(n_slots):
        if started >= count:
            break
        if inst_i[b, i, I_STATE] == OFF:
            inst_i[b, i, I_STATE] = BOOTING
            inst_i[b, i, I_BACKLOG] = 0
            inst_i[b, i, I_CHECKS] = 0
            inst_f[b, i, F_TIMER] = boot_seconds(rng, b, boot_mean, boot_jitter)
            inst_f[b, i, F_LOAD] = 0.0
            inst_f[b, i, F_QFLUID] = 0.0
            inst_f[b, i, F_DROPC] = 0.0
            clear_cohorts(inst_f, b, i)
            started += 1
            top = i + 1
    return started, top


@njit(cache=True)
def counted(state: int, timer: float) -> bool:
    """Does the slot count towards the instance count the autoscaler controls (the count an action changes)?

    Booting, warm and (undetected) failed instances count; an unhealthy one counts only while it is kept
    (no automatic replacement); draining and terminating ones do not. ``counted_array`` applies it to arrays.
    """
    if state == BOOTING or state == WARM or state == FAILED:
        return True
    return state == UNHEALTHY and timer < 0.0


def counted_array(states: np.ndarray, timers: np.ndarray) -> np.ndarray:
    """``counted`` for arrays of slot states and timers (numpy, elementwise; a test checks they agree)."""
    kept_unhealthy = (states == UNHEALTHY) & (timers < 0.0)
    return (states == BOOTING) | (states == WARM) | (states == FAILED) | kept_unhealthy


@njit(cache=True)
def bounded_change(live: int, requested: int, lo: int, hi: int) -> int:
    """The change in instance count that a request of ``requested`` applies to ``live`` controlled instances
    within the bounds [lo, hi], before cooldowns: ``min(max(live + requested, lo), hi) - live``. The kernel
    calls it per cluster; ``bounded_changes`` applies it to arrays (the action mask, policies)."""
    return min(max(live + requested, lo), hi) - live


def bounded_changes(live: ArrayLike, requested: ArrayLike, lo: ArrayLike, hi: ArrayLike) -> np.ndarray:
    """``bounded_change`` for arrays (numpy, broadcasting; a test checks they agree): the action mask and
    policies use it."""
    live = np.asarray(live, dtype=np.int64)
    return np.minimum(np.maximum(live + np.asarray(requested, dtype=np.int64), lo), hi) - live


@njit(cache=True)
def scale_in(inst_f, inst_i, b: int, count: int, hi: int) -> int:
    """Remove ``count`` counted instances: kept-unhealthy first, then booting, then the least loaded warm
    (undetected failed ones look idle to the autoscaler, so they go early). Warm ones drain; the others stop
    at once. Returns requests lost (queued on stopped booting instances)."""
    lost = 0
    for _ in range(count):
        best = -1
        best_key = 1e300
        for i in range(hi):
            s = inst_i[b, i, I_STATE]
            if not counted(s, inst_f[b, i, F_TIMER]):
                continue
            if s == UNHEALTHY:
                key = 0.0
            elif s == BOOTING:
                key = 1.0
            else:
                key = 2.0 + inst_i[b, i, I_BACKLOG] + inst_f[b, i, F_LOAD] * 0.999
            if key < best_key:
                best_key = key
                best = i
        if best < 0:
            break
        s = inst_i[b, best, I_STATE]
        if s == WARM:
            inst_i[b, best, I_STATE] = DRAINING
            inst_f[b, best, F_TIMER] = 0.0
        else:
            lost += inst_i[b, best, I_BACKLOG]
            inst_i[b, best, I_BACKLOG] = 0
            inst_f[b, best, F_QFLUID] = 0.0
            clear_cohorts(inst_f, b, best)
            inst_i[b, best, I_STATE] = OFF
    return lost


@njit(cache=True)
def crash(inst_f, inst_i, b: int, i: int) -> int:
    """Crash slot i: its queue is lost (returned as failed requests); the balancer still routes to it."""
    lost = inst_i[b, i, I_BACKLOG]
    inst_i[b, i, I_BACKLOG] = 0
    inst_i[b, i, I_STATE] = FAILED
    inst_i[b, i, I_CHECKS] = 0
    inst_f[b, i, F_LOAD] = 0.0
    inst_f[b, i, F_QFLUID] = 0.0
    clear_cohorts(inst_f, b, i)
    return lost


@njit(cache=True)
def crash_at(inst_f, inst_i, b: int, i: int, at: float) -> int:
    """Crash slot i a part ``at`` (in [0, 1)) into the current step. At the step start (``at = 0``) it is
    ``crash``; later, the slot keeps its queue, which it serves until the crash (the serve phase serves what
    fits in ``at * dt`` and fails the rest), and its health checks count from the crash (docs/model.md 3)."""
    if at <= 0.0:
        return crash(inst_f, inst_i, b, i)
    inst_i[b, i, I_STATE] = FAILED
    inst_i[b, i, I_CHECKS] = 0
    inst_f[b, i, F_LOAD] = 0.0
    inst_f[b, i, F_CRASH_AT] = at
    return 0


@njit(cache=True)
def crash_fraction(rng, b: int, p: float) -> float:
    """The part of the step before a spontaneous crash known to happen in it (probability ``p`` per step): an
    exponential lifetime conditioned on ending in the step, ``ln(1 - U p) / ln(1 - p)`` (uniform for small p).
    Drawn, not put at mid-step: a step's lost share is a threshold of the SLO, so its spread matters."""
    u = uniform(rng, b)
    if p >= 1.0 - 1e-15:
        return u
    return math.log(1.0 - u * p) / math.log(1.0 - p)


@njit(cache=True)
def crash_random_warm(inst_f, inst_i, rng, b: int, hi: int, count: int, n_warm: int, at: float = 0.0, p: float = 0.0):
    """Crash ``count`` of the ``n_warm`` warm slots, chosen uniformly (selection sampling, Knuth's
    Algorithm S), a part ``at`` into the step (``crash_at``); with ``p > 0`` (spontaneous crashes, probability
    ``p`` per step) each at its own time drawn by ``crash_fraction``. Returns (requests lost now, instances
    crashed)."""
    lost = 0
    crashed = 0
    left = n_warm
    for i in range(hi):
        if crashed >= count:
            break
        if inst_i[b, i, I_STATE] == WARM:
            if uniform(rng, b) * left < count - crashed:
                lost += crash_at(inst_f, inst_i, b, i, crash_fraction(rng, b, p) if p > 0.0 else at)
                crashed += 1
            left -= 1
    return lost, crashed


@njit(cache=True)
def count_state(inst_i, b: int, hi: int, state: int) -> int:
    n = 0
    for i in range(hi):
        if inst_i[b, i, I_STATE] == state:
            n += 1
    return n
