"""The request-level step: the fast kernel's action, clock and output phases around an event loop.

``step_cluster`` (one cluster, one decision step ``[t0, t0 + dt)``):

1. ``kernel.begin_step`` and ``kernel.apply_action``: the same bounds, cooldowns, launches and scale-in choice as
   the fast model (the scale-in key reads ``I_BACKLOG`` = requests in service + queued, and ``F_LOAD``);
2. ``begin_events``: the step's bookkeeping, new cold starts and drains get their exact times, spontaneous crash
   times are drawn, a kept unhealthy instance's replacement is retried;
3. ``run_events``: completions, lifecycle events and arrivals in time order (at equal times in that order);
4. ``end_events``: billing, CPU, memory and queues at ``t0 + dt``; latency of the step's completed requests;
5. ``kernel.count_states``, ``kernel.advance_clocks``, ``kernel.finish_step``: the same counts, observation,
   cost, SLO and reward as the fast model, from the metrics row this backend filled.

The routing of one request (``pick_target``) is the configured balancer at the moment it arrives: round robin
over the pool in slot order (a rotating pointer), uniformly at random, or least outstanding requests (in service
+ queued; ties go to the first after a rotating pointer). The pool is warm instances and crashed ones the health
checks have not found; a crashed one has no outstanding requests, so a least-outstanding balancer sends it
the most (as a real one does). With no pool member, requests wait on booting instances (in turn) or are dropped.

In the serverless platform mode (``platform.enabled``) the recipe is ``step_platform_cluster``: the platform's
action (``serverless.platform_begin``), the same event loop with the platform's admission of each arrival
(``serverless.platform_arrive``) and keep-alive clocks, and the platform's accounts (``serverless.platform_end``).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ...fields import (
    M_ARRIVALS,
    M_BACKLOG,
    M_BILLED,
    M_CONTROLLED,
    M_CPU,
    M_CPU_MAX,
    M_DROPPED,
    M_FAILED,
    M_INST_SECONDS,
    M_LAT_MEAN,
    M_LAT_P95,
    M_MEM,
    M_MEM_MAX,
    M_SERVED,
)
from ..instances import BOOTING, DRAINING, F_LOAD, F_TIMER, FAILED, I_BACKLOG, I_STATE, OFF, UNHEALTHY, WARM
from ..kernel import advance_clocks, apply_action, begin_step, count_states, finish_step
from ..load_balancer import LEAST_OUTSTANDING, RANDOM
from ..rng import uniform
from ..state import (
    E_HI,
    E_PF_PROV,
    E_RR,
    E_STEP,
    E_TIME,
    P_ALGO,
    P_CONC,
    P_DEREG,
    P_DT,
    P_HAZARD,
    P_MAXQ,
    P_MEM_BASE,
    P_MEM_LIMIT,
    P_MEM_REQ,
    P_PLATFORM,
    P_REPLACE,
    P_SVC,
    Outputs,
    State,
)
from .draws import crash_time, next_arrival, service_time, start_arrivals
from .heap import buffer_age, heap_age, heap_pop, heap_push, ring_age, ring_push
from .layout import (
    G_ACT_LEN,
    G_BOOT_RR,
    G_HEAP_N,
    G_NEXT,
    G_NEXT_EVENT,
    G_RESP_SUM,
    HIST_BINS,
    HIST_LOG_RATIO,
    HIST_MIN,
    Q_BUSY,
    Q_QLEN,
    S_BILL_FROM,
    S_BILLED,
    S_BUSY_AREA,
    S_CRASH_AT,
    S_END_AT,
    S_LAST_T,
    S_PEAK,
    S_READY,
    S_SERVE_FROM,
    S_SERVE_TIME,
    ReqState,
)
from .lifecycle import (
    instance_events,
    next_event,
    note_load,
    replace,
    set_busy,
    start_waiting,
    stop_serving,
    turn_off,
    went_idle,
)
from .serverless import drain_activator, platform_arrive, platform_begin, platform_end

_OPTS = {"cache": True, "_nrt": False}  # no allocation here: no reference counting (see kernel._KERNEL)
_LOG_HIST_MIN = math.log(HIST_MIN)


@njit(**_OPTS)
def step_cluster(b, s, out, r, action):
    """One decision step of cluster b, request by request."""
    if s.params[b, P_PLATFORM] > 0.5:
        step_platform_cluster(b, s, out, r, action)
        return
    m = out.metrics
    t0 = s.env_state[b, E_TIME]
    k = int(s.env_state[b, E_STEP])
    dt = s.params[b, P_DT]
    backlog_before = begin_step(b, s, m)
    hi = apply_action(b, s, m, int(s.scale_steps[action]))
    s.env_state[b, E_HI] = max(s.env_state[b, E_HI], hi)  # (the fast kernel writes it in its lifecycle phase)
    begin_events(r, s, m, b, t0, dt)
    run_events(r, s, m, b, t0, t0 + dt, k)
    backlog = end_events(r, s, m, b, t0 + dt)
    count_states(b, s, m)
    advance_clocks(b, s, t0, dt, k)
    finish_step(b, s, out, backlog_before + int(m[b, M_ARRIVALS]), backlog, t0 + dt, k)


@njit(**_OPTS)
def step_platform_cluster(b, s, out, r, action):
    """One decision step of cluster b in the serverless platform mode (``serverless.py``), request by request:
    the platform's action, then the same event loop and end of step, then the platform's accounts."""
    m = out.metrics
    t0 = s.env_state[b, E_TIME]
    k = int(s.env_state[b, E_STEP])
    dt = s.params[b, P_DT]
    backlog_before = begin_step(b, s, m) + int(r.gen[b, G_ACT_LEN])
    platform_begin(r, s, m, b, t0, int(s.scale_steps[action]))
    begin_events(r, s, m, b, t0, dt)
    if r.gen[b, G_ACT_LEN] > 0:  # the tokens refilled: buffered requests may start cold starts now
        drain_activator(r, s, m, b, t0)
    run_events(r, s, m, b, t0, t0 + dt, k)
    backlog = platform_end(r, s, m, b, t0 + dt, end_events(r, s, m, b, t0 + dt))
    count_states(b, s, m)
    m[b, M_CONTROLLED] = s.env_state[b, E_PF_PROV]
    advance_clocks(b, s, t0, dt, k)
    finish_step(b, s, out, backlog_before + int(m[b, M_ARRIVALS]), backlog, t0 + dt, k)


@njit(**_OPTS)
def begin_events(r, s, m, b, t0, dt):
    """The step's bookkeeping; cold starts and drains started by the action get their times; crash times."""
    p = s.params
    hazard = p[b, P_HAZARD]
    for i in range(r.slot_f.shape[1]):
        r.slot_f[b, i, S_BILLED] = 0.0
    for i in range(int(s.env_state[b, E_HI])):
        st = s.inst_i[b, i, I_STATE]
        f = r.slot_f
        f[b, i, S_BILL_FROM] = t0
        f[b, i, S_SERVE_TIME] = 0.0
        f[b, i, S_BUSY_AREA] = 0.0
        f[b, i, S_LAST_T] = t0
        f[b, i, S_PEAK] = r.slot_i[b, i, Q_BUSY] + r.slot_i[b, i, Q_QLEN]
        f[b, i, S_SERVE_FROM] = t0 if (st == WARM or st == DRAINING) else -1.0
        f[b, i, S_CRASH_AT] = math.inf
        if st == OFF:
            # stopped by the action (a booting one: its waiting requests were counted as failed by scale_in)
            r.slot_i[b, i, Q_QLEN] = 0
        elif st == BOOTING:
            f[b, i, S_READY] = t0 + s.inst_f[b, i, F_TIMER]  # F_TIMER: boot time left at the step start
        elif st == DRAINING and s.inst_f[b, i, F_TIMER] == 0.0:  # drained by this action
            f[b, i, S_END_AT] = t0 + p[b, P_DEREG]
            if r.slot_i[b, i, Q_BUSY] + r.slot_i[b, i, Q_QLEN] == 0:
                turn_off(r, s, b, i, t0)
        elif st == WARM and hazard > 0.0 and uniform(s.rng, b) < hazard:
            f[b, i, S_CRASH_AT] = crash_time(s, b, t0, dt, hazard)
        elif st == UNHEALTHY and s.inst_f[b, i, F_TIMER] < 0.0 and p[b, P_REPLACE] > 0.5:
            replace(r, s, m, b, i, t0)  # no slot was free for its replacement: try again
    r.gen[b, G_RESP_SUM] = 0.0
    for j in range(HIST_BINS):
        r.hist[b, j] = 0
    next_event(r, s, b)


