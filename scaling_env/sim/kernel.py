"""The compiled step: one decision step of a cluster as a recipe of named phases (``step_cluster``).

The state comes in as two records (``state.State``, ``state.Outputs``); each phase is one compiled helper:

1. ``apply_action``: the requested change is bounded by [min, max] (``instances.bounded_change``) and blocked by
   the running cooldown of its direction; scale-outs start cold starts, scale-ins drain the chosen instances;
2. ``crash_instances``: correlated outages due in the step, then spontaneous crashes (hazard
   ``1 - exp(-dt / mtbf)`` per warm instance);
3. ``pool_time``: cold starts that end in the step join the pool for the rest of it; crashed instances stay in
   the pool until the health checks take them out;
4. ``draw_arrivals``: Poisson(integral of lambda over the step), or the rounded running total;
5. ``route_arrivals``: over the pool (``load_balancer.route``); with no instance in the pool at the step start,
   requests wait on booting instances (as a serverless platform holds a request during a cold start), or are
   dropped if none boots;
6. ``serve``: the stationary queue of the balancing algorithm (``load_balancer.balancer_queue``) at the step's
   offered rate, and per slot (``serve_slot``) a fluid queue for backlog, overload, drops and cold-start waits;
   memory use and overload crashes; drains finish; billing;
7. ``lifecycle``: cold starts complete, detected instances become unhealthy and are replaced;
8. ``latency``: mean and p95 response time of the step's served requests;
9. ``advance_clocks``: cooldowns and time;
10. ``finish_step``: metrics, observation, reward terms, truncation.

With ``platform.enabled`` (the serverless platform mode, docs/model.md section 12) a cluster steps by another
recipe, ``step_platform``: its phases are in ``platform.py``, and it shares arrivals, clocks and outputs.

Counts of the step (arrivals, served, dropped, failed, crashes, ...) are tallied in the step's metrics row,
which ``begin_step`` clears. The queueing model and its sources are written down in docs/model.md.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ..fields import (
    M_ARRIVALS,
    M_BACKLOG,
    M_BILLED,
    M_BLOCKED,
    M_BOOTING,
    M_COLD_STARTS,
    M_CONTROLLED,
    M_COST,
    M_CPU,
    M_CPU_MAX,
    M_CRASHES,
    M_DRAINING,
    M_DROPPED,
    M_DROPPED_SHARE,
    M_FAILED,
    M_FAILED_INST,
    M_FAILED_SHARE,
    M_INST_SECONDS,
    M_LAT_MEAN,
    M_LAT_P95,
    M_MEM,
    M_MEM_MAX,
    M_PROV_COST,
    M_SCALE_APPLIED,
    M_SCALE_REQ,
    M_SERVED,
    M_SLO_VIOLATED,
    M_THROTTLED,
    M_THROTTLED_SHARE,
    M_TIME,
    M_UNHEALTHY,
    M_WARM,
    N_METRICS,
    N_REWARD,
    O_BACKLOG,
    O_BOOT_REMAINING,
    O_BOOTING,
    O_CD_IN,
    O_CD_OUT,
    O_CPU_MAX,
    O_CPU_MEAN,
    O_DRAINING,
    O_DROPPED,
    O_FAILED,
    O_MEM_MAX,
    O_MEM_MEAN,
    O_P95,
    O_PROGRESS,
    O_RATE,
    O_TOD_COS,
    O_TOD_SIN,
    O_UNHEALTHY,
    O_WARM,
    OBS_HIGH,
    OBS_LOW,
    OBSERVED_COLS,
    OBSERVED_TRUE_COLS,
    R_COST,
    R_DROPPED,
    R_FAILED,
    R_SCALING,
    R_SLO,
    R_THROTTLED,
)
from .instances import (
    BOOTING,
    DRAINING,
    F_CRASH_AT,
    F_DROPC,
    F_EARLY,
    F_LOAD,
    F_PRE_CRASH,
    F_QFLUID,
    F_SERVE,
    F_SHARE,
    F_SPLIT,
    F_TIMER,
    F_WEIGHT,
    FAILED,
    I_ARRIVALS,
    I_BACKLOG,
    I_CHECKS,
    I_EVENT,
    I_STATE,
    OFF,
    UNHEALTHY,
    WARM,
    bounded_change,
    clear_cohorts,
    count_state,
    counted,
    crash,
    crash_random_warm,
    launch,
    scale_in,
)
from .jsq import window_variance_share
from .load_balancer import (
    LEAST_OUTSTANDING,
    RANDOM,
    ROUND_ROBIN,
    balancer_load,
    balancer_queue,
    health_checks,
    pool_shares,
    route,
)
from .memory import (
    _LAW_BUFFER,
    _LONE_BUFFER,
    JOINS,
    LONE_STATES,
    boot_crash_split,
    count_limit,
    draw_join_crash,
    draw_memory_crash,
    draw_memory_crash_split,
    escape_probability,
    fluid_crossing,
    lone_escape,
    lone_part,
    memory_slots,
    passage_rate,
    serving_count,
)
from .mgc import blocking_stretch
from .nonstationary import (
    FINITE_FROM,
    FINITE_ROOM_MAX,
    mmck_blocking,
    pooled_transient_wait,
    psffa_finite_wait,
    psffa_wait,
    room_fill_time,
    stretch_of,
)
from .platform import platform_action, platform_latency, platform_reset, serve_platform
from .queueing import (
    GIMK_MAX_ROOM,
    RHO_CAP,
    _stack_doubles,
    drbm_step_blocking,
    erlang_arrivals_wait,
    fifo_waits,
    fluid_p95,
    fluid_segment,
    members_wait_p95,
    response_p95,
    room_wait_p95,
    transient_wait_p95,
    waiting_latency,
    window_wait_p95,
)
from .rng import binomial, poisson
from .state import (
    ARRIVAL_PARTS,
    E_CARRY,
    E_CD_IN,
    E_CD_OUT,
    E_HI,
    E_PF_BUFFER,
    E_PF_PROV,
    E_PSFFA,
    E_PSFFA_N,
    E_RR,
    E_STEP,
    E_TIME,
    P_ALGO,
    P_BOOT_JITTER,
    P_BOOT_MEAN,
    P_CD_IN,
    P_CD_OUT,
    P_CLOCK0,
    P_CONC,
    P_DAY,
    P_DEREG,
    P_DT,
    P_EPISODE_STEPS,
    P_HAZARD,
    P_HC_INTERVAL,
    P_HC_THRESHOLD,
    P_MAX,
    P_MAX_RPS,
    P_MAX_STEP,
    P_MAXQ,
    P_MEM_BASE,
    P_MEM_CRASH,
    P_MEM_LIMIT,
    P_MEM_REQ,
    P_MIN,
    P_PLATFORM,
    P_POISSON,
    P_PRICE_INST_S,
    P_PRICE_REQ,
    P_REF_COST,
    P_REPLACE,
    P_SLO,
    P_SLO_LOST,
    P_SVC,
    P_SVC_CV,
    P_TERMINATION,
    P_WEIGHTS,
    Outputs,
    State,
)

_EPS = 1e-9
# Every function here is compiled without numba's reference counting (``_nrt=False``, a numba target option):
# taking an array out of the State record would otherwise count a reference up and down at each use, atomically,
# which made the step 3-4x slower. Nothing here allocates, so there is nothing to count.
_KERNEL = {"cache": True, "_nrt": False}


# ------------------------------------------------------------------------------------------ the recipe
@njit(inline="always", **_KERNEL)
def step_cluster(b, s, out, action):
    """One decision step of cluster b (``s``: ``state.State``, ``out``: ``state.Outputs``)."""
    if s.params[b, P_PLATFORM] > 0.5:
        step_platform(b, s, out, action)
        return
    m = out.metrics
    t0 = s.env_state[b, E_TIME]
    k = int(s.env_state[b, E_STEP])
    dt = s.params[b, P_DT]
    backlog_before = begin_step(b, s, m)
    hi = apply_action(b, s, m, int(s.scale_steps[action]))
    crash_instances(b, s, m, hi, t0, dt)
    wsum, w_healthy, n_pool, n_boot, pool_at_start = pool_time(b, s, hi, t0, dt)
    arrivals, offered_rps = draw_arrivals(b, s, m, k)
    to_booting = route_arrivals(b, s, m, hi, arrivals, pool_at_start, n_boot)
    waits = serve(b, s, m, hi, to_booting, offered_rps, n_boot, wsum, w_healthy, n_pool, backlog_before)
    lifecycle(b, s, m, hi)
    backlog = latency(b, s, m, waits, t0 + dt)
    advance_clocks(b, s, t0, dt, k)
    finish_step(b, s, out, backlog_before + arrivals, backlog, t0 + dt, k)


@njit(**_KERNEL)
def step_platform(b, s, out, action):
    """One decision step of cluster b in the request-driven platform mode (``platform.py``; docs/model.md 10):
    the action changes the provisioned count (or the keep-alive), the arrivals are admitted on warm capacity or
    on cold starts the platform launches, or are throttled or buffered; idle instances are reclaimed."""
    m = out.metrics
    t0 = s.env_state[b, E_TIME]
    k = int(s.env_state[b, E_STEP])
    dt = s.params[b, P_DT]
    backlog_before = begin_step(b, s, m) + int(s.env_state[b, E_PF_BUFFER])
    hi = platform_action(b, s, m, int(s.scale_steps[action]), int(s.env_state[b, E_HI]))
    arrivals, _ = draw_arrivals(b, s, m, k)
    hi, n_waited, wait_sum = serve_platform(b, s, m, hi, arrivals)
    s.env_state[b, E_HI] = hi
    count_states(b, s, m)
    m[b, M_CONTROLLED] = s.env_state[b, E_PF_PROV]
    backlog = platform_latency(b, s, m, n_waited, wait_sum, t0 + dt)
    advance_clocks(b, s, t0, dt, k)
    finish_step(b, s, out, backlog_before + arrivals, backlog, t0 + dt, k)


# the compiled entry points take the arrays one by one (``*State, *Outputs``): numba checks the types of a few
# arrays much faster than those of a namedtuple, which matters for one-cluster steps of a few microseconds
@njit(**_KERNEL)
def step_batch(actions, active, params, env_state, inst_f, inst_i, rng, expected, outages, scale_steps, *outputs):
    """Step every active cluster, one after the other."""
    s = State(params, env_state, inst_f, inst_i, rng, expected, outages, scale_steps)
    out = Outputs(*outputs)
    for b in range(params.shape[0]):
        if active[b]:
            step_cluster(b, s, out, actions[b])


@njit(parallel=True, **_KERNEL)
def step_batch_parallel(
    actions, active, params, env_state, inst_f, inst_i, rng, expected, outages, scale_steps, *outputs
):
    """Step every active cluster, the clusters split over numba's threads."""
    s = State(params, env_state, inst_f, inst_i, rng, expected, outages, scale_steps)
    out = Outputs(*outputs)
    for b in prange(params.shape[0]):
        if active[b]:
            # prange's index is unsigned: as int64, every callee is the serial kernel's (compiled once, not twice)
            step_cluster(np.int64(b), s, out, actions[b])


@njit(**_KERNEL)
def reset_clusters(ids, initial, params, env_state, inst_f, inst_i, rng, expected, outages, scale_steps, *outputs):
    """Empty the clusters ``ids`` and start ``initial[j]`` warm instances in each."""
    s = State(params, env_state, inst_f, inst_i, rng, expected, outages, scale_steps)
    out = Outputs(*outputs)
    for j in range(ids.shape[0]):
        b = ids[j]
        s.env_state[b, :] = 0.0
        s.inst_i[b, :, :] = 0
        s.inst_f[b, :, :] = 0.0
        for i in range(initial[j]):
            s.inst_i[b, i, I_STATE] = WARM
        s.env_state[b, E_HI] = initial[j]
        out.metrics[b, :] = 0.0
        count_states(b, s, out.metrics)
        if s.params[b, P_PLATFORM] > 0.5:
            platform_reset(b, s, out.metrics)
        observe(b, s, out.metrics, out.obs)


# ------------------------------------------------------------------------------------------ the phases
@njit(**_KERNEL)
def begin_step(b, s, m):
    """Clear the step's metrics row and per-slot events; returns the requests queued at the step start."""
    for j in range(N_METRICS):
        m[b, j] = 0.0
    backlog = 0
    for i in range(int(s.env_state[b, E_HI])):
        backlog += s.inst_i[b, i, I_BACKLOG]
        s.inst_i[b, i, I_EVENT] = 0
    return backlog


