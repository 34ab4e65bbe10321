"""Instance slots and their lifecycle (compiled helpers).

Each cluster has ``2 * max_instances`` slots (room for draining and terminating instances beside a full
fleet). A slot is in one state::

    OFF -> BOOTING -> WARM -> DRAINING -> OFF            (scale-out, cold start, scale-in)
                      WARM -> FAILED -> UNHEALTHY -> OFF (crash, health-check detection, termination)

Per-slot data lives in two arrays: ``inst_f[b, i, F_*]`` (float64) and ``inst_i[b, i, I_*]`` (int64).
"""

from __future__ import annotations

from numba import njit

from .rng import uniform

OFF, BOOTING, WARM, FAILED, UNHEALTHY, DRAINING = 0, 1, 2, 3, 4, 5
STATE_NAMES = ("off", "booting", "warm", "failed", "unhealthy", "draining")

# float columns
F_TIMER = 0  # booting: remaining boot s; draining: elapsed drain s; unhealthy: remaining termination s (<0: kept)
F_LOAD = 1  # CPU utilisation in the last step (scale-in picks the least loaded)
F_WEIGHT = 2  # share of the current step spent in the load balancer's pool
F_SERVE = 3  # seconds of the current step spent serving
F_SHARE = 4  # share of the current step's arrivals routed to the slot (load_balancer.pool_shares)
F_QFLUID = 5  # the fluid queue, unrounded (I_BACKLOG is it rounded); carries fractions of requests over steps
F_DROPC = 6  # fractional drops not yet counted (carried over steps, so drop counts are exact in the long run)
F_AGE = 7  # total time the queued requests have waited so far, request-seconds (FIFO bookkeeping)
N_INST_F = 8
# int columns
I_STATE = 0
I_BACKLOG = 1  # queued requests
I_CHECKS = 2  # consecutive failed health checks
I_ARRIVALS = 3  # requests routed to the slot in the current step
I_EVENT = 4  # per-step flag: 1 = becomes warm in this step, 2 = detected unhealthy in this step
N_INST_I = 5


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
            inst_f[b, i, F_AGE] = 0.0
            started += 1
            top = i + 1
    return started, top


@njit(cache=True)
def counted(state: int, timer: float) -> bool:
    """Does the slot count towards the instance count the autoscaler controls?

    Booting, warm and (undetected) failed instances count; an unhealthy one counts only while it is kept
    (no automatic replacement); draining and terminating ones do not.
    """
    if state == BOOTING or state == WARM or state == FAILED:
        return True
    return state == UNHEALTHY and timer < 0.0


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
            inst_f[b, best, F_AGE] = 0.0
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
    inst_f[b, i, F_AGE] = 0.0
    return lost


@njit(cache=True)
def crash_random_warm(inst_f, inst_i, rng, b: int, hi: int, count: int, n_warm: int):
    """Crash ``count`` of the ``n_warm`` warm slots, chosen uniformly (selection sampling, Knuth's
    Algorithm S). Returns (requests lost, instances crashed)."""
    lost = 0
    crashed = 0
    left = n_warm
    for i in range(hi):
        if crashed >= count:
            break
        if inst_i[b, i, I_STATE] == WARM:
            if uniform(rng, b) * left < count - crashed:
                lost += crash(inst_f, inst_i, b, i)
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