@njit(**_OPTS)
def run_events(r, s, m, b, t0, t1, k):
    """Completions, lifecycle events and arrivals of [t0, t1) in time order. In platform mode an instance left
    idle starts its keep-alive, and freed capacity goes to the activator's buffer first."""
    platform = s.params[b, P_PLATFORM] > 0.5
    start_arrivals(r, s, b, t0, k)
    while True:
        ta = r.gen[b, G_NEXT]
        tc = r.heap_t[b, 0] if r.gen[b, G_HEAP_N] > 0 else math.inf
        te = r.gen[b, G_NEXT_EVENT]
        if tc <= te and tc <= ta:
            if tc >= t1:
                break
            i = complete(r, s, m, b, t1)
            if platform:
                went_idle(r, s, b, i, tc)
                if r.gen[b, G_ACT_LEN] > 0:
                    drain_activator(r, s, m, b, tc)
        elif te <= ta:
            if te >= t1:
                break
            instance_events(r, s, m, b, te, t0, t1)
            if platform and r.gen[b, G_ACT_LEN] > 0:
                drain_activator(r, s, m, b, te)
        else:
            if ta >= t1:
                break
            if platform:
                platform_arrive(r, s, m, b, ta)
            else:
                arrive(r, s, m, b, ta)
            next_arrival(r, s, b, ta, t0, k)