@njit(**_KERNEL)
def apply_action(b, s, m, requested):
    """1. The requested change, bounded and blocked by cooldowns, starts cold starts or drains; returns the new
    slot bound ``hi``."""
    p, env, inst_f, inst_i = s.params, s.env_state, s.inst_f, s.inst_i
    hi = int(env[b, E_HI])
    live = 0
    for i in range(hi):
        if counted(inst_i[b, i, I_STATE], inst_f[b, i, F_TIMER]):
            live += 1
    applied = bounded_change(live, requested, int(p[b, P_MIN]), int(p[b, P_MAX]))
    blocked = 0
    if applied > 0 and env[b, E_CD_OUT] > _EPS:
        blocked = 1
        applied = 0
    elif applied < 0 and env[b, E_CD_IN] > _EPS:
        blocked = 1
        applied = 0
    launches = 0
    if applied > 0:
        launches, top = launch(inst_f, inst_i, s.rng, b, applied, p[b, P_BOOT_MEAN], p[b, P_BOOT_JITTER])
        applied = launches
        if launches > 0:
            env[b, E_CD_OUT] = p[b, P_CD_OUT]
        hi = max(hi, top)
    elif applied < 0:
        m[b, M_FAILED] += scale_in(inst_f, inst_i, b, -applied, hi)
        env[b, E_CD_IN] = p[b, P_CD_IN]
    m[b, M_SCALE_REQ] = requested
    m[b, M_SCALE_APPLIED] = applied
    m[b, M_BLOCKED] = blocked
    m[b, M_COLD_STARTS] = launches
    return hi


@njit(**_KERNEL)
def crash_instances(b, s, m, hi, t0, dt):
    """2. Crashes due in the step, each at its time (``instances.crash_at``): correlated outages at their time,
    then spontaneous crashes, each at a time drawn in the step (``instances.crash_fraction``)."""
    inst_f, inst_i, rng, outages = s.inst_f, s.inst_i, s.rng, s.outages
    for o in range(outages.shape[1]):
        ot = outages[b, o, 0]
        if ot >= 0.0 and t0 - _EPS <= ot < t0 + dt - _EPS:
            n_warm = count_state(inst_i, b, hi, WARM)
            count = int(math.floor(outages[b, o, 1] * n_warm + 0.5))
            at = max(ot - t0, 0.0) / dt if ot - t0 > _EPS else 0.0
            lost, n = crash_random_warm(inst_f, inst_i, rng, b, hi, count, n_warm, at)
            m[b, M_FAILED] += lost
            m[b, M_CRASHES] += n
    hazard = s.params[b, P_HAZARD]
    if hazard > 0.0:
        # each warm instance crashes with probability `hazard`: draw how many, then which
        n_warm = count_state(inst_i, b, hi, WARM)
        n_crash = binomial(rng, b, n_warm, hazard)
        lost, n = crash_random_warm(inst_f, inst_i, rng, b, hi, n_crash, n_warm, 0.0, hazard)
        m[b, M_FAILED] += lost
        m[b, M_CRASHES] += n


@njit(**_KERNEL)
def pool_time(b, s, hi, t0, dt):
    """3. Pool time (``F_WEIGHT``) and serving time (``F_SERVE``) of each slot in this step.

    Returns (pool instance-steps, healthy pool instance-steps, pool members, booting slots, whether the pool
    had a member at the step start)."""
    inst_f, inst_i = s.inst_f, s.inst_i
    interval = s.params[b, P_HC_INTERVAL]
    threshold = int(s.params[b, P_HC_THRESHOLD])
    wsum = 0.0
    w_healthy = 0.0
    n_pool = 0
    n_boot = 0
    pool_at_start = False
    for i in range(hi):
        st = inst_i[b, i, I_STATE]
        w = 0.0
        tau = 0.0
        if st == WARM:
            w = 1.0
            tau = dt
        elif st == BOOTING:
            n_boot += 1
            r = inst_f[b, i, F_TIMER]
            if r <= dt + _EPS:
                tau = max(dt - r, 0.0)
                w = tau / dt
                inst_i[b, i, I_EVENT] = 1
        elif st == FAILED:
            at = inst_f[b, i, F_CRASH_AT]  # crashed inside this step: healthy (and serving) until then
            w = health_checks(inst_i, b, i, t0, dt, interval, threshold, at * dt)
            if w < 1.0 or inst_i[b, i, I_CHECKS] >= threshold:
                inst_i[b, i, I_EVENT] = 2
            w_healthy += at
            inst_f[b, i, F_PRE_CRASH] = at / max(w, at)  # arrivals spread over its pool time (route may change it)
        elif st == DRAINING:
            tau = dt
        inst_f[b, i, F_WEIGHT] = w
        inst_f[b, i, F_SERVE] = tau
        inst_i[b, i, I_ARRIVALS] = 0
        if w > 0.0:
            wsum += w
            n_pool += 1
            if st != FAILED:
                w_healthy += w
            if st == WARM or st == FAILED:
                pool_at_start = True
    return wsum, w_healthy, n_pool, n_boot, pool_at_start


@njit(**_KERNEL)
def draw_arrivals(b, s, m, k):
    """4. The step's arrivals; returns (arrivals, offered rate in requests/s)."""
    # one shared row when every episode has the same rates (the casts: b may be a prange's unsigned index)
    row = np.int64(b) if s.expected.shape[0] > 1 else np.int64(0)
    mean = s.expected[row, k] if k < s.expected.shape[1] // ARRIVAL_PARTS else 0.0
    if s.params[b, P_POISSON] > 0.5:
        arrivals = poisson(s.rng, b, mean)
    else:
        # deterministic: the running total rounded down, so the episode's count is its expected total
        # (the fraction left over is carried to the next step; the 1e-9 absorbs rounding of the expectations)
        due = s.env_state[b, E_CARRY] + mean
        arrivals = int(math.floor(due + 1e-9))
        s.env_state[b, E_CARRY] = due - arrivals
    m[b, M_ARRIVALS] = arrivals
    return arrivals, mean / s.params[b, P_DT]


@njit(inline="always", **_KERNEL)
def rate_change(b, s):
    """4, the rate change inside the current step: (its time s from the step start, 0 if none; the part of the
    step's arrivals before it) (``state.ARRIVAL_PARTS``)."""
    row = np.int64(b) if s.expected.shape[0] > 1 else np.int64(0)
    steps = s.expected.shape[1] // ARRIVAL_PARTS
    k = int(s.env_state[b, E_STEP])
    if k >= steps:
        return 0.0, 0.0
    return s.expected[row, steps + k], s.expected[row, 2 * steps + k]


@njit(**_KERNEL)
def route_arrivals(b, s, m, hi, arrivals, pool_at_start, n_boot):
    """5. Split the arrivals over the pool (``I_ARRIVALS``); returns True if they wait on booting instances."""
    inst_f, inst_i, p = s.inst_f, s.inst_i, s.params
    if pool_at_start:
        dt = p[b, P_DT]
        cap_rps = int(p[b, P_CONC]) / p[b, P_SVC]
        rate_split, rate_early = rate_change(b, s)
        total_share = pool_shares(inst_f, inst_i, b, hi, dt, rate_split, rate_early)
        algo = int(p[b, P_ALGO])
        pointer, no_target = route(
            inst_f,
            inst_i,
            s.rng,
            b,
            hi,
            arrivals,
            total_share,
            algo,
            int(s.env_state[b, E_RR]),
            cap_rps,
            dt,
            p[b, P_SVC],
        )
        s.env_state[b, E_RR] = pointer
        m[b, M_DROPPED] += no_target  # arrived while every member had been taken out
        return False
    if n_boot > 0:
        # nothing in the pool at the step start: requests wait for the cold starts, split evenly
        share = arrivals // n_boot
        extra = arrivals - share * n_boot
        for i in range(hi):
            if inst_i[b, i, I_STATE] == BOOTING:
                inst_i[b, i, I_ARRIVALS] = share + (1 if extra > 0 else 0)
                extra -= 1
        if p[b, P_MEM_CRASH] > 0.5:
            # the first to pass its memory limit takes the later requests (docs/model.md 7)
            limit = count_limit(p[b, P_MEM_BASE], p[b, P_MEM_REQ], p[b, P_MEM_LIMIT])
            later = int(p[b, P_ALGO]) != LEAST_OUTSTANDING
            m[b, M_FAILED] += boot_crash_split(inst_f, inst_i, b, hi, limit, p[b, P_MAXQ], p[b, P_DT], later)
        return True
    m[b, M_DROPPED] += arrivals
    return False


@njit(inline="always", **_KERNEL)
def beyond_throughput(b, i, s, done, rate):
    """The requests slot ``i`` served beyond a finite queue's throughput ``rate`` requests/s over its serving time,
    to be turned away: its slots idle now and then even above capacity (M/M/c/K's throughput c mu rho (1 - P_K) <
    c mu; ``queue_over_step``'s ``busy``), while the fluid queue serves at c mu once full and turns away only the
    excess 1 - 1/rho (fractions carried as the fluid's, ``F_DROPC``)."""
    return turn_away(b, i, s, done, max(done - rate * s.inst_f[b, i, F_SERVE], 0.0))


@njit(inline="always", **_KERNEL)
def room_drops(b, i, s, done, lost, fills, p_fill, p_block, busy):
    """6, the requests slot ``i`` turns away from its ``done`` served ones above capacity, beyond the ``lost`` its
    room's binomial draw and its fluid queue's overflow turned away: while its fluid queue fills (``fills``, at the
    step start, and it did not fill in the step) the fill share ``p_fill - p_block`` of its arrivals on top of
    the draw's ``p_block`` (docs/model.md 6.2.3: the expected rest; p_fill a less the draw's realisation,
    max(p_fill a - X, 0), is on average more, and made random's drops jump by a third as the load crossed 1);
    otherwise what it served beyond the slots' ``busy`` share of its capacity (``beyond_throughput``)."""
    p = s.params
    if fills and s.inst_f[b, i, F_QFLUID] < p[b, P_MAXQ] - 1e-6:
        return turn_away(b, i, s, done, (p_fill - p_block) * s.inst_i[b, i, I_ARRIVALS])
    if busy < 1.0:
        return beyond_throughput(b, i, s, done, busy * int(p[b, P_CONC]) / p[b, P_SVC])
    return 0


@njit(inline="always", **_KERNEL)
def filling(b, i, s, n_pool):
    """Whether slot ``i``'s fluid queue is still filling at the step start (above capacity): below the waiting room
    by more than its step's arrivals' own spread, sqrt(ca2 arrivals) (ca2 = 1 / n under round robin, 1 under
    random). Such a slot turns away ``queue_segment``'s ``p_fill`` of its arrivals (``serve``); one at or near
    the room turns away the overload's excess through its fluid queue and what it serves beyond the queue's
    throughput (``beyond_throughput``). (A fluid queue that dipped below a full room only by its arrivals' spread
    refills and overflows again: counted as filling, it turned away the blocking twice, +7 % to +11 % at
    utilisation 1.02 under random; docs/model.md 6.2.3.)"""
    p = s.params
    ca2 = 1.0 / n_pool if int(p[b, P_ALGO]) == ROUND_ROBIN and n_pool > 0 else 1.0
    return s.inst_f[b, i, F_QFLUID] < p[b, P_MAXQ] - math.sqrt(ca2 * s.inst_i[b, i, I_ARRIVALS]) - 1e-6


@njit(inline="always", **_KERNEL)
def turn_away(b, i, s, done, amount):
    """``amount`` of slot ``i``'s ``done`` served requests turned away instead, in whole requests (at most
    ``done``; the fraction carried over steps with its fluid drops', ``F_DROPC``). Returns how many."""
    carry = s.inst_f[b, i, F_DROPC] + amount
    extra = min(int(math.floor(carry + 1e-9)), done)
    s.inst_f[b, i, F_DROPC] = max(carry - extra, 0.0)
    return extra


@njit(inline="always", **_KERNEL)
def record_usage(b, m, cpu_sum, mem_sum, n_serving, cpu_max, mem_max, billed, inst_seconds):
    """The step's CPU and memory (mean over the slots that served, and the largest) and its billing."""
    m[b, M_CPU] = cpu_sum / n_serving if n_serving > 0 else 0.0
    m[b, M_MEM] = mem_sum / n_serving if n_serving > 0 else 0.0
    m[b, M_CPU_MAX] = cpu_max
    m[b, M_MEM_MAX] = mem_max
    m[b, M_BILLED] = billed
    m[b, M_INST_SECONDS] = inst_seconds


@njit(inline="always", **_KERNEL)
def pool_blocking(b, s, hi, p_block, p_fill, excess):
    """6, the share of arrivals each serving slot's room draw turns away when ``p_block`` is the flow's blocking
    less the overload's ``excess`` 1 - 1/rho (``queue_segment``: random's, and round robin's with a room above
    GIMK_MAX_ROOM below capacity): less what the slots' fluid queues, fed by the arrivals as drawn, would overflow
    with all of them (``fluid_segment`` over the serving time) beyond that excess, which they turn away once full
    by design. A slot whose fluid queue is full turns away its overflow whatever its draw; counted on top, those
    overflows raised random's drops at utilisation 1.00 by about 7 % (c = 1-2; docs/model.md 6.2.3). Returns
    (``p_block``, ``p_fill``), the filling slots' share beyond ``p_block`` kept; as given where ``excess`` < 0."""
    if excess < 0.0 or p_block <= 1e-12:
        return p_block, p_fill
    p, inst_f, inst_i = s.params, s.inst_f, s.inst_i
    cap_rps = int(p[b, P_CONC]) / p[b, P_SVC]
    maxq = p[b, P_MAXQ]
    total = 0
    over = 0.0
    for i in range(hi):
        st = inst_i[b, i, I_STATE]
        tau = inst_f[b, i, F_SERVE]
        a_i = inst_i[b, i, I_ARRIVALS]
        if (st == WARM or st == BOOTING) and tau > 0.0 and a_i > 0:
            total += a_i
            qf = inst_f[b, i, F_QFLUID]
            if abs(qf - inst_i[b, i, I_BACKLOG]) >= 1.0:  # (as ``fluid_queue`` restarts it)
                qf = float(inst_i[b, i, I_BACKLOG])
            over += fluid_segment(qf, a_i / tau - cap_rps, tau, maxq)[2]
    if total == 0:
        return p_block, p_fill
    p_pool = max(p_block - max(over / total - excess, 0.0), 0.0)
    return p_pool, p_fill - (p_block - p_pool)


