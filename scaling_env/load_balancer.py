"""The load balancer: health checks and the split of a step's arrivals over its pool (compiled helpers).

Pool membership is fractional within a step: ``inst_f[b, i, F_WEIGHT]`` is the share of the step an instance
spends in the pool (an instance that finishes its cold start 2 s into a 15 s step has weight 13/15; a crashed
instance detected 20 s into a 30 s step has weight 2/3). Each algorithm splits the step's arrivals in
proportion to that time:

- ``round_robin``: equal shares of whole requests per unit of pool time; the remainder goes one by one in
  rotating order (a per-cluster pointer), as a round-robin balancer does.
- ``random``: a multinomial split (sequential binomial draws).
- ``least_outstanding``: water-filling: requests go to the instances with the least outstanding work
  (queue minus what they can serve in the step) until those levels are equal.
"""

from __future__ import annotations

import math

from numba import njit

from .instances import F_SERVE, F_WEIGHT, FAILED, I_ARRIVALS, I_BACKLOG, I_CHECKS, I_STATE
from .rng import binomial

ROUND_ROBIN, LEAST_OUTSTANDING, RANDOM = 0, 1, 2
ALGORITHMS = ("round_robin", "least_outstanding", "random")


@njit(cache=True)
def health_checks(inst_i, b: int, i: int, t0: float, dt: float, interval: float, threshold: int) -> float:
    """Run the health checks of a crashed slot over the step [t0, t0 + dt).

    Checks happen at every multiple of ``interval`` after the episode start; a check at exactly ``t0`` belongs
    to the previous step. Returns the share of the step the slot stays in the pool (1.0 if not detected).
    """
    k = math.floor(t0 / interval + 1e-9) + 1.0
    t_check = k * interval
    end = t0 + dt + 1e-9
    while t_check <= end:
        inst_i[b, i, I_CHECKS] += 1
        if inst_i[b, i, I_CHECKS] >= threshold:
            return min(max((t_check - t0) / dt, 0.0), 1.0)
        t_check += interval
    return 1.0


@njit(cache=True)
def _any_healthy(inst_f, inst_i, b: int, hi: int) -> bool:
    for i in range(hi):
        if inst_f[b, i, F_WEIGHT] > 0.0 and inst_i[b, i, I_STATE] != FAILED:
            return True
    return False


@njit(cache=True)
def route(inst_f, inst_i, rng, b: int, hi: int, arrivals: int, wsum: float, algorithm: int, pointer: int,
          capacity_rps: float) -> int:
    """Write each slot's share of ``arrivals`` into ``I_ARRIVALS`` (weights must be set). Returns the new
    round-robin pointer."""
    if algorithm == RANDOM:
        left = arrivals
        wleft = wsum
        last = -1
        for i in range(hi):
            w = inst_f[b, i, F_WEIGHT]
            if w <= 0.0:
                continue
            x = binomial(rng, b, left, min(w / wleft, 1.0)) if wleft > 0.0 else 0
            inst_i[b, i, I_ARRIVALS] = x
            left -= x
            wleft -= w
            last = i
        if last >= 0:
            inst_i[b, last, I_ARRIVALS] += left
        return pointer
    if algorithm == LEAST_OUTSTANDING and _any_healthy(inst_f, inst_i, b, hi):
        # crashed-but-undetected instances answer at once, so they get their time share; the rest is
        # water-filled on outstanding work h_i = queue - capacity in the step
        rest = float(arrivals)
        for i in range(hi):
            w = inst_f[b, i, F_WEIGHT]
            if w > 0.0 and inst_i[b, i, I_STATE] == FAILED:
                x = math.floor(arrivals * w / wsum)
                inst_i[b, i, I_ARRIVALS] = x
                rest -= x
        # iterative water level: drop instances whose level is above the water, recompute
        active_n = 0
        hsum = 0.0
        for i in range(hi):
            if inst_f[b, i, F_WEIGHT] > 0.0 and inst_i[b, i, I_STATE] != FAILED:
                hsum += inst_i[b, i, I_BACKLOG] - capacity_rps * inst_f[b, i, F_SERVE]
                active_n += 1
        level = (rest + hsum) / active_n
        for _ in range(hi):
            changed = False
            n = 0
            hsum = 0.0
            for i in range(hi):
                if inst_f[b, i, F_WEIGHT] > 0.0 and inst_i[b, i, I_STATE] != FAILED:
                    h = inst_i[b, i, I_BACKLOG] - capacity_rps * inst_f[b, i, F_SERVE]
                    if h < level:
                        hsum += h
                        n += 1
                    else:
                        changed = True
            new_level = (rest + hsum) / n if n > 0 else level
            if not changed or abs(new_level - level) < 1e-9:
                level = new_level
                break
            level = new_level
        # cumulative rounding keeps the total exact
        acc = 0.0
        given = 0
        total = int(round(rest))
        for i in range(hi):
            if inst_f[b, i, F_WEIGHT] > 0.0 and inst_i[b, i, I_STATE] != FAILED:
                h = inst_i[b, i, I_BACKLOG] - capacity_rps * inst_f[b, i, F_SERVE]
                acc += max(level - h, 0.0)
                c = min(int(round(acc)), total)
                inst_i[b, i, I_ARRIVALS] = c - given
                given = c
        if given < total:  # float residue: give it to the first active instance
            for i in range(hi):
                if inst_f[b, i, F_WEIGHT] > 0.0 and inst_i[b, i, I_STATE] != FAILED:
                    inst_i[b, i, I_ARRIVALS] += total - given
                    break
        return pointer
    # round robin (and least outstanding when every pool member has crashed: they all answer at once)
    given = 0
    n_pool = 0
    for i in range(hi):
        w = inst_f[b, i, F_WEIGHT]
        if w > 0.0:
            x = int(math.floor(arrivals * w / wsum))
            inst_i[b, i, I_ARRIVALS] = x
            given += x
            n_pool += 1
    extra = arrivals - given
    if extra > 0 and n_pool > 0:
        start = pointer % n_pool
        j = 0
        for i in range(hi):
            if inst_f[b, i, F_WEIGHT] > 0.0:
                # pool members start..start+extra-1 (cyclically) get one more
                if (j - start) % n_pool < extra:
                    inst_i[b, i, I_ARRIVALS] += 1
                j += 1
        pointer = (start + extra) % n_pool
    return pointer