@njit(**_OPTS)
def complete(r, s, m, b, t1):
    """The earliest request in service completes: its response time is recorded; its server takes the next.
    Returns the slot."""
    t, a, i = heap_pop(r, b)
    resp = t - a
    m[b, M_SERVED] += 1
    r.gen[b, G_RESP_SUM] += resp
    j = int((math.log(max(resp, HIST_MIN)) - _LOG_HIST_MIN) / HIST_LOG_RATIO)
    r.hist[b, min(max(j, 0), HIST_BINS - 1)] += 1
    ka = min(int(a / s.params[b, P_DT] + 1e-9), r.by_arrival.shape[1] - 1)
    r.by_arrival[b, ka, 0] += 1.0
    r.by_arrival[b, ka, 1] += resp
    set_busy(r, b, i, t, -1)
    start_waiting(r, s, b, i, t)
    if s.inst_i[b, i, I_STATE] == DRAINING and r.slot_i[b, i, Q_BUSY] + r.slot_i[b, i, Q_QLEN] == 0:
        turn_off(r, s, b, i, t)  # drained: deregistered when its last request ends
    return i


@njit(**_OPTS)
def pick_target(r, s, b, hi):
    """The pool member the balancer sends a request arriving now to (-1: the pool is empty)."""
    algo = int(s.params[b, P_ALGO])
    n = 0
    for i in range(hi):
        st = s.inst_i[b, i, I_STATE]
        if st == WARM or st == FAILED:
            n += 1
    if n == 0:
        return -1
    if algo == LEAST_OUTSTANDING:
        start = int(s.env_state[b, E_RR]) % hi
        best = -1
        best_n = 1 << 62
        for jj in range(hi):
            i = (start + jj) % hi
            st = s.inst_i[b, i, I_STATE]
            if st == WARM or st == FAILED:
                o = r.slot_i[b, i, Q_BUSY] + r.slot_i[b, i, Q_QLEN]
                if o < best_n:
                    best_n = o
                    best = i
        s.env_state[b, E_RR] = (best + 1) % hi
        return best
    if algo == RANDOM:
        pick = min(int(uniform(s.rng, b) * n), n - 1)
    else:  # round robin: the next member in slot order
        pick = int(s.env_state[b, E_RR]) % n
        s.env_state[b, E_RR] = (pick + 1) % n
    for i in range(hi):
        st = s.inst_i[b, i, I_STATE]
        if st == WARM or st == FAILED:
            if pick == 0:
                return i
            pick -= 1
    return -1