@njit(**_KERNEL)
def serve(b, s, m, hi, to_booting, offered_rps, n_boot, wsum, w_healthy, n_pool, backlog):
    """6. Serving and billing of every slot. Returns the waits of the step's served requests: (fluid wait
    request-s, age of the requests still queued request-s, requests served through the stationary queue,
    stationary wait request-s, requests that waited, longest fluid wait s, stationary mean wait s, stationary
    P(wait), least mean wait of the step's requests s (``queue_over_step``))."""
    p, inst_f, inst_i = s.params, s.inst_f, s.inst_i
    dt = p[b, P_DT]
    conc = int(p[b, P_CONC])
    svc = p[b, P_SVC]
    cs2 = p[b, P_SVC_CV] * p[b, P_SVC_CV]
    if to_booting:
        # requests wait on the booting instances, split evenly (every n-th request)
        w_stat, p_stat, p_block = erlang_arrivals_wait(n_boot, conc, offered_rps / n_boot, svc, cs2, p[b, P_MAXQ])
        s.env_state[b, E_PSFFA] = 0.0
        s.env_state[b, E_PSFFA_N] = 0.0
        w_floor, holds, busy = 0.0, False, 1.0
        p_fill = p_block
    else:
        w_stat, p_stat, p_block, w_floor, holds, busy, p_fill, excess = queue_over_step(
            b, s, offered_rps, wsum, w_healthy, n_pool, backlog, hi
        )
        p_block, p_fill = pool_blocking(b, s, hi, p_block, p_fill, excess)
    w_stat = min(w_stat, dt)
    w_floor = min(w_floor, dt)  # longer waits than a step build up as fluid backlog, step by step
    r_level = 0.0 if to_booting else memory_level(b, s, hi, offered_rps, wsum, w_healthy, n_pool)
    fluid_wait_sum = 0.0  # waiting of the step's served requests in fluid queues, request-seconds
    queued_age = 0.0  # age of the requests still queued at the end, request-seconds
    stat_wait_sum = 0.0
    stat_served = 0.0  # served requests that found the fluid queue empty (the stationary queue's)
    p_wait_sum = 0.0
    max_fluid_wait = 0.0
    cpu_sum = 0.0
    mem_sum = 0.0
    cpu_max = 0.0
    mem_max = 0.0
    n_serving = 0
    inst_seconds = 0.0
    billed = served = dropped = failed = crashes = 0
    # least outstanding: a member that crashed has no outstanding requests and takes nearly every later request
    # until it is found (docs/model.md 5), so the others' counts stop growing: a memory crash in the step stops
    # the later ones of the other members (the first in slot order when they come at the same moment)
    lo_pool = int(p[b, P_ALGO]) == LEAST_OUTSTANDING and not to_booting
    first_crash = -1.0
    for i in range(hi):
        st = inst_i[b, i, I_STATE]
        if st == OFF:
            continue
        bill = dt
        if st == FAILED:
            done, fail = serve_until_crash(b, i, s)
            served += done
            failed += fail
            stat_served += done  # (as requests of the stationary queue)
            stat_wait_sum += done * w_stat
            p_wait_sum += done * p_stat
        elif st == UNHEALTHY:
            if inst_f[b, i, F_TIMER] >= 0.0:  # being replaced: billed until terminated
                bill = min(inst_f[b, i, F_TIMER], dt)
                inst_f[b, i, F_TIMER] -= dt
                if inst_f[b, i, F_TIMER] <= _EPS:
                    inst_i[b, i, I_STATE] = OFF
        # a slot still booting, with nothing routed or queued to it, has nothing to do
        elif not (st == BOOTING and not to_booting and inst_f[b, i, F_SERVE] <= 0.0 and inst_i[b, i, I_BACKLOG] == 0):
            slot_boot, r_slot, quick, quick_at = slot_mode(b, i, s, st, to_booting, r_level, offered_rps, hi)
            fills = p_fill > p_block and filling(b, i, s, n_pool)
            done, lost, fail, crashed, bill, cpu, mem, waited_s, age, longest, stat_n, stat_w, p_w, t_c = serve_slot(
                b, i, s, st, slot_boot, w_stat, p_stat, p_block, r_slot, first_crash, quick, quick_at, hi
            )
            if crashed > 0 and lo_pool and (first_crash < 0.0 or t_c < first_crash):
                first_crash = t_c
            if fail == 0 and not slot_boot and inst_f[b, i, F_SERVE] > 0.0:
                extra = room_drops(b, i, s, done, lost, fills, p_fill, p_block, busy)
                done -= extra
                lost += extra
            served += done
            dropped += lost
            failed += fail
            crashes += crashed
            queued_age += age
            fluid_wait_sum += waited_s
            max_fluid_wait = max(max_fluid_wait, longest)
            if mem >= 0.0:  # it served in the step
                cpu_sum += cpu
                mem_sum += mem
                cpu_max = max(cpu_max, cpu)
                mem_max = max(mem_max, mem)
                n_serving += 1
                stat_served += stat_n
                stat_wait_sum += stat_w
                p_wait_sum += p_w
        inst_seconds += bill
        if bill > 0.0:
            billed += 1
    m[b, M_SERVED] = served
    m[b, M_DROPPED] += dropped
    m[b, M_FAILED] += failed
    m[b, M_CRASHES] += crashes
    record_usage(b, m, cpu_sum, mem_sum, n_serving, cpu_max, mem_max, billed, inst_seconds)
    fluid = (fluid_wait_sum, queued_age, stat_served, stat_wait_sum, p_wait_sum, max_fluid_wait)
    return fluid + (w_stat, p_stat, w_floor, holds)


@njit(inline="always", **_KERNEL)
def memory_level(b, s, hi, offered_rps, wsum, w_healthy, n_pool):
    """The memory crash hazard per arrival: the first passage of an instance's count past the most requests its
    memory holds (``memory.passage_rate``; least outstanding: the share of arrivals that find it), 0 without
    memory crashes or where the waiting room turns requests away first."""
    p, inst_i = s.params, s.inst_i
    if p[b, P_MEM_CRASH] <= 0.5:
        return 0.0
    conc = int(p[b, P_CONC])
    level = memory_slots(p[b, P_MEM_BASE], p[b, P_MEM_REQ], p[b, P_MEM_LIMIT])
    if level >= conc + p[b, P_MAXQ]:
        return 0.0
    offered = offered_rps
    if int(p[b, P_ALGO]) == LEAST_OUTSTANDING and w_healthy < wsum - _EPS and w_healthy > 0.0:
        # crashed members in the pool take the requests that find a tie (``route``): the healthy ones' pooled
        # queue runs at what they were routed, not at their share of the pool's time
        routed = 0
        for i in range(hi):
            if inst_i[b, i, I_STATE] == WARM or inst_i[b, i, I_STATE] == BOOTING:
                routed += inst_i[b, i, I_ARRIVALS]
        offered = routed / p[b, P_DT] * wsum / w_healthy
    return passage_rate(int(p[b, P_ALGO]), offered, n_pool, wsum, w_healthy, conc, p[b, P_SVC], p[b, P_MAXQ], level)


@njit(inline="always", **_KERNEL)
def queue_over_step(b, s, offered_rps, wsum, w_healthy, n_pool, backlog, hi):
    """6, the balancer's stationary queue (``load_balancer.balancer_queue``) followed over time: its mean number
    in system is carried from step to step by the pointwise stationary fluid-flow approximation
    (``nonstationary.psffa_wait``; docs/model.md 6.2.1). ``backlog``: the fluid queues at the step start. A step
    with a rate change inside (``rate_change``) takes its two parts one after the other, each at its own rate.
    Returns (mean wait in the stationary queue s, P(wait), P(turned away), the mean wait every served request has
    at least s (the followed queue's; 0 for the per-step stationary one), whether that is the mean wait of the
    step (the finite-buffer flow's queue, in part of the step at least: it holds the fluid backlog))."""
    p = s.params
    dt = p[b, P_DT]
    y0 = s.env_state[b, E_PSFFA]
    n_before = s.env_state[b, E_PSFFA_N]
    rate_split, rate_early = rate_change(b, s)
    join, n_join, w_join = pool_join(b, s, dt, n_pool, hi) if rate_split <= 0.0 else (0.0, 0, 0.0)
    m_a = n_pool - n_join  # the members before the join
    if m_a > 0 and n_before > 0.0:
        y0 *= n_before / m_a  # members that join start empty, those that leave take their queue along
    if rate_split <= 0.0 and join <= 0.0:
        w_stat, p_stat, p_block, y, w, lam_in, followed, busy, p_fill, excess = queue_segment(
            b, s, offered_rps, wsum, w_healthy, n_pool, y0, dt
        )
    else:
        # two parts one after the other: at a rate change each at its own rate; at a join (members whose boot ends
        # inside the step, ``pool_join``) the members before it at the whole step's rate, then the whole pool (the
        # joiners start empty: the queue per member is spread over them). Taking the step's members at their mean
        # pool time instead kept a queue that drained after a scale-out for the whole step (2 -> 4 instances at
        # 300 req/s and capacity 100 each: utilisation 1.125 all step, so the next step still carried a full
        # room's wait in the flow while the fluid queues were empty)
        split = rate_split if rate_split > 0.0 else join
        rate_a = offered_rps * dt * rate_early / rate_split if rate_split > 0.0 else offered_rps
        rate_b = offered_rps * dt * (1.0 - rate_early) / (dt - rate_split) if rate_split > 0.0 else offered_rps
        ws_a, wh_a = (wsum, w_healthy) if rate_split > 0.0 else (wsum - w_join, w_healthy - w_join)
        ws_b, wh_b = (wsum, w_healthy) if rate_split > 0.0 else (ws_a + n_join, wh_a + n_join)
        w_a, p_a, pb_a, y, wf_a, in_a, fol_a, busy_a, pf_a, ex_a = queue_segment(
            b, s, rate_a, ws_a, wh_a, m_a, y0, split
        )
        # (1 without a join: the per-member rates of both parts are over the same pool)
        share_a = m_a / n_pool if n_pool > 0 else 1.0
        y *= share_a
        y_b = y
        w_b, p_b, pb_b, y, wf_b, in_b, fol_b, busy_b, pf_b, ex_b = queue_segment(
            b, s, rate_b, ws_b, wh_b, n_pool, y, dt - split
        )
        rate_split = split
        followed = max(fol_a, fol_b)
        n_a = rate_a * rate_split
        n_b = rate_b * (dt - rate_split)
        p_block = (n_a * pb_a + n_b * pb_b) / max(n_a + n_b, 1e-300)
        p_fill = (n_a * pf_a + n_b * pf_b) / max(n_a + n_b, 1e-300)
        excess = (n_a * ex_a + n_b * ex_b) / max(n_a + n_b, 1e-300) if min(ex_a, ex_b) >= 0.0 else -1.0
        busy = (rate_split * busy_a + (dt - rate_split) * busy_b) / dt  # (a share of the slots' time: by duration)
        adm_a = in_a * rate_split * share_a
        adm_b = in_b * (dt - rate_split)
        lam_in = (adm_a + adm_b) / dt
        if join > 0.0:
            # a join: the flow spreads the queue of the members before it over the joiners, so its second part's
            # wait is an arrival's in that pooled queue, not what those members serve (their own queues first);
            # weighted by what each part admits, the step's latency is within 1-3 % of the request backend (cold
            # starts of 20-50 s, 250-300 req/s on 2 -> 4 instances), by what each serves 3-10 % below it
            w = (adm_a * wf_a + adm_b * wf_b) / max(adm_a + adm_b, 1e-300)
        else:
            # a rate change: the followed queue's mean wait of the requests served in the step (the env's latency
            # is by the step a request completes in), ``served_in_part``. Weighted by what each part admits, the
            # overloaded part's requests still queued at its end counted (200 -> 600 req/s at 7.5 s of a 15 s
            # step, capacity 400: the step's mean latency 0.691 s against 0.614 s in an exact event simulation)
            conc = int(p[b, P_CONC])
            cap = conc / p[b, P_SVC]  # what a member's slots serve, requests/s
            lq0, lq_a, lq_b = max(y0 - conc, 0.0), max(y_b - conc, 0.0), max(y - conc, 0.0)
            done_a, sum_a = served_in_part(adm_a, wf_a, lq0, lq_a, cap * busy_a * split, lq0 / cap, fol_a)
            done_b, sum_b = served_in_part(adm_b, wf_b, lq_a, lq_b, cap * busy_b * (dt - split), lq_a / cap, fol_b)
            w = (sum_a + sum_b) / max(done_a + done_b, 1e-300)
        # the stationary queue is that of the requests that find no fluid backlog: those of a part at or above
        # capacity wait in the backlog (``fluid_queue_split``), so it is the part(s) below capacity
        cap_b = (ws_b if join > 0.0 else n_pool) * int(p[b, P_CONC]) / p[b, P_SVC]
        cap_a = ws_a * int(p[b, P_CONC]) / p[b, P_SVC] if join > 0.0 else cap_b
        k_a = n_a if rate_a < cap_a or rate_b >= cap_b else 0.0
        k_b = n_b if rate_b < cap_b or rate_a >= cap_a else 0.0
        w_stat = (k_a * w_a + k_b * w_b) / max(k_a + k_b, 1e-300)
        p_stat = (k_a * p_a + k_b * p_b) / max(k_a + k_b, 1e-300)
    s.env_state[b, E_PSFFA] = y
    s.env_state[b, E_PSFFA_N] = n_pool
    if followed == 0:  # random and least outstanding below FINITE_FROM: the per-step stationary queue
        return w_stat, p_stat, p_block, 0.0, False, busy, p_fill, excess
    # y holds the whole mean queue, the fluid backlog included: the queue that requests which find no fluid
    # queue meet is what it holds beyond the fluid's (per member, at the step start)
    fluid = backlog / n_pool if n_pool > 0 else 0.0
    w_beyond = max(w * lam_in - fluid, 0.0) / lam_in if lam_in > 0.0 else 0.0
    return w_beyond, p_stat, p_block, w, followed == 2, busy, p_fill, excess


