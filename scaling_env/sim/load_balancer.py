"""The load balancer: health checks and the split of a step's arrivals over its pool (compiled helpers).

Pool membership can change within a step: an instance whose cold start ends 2 s into a 15 s step joins the pool
for the last 13 s; a crashed instance found unhealthy 20 s into the step leaves it then. ``inst_f[b, i,
F_WEIGHT]`` is the part of the step an instance spends in the pool. A balancer sends each request to one of the
members present when it arrives, so with arrivals spread evenly over the step, member i gets the share

    share_i = (1/dt) * integral over its pool time of 1 / n(t)

where n(t) is the number of members at time t (``pool_shares``). Requests that arrive while the pool is empty
(every member found unhealthy earlier in the step) find no target and are dropped. Each algorithm then splits the
arrivals by those shares:

- ``round_robin``: whole requests in proportion to the shares; the remainder goes one by one in rotating order
  (a per-cluster pointer), as a round-robin balancer does.
- ``random``: a multinomial split (sequential binomial draws).
- ``least_outstanding``: crashed-but-undetected members answer at once (with an error), so they always have zero
  outstanding requests and win every tie but those with an idle healthy member (``failed_tie_share``); the rest
  is water-filled: requests go to the healthy instances with the least outstanding work (queue minus
  what they can serve in the step) until those levels are equal.

Beside the fluid queues, each algorithm has a stationary queue (docs/model.md section 6.2), which
``balancer_queue`` alone defines, for the kernel and for planners (the oracle) alike.
"""

from __future__ import annotations

import math

from numba import njit

from .instances import (
    F_CRASH_AT,
    F_EARLY,
    F_PRE_CRASH,
    F_SERVE,
    F_SHARE,
    F_SPLIT,
    F_WEIGHT,
    FAILED,
    I_ARRIVALS,
    I_BACKLOG,
    I_CHECKS,
    I_STATE,
    WARM,
)
from .jsq import jsq_factors
from .queueing import RHO_CAP, erlang_arrivals_wait, stationary_wait
from .rng import binomial

ROUND_ROBIN, LEAST_OUTSTANDING, RANDOM = 0, 1, 2
ALGORITHMS = ("round_robin", "least_outstanding", "random")


@njit(cache=True)
def health_checks(
    inst_i, b: int, i: int, t0: float, dt: float, interval: float, threshold: int, since: float = 0.0
) -> float:
    """Run the health checks of a crashed slot over the step [t0, t0 + dt), from ``t0 + since`` on (a slot that
    crashed inside the step fails only the checks after its crash).

    Checks happen at every multiple of ``interval`` after the episode start; a check at exactly ``t0`` belongs
    to the previous step. Returns the share of the step the slot stays in the pool (1.0 if not detected).
    """
    k = math.floor((t0 + since) / interval + 1e-9) + 1.0
    t_check = k * interval
    end = t0 + dt + 1e-9
    while t_check <= end:
        inst_i[b, i, I_CHECKS] += 1
        if inst_i[b, i, I_CHECKS] >= threshold:
            return min(max((t_check - t0) / dt, 0.0), 1.0)
        t_check += interval
    return 1.0


@njit(cache=True)
def _interval(inst_f, inst_i, b: int, i: int, dt: float):
    """Pool interval [start, end) of slot i within the step (seconds from the step start)."""
    w = inst_f[b, i, F_WEIGHT]
    s = inst_i[b, i, I_STATE]
    if s == FAILED:
        return 0.0, w * dt
    if s == WARM:
        return 0.0, dt
    return dt * (1.0 - w), dt  # a cold start that ends in the step


@njit(cache=True)
def arrived_by(t: float, dt: float, rate_split: float, rate_early: float) -> float:
    """The part of the step's arrivals that arrived by ``t`` s into it: at one rate, or at two around the rate
    change at ``rate_split`` s (``rate_early`` of them before it; ``workload.EpisodeWorkload.rate_splits``)."""
    if rate_split <= 0.0:
        return t / dt
    if t <= rate_split:
        return rate_early * t / rate_split
    return rate_early + (1.0 - rate_early) * (t - rate_split) / (dt - rate_split)