@njit(**_OPTS)
def pick_booting(r, s, b, hi):
    """With no pool member: the booting instance (in turn) a request waits on (-1: none)."""
    start = int(r.gen[b, G_BOOT_RR])
    for jj in range(hi):
        i = (start + jj) % hi
        if s.inst_i[b, i, I_STATE] == BOOTING:
            r.gen[b, G_BOOT_RR] = (i + 1) % hi
            return i
    return -1


@njit(**_OPTS)
def arrive(r, s, m, b, t):
    """A request arrives at ``t``: routed, then started, queued, dropped (waiting room full, no instance) or
    failed (sent to a crashed instance)."""
    m[b, M_ARRIVALS] += 1
    hi = int(s.env_state[b, E_HI])
    maxq = int(s.params[b, P_MAXQ])
    i = pick_target(r, s, b, hi) if hi > 0 else -1
    if i < 0:
        j = pick_booting(r, s, b, hi) if hi > 0 else -1
        if j >= 0 and r.slot_i[b, j, Q_QLEN] < maxq:
            ring_push(r, b, j, t)
            note_load(r, s, m, b, j, t)
        else:
            m[b, M_DROPPED] += 1
        return
    if s.inst_i[b, i, I_STATE] == FAILED:
        m[b, M_FAILED] += 1
        return
    if r.slot_i[b, i, Q_BUSY] < int(s.params[b, P_CONC]):
        set_busy(r, b, i, t, 1)
        heap_push(r, b, t + service_time(s, b), t, i)
    elif r.slot_i[b, i, Q_QLEN] < maxq:
        ring_push(r, b, i, t)
    else:
        m[b, M_DROPPED] += 1
        return
    note_load(r, s, m, b, i, t)


@njit(**_OPTS)
def end_events(r, s, m, b, t1):
    """Billing, CPU, memory, timers and queues at the step end ``t1``; then the step's latency. Returns the
    requests in service or queued (the backlog carried over)."""
    p = s.params
    conc = int(p[b, P_CONC])
    inst_seconds = 0.0
    billed = 0
    n_serving = 0
    cpu_sum = mem_sum = cpu_max = mem_max = 0.0
    backlog = 0
    hi = int(s.env_state[b, E_HI])
    for i in range(hi):
        st = s.inst_i[b, i, I_STATE]
        f = r.slot_f
        if st != OFF:
            f[b, i, S_BILLED] += t1 - f[b, i, S_BILL_FROM]
            f[b, i, S_BILL_FROM] = t1
            stop_serving(r, b, i, t1)
            set_busy(r, b, i, t1, 0)
        if f[b, i, S_BILLED] > 0.0:
            inst_seconds += f[b, i, S_BILLED]
            billed += 1
        if f[b, i, S_SERVE_TIME] > 0.0:
            cpu = min(f[b, i, S_BUSY_AREA] / (conc * f[b, i, S_SERVE_TIME]), 1.0)
            mem = (p[b, P_MEM_BASE] + p[b, P_MEM_REQ] * f[b, i, S_PEAK]) / p[b, P_MEM_LIMIT]
            s.inst_f[b, i, F_LOAD] = cpu
            cpu_sum += cpu
            mem_sum += mem
            cpu_max = max(cpu_max, cpu)
            mem_max = max(mem_max, mem)
            n_serving += 1
        n = r.slot_i[b, i, Q_BUSY] + r.slot_i[b, i, Q_QLEN] if st != OFF else 0
        s.inst_i[b, i, I_BACKLOG] = n
        backlog += n
        if st == BOOTING:
            s.inst_f[b, i, F_TIMER] = max(f[b, i, S_READY] - t1, 0.0)
        elif st == UNHEALTHY and s.inst_f[b, i, F_TIMER] >= 0.0:
            s.inst_f[b, i, F_TIMER] = max(f[b, i, S_END_AT] - t1, 0.0)
        elif st == DRAINING:
            s.inst_f[b, i, F_TIMER] = t1 - (f[b, i, S_END_AT] - p[b, P_DEREG])
    m[b, M_INST_SECONDS] = inst_seconds
    m[b, M_BILLED] = billed
    m[b, M_CPU] = cpu_sum / n_serving if n_serving > 0 else 0.0
    m[b, M_MEM] = mem_sum / n_serving if n_serving > 0 else 0.0
    m[b, M_CPU_MAX] = cpu_max
    m[b, M_MEM_MAX] = mem_max
    step_latency(r, s, m, b, t1, backlog, hi)
    return backlog