@njit(inline="always", **_KERNEL)
def served_in_part(admitted, wait, lq_start, lq_end, capacity, w_old, followed):
    """6, (the requests a part of the step serves per member, the sum of their waits s), for the step's followed
    mean wait by completion (the env's latency is by the step a request completes in). ``lq_start``, ``lq_end``:
    the followed number waiting per member at the part's start and end; ``wait`` the part's followed mean wait
    (``queue_segment``), ``w_old`` that of the requests waiting at its start, ``capacity`` what its slots can serve.

    - A queue that grows: ``finite_step``'s wait is that of the requests that start service, at most ``capacity``.
    - Otherwise first the requests waiting at the start that the part drains (first in, first out: they waited
      ``w_old``), then its arrivals (``wait`` is an arrival's), up to ``capacity``. A queue not followed (the
      per-step stationary one) is steady."""
    if followed != 0 and lq_end > lq_start:
        done = min(admitted, capacity)
        return done, done * wait
    drained = lq_start - lq_end if followed != 0 else 0.0
    done = min(admitted + drained, capacity)
    old = min(drained, done)
    return done, old * w_old + (done - old) * wait


@njit(inline="always", **_KERNEL)
def pool_join(b, s, dt, n_pool, hi):
    """6, members whose boot ends inside the step (``pool_time``: booting with a pool time): (the mean moment s
    from the step start at which they join the pool, 0 if none or if no member serves before it; how many; their
    pool time, instance-steps)."""
    inst_f, inst_i = s.inst_f, s.inst_i
    n = 0
    w = 0.0
    for i in range(hi):  # (the step's bound: E_HI is set at its end, so it leaves out this step's scale-outs)
        if inst_i[b, i, I_STATE] == BOOTING and inst_f[b, i, F_WEIGHT] > 0.0:
            n += 1
            w += inst_f[b, i, F_WEIGHT]
    if n == 0 or n >= n_pool:
        return 0.0, 0, 0.0
    join = dt * (1.0 - w / n)
    if join <= _EPS or join >= dt - _EPS:
        return 0.0, 0, 0.0
    return join, n, w


@njit(inline="always", **_KERNEL)
def flow_blocking(b, s, algo, ca2, p_block, p_flow, rho_in, lam, servers, room, y0, w_stat, duration):
    """6, ``queue_segment``'s round robin and random on the finite-buffer flow (``p_flow``: its blocking over the
    part): (P(turned away) by the room's draw, the slots' busy share, the share a filling slot turns away)."""
    p = s.params
    svc = p[b, P_SVC]
    busy = 1.0
    p_fill = p_block
    if p[b, P_SVC_CV] == 1.0 and (algo == RANDOM or room > GIMK_MAX_ROOM):
        # the flow's blocking, less above capacity the overload's excess, which the fluid queues turn away once
        # full (with it, the fluid queues of an overload stay short: its drops and the step after it moved
        # away from the request backend). With cv > 1 the blocking is the flow's at z_b (below; cv < 1 keeps
        # the stationary one, the room as K / z places, sim/mgc.py); round robin keeps the exact E_n/M/c/K
        # chain for rooms of 1..GIMK_MAX_ROOM and above capacity (the flow's there moved noisy_trace's SLO
        # share from 0.178 to 0.180, reference 0.171)
        if algo == RANDOM or rho_in <= 1.0:
            p_block = max(p_flow - max(1.0 - 1.0 / rho_in, 0.0), 0.0)
        p_fill = p_block
        if rho_in > 1.0:
            # above capacity the slots' busy share: the flow's throughput rho (1 - P_K), P_K its blocking, which
            # follows its fill (Tipper & Sundareshan 1990): below 1 once the room is full, where the fluid queues
            # serve at c mu and turn away only the excess 1 - 1/rho (``serve`` turns away what they serve beyond
            # it). A slot whose fluid queue is not full turns away ``p_fill`` of its arrivals (``serve``): near
            # capacity the room's fluctuations fill it long before the deterministic fluid queue does, which
            # carries only the arrivals' part of them (drawn per step) and leaves out the services', the share
            # cs2 / (ca2 + cs2) = 1 / (ca2 + 1) of the diffusion variance; only where the fluid queue fills the
            # room slower than the fluctuations half fill it (``room_fill_time``: within about 5 % of capacity
            # for a room of 100), not in an overload's burst, where the fluid's drift fills it first
            # (docs/model.md 6.2.3)
            busy = min(rho_in * (1.0 - p_flow), 1.0)
            if room * svc > (lam * svc - servers) * room_fill_time(room, lam, servers, 1.0 / svc):
                p_fill = p_block + (p_flow - p_block) / (ca2 + 1.0)
    elif p[b, P_SVC_CV] > 1.0:
        # lognormal service (cv > 1): the blocking is the flow's with the room as K / z_b places, z_b the
        # stretch of the services' count variance over the room's time scale, below the long-run cs2 of z
        # (``mgc.blocking_stretch``; with the stationary K / z room the grid's drops at utilisation 0.98 and
        # 1.02 were off by -26 % to +94 %). It is the whole blocking above capacity too: it is at least the
        # overload's excess 1 - 1/rho (a finite queue serves at most c mu), so the fluid queues do not fill the
        # room and turn away nothing more (docs/model.md 6.2.5)
        z_b = blocking_stretch(ca2, servers, room, p[b, P_SVC_CV])
        p_block = psffa_finite_wait(y0, lam, svc, servers, w_stat, room, duration, z_b)[2]
        p_fill = p_block
    return p_block, busy, p_fill


@njit(inline="always", **_KERNEL)
def queue_segment(b, s, offered_rps, wsum, w_healthy, n_pool, y0, duration):
    """6, ``queue_over_step`` over ``duration`` s at ``offered_rps``: (stationary mean wait s, P(wait),
    P(turned away), the queue at the end per member, the followed queue's mean wait s, its admitted rate per member
    requests/s, how the queue was followed: 0 not (the per-step stationary queue), 1 by the one-parameter flow,
    2 by the finite-buffer flow, the slots' busy share (``beyond_throughput``), the share of arrivals a slot whose
    fluid queue is still filling turns away (``filling``; P(turned away) otherwise)).

    From utilisation FINITE_FROM on, round robin's and random's queues (with a waiting room of 1 to
    FINITE_ROOM_MAX) are followed by the finite-buffer flow (``nonstationary.psffa_finite_wait``); below it
    round robin's by the one-parameter flow (``psffa_wait``), while random keeps the per-step stationary queue (its
    mean number in system is the state the flow starts from). Random's blocking is the flow's, less the
    overload's excess ``1 - 1 / rho`` that the fluid queues turn away once full; round robin keeps its
    E_n/M/c/K blocking (Erlang-n gaps block less than the flow's M/M/c/K), but for a room above GIMK_MAX_ROOM its
    flow's below capacity. Above capacity both (round robin's room above GIMK_MAX_ROOM) turn away the flow's whole
    blocking beyond what their fluid queues do: the busy share and the filling slots' ``p_fill`` (docs/model.md
    6.2.1, 6.2.3). With lognormal service (cv > 1) both turn away the flow's blocking with the room as K / z_b
    places (``mgc.blocking_stretch``: the services' count variance over the room's time scale; docs/model.md
    6.2.5). Least outstanding's pooled queue is not followed by the flow: its room of n q fills by diffusion
    far slower than the flow relaxes (followed, it overshot the reference by +50 % to +170 % at utilisation 1.00,
    c <= 10; docs/model.md 6.2.1); from FINITE_FROM on its number waiting is the reflected Brownian motion from
    empty, capped at its steady state (``pooled_transient_wait``, docs/model.md 6.2.4), below it the per-step
    stationary pooled queue."""
    p = s.params
    algo = int(p[b, P_ALGO])
    conc = int(p[b, P_CONC])
    svc = p[b, P_SVC]
    maxq = p[b, P_MAXQ]
    w_stat, p_stat, p_block = balancer_queue(
        algo, offered_rps, n_pool, wsum, w_healthy, conc, svc, p[b, P_SVC_CV] * p[b, P_SVC_CV], maxq
    )
    servers, lam, _, room = balancer_load(algo, offered_rps, n_pool, wsum, w_healthy, conc, maxq)
    scale = float(n_pool) if algo == LEAST_OUTSTANDING and n_pool > 0 else 1.0
    rho_in = lam * svc / servers if servers > 0 else 0.0
    # (FINITE_FROM with a relative tolerance: lam svc / servers is a rate divided back, so a utilisation of exactly
    # 0.95 came out as 0.9499999999999999 and random's queue at 0.95 was the per-step stationary one, -23 % / -16 %
    # mean wait at c = 1 / 2 against the request backend, while the flow is within 1-2 % of the exact M/M/1/K
    # transient from empty there: docs/model.md 6.2.1)
    if rho_in >= FINITE_FROM * (1.0 - _EPS) and 1.0 <= room < FINITE_ROOM_MAX and algo != LEAST_OUTSTANDING:
        # arrivals and services that are not Poisson stretch the queue's law (the diffusion form): round robin's
        # members see Erlang-n gaps
        ca2 = 1.0 / n_pool if algo == ROUND_ROBIN and n_pool > 0 else 1.0
        z = stretch_of(ca2, p[b, P_SVC_CV] * p[b, P_SVC_CV])
        y, w, p_flow = psffa_finite_wait(y0, lam, svc, servers, w_stat, room, duration, z)
        p_block, busy, p_fill = flow_blocking(
            b, s, algo, ca2, p_block, p_flow, rho_in, lam, servers, room, y0, w_stat, duration
        )
        # (random's blocking, and below capacity round robin's with a room above GIMK_MAX_ROOM, is the flow's whole
        # P_K less the overload's excess, and the fluid queues' overflow beyond that excess is part of it:
        # ``pool_blocking``)
        excess = -1.0
        if p[b, P_SVC_CV] == 1.0 and (algo == RANDOM or (room > GIMK_MAX_ROOM and rho_in <= 1.0)):
            excess = max(1.0 - 1.0 / rho_in, 0.0)
        return w_stat, p_stat, p_block, y, w, lam * (1.0 - p_block), 2, busy, p_fill, excess
    busy = 1.0
    if (
        rho_in > RHO_CAP
        and room >= 0.5
        and p[b, P_SVC_CV] == 1.0
        and room_fill_time(room, lam, servers, 1.0 / svc) <= duration
    ):
        # a room that fills within the step is at its steady state each step: M/M/c/K's blocking at the step's own
        # load, not at RHO_CAP (least outstanding's pooled room of n q = 40 at utilisation 1.02: 3.1 % against the
        # request backend's 3.0 %, where the capped load and the fluid excess gave 2.0 %); as the flow's above:
        # the excess 1 - 1/rho is left to the fluid queues, and the busy share below 1 to ``serve``
        p_k = mmck_blocking(servers, rho_in, room)
        p_block = max(p_block, p_k - max(1.0 - 1.0 / rho_in, 0.0))
        if rho_in > 1.0:
            busy = min(rho_in * (1.0 - p_k), 1.0)
    lam_in = lam * (1.0 - p_block)
    if algo == LEAST_OUTSTANDING and rho_in >= FINITE_FROM * (1.0 - _EPS) and room >= 1.0:
        # least outstanding near capacity: the pooled queue from empty, its number waiting followed as the
        # reflected Brownian motion up to its steady state (``pooled_transient_wait``; docs/model.md 6.2.4); it is
        # the whole wait (the fluid backlog included), as the finite-buffer flow's is for the others
        in_service = servers * min(rho_in, 1.0) * (1.0 - p_block)
        count0 = max(y0 * scale - in_service, 0.0)
        cs2 = p[b, P_SVC_CV] * p[b, P_SVC_CV]
        # (its steady state with lognormal service: the services' count variance over the queue's relaxation
        # time, ``jsq.window_variance_share``)
        w_cap = w_stat * window_variance_share(servers, rho_in, p[b, P_SVC_CV])
        w, q1 = pooled_transient_wait(count0, lam, svc, servers, cs2, room, duration, w_cap)
        p_fill = p_block
        if room_fill_time(room, lam, servers, 1.0 / svc) > duration:
            # the pooled room fills from the count's fluctuations: what the followed motion turns away at the
            # room's top (``queueing.drbm_step_blocking``) beyond ``p_block``, the part the members' fluid queues
            # leave out (they take the arrivals as drawn but serve evenly: the services' share cs2 / (1 + cs2) of
            # the diffusion variance), is turned away by the slots whose fluid queue still fills (docs/model.md 6.2.3)
            p_top = drbm_step_blocking(count0, lam, svc, servers, 1.0, cs2, room, duration)
            if p_top > p_block:
                p_fill = p_block + (p_top - p_block) * cs2 / (1.0 + cs2)
        return w_stat, p_stat, p_block, (in_service + q1) / scale, w, lam_in / scale, 2, busy, p_fill, -1.0
    if algo != ROUND_ROBIN:
        # the per-step stationary queue (a Poisson stream per instance, or the pooled queue): its mean number in
        # system, busy slots plus Little's waiting queue, is where the flow starts if the next step is near capacity
        y = servers * min(rho_in, 1.0) * (1.0 - p_block) + w_stat * lam_in
        return w_stat, p_stat, p_block, y / scale, w_stat, lam_in / scale, 0, busy, p_block, -1.0
    y, w = psffa_wait(y0, lam_in, svc, servers, w_stat, room, duration)
    return w_stat, p_stat, p_block, y, w, lam_in, 1, busy, p_block, -1.0