@njit(cache=True)
def pool_shares(inst_f, inst_i, b: int, hi: int, dt: float, rate_split: float, rate_early: float) -> float:
    """Write each member's share of the step's arrivals into ``F_SHARE``; return their sum (the part of the step's
    arrivals that find a non-empty pool). The arrivals come at the step's rate profile (``arrived_by``); a member
    in the pool all step takes its part at two rates, around the first pool change inside the step, or without
    one around the rate change (``F_SPLIT``, ``F_EARLY``)."""
    partial = False
    n_full = 0
    for i in range(hi):
        inst_f[b, i, F_SHARE] = 0.0
        inst_f[b, i, F_SPLIT] = 0.0
        inst_f[b, i, F_EARLY] = 0.0
        w = inst_f[b, i, F_WEIGHT]
        if w > 0.0:
            n_full += 1
            if w < 1.0:
                partial = True
    if n_full == 0:
        return 0.0
    if not partial:  # the common case: the same members all step long
        for i in range(hi):
            if inst_f[b, i, F_WEIGHT] > 0.0:
                inst_f[b, i, F_SHARE] = 1.0 / n_full
                if rate_split > 0.0:
                    inst_f[b, i, F_SPLIT] = rate_split
                    inst_f[b, i, F_EARLY] = rate_early
        return 1.0
    # walk the step from breakpoint to breakpoint (joins and departures); few per step
    t = 0.0
    total = 0.0
    first = 0.0  # the first breakpoint inside the step: a member's share before it is its "early" part
    while t < dt - 1e-12:
        nxt = dt
        n = 0
        for i in range(hi):
            if inst_f[b, i, F_WEIGHT] > 0.0:
                start, end = _interval(inst_f, inst_i, b, i, dt)
                if start <= t < end:
                    n += 1
                if start > t:
                    nxt = min(nxt, start)
                if end > t:
                    nxt = min(nxt, end)
        if n > 0:
            if rate_split > 0.0:
                arrived = arrived_by(nxt, dt, rate_split, rate_early) - arrived_by(t, dt, rate_split, rate_early)
            else:
                arrived = (nxt - t) / dt  # (as arrived_by, written so that it stays bit for bit as it was)
            part = arrived / n
            for i in range(hi):
                if inst_f[b, i, F_WEIGHT] > 0.0:
                    start, end = _interval(inst_f, inst_i, b, i, dt)
                    if start <= t < end:
                        inst_f[b, i, F_SHARE] += part
                        if first <= 0.0:
                            inst_f[b, i, F_EARLY] += part
            total += arrived
        if first <= 0.0:
            first = nxt
        t = nxt
    if first < dt - 1e-9:
        # members in the pool all step get their arrivals at two rates, before and after the first change
        for i in range(hi):
            sh = inst_f[b, i, F_SHARE]
            if inst_f[b, i, F_WEIGHT] >= 1.0 and sh > 0.0:
                inst_f[b, i, F_SPLIT] = first
                inst_f[b, i, F_EARLY] = inst_f[b, i, F_EARLY] / sh
    return total


@njit(cache=True)
def _any_healthy(inst_f, inst_i, b: int, hi: int) -> bool:
    for i in range(hi):
        if inst_f[b, i, F_SHARE] > 0.0 and inst_i[b, i, I_STATE] != FAILED:
            return True
    return False