@njit(**_OPTS)
def step_latency(r, s, m, b, t1, backlog, hi):
    """Mean and p95 response time of the requests completed in the step (the p95 from the log histogram,
    interpolated within its bin, reported at least the mean as the fast model does); none completed: the mean
    age of the requests in service or queued (or in the activator's buffer); nothing there either: 0."""
    served = int(m[b, M_SERVED])
    if served > 0:
        mean = r.gen[b, G_RESP_SUM] / served
        rank = 0.95 * served
        acc = 0.0
        p95 = mean
        for j in range(HIST_BINS):
            c = r.hist[b, j]
            if c > 0 and acc + c >= rank:
                frac = (rank - acc) / c
                p95 = math.exp(_LOG_HIST_MIN + (j + frac) * HIST_LOG_RATIO)
                break
            acc += c
        m[b, M_LAT_MEAN] = mean
        m[b, M_LAT_P95] = max(p95, mean)
    elif backlog + r.gen[b, G_ACT_LEN] > 0:  # (platform mode: the activator's buffer waits too)
        age = heap_age(r, b, t1) + buffer_age(r, b, t1)
        for i in range(hi):
            age += ring_age(r, b, i, t1)
        m[b, M_LAT_MEAN] = s.params[b, P_SVC] + min(age / (backlog + r.gen[b, G_ACT_LEN]), t1)
        m[b, M_LAT_P95] = m[b, M_LAT_MEAN]
    else:
        m[b, M_LAT_MEAN] = 0.0
        m[b, M_LAT_P95] = 0.0
    m[b, M_BACKLOG] = backlog


# ------------------------------------------------------------------------------------------ entry points
@njit(**_OPTS)
def step_batch(actions, active, params, env_state, inst_f, inst_i, rng, expected, outages, scale_steps, obs,
               metrics, rewards, reward_parts, truncated, slot_f, slot_i, ring, heap_t, heap_a, heap_s, gen, hist,
               by_arrival, outage_done, fine, sub, act_ring):  # fmt: skip
    """Step every active cluster, one after the other."""
    s = State(params, env_state, inst_f, inst_i, rng, expected, outages, scale_steps)
    out = Outputs(obs, metrics, rewards, reward_parts, truncated)
    r = ReqState(slot_f, slot_i, ring, heap_t, heap_a, heap_s, gen, hist, by_arrival, outage_done, fine, sub, act_ring)
    for b in range(params.shape[0]):
        if active[b]:
            step_cluster(b, s, out, r, actions[b])


@njit(parallel=True, **_OPTS)
def step_batch_parallel(actions, active, params, env_state, inst_f, inst_i, rng, expected, outages, scale_steps,
                        obs, metrics, rewards, reward_parts, truncated, slot_f, slot_i, ring, heap_t, heap_a, heap_s,
                        gen, hist, by_arrival, outage_done, fine, sub, act_ring):  # fmt: skip
    """Step every active cluster, the clusters split over numba's threads (each cluster's draws are its own, so
    the trajectories do not depend on the thread count)."""
    s = State(params, env_state, inst_f, inst_i, rng, expected, outages, scale_steps)
    out = Outputs(obs, metrics, rewards, reward_parts, truncated)
    r = ReqState(slot_f, slot_i, ring, heap_t, heap_a, heap_s, gen, hist, by_arrival, outage_done, fine, sub, act_ring)
    for b in prange(params.shape[0]):
        if active[b]:
            step_cluster(np.int64(b), s, out, r, actions[b])