@njit(inline="always", **_KERNEL)
def serve_slot(b, i, s, st, to_booting, w_stat, p_stat, p_block, r_level, first_crash, quick, quick_at, hi):
    """6, one slot that serves, boots with requests, or drains: its fluid queue over the step, the waits of its
    served requests, memory, a memory crash and the end of a drain. A memory crash is certain when the step's
    count (in service + the fluid queue's peak; a cold start's queue alone) passes the limit, at the moment the
    fluid count reaches it (``memory.fluid_crossing``), and drawn for a warm slot below it from the share
    ``r_level`` of arrivals that find the largest count that fits (``memory.draw_memory_crash``): either way it
    serves its part of the step before the crash, and the rest of its requests (its drops included) fail.

    ``first_crash`` (s from the step start, -1: none): under least outstanding, the moment another member crashed
    in the step; a crash of this one at or after it does not happen (``serve``). ``quick``, ``quick_at``: a slot
    that joins the pool in the step with a count near its limit crashes at once (at that part of its serving time)
    with probability ``quick`` (``slot_mode``, ``memory.draw_join_crash``).

    Returns (served, dropped, failed, crashed, billed s, CPU, memory (-1 if it did not serve), fluid wait of its
    served requests request-s, age of its queue request-s, longest fluid wait s, requests served through the
    stationary queue, their stationary wait request-s, requests that waited, the crash's time s)."""
    p, inst_f, inst_i = s.params, s.inst_f, s.inst_i
    dt = p[b, P_DT]
    conc = int(p[b, P_CONC])
    svc = p[b, P_SVC]
    cap_rps = conc / svc  # requests/s one warm instance completes at full concurrency
    q = inst_i[b, i, I_BACKLOG]
    tau = inst_f[b, i, F_SERVE]
    q_end, done, dropped, peak_q, n_waited, waited_s, age, longest, segs = fluid_over_step(
        b, i, s, q, tau, to_booting, p_block, cap_rps
    )
    failed = 0
    crashed = 0
    cpu = 0.0
    mem = -1.0
    stat_n = 0.0
    stat_w = 0.0
    p_w = 0.0
    t_crash = -1.0  # a memory crash's time, s from the step start (-1: none)
    if tau > 0.0:
        cpu = min(done * svc / (conc * tau), 1.0)
        mem = (p[b, P_MEM_BASE] + p[b, P_MEM_REQ] * (cpu * conc + peak_q)) / p[b, P_MEM_LIMIT]
        inst_f[b, i, F_LOAD] = cpu
        # (the sure crash's test below: in service + the queue's peak, the queue alone after a cold start)
        count = serving_count(cpu * conc, peak_q, tau < dt - _EPS)
        fits = (p[b, P_MEM_BASE] + p[b, P_MEM_REQ] * count) / p[b, P_MEM_LIMIT] <= 1.0
        if (r_level > 0.0 or quick > 0.0) and st != DRAINING and fits:
            at = drawn_crash(b, i, s, tau, to_booting, r_level, quick, quick_at, hi)
            if at > 0.0:
                t_crash = dt - tau + at * tau
    if p[b, P_MEM_CRASH] > 0.5 and t_crash < 0.0 and (tau > 0.0 or to_booting):
        t_crash = sure_crash(p, b, cpu * conc, peak_q, tau, segs, dt)
    if first_crash >= 0.0 and t_crash >= first_crash:
        t_crash = -1.0
    if t_crash >= 0.0:
        # served evenly over its serving time: what it would have completed after the crash fails; a request is
        # turned away only at a count of c + max_queue, past the limit, so its drops all come after the crash
        served_part = max(t_crash - (dt - tau), 0.0) / tau if tau > 0.0 else 0.0
        if served_part <= 0.0 and mem >= 0.0 and q > 0 and t_crash >= dt - tau - 1e-6:
            # it crashed at its join, with requests kept from its cold start: the request backend puts min(q, c) of
            # them in service and serves them for an instant before the crash, a server's sample of that instant
            cpu = min(q, conc) / conc
            inst_f[b, i, F_LOAD] = cpu
        elif served_part <= 0.0 and mem >= 0.0:  # crashed before it served: no CPU or memory sample of a server
            cpu = 0.0
            mem = -1.0
            inst_f[b, i, F_LOAD] = 0.0
        kept = min(int(math.floor(done * served_part + 0.5)), done)
        failed = done - kept + dropped
        dropped = 0
        done = kept
        waited_s *= served_part
        age = 0.0
    if tau > 0.0:
        if done > 0:
            waited = min(float(done), n_waited)
            if st != DRAINING:
                # the stationary queue is for requests that found the fluid queue empty
                stat_n = done - waited
                stat_w = stat_n * w_stat
                p_w = waited + (done - waited) * p_stat
            else:
                p_w = waited
    if t_crash >= 0.0:
        failed += crash(inst_f, inst_i, b, i)
        crashed = 1
        if t_crash < dt - _EPS:  # its health checks fail from the crash on (those left in this step count now)
            t0 = s.env_state[b, E_TIME]
            health_checks(inst_i, b, i, t0, dt, p[b, P_HC_INTERVAL], int(p[b, P_HC_THRESHOLD]), max(t_crash, _EPS))
        if st == DRAINING:  # it was leaving anyway: it stops, out of the pool
            inst_i[b, i, I_STATE] = OFF
        st = FAILED
    bill = dt
    if st == DRAINING:
        inst_f[b, i, F_TIMER] += dt
        if q_end == 0:
            # billed until the last request in service finishes
            bill = min(dt, (q + cpu * conc) / cap_rps + svc) if tau > 0.0 else dt
            inst_i[b, i, I_STATE] = OFF
        elif inst_f[b, i, F_TIMER] >= p[b, P_DEREG] - _EPS:
            failed += q_end
            inst_i[b, i, I_BACKLOG] = 0
            inst_i[b, i, I_STATE] = OFF
    return done, dropped, failed, crashed, bill, cpu, mem, waited_s, age, longest, stat_n, stat_w, p_w, t_crash


@njit(inline="always", **_KERNEL)
def sure_crash(p, b, busy, peak_q, tau, segs, dt):
    """A sure memory crash: the step's fluid count (``busy`` in service + the queue's peak; a cold start's queue
    alone) passes the limit, at the moment it reaches it (docs/model.md 7); -1 if it stays within."""
    count = serving_count(busy, peak_q, tau < dt - _EPS and tau > 0.0)
    if (p[b, P_MEM_BASE] + p[b, P_MEM_REQ] * count) / p[b, P_MEM_LIMIT] > 1.0:
        limit = count_limit(p[b, P_MEM_BASE], p[b, P_MEM_REQ], p[b, P_MEM_LIMIT])
        return fluid_crossing(limit, segs, busy, dt)
    return -1.0


@njit(inline="always", **_KERNEL)
def drawn_crash(b, i, s, tau, to_booting, r_level, quick, quick_at, hi):
    """6, a serving slot below its memory limit: whether its count passes the limit in the step, drawn at the hazard
    ``r_level`` per arrival (``memory.draw_memory_crash``), or at each rate when its arrivals come at two around a
    pool change (docs/model.md 7), or, for a slot that joins the pool in the step near its limit, with the chance
    ``quick`` of a crash at once (``memory.draw_join_crash``). Returns the part of its serving time before the
    crash (0: none)."""
    p, inst_f, inst_i = s.params, s.inst_f, s.inst_i
    dt = p[b, P_DT]
    split = inst_f[b, i, F_SPLIT]
    if split > 0.0 and tau >= dt - _EPS and not to_booting and int(p[b, P_ALGO]) != LEAST_OUTSTANDING:
        m_a, m_b = split_crash_means(b, i, s, split, hi)
        return draw_memory_crash_split(s.rng, b, m_a, m_b, split / dt)
    if quick > 0.0:
        return draw_join_crash(s.rng, b, inst_i[b, i, I_ARRIVALS], r_level, quick, quick_at)
    return draw_memory_crash(s.rng, b, inst_i[b, i, I_ARRIVALS], r_level)


@njit(inline="always", **_KERNEL)
def slot_mode(b, i, s, st, to_booting, r_level, offered_rps, hi):
    """6, how a slot serves in the step: (whether it takes its arrivals as a booting slot, its memory crash hazard
    per arrival, the chance of a crash at once and its part of the serving time). A slot whose cold start ends in
    the step joins the pool then and is drawn on its own (``joined_level``): one that joined after a booting
    member crashed (``memory.boot_crash_split``) serves its later arrivals as a pool member; one that joins a pool
    with members (round robin, random) takes its arrivals at its own rate from its join, not at the pool's mean
    rate over its time (which counts the cold start, when the members at the step start took every request)."""
    if to_booting and s.inst_f[b, i, F_SPLIT] == JOINS:
        h, quick, quick_at = joined_level(b, i, s, offered_rps)
        if h > 0.0 or quick > 0.0:
            h, quick, quick_at = lone_parts(b, i, s, hi, h, quick, quick_at, True)
        return False, h, quick, quick_at
    if (
        not to_booting
        and st == BOOTING
        and r_level > 0.0
        and s.inst_f[b, i, F_SERVE] < s.params[b, P_DT] - _EPS
        and int(s.params[b, P_ALGO]) != LEAST_OUTSTANDING
    ):
        h, quick, quick_at = joined_level(b, i, s, offered_rps)
        if h > 0.0 or quick > 0.0:
            h, quick, quick_at = lone_parts(b, i, s, hi, h, quick, quick_at, False)
        return False, h, quick, quick_at
    return to_booting, r_level, 0.0, 0.0