@njit(cache=True)
def route(
    inst_f,
    inst_i,
    rng,
    b: int,
    hi: int,
    arrivals: int,
    total_share: float,
    algorithm: int,
    pointer: int,
    capacity_rps: float,
    dt: float,
    service_s: float,
):
    """Write each slot's part of ``arrivals`` into ``I_ARRIVALS`` (``pool_shares`` must have run).

    Returns (the new round-robin pointer, requests that found the pool empty)."""
    if algorithm == RANDOM:
        left = arrivals
        p_left = 1.0
        last = -1
        for i in range(hi):
            sh = inst_f[b, i, F_SHARE]
            if sh <= 0.0:
                continue
            x = binomial(rng, b, left, min(sh / p_left, 1.0)) if p_left > 0.0 else 0
            inst_i[b, i, I_ARRIVALS] = x
            left -= x
            p_left -= sh
            last = i
        if total_share >= 1.0 - 1e-12 and last >= 0:  # no empty-pool time: rounding residue to the last one
            inst_i[b, last, I_ARRIVALS] += left
            left = 0
        return pointer, left
    routed = arrivals if total_share >= 1.0 - 1e-12 else int(math.floor(arrivals * total_share + 0.5))
    if algorithm == LEAST_OUTSTANDING and _any_healthy(inst_f, inst_i, b, hi):
        n_failed = 0
        n_healthy = 0
        for i in range(hi):
            if inst_f[b, i, F_SHARE] > 0.0:
                if inst_i[b, i, I_STATE] == FAILED:
                    n_failed += 1
                else:
                    n_healthy += 1
        boost = 1.0
        if n_failed > 0:
            offered = arrivals / dt * service_s  # requests/s x service time: Erlangs
            boost = failed_tie_share(n_failed, n_healthy, offered) * (n_failed + n_healthy) / n_failed
        rest = routed
        for i in range(hi):
            sh = inst_f[b, i, F_SHARE]
            if sh > 0.0 and inst_i[b, i, I_STATE] == FAILED:
                # a slot that crashed inside this step was healthy before the crash: the even share until then
                pre = inst_f[b, i, F_PRE_CRASH] if inst_f[b, i, F_CRASH_AT] > 0.0 else 0.0
                mix = pre + (1.0 - pre) * boost
                if pre > 0.0:
                    inst_f[b, i, F_PRE_CRASH] = pre / mix  # the part of its arrivals that came before the crash
                x = min(int(math.floor(arrivals * sh * mix)), rest)
                inst_i[b, i, I_ARRIVALS] = x
                rest -= x
        _water_fill(inst_f, inst_i, b, hi, rest, capacity_rps)
        return pointer, arrivals - routed
    # round robin (and least outstanding when every pool member has crashed: they all answer at once)
    given = 0
    n_pool = 0
    for i in range(hi):
        sh = inst_f[b, i, F_SHARE]
        if sh > 0.0:
            x = int(math.floor(routed * sh / total_share))
            inst_i[b, i, I_ARRIVALS] = x
            given += x
            n_pool += 1
    extra = routed - given
    if extra > 0 and n_pool > 0:
        start = pointer % n_pool
        j = 0
        for i in range(hi):
            if inst_f[b, i, F_SHARE] > 0.0:
                # pool members start..start+extra-1 (cyclically) get one more
                if (j - start) % n_pool < extra:
                    inst_i[b, i, I_ARRIVALS] += 1
                j += 1
        pointer = (start + extra) % n_pool
    return pointer, arrivals - routed


@njit(cache=True)
def failed_tie_share(n_failed: int, n_healthy: int, offered: float) -> float:
    """Share of a least-outstanding balancer's requests that go to ``n_failed`` crashed, undetected members
    beside ``n_healthy`` healthy ones, at ``offered`` Erlangs (arrival rate x mean service time).

    A crashed member answers at once, so it always has zero outstanding requests: a healthy member gets a
    request only while it too has none (a tie, broken evenly). Each healthy member is then a one-server loss
    system (M/G/1/1): idle, it receives requests at ``lambda / N`` (N = the members tied at zero: the failed ones
    plus the idle healthy ones), busy, none. Erlang's loss formula (insensitive to the service-time law) gives
    P(idle) = 1 / (1 + a) with ``a = lambda s / N``; with ``N = f + h / (1 + a)`` this is the positive root of
    ``f a^2 + (f + h - lambda s) a - lambda s = 0``. The healthy members complete ``h a / (1 + a)`` requests per
    service time, the failed ones get the rest (docs/model.md 5). At low load it is the even share ``f / (f + h)``;
    near saturation almost everything (as a request-level simulation shows: 94 % with 2 of 4 failed at 30
    Erlangs)."""
    if n_failed <= 0:
        return 0.0
    if offered <= 0.0 or n_healthy <= 0:
        return n_failed / (n_failed + n_healthy) if n_healthy > 0 else 1.0
    f = float(n_failed)
    bq = f + n_healthy - offered
    a = (-bq + math.sqrt(bq * bq + 4.0 * f * offered)) / (2.0 * f)
    return max(1.0 - n_healthy * a / ((1.0 + a) * offered), f / (f + n_healthy))