@njit(inline="always", **_KERNEL)
def joined_level(b, i, s, offered_rps):
    """6, the memory crash of a slot that joins the pool at its cold start's end in the step: (its hazard per
    arrival (``memory.passage_rate``), the chance that it crashes at once, when, as a part of its serving time).
    Each replacement is drawn on its own: fed at the rate it takes from its join (``I_ARRIVALS`` over its serving
    time), round robin's phases the members then; it starts serving with the requests it kept while it booted
    (its queue: ``memory.serving_count``), so from a count near its limit its first moments cross far more often
    than the stationary hazard says (a passage from low): ``memory.escape_probability``, the chance that it
    passes the limit before its count falls back to its stationary bulk, at about the time its arrivals take to
    lift the count the rest of the way (``(L + 1 - q) / rate``)."""
    p, inst_f, inst_i = s.params, s.inst_f, s.inst_i
    tau = inst_f[b, i, F_SERVE]
    if p[b, P_MEM_CRASH] <= 0.5 or tau <= 0.0 or inst_i[b, i, I_ARRIVALS] <= 0:
        return 0.0, 0.0, 0.0
    rate = inst_i[b, i, I_ARRIVALS] / tau
    level = memory_slots(p[b, P_MEM_BASE], p[b, P_MEM_REQ], p[b, P_MEM_LIMIT])
    conc = int(p[b, P_CONC])
    svc = p[b, P_SVC]
    k = max(int(math.floor(offered_rps / rate + 0.5)), 1)
    h = passage_rate(int(p[b, P_ALGO]), rate, k, 1.0, 1.0, conc, svc, p[b, P_MAXQ], level)
    q0 = float(inst_i[b, i, I_BACKLOG])
    # the escape is decided in its first moments: at the rate right after its join where it is known (a slot that
    # joined beside a crashed booting one, before the next joins: ``memory.boot_crash_split``'s ``F_EARLY``)
    first = inst_f[b, i, F_EARLY] if inst_f[b, i, F_SPLIT] == JOINS and inst_f[b, i, F_EARLY] > 0.0 else rate
    quick = escape_probability(conc, first * svc, q0, level) if level < conc + p[b, P_MAXQ] else 0.0
    quick_at = max(level + 1.0 - q0, 1.0) / (rate * tau)
    return h, quick, quick_at


@njit(inline="always", **_KERNEL)
def routed_interval(inst_f, b, j, dt):
    """6, the pool interval [start, end) of slot j as the step's arrivals were routed (``pool_time``,
    ``load_balancer.pool_shares``), whatever happened to it since in the serve phase (a member that crashed in
    it stays in the pool until found): a slot that serves in the step (warm, or its cold start ends in it) from
    ``dt - F_SERVE`` to the end, one failed at the start until it is found (``F_WEIGHT`` of the step)."""
    tau = inst_f[b, j, F_SERVE]
    if tau > 0.0:
        return dt - tau, dt
    return 0.0, inst_f[b, j, F_WEIGHT] * dt


@njit(inline="always", **_KERNEL)
def pool_change(b, s, hi, t, dt, joins):
    """6, the pool at ``t`` s into the step as its arrivals were routed: (members then, at least 1; the next change
    after ``t``, ``dt`` if none). ``joins``: a step whose arrivals waited on booting instances until one crashed
    (``memory.boot_crash_split``): the crashed one and the slots whose cold start has ended (``F_SPLIT = JOINS``,
    joining at ``dt - F_SERVE``); else every slot's ``routed_interval``."""
    inst_f = s.inst_f
    members = 1 if joins else 0
    nxt = dt
    for j in range(hi):
        if joins:
            if inst_f[b, j, F_SPLIT] == JOINS:
                e = dt - inst_f[b, j, F_SERVE]
                if e <= t + 1e-9:
                    members += 1
                elif e < nxt:
                    nxt = e
        elif inst_f[b, j, F_WEIGHT] > 0.0:
            start, end = routed_interval(inst_f, b, j, dt)
            if start <= t + 1e-9 and end > t + 1e-9:
                members += 1
            if start > t + 1e-9:
                nxt = min(nxt, start)
            if end > t + 1e-9:
                nxt = min(nxt, end)
    return max(members, 1), nxt


@njit(**_KERNEL)  # (not inlined: its scratch on its own stack frame, used in the rare steps that need it)
def lone_parts(b, i, s, hi, h, quick, quick_at, joins):
    """6, a slot that joins a pool with members (round robin, random) at its cold start's end while the pool
    changes again later in the step (another cold start ends, or a failed member is found): until the last such
    change its rate moves at each (the first of several replacements to boot takes 1/k of the requests until the
    next joins, 1/(k + 1) after), and the hazard rises far faster than the rate. In the request backend a
    replacement that boots 0.3 s before the other of a pair beside a crashed member takes every second request
    (memory_pressure at 207 requests/s: a = 10.35 on its 10 servers) and passes the limit in those 0.3 s in 13 %
    of rounds (1.0 s: 79 %); drawn at its mean rate (before) the pair kept 1.205 warm against the request
    backend's 1.114 (4,000 seeds) and the exact chain's 1.109. Its count is followed exactly through those parts,
    from the count it joins with (``memory.lone_part``: the (count, phase) chain, each part at its members' rate
    and phases, the phase re-dealt at each change), which gives the chance of a crash in them and its count at
    the last change; from there it is drawn as any joiner: the chance that the count passes the limit before it
    falls back to its bulk (``memory.lone_escape``, the (count, phase) chain's gambler's ruin), then the
    stationary hazard over its later arrivals. Returns (hazard per arrival, chance of a crash at once, its part
    of the serving time) for ``memory.draw_join_crash``: ``quick`` the crash in the lone parts or the escape
    after them, the hazard scaled to the later arrivals; the inputs unchanged where the pool does not change
    after the join or the chain is too large (``memory.LONE_STATES``, ``LONE_WORK``). ``joins``: a slot that joins a
    booting pool's crashed member (``memory.boot_crash_split``, ``F_SPLIT = JOINS``) from the count it kept (near
    the limit), the pool the crashed one and the joined ones (``pool_change``): the first of three to boot takes
    every second request until the next joins (3 booting, no pool: replacements warm 0.288 -> 0.264 against the
    request backend's 0.270 at memory_pressure's step 4, 20,000 seeds)."""
    p, inst_f, inst_i = s.params, s.inst_f, s.inst_i
    dt = p[b, P_DT]
    tau = inst_f[b, i, F_SERVE]
    share = inst_f[b, i, F_SHARE]
    arrivals = float(inst_i[b, i, I_ARRIVALS])
    algo = int(p[b, P_ALGO])
    if (share <= 0.0 and not joins) or arrivals <= 0.0 or tau <= 0.0:
        return h, quick, quick_at
    join = dt - tau if joins else routed_interval(inst_f, b, i, dt)[0]
    # the pool's changes after the join (few per step); the pool's rate over the slot's parts
    last = join
    t = join
    spread = 0.0  # sum over its parts of (length / members): its arrivals over the pool's rate
    while t < dt - 1e-9:
        members, nxt = pool_change(b, s, hi, t, dt, joins)
        spread += (nxt - t) / members
        if nxt < dt - 1e-9:
            last = nxt
        t = nxt
    if last <= join + 1e-9 or spread <= 0.0:
        return h, quick, quick_at
    level = int(memory_slots(p[b, P_MEM_BASE], p[b, P_MEM_REQ], p[b, P_MEM_LIMIT]))
    conc = int(p[b, P_CONC])
    svc = p[b, P_SVC]
    # the pool's arrival rate as this slot was routed (requests/s; a booting pool's: its even parts' rate)
    per_share = arrivals / spread if joins else arrivals / (share * dt)
    if level + 1 > LONE_STATES:
        return h, quick, quick_at
    law = _stack_doubles(_LAW_BUFFER)
    scratch = _stack_doubles(_LONE_BUFFER)
    for n in range(level + 1):
        law[n] = 0.0
    law[min(int(inst_i[b, i, I_BACKLOG]), level)] = 1.0
    crashed = 0.0
    t = join
    members = 1
    while t < dt - 1e-9:
        members, nxt = pool_change(b, s, hi, t, dt, joins)
        if t >= last - 1e-9:
            break
        k = members if algo == ROUND_ROBIN else 1
        part = lone_part(law, scratch, k, conc, per_share / members * svc, level, (nxt - t) / svc)
        if part < 0.0:
            return h, quick, quick_at
        crashed += part  # (the law's mass absorbed in the part: the chance of a crash in it)
        t = nxt
    rate_b = per_share / members
    k_b = members if algo == ROUND_ROBIN else 1
    alive = 0.0
    mean_n = 0.0
    for n in range(level + 1):
        alive += law[n]
        mean_n += n * law[n]
    if alive <= 0.0:
        return 0.0, 1.0, 0.5 * (last - join) / tau
    esc = lone_escape(law, scratch, k_b, conc, rate_b * svc, level)
    if esc < 0.0:
        return h, quick, quick_at
    esc /= alive
    h_b = passage_rate(algo, rate_b, k_b, 1.0, 1.0, conc, svc, p[b, P_MAXQ], level)
    q = crashed + alive * esc
    f1 = (last - join) / tau
    f_esc = f1 + max(level + 1.0 - mean_n / alive, 1.0) / (rate_b * tau)
    at = (crashed * 0.5 * f1 + alive * esc * f_esc) / q if q > 0.0 else quick_at
    return h_b * rate_b * (dt - last) / arrivals, min(q, 1.0), at


@njit(inline="always", **_KERNEL)
def split_crash_means(b, i, s, split, hi):
    """6, the expected memory crossings (``memory.passage_rate`` per arrival) of a slot that takes its arrivals at
    two rates around ``split`` s (``F_EARLY`` of them before): (before, after). Each part's hazard is that of an
    instance fed at that part's rate: a pool change inside the step (a member out, or a replacement still
    booting) loads the others more for a while, and the hazard rises far faster than the rate (the request
    backend's 2 warm of 4 after 2 crashes are found: 0.69 crashes a step at 0.3 x 16, the step's mean rate gave
    0.09; perf/fidelity.py --only memory)."""
    p, inst_f, inst_i = s.params, s.inst_f, s.inst_i
    dt = p[b, P_DT]
    a_i = float(inst_i[b, i, I_ARRIVALS])
    early = inst_f[b, i, F_EARLY]
    level = memory_slots(p[b, P_MEM_BASE], p[b, P_MEM_REQ], p[b, P_MEM_LIMIT])
    algo = int(p[b, P_ALGO])
    conc = int(p[b, P_CONC])
    ra = a_i * early / split
    rb = a_i * (1.0 - early) / (dt - split) if dt - split > _EPS else 0.0
    # round robin's phases (E_k arrivals) in each part: the members then, the step's routed rate over the part's
    total = 0.0
    for j in range(hi):  # (not ``E_HI``: it is set at the step's end, before this step's launches)
        total += inst_i[b, j, I_ARRIVALS]
    total /= dt
    h_a = 0.0
    h_b = 0.0
    if ra > 0.0:
        k = max(int(math.floor(total / ra + 0.5)), 1)
        h_a = passage_rate(algo, ra, k, 1.0, 1.0, conc, p[b, P_SVC], p[b, P_MAXQ], level)
    if rb > 0.0:
        k = max(int(math.floor(total / rb + 0.5)), 1)
        h_b = passage_rate(algo, rb, k, 1.0, 1.0, conc, p[b, P_SVC], p[b, P_MAXQ], level)
    return a_i * early * h_a, a_i * (1.0 - early) * h_b


@njit(inline="always", **_KERNEL)
def serve_until_crash(b, i, s):
    """6, a failed slot: every request routed to or queued at it fails, except, in the step of its crash (at
    ``F_CRASH_AT``), the arrivals before the crash (``F_PRE_CRASH`` of them) and the part of
    its queue, as far as its capacity ``c / s`` completes them until then. Returns (served, failed)."""
    inst_f, inst_i = s.inst_f, s.inst_i
    a = inst_i[b, i, I_ARRIVALS]
    q = inst_i[b, i, I_BACKLOG]
    at = inst_f[b, i, F_CRASH_AT]
    done = 0
    if at > 0.0:
        dt = s.params[b, P_DT]
        cap = int(s.params[b, P_CONC]) / s.params[b, P_SVC]
        before = min(int(math.floor(a * inst_f[b, i, F_PRE_CRASH] + 0.5)), a)
        # what it could complete before the crash, at most (the rest is queued when it crashes)
        done = min(q + before, int(math.floor(cap * at * dt + 1e-6)))
        inst_f[b, i, F_CRASH_AT] = 0.0
    inst_i[b, i, I_BACKLOG] = 0
    inst_f[b, i, F_QFLUID] = 0.0
    clear_cohorts(inst_f, b, i)
    return done, a + q - done


@njit(inline="always", **_KERNEL)
def fluid_over_step(b, i, s, q, tau, to_booting, p_block, cap_rps):
    """6, the fluid queue of one slot over the step and the FIFO waits of its requests. A slot in the pool all
    step long whose share of the arrivals changes at a pool change inside the step (``load_balancer.pool_shares``:
    ``F_SPLIT``, ``F_EARLY``) takes its arrivals at two rates, before and after it (``fluid_queue_split``).

    Returns (queue at the end (whole requests), served, dropped, longest queue, requests that went through the
    fluid queue, their fluid wait request-s, age of the queue at the end request-s, longest fluid wait s, the
    queue's two segments for ``memory.fluid_crossing``: (q at the start, rate, length, serving (1) or booting
    (0)) of the first, (q at the start, rate, length) of the second)."""
    inst_f = s.inst_f
    dt = s.params[b, P_DT]
    split = inst_f[b, i, F_SPLIT]
    age = 0.0
    waited_s = 0.0
    longest = 0.0
    if split > 0.0 and tau >= dt - _EPS and not to_booting:
        qf, qa, q2, q_end, done, dropped, ra, rb, area, adm_a, adm_b = fluid_queue_split(
            b, i, s, q, split, p_block, cap_rps
        )
        if qf > 0.0 or area > 0.0:  # the two parts one after the other (the cohorts carry the ages over)
            age, waited_s, longest = fifo_waits(inst_f, b, i, qf, 0.0, 0.0, qf, ra, adm_a, qa, 0.0, split, cap_rps)
            age, w_b, l_b = fifo_waits(inst_f, b, i, qa, 0.0, 0.0, qa, rb, adm_b, q2, 0.0, dt - split, cap_rps)
            waited_s += w_b
            longest = max(longest, l_b)
        n_waited = qf + ra * queued_through(qf, ra - cap_rps, split) + rb * queued_through(qa, rb - cap_rps, dt - split)
        segs = (qf, ra - cap_rps, split, 1.0, qa, rb - cap_rps, dt - split)
        return q_end, done, dropped, max(max(qf, qa), q2), n_waited, waited_s, age, longest, segs
    qf, q1, q2, q_end, done, dropped, in1, in_rps, net, area, adm1, adm2 = fluid_queue(
        b, i, s, q, tau, to_booting, p_block, cap_rps
    )
    idle = dt - tau
    if qf > 0.0 or area > 0.0:  # (most slots, most steps: an empty fluid queue, nothing to do)
        age, waited_s, longest = fifo_waits(inst_f, b, i, qf, in1, adm1, q1, in_rps, adm2, q2, idle, tau, cap_rps)
    # requests that went through the fluid queue all waited: the queue at the start, the cold-start arrivals,
    # and those arriving while the queue was not empty
    n_waited = qf + in1 * idle + in_rps * queued_through(q1, net, tau)
    segs = (qf, in1, idle, 0.0, q1, net, tau)
    return q_end, done, dropped, max(max(qf, q1), q2), n_waited, waited_s, age, longest, segs


@njit(inline="always", **_KERNEL)
def queued_through(q0, net, duration):
    """Seconds of a fluid segment (queue ``q0`` at its start, changing at ``net`` requests/s) during which the
    queue is not empty, so that arrivals join it."""
    if duration <= 0.0:
        return 0.0
    if net < 0.0:
        return min(duration, q0 / -net)  # the queue empties after that
    if q0 > 0.0 or net > 0.0:
        return duration
    return 0.0


@njit(inline="always", **_KERNEL)
def fluid_queue_split(b, i, s, q, split, p_block, cap_rps):
    """6, the fluid queue of a slot that serves all step, its arrivals at one rate until the pool change at
    ``split`` s and at another after it (the part ``F_EARLY`` of them before). As ``fluid_queue`` otherwise.

    Returns (queue at the start, at the split, at the end (unrounded), at the end (whole requests), served,
    dropped, rate before, rate after, queue area request-s, admitted before, admitted after)."""
    inst_f, inst_i = s.inst_f, s.inst_i
    dt = s.params[b, P_DT]
    maxq = s.params[b, P_MAXQ]
    a_i = inst_i[b, i, I_ARRIVALS]
    turned_away = binomial(s.rng, b, a_i, p_block) if (a_i > 0 and p_block > 1e-12) else 0
    a_in = a_i - turned_away
    qf = inst_f[b, i, F_QFLUID]
    if abs(qf - q) >= 1.0:
        qf = float(q)
    early = inst_f[b, i, F_EARLY]
    ra = a_in * early / split
    rb = a_in * (1.0 - early) / (dt - split)
    qa, area_a, drop_a = fluid_segment(qf, ra - cap_rps, split, maxq)
    q2, area_b, drop_b = fluid_segment(qa, rb - cap_rps, dt - split, maxq)
    q_end, done, d_i, q2 = whole_requests(b, i, s, q, a_in, q2, drop_a + drop_b, True)
    adm_a = ra * split - drop_a
    adm_b = rb * (dt - split) - drop_b
    return qf, qa, q2, q_end, done, d_i + turned_away, ra, rb, area_a + area_b, adm_a, adm_b


@njit(inline="always", **_KERNEL)
def whole_requests(b, i, s, q, a_in, q2, drops, serving):
    """6, the whole-request counts of a slot's fluid queue over the step: the queue at the end rounded, the drops
    with their fraction carried over steps, served = the rest. Stores the queue. Returns (queue at the end,
    served, dropped, the fluid queue at the end)."""
    inst_f, inst_i = s.inst_f, s.inst_i
    q_end = int(math.floor(q2 + 0.5))
    carry = inst_f[b, i, F_DROPC] + drops
    d_i = int(math.floor(carry + 1e-9))  # a drop of 4.9999999 requests is 5
    done = q + a_in - q_end - d_i
    if done < 0 or (not serving and done > 0):  # rounding: a slot that serves nothing completes nothing
        q_end += done
        done = 0
        if q_end < 0:
            d_i += q_end
            q_end = 0
        q2 = float(q_end)
    inst_f[b, i, F_DROPC] = max(carry - d_i, 0.0)
    inst_f[b, i, F_QFLUID] = q2
    inst_i[b, i, I_BACKLOG] = q_end
    return q_end, done, d_i, q2


@njit(inline="always", **_KERNEL)
def fluid_queue(b, i, s, q, tau, to_booting, p_block, cap_rps):
    """6, the fluid queue of one slot over the step: requests queue (and wait) before its cold start ends
    (phase 1, ``dt - tau`` s), then it serves at ``cap_rps`` for ``tau`` s (phase 2). Whole requests are counted;
    the fractions are carried to the next step, so long-run counts are exact.

    Returns (queue at the start, after phase 1, after phase 2 (unrounded), at the end (whole requests), served,
    dropped, phase-1 inflow rps, phase-2 inflow rps, phase-2 net rate, queue area request-s, admitted in phase 1,
    admitted in phase 2)."""
    inst_f, inst_i = s.inst_f, s.inst_i
    dt = s.params[b, P_DT]
    maxq = s.params[b, P_MAXQ]
    a_i = inst_i[b, i, I_ARRIVALS]
    # a full waiting room turns requests away even below capacity (M/M/c/K blocking)
    turned_away = 0
    if a_i > 0 and p_block > 1e-12 and not to_booting:
        turned_away = binomial(s.rng, b, a_i, p_block)
    a_in = a_i - turned_away
    qf = inst_f[b, i, F_QFLUID]
    if abs(qf - q) >= 1.0:  # the integer queue was changed elsewhere: restart the fluid from it
        qf = float(q)
    in_rps = a_in / dt if to_booting else (a_in / tau if tau > 0.0 else 0.0)
    idle = dt - tau
    in1 = in_rps if to_booting else 0.0
    if idle > 0.0:
        q1, area1, drop1 = fluid_segment(qf, in1, idle, maxq)
    else:
        q1, area1, drop1 = qf, 0.0, 0.0
    net = in_rps - cap_rps
    if tau > 0.0:
        q2, area2, drop2 = fluid_segment(q1, net, tau, maxq)
    else:
        q2, area2, drop2 = q1, 0.0, 0.0
    q_end, done, d_i, q2 = whole_requests(b, i, s, q, a_in, q2, drop1 + drop2, tau > 0.0)
    adm1 = in1 * idle - drop1
    adm2 = in_rps * tau - drop2
    return qf, q1, q2, q_end, done, d_i + turned_away, in1, in_rps, net, area1 + area2, adm1, adm2


@njit(**_KERNEL)
def lifecycle(b, s, m, hi):
    """7. At the end of the step: cold starts complete, detected instances become unhealthy and (with
    replacement) a replacement is launched before the unhealthy one terminates, both from the detection's time in
    the step; counts the states."""
    p, inst_f, inst_i = s.params, s.inst_f, s.inst_i
    dt = p[b, P_DT]
    for i in range(hi):
        ev = inst_i[b, i, I_EVENT]
        if ev == 1 and inst_i[b, i, I_STATE] == BOOTING:
            inst_i[b, i, I_STATE] = WARM
            inst_f[b, i, F_TIMER] = 0.0
        elif ev == 2 and inst_i[b, i, I_STATE] == FAILED:
            inst_i[b, i, I_STATE] = UNHEALTHY
            inst_f[b, i, F_TIMER] = -1.0  # kept (and counted) until replaced
        elif inst_i[b, i, I_STATE] == BOOTING and ev == 0:
            inst_f[b, i, F_TIMER] -= dt
    new_hi = hi
    if p[b, P_REPLACE] > 0.5:
        # as an auto-scaling group does: launch a replacement, then terminate the unhealthy one; with no free
        # slot it stays counted and the replacement is tried again next step. Both start at the detection
        # (``F_WEIGHT`` of the step, the request backend's rule), a part ``late`` of the step before its end:
        # the replacement's cold start has run that long by the end (warm if it is over) and is billed for it
        for i in range(hi):
            if inst_i[b, i, I_STATE] == UNHEALTHY and inst_f[b, i, F_TIMER] < 0.0:
                started, top = launch(inst_f, inst_i, s.rng, b, 1, p[b, P_BOOT_MEAN], p[b, P_BOOT_JITTER])
                if started == 0:
                    break
                m[b, M_COLD_STARTS] += 1
                late = dt * (1.0 - inst_f[b, i, F_WEIGHT]) if inst_i[b, i, I_EVENT] == 2 else 0.0
                inst_f[b, i, F_TIMER] = p[b, P_TERMINATION] - late
                if late > 0.0:
                    if inst_f[b, i, F_TIMER] <= _EPS:  # (its termination is over by the step's end)
                        inst_i[b, i, I_STATE] = OFF
                    j = top - 1  # (launch takes the lowest free slot)
                    inst_f[b, j, F_TIMER] -= late
                    if inst_f[b, j, F_TIMER] <= _EPS:
                        inst_i[b, j, I_STATE] = WARM
                        inst_f[b, j, F_TIMER] = 0.0
                    m[b, M_INST_SECONDS] += late
                    m[b, M_BILLED] += 1
                new_hi = max(new_hi, top)
    s.env_state[b, E_HI] = new_hi
    count_states(b, s, m)