@njit(cache=True)
def _water_fill(inst_f, inst_i, b: int, hi: int, total: int, capacity_rps: float) -> None:
    """Split ``total`` over the healthy members so that outstanding work h_i = queue - capacity in the step,
    plus what they receive, ends level (members already above the level get nothing)."""
    n = 0
    hsum = 0.0
    for i in range(hi):
        if inst_f[b, i, F_SHARE] > 0.0 and inst_i[b, i, I_STATE] != FAILED:
            hsum += inst_i[b, i, I_BACKLOG] - capacity_rps * inst_f[b, i, F_SERVE]
            n += 1
    level = (total + hsum) / n
    for _ in range(hi):  # drop members above the water and recompute, until none is
        changed = False
        n = 0
        hsum = 0.0
        for i in range(hi):
            if inst_f[b, i, F_SHARE] > 0.0 and inst_i[b, i, I_STATE] != FAILED:
                h = inst_i[b, i, I_BACKLOG] - capacity_rps * inst_f[b, i, F_SERVE]
                if h < level:
                    hsum += h
                    n += 1
                else:
                    changed = True
        new_level = (total + hsum) / n if n > 0 else level
        if not changed or abs(new_level - level) < 1e-9:
            level = new_level
            break
        level = new_level
    # cumulative rounding keeps the total exact
    acc = 0.0
    given = 0
    first = -1
    for i in range(hi):
        if inst_f[b, i, F_SHARE] > 0.0 and inst_i[b, i, I_STATE] != FAILED:
            if first < 0:
                first = i
            h = inst_i[b, i, I_BACKLOG] - capacity_rps * inst_f[b, i, F_SERVE]
            acc += max(level - h, 0.0)
            c = min(int(math.floor(acc + 0.5)), total)
            inst_i[b, i, I_ARRIVALS] = c - given
            given = c
    if given < total and first >= 0:  # float residue
        inst_i[b, first, I_ARRIVALS] += total - given


@njit(cache=True)
def balancer_queue(
    algorithm: int,
    offered_rps: float,
    n_pool: int,
    pool_time: float,
    healthy_time: float,
    conc: int,
    svc: float,
    cs2: float,
    maxq: float,
):
    """The stationary queue that each request sees under ``algorithm``, at ``offered_rps`` requests/s over a pool
    of ``n_pool`` members that spend ``pool_time`` instance-steps in it (``healthy_time`` of them not crashed).

    - ``least_outstanding``: one pooled queue of all healthy slots, at the healthy part of the rate, its wait and
      P(wait) scaled to join-the-shortest-queue's (``jsq.jsq_factors``);
    - ``round_robin``: per instance, every n-th request of a Poisson stream (Erlang-n gaps): E_n/M/c
      (``queueing.erlang_arrivals_wait``);
    - ``random``: per instance, a Poisson stream.

    Returns (mean wait s, P(wait), P(turned away by a full waiting room)) of ``queueing.stationary_wait``.
    """
    servers, lam, ca2, room = balancer_load(algorithm, offered_rps, n_pool, pool_time, healthy_time, conc, maxq)
    if servers <= 0 or lam <= 0.0:
        return 0.0, 0.0, 0.0
    if algorithm == ROUND_ROBIN:
        return erlang_arrivals_wait(n_pool, servers, lam, svc, cs2, room)
    wait, p_wait, p_block = stationary_wait(servers, lam, svc, ca2, cs2, room)
    if algorithm == LEAST_OUTSTANDING:  # a queued request cannot move to a freed slot elsewhere (sim/jsq.py)
        f_wait, f_p = jsq_factors(healthy_time, conc, min(lam * svc / servers, RHO_CAP))
        wait *= f_wait
        p_wait = min(p_wait * f_p, 1.0)
    return wait, p_wait, p_block


@njit(cache=True)
def balancer_load(
    algorithm: int, offered_rps: float, n_pool: int, pool_time: float, healthy_time: float, conc: int, maxq: float
):
    """The queue each request sees under ``algorithm`` (``balancer_queue``): (servers, arrival rate requests/s,
    squared coefficient of variation of its inter-arrival times, waiting room)."""
    if algorithm == LEAST_OUTSTANDING:
        lam = offered_rps * (healthy_time / pool_time) if pool_time > 0.0 else 0.0
        return int(math.floor(healthy_time * conc + 0.5)), lam, 1.0, maxq * healthy_time
    if pool_time > 0.0:
        ca2 = 1.0 / n_pool if algorithm == ROUND_ROBIN else 1.0
        return conc, offered_rps / pool_time, ca2, maxq
    return 0, 0.0, 1.0, maxq