@njit(**_KERNEL)
def latency(b, s, m, waits, t_end):
    """8. Mean and p95 response time of the step's served requests (none served: the age of the queue);
    returns the backlog at the end of the step."""
    fluid_wait_sum, queued_age, stat_served, stat_wait_sum, p_wait_sum, max_fluid_wait, w_stat, p_stat = waits[:8]
    w_floor, holds = waits[8], waits[9]
    svc = s.params[b, P_SVC]
    cv = s.params[b, P_SVC_CV]
    backlog = 0
    for i in range(int(s.env_state[b, E_HI])):
        backlog += s.inst_i[b, i, I_BACKLOG]
    served = int(m[b, M_SERVED])
    if served > 0:
        fluid_wait = fluid_wait_sum / served
        # every served request waited in a fluid queue or in the stationary one, so the mean is at most the longer
        # of the two longest waits (the whole-request counts can be below the fluid's, which would inflate it)
        mean_wait = min(fluid_wait + stat_wait_sum / served, max(max_fluid_wait, w_stat))
        # the balancer's queue followed over steps (``queue_over_step``) holds the mean queue, fluid backlog
        # included: requests that met a fluid queue wait at least its mean (docs/model.md 6.2.1)
        if holds:
            # the finite-buffer flow's queue (M/M/c/K's relation) is the mean one, the fluid backlog included:
            # the fluid queues, deterministic, fill the room to K above capacity, where the stationary queue holds
            # about K - 1/(rho - 1) (docs/model.md 6.2.1, "Above capacity"). A fluid wait beyond a full room's
            # (max_queue served at c / s) was spent where no slot served (a cold start, an outage), which the
            # flow does not know: that part is added
            room_wait = s.params[b, P_MAXQ] * svc / s.params[b, P_CONC]
            mean_wait = w_floor + max(mean_wait - room_wait, 0.0)
        else:
            mean_wait = max(mean_wait, w_floor)
        p_wait = min(p_wait_sum / served, 1.0)
        lat_mean = svc + mean_wait
        conc = int(s.params[b, P_CONC])
        room = s.params[b, P_MAXQ]
        # the followed queue is the whole wait (no fluid wait beyond a full room's) and moves over its whole room
        # within the step (near capacity the number waiting changes by about sqrt((lambda + c mu) h) ~ sqrt(2 c h /
        # s) in h seconds: at least half the room): its requests wait for the completions ahead of them in the
        # room, whose law follows the flow's mean (docs/model.md 6.3). A queue that moves less within a step keeps
        # the exponential tail
        # the stationary law, within a step; a queue that moves less follows the law of a walk started empty, which
        # reaches the stationary one only after about room^2 / var s (``transient_wait_p95``). Above capacity the
        # fluid queues serve at most the busy share rho (1 - P_K) (``beyond_throughput``), so a full room's fluid
        # wait can exceed room s / c by 1 / (rho (1 - P_K)): up to 1.25 times is still the room's wait
        roomed = holds and max_fluid_wait <= 1.25 * room * svc / conc
        lat_p95 = -1.0
        # (least outstanding's followed queue is the pooled one: n c slots and a room of n q; docs/model.md 6.2.4)
        pool = s.env_state[b, E_PSFFA_N] if int(s.params[b, P_ALGO]) == LEAST_OUTSTANDING else 1.0
        slots = max(int(conc * max(pool, 1.0) + 0.5), conc)
        room_p = room * max(pool, 1.0)
        if roomed and pool > 1.0:
            # one pooled queue: a step's requests meet its level in that episode, spread by the walk within the
            # step, not the law across episodes (``window_wait_p95``); a queue that relaxes within the step (below
            # capacity) has the motion's exponential steady law, every request waiting (docs/model.md 6.2.4)
            spread = walk_of(b, s, m, slots, svc, cv)[1] * s.params[b, P_DT] / 6.0
            lat_p95 = min(window_wait_p95(svc, cv, mean_wait, slots, spread), response_p95(svc, cv, mean_wait, 1.0))
        elif roomed and 8.0 * slots * s.params[b, P_DT] < svc * room_p**2:
            drift, var = walk_of(b, s, m, slots, svc, cv)
            if int(s.params[b, P_ALGO]) == ROUND_ROBIN:
                # the step pools its members' completions: members far apart (against how far each moves within
                # the step) give the top member's level, not the law's p95 (``members_wait_p95``; docs/model.md
                # 6.4.3)
                n_members = s.env_state[b, E_PSFFA_N]
                lat_p95 = members_wait_p95(svc, cv, mean_wait, slots, room_p, drift, var, n_members, s.params[b, P_DT])
            else:
                lat_p95 = transient_wait_p95(svc, cv, mean_wait, slots, room_p, drift, var)
        if roomed and lat_p95 < 0.0:
            lat_p95 = room_wait_p95(svc, cv, mean_wait, p_wait, slots, room_p)
        elif not roomed:
            lat_p95 = response_p95(svc, cv, mean_wait, p_wait)
        if max_fluid_wait > 0.0 and not roomed:
            # the p95 model has an exponential tail, but a fluid wait is at most the longest one: requests either
            # waited in a fluid queue or in the stationary queue, and the p95 of the mix is at most the larger of
            # the two groups' p95 (the second only if it has any requests). A step that turned requests away had
            # full waiting rooms: its longest waiters were behind max_queue + c requests, whose services spread
            # the wait (``fluid_p95``); otherwise (a backlog building up, a cold start) the longest waiter is
            # taken as having had nobody ahead, as at the front of a queue behind a cold start
            ahead = s.params[b, P_MAXQ] + conc if m[b, M_DROPPED] > 0 else 0.0
            bound = fluid_p95(max_fluid_wait, svc, cv, conc, ahead)
            if stat_served > 0.0:
                bound = max(bound, response_p95(svc, cv, w_stat, p_stat))
            lat_p95 = min(lat_p95, bound)
        if holds:  # an admitted request has at most a full room ahead of it: max_queue + c, served at c / s
            full = s.params[b, P_MAXQ] * svc / conc
            lat_p95 = min(lat_p95, fluid_p95(full, svc, cv, conc, s.params[b, P_MAXQ] + conc))
        # no request has waited longer than the episode has run (R = S + W <= S + t, so p95(R) <= p95(S) + t);
        # and the reported p95 is at least the mean (a p95 below the mean is possible when under 5 % of the
        # requests wait long, but the pair is reported as an upper quantile and a mean: docs/model.md 6.3)
        if lat_p95 > svc + t_end:  # (the bound below is at least svc + t_end: most steps need not compute it)
            lat_p95 = min(lat_p95, response_p95(svc, cv, 0.0, 0.0) + t_end)
        lat_p95 = max(lat_p95, lat_mean)
    else:
        # nothing completed: report how long the queued requests have waited so far (the whole-request backlog
        # can be below the fluid queue that holds the ages, hence the bound)
        lat_mean, lat_p95 = waiting_latency(svc, queued_age, backlog, t_end)
    m[b, M_LAT_MEAN] = lat_mean
    m[b, M_LAT_P95] = lat_p95
    m[b, M_BACKLOG] = backlog
    return backlog


@njit(inline="always", **_KERNEL)
def walk_of(b, s, m, conc, svc, cv):
    """The drift (requests/s) and variance per s of a member's number in queue near capacity: lambda - c / s and
    lambda ca^2 + (c / s) cs^2, with the step's arrivals spread over the pool the balancer followed (round robin's
    members see Erlang-n gaps, ca^2 = 1 / n; random's Poisson, 1); least outstanding's pooled queue takes them
    all, ``conc`` its pooled slots."""
    n_pool = s.env_state[b, E_PSFFA_N]
    lam = m[b, M_ARRIVALS] / s.params[b, P_DT] / n_pool if n_pool > 0.0 else 0.0
    if int(s.params[b, P_ALGO]) == LEAST_OUTSTANDING:  # the pooled queue: conc is its n c slots (``latency``)
        lam = m[b, M_ARRIVALS] / s.params[b, P_DT]
    ca2 = 1.0 / n_pool if int(s.params[b, P_ALGO]) == ROUND_ROBIN and n_pool > 0.0 else 1.0
    return lam - conc / svc, lam * ca2 + conc / svc * cv * cv


@njit(**_KERNEL)
def advance_clocks(b, s, t0, dt, k):
    """9. Cooldowns run down; time and the step counter advance."""
    env = s.env_state
    env[b, E_CD_OUT] = max(env[b, E_CD_OUT] - dt, 0.0)
    env[b, E_CD_IN] = max(env[b, E_CD_IN] - dt, 0.0)
    env[b, E_TIME] = t0 + dt
    env[b, E_STEP] = k + 1


@njit(**_KERNEL)
def finish_step(b, s, out, handled, backlog, t_end, k):
    """10. Cost, SLO, shares of lost requests, observation, reward terms and truncation. ``handled``: requests
    queued at the step start plus arrivals."""
    p, m = s.params, out.metrics
    served = int(m[b, M_SERVED])
    dropped = int(m[b, M_DROPPED])
    failed = int(m[b, M_FAILED])
    throttled = int(m[b, M_THROTTLED])  # (platform mode; 0 otherwise, as the provisioned cost)
    cost = m[b, M_INST_SECONDS] * p[b, P_PRICE_INST_S] + (served + failed) * p[b, P_PRICE_REQ] + m[b, M_PROV_COST]
    # the SLO is on all of the step's requests: a dropped, failed or throttled request never gets an answer in
    # time, so a lost share above reward.slo_max_lost_share is a violation even when the served ones were fast
    lost_share = (dropped + failed + throttled) / handled if handled > 0 else 0.0
    violated = 1.0 if m[b, M_LAT_P95] > p[b, P_SLO] or lost_share > p[b, P_SLO_LOST] else 0.0
    m[b, M_COST] = cost
    m[b, M_SLO_VIOLATED] = violated
    m[b, M_DROPPED_SHARE] = dropped / handled if handled > 0 else 0.0
    m[b, M_FAILED_SHARE] = min(failed / handled, 1.0) if handled > 0 else 0.0
    m[b, M_THROTTLED_SHARE] = throttled / handled if handled > 0 else 0.0
    m[b, M_TIME] = t_end
    observe(b, s, m, out.obs)
    total = 0.0
    for j in range(N_REWARD):
        value, scale = reward_term(j, b, p, m)
        out.reward_parts[b, j] = -p[b, P_WEIGHTS + j] * value / scale
        total += out.reward_parts[b, j]
    out.rewards[b] = total
    out.truncated[b] = k + 1 >= int(p[b, P_EPISODE_STEPS])


@njit(**_KERNEL)
def reward_term(j, b, p, m):
    """(value, scale) of reward term j (columns of ``fields.REWARD_COMPONENTS``): the reward part is
    ``-weight_j * value / scale``, the weight from ``config.reward.weights``."""
    if j == R_COST:
        return m[b, M_COST], p[b, P_REF_COST]
    if j == R_SLO:
        return m[b, M_SLO_VIOLATED], 1.0
    if j == R_DROPPED:
        return m[b, M_DROPPED_SHARE], 1.0
    if j == R_FAILED:
        return m[b, M_FAILED_SHARE], 1.0
    if j == R_SCALING:
        return abs(m[b, M_SCALE_APPLIED]), p[b, P_MAX_STEP]
    if j == R_THROTTLED:
        return m[b, M_THROTTLED_SHARE], 1.0
    return math.nan, 1.0  # a term without a value here makes the reward NaN, which every reward test catches


# ------------------------------------------------------------------------------------------ observation
@njit(**_KERNEL)
def count_states(b, s, m):
    """Instances by state and the controlled count into the metrics row; sets ``E_HI``."""
    inst_i = s.inst_i
    warm = 0
    boot = 0
    fail = 0
    unh = 0
    drain = 0
    controlled = 0
    last = -1
    for i in range(int(s.env_state[b, E_HI])):
        st = inst_i[b, i, I_STATE]
        if st == OFF:
            continue
        last = i
        if st == WARM:
            warm += 1
        elif st == BOOTING:
            boot += 1
        elif st == FAILED:
            fail += 1
        elif st == UNHEALTHY:
            unh += 1
        elif st == DRAINING:
            drain += 1
        if counted(st, s.inst_f[b, i, F_TIMER]):
            controlled += 1
    m[b, M_WARM] = warm
    m[b, M_BOOTING] = boot
    m[b, M_FAILED_INST] = fail
    m[b, M_UNHEALTHY] = unh
    m[b, M_DRAINING] = drain
    m[b, M_CONTROLLED] = controlled
    s.env_state[b, E_HI] = last + 1


@njit(**_KERNEL)
def observe(b, s, m, obs):
    """Fill obs[b] from the step's metrics and the current state (also used at reset). The ``observed_*`` metrics
    start as copies of the true ones (metrics delivered as measured); ``monitoring`` replaces them, and the
    observation's metric fields, when a metric source aggregates or delays them."""
    for i in range(len(OBSERVED_COLS)):
        m[b, OBSERVED_COLS[i]] = m[b, OBSERVED_TRUE_COLS[i]]
    p, env = s.params, s.env_state
    max_n = p[b, P_MAX]
    boot_sum = 0.0
    n_boot = 0
    for i in range(int(env[b, E_HI])):
        if s.inst_i[b, i, I_STATE] == BOOTING:
            boot_sum += s.inst_f[b, i, F_TIMER]
            n_boot += 1
    longest_boot = p[b, P_BOOT_MEAN] * (1.0 + p[b, P_BOOT_JITTER])
    boot_rem = boot_sum / n_boot / longest_boot if (n_boot > 0 and longest_boot > 0.0) else 0.0
    clock = p[b, P_CLOCK0] + env[b, E_TIME]
    angle = 2.0 * math.pi * clock / p[b, P_DAY]
    cd_out = env[b, E_CD_OUT] / p[b, P_CD_OUT] if p[b, P_CD_OUT] > 0.0 else 0.0
    cd_in = env[b, E_CD_IN] / p[b, P_CD_IN] if p[b, P_CD_IN] > 0.0 else 0.0
    observe_metrics(
        b,
        p,
        obs,
        m[b, M_CPU],
        m[b, M_CPU_MAX],
        m[b, M_MEM],
        m[b, M_MEM_MAX],
        m[b, M_ARRIVALS],
        m[b, M_LAT_P95],
        m[b, M_BACKLOG],
        m[b, M_DROPPED_SHARE],
        m[b, M_FAILED_SHARE],
    )
    vals = (
        (O_WARM, m[b, M_WARM] / max_n),
        (O_BOOTING, m[b, M_BOOTING] / max_n),
        (O_UNHEALTHY, m[b, M_UNHEALTHY] / max_n),
        (O_DRAINING, m[b, M_DRAINING] / max_n),
        (O_BOOT_REMAINING, boot_rem),
        (O_CD_OUT, cd_out),
        (O_CD_IN, cd_in),
        (O_TOD_SIN, math.sin(angle)),
        (O_TOD_COS, math.cos(angle)),
        (O_PROGRESS, env[b, E_STEP] / p[b, P_EPISODE_STEPS]),
    )
    for j, v in vals:
        obs[b, j] = min(max(v, OBS_LOW[j]), OBS_HIGH[j])


@njit(**_KERNEL)
def observe_metrics(b, p, obs, cpu, cpu_max, mem, mem_max, arrivals, p95, backlog, dropped_share, failed_share):
    """The observation fields that come from measured metrics (``O_CPU_MEAN`` .. ``O_FAILED``), from the metrics'
    values: the step's true ones (``observe``) or those the monitoring delivered (``monitoring``)."""
    cap = p[b, P_MAX] * max(p[b, P_MAXQ], 1.0)
    vals = (
        (O_CPU_MEAN, cpu),
        (O_CPU_MAX, cpu_max),
        (O_MEM_MEAN, mem),
        (O_MEM_MAX, mem_max),
        (O_RATE, arrivals / p[b, P_DT] / p[b, P_MAX_RPS]),
        (O_P95, p95 / p[b, P_SLO]),
        (O_BACKLOG, backlog / cap),
        (O_DROPPED, dropped_share),
        (O_FAILED, failed_share),
    )
    for j, v in vals:
        obs[b, j] = min(max(v, OBS_LOW[j]), OBS_HIGH[j])
