"""Instance events of the request-level backend, each at its exact time.

- a cold start ends at launch time + its drawn boot length (``instances.boot_seconds``): the instance joins the
  pool and starts the requests that waited for it;
- a spontaneous crash at a time drawn per warm instance and step (``draws.crash_time``); an outage at its
  ``time_seconds``; a memory crash the moment an instance's requests (in service + queued) pass its limit. A crash
  fails every request in service or queued on the instance;
- detection at the ``T``-th health check strictly after the crash, ``t_d = (floor(t_c / I) + T) * I`` (checks at
  multiples of the interval, as the fast model: docs/model.md 5). Until then the balancer still routes to it
  and each such request fails at once;
- with ``replace_unhealthy`` a replacement is launched at ``t_d`` and the unhealthy instance terminates
  ``termination_seconds`` later (with no free slot, it is kept and counted, and the launch is retried at the
  next step start);
- platform mode (``serverless.py``): an idle on-demand instance is reclaimed ``keep_alive`` s after it became
  idle (``S_IDLE_AT``); a cold start's waiting requests count as ``cold_waits`` when they start;
- a draining instance turns off when its last request completes, or at its deregistration deadline (scale-in
  time + ``deregistration_delay_seconds``), when what is left on it fails.

Billing runs from launch (or the step start) until the instance turns off; CPU is the busy share of its
concurrency while it serves (warm or draining); memory uses its peak of requests in service + queued.
"""

from __future__ import annotations

import math

from numba import njit

from ...fields import M_COLD_STARTS, M_COLD_WAITS, M_CRASHES, M_FAILED, M_RECLAIMED
from ..instances import BOOTING, DRAINING, F_TIMER, FAILED, I_BACKLOG, I_PROV, I_STATE, OFF, UNHEALTHY, WARM, launch
from ..rng import uniform
from ..state import (
    E_HI,
    E_PF_KEEP_ALIVE,
    P_BOOT_JITTER,
    P_BOOT_MEAN,
    P_CONC,
    P_HC_INTERVAL,
    P_HC_THRESHOLD,
    P_MEM_BASE,
    P_MEM_CRASH,
    P_MEM_LIMIT,
    P_MEM_REQ,
    P_PLATFORM,
    P_REPLACE,
    P_TERMINATION,
)
from .draws import service_time
from .heap import heap_push, heap_remove_slot, ring_pop
from .layout import (
    G_NEXT_EVENT,
    Q_BUSY,
    Q_QHEAD,
    Q_QLEN,
    S_BILL_FROM,
    S_BILLED,
    S_BUSY_AREA,
    S_CRASH_AT,
    S_DETECT_AT,
    S_END_AT,
    S_IDLE_AT,
    S_LAST_T,
    S_PEAK,
    S_READY,
    S_SERVE_FROM,
    S_SERVE_TIME,
)

_OPTS = {"cache": True, "_nrt": False}  # no allocation here: no reference counting (see kernel._KERNEL)
_EPS = 1e-9


@njit(**_OPTS)
def set_busy(r, b, i, t, delta):
    """Change slot i's busy servers by ``delta`` at ``t`` (integrating its busy server-seconds)."""
    f = r.slot_f
    f[b, i, S_BUSY_AREA] += r.slot_i[b, i, Q_BUSY] * (t - f[b, i, S_LAST_T])
    f[b, i, S_LAST_T] = t
    r.slot_i[b, i, Q_BUSY] += delta


@njit(**_OPTS)
def start_waiting(r, s, b, i, t):
    """A serving slot starts its oldest waiting requests while it has a free server."""
    conc = int(s.params[b, P_CONC])
    while r.slot_i[b, i, Q_BUSY] < conc and r.slot_i[b, i, Q_QLEN] > 0:
        a = ring_pop(r, b, i)
        set_busy(r, b, i, t, 1)
        heap_push(r, b, t + service_time(s, b), a, i)


@njit(**_OPTS)
def note_load(r, s, m, b, i, t):
    """After slot i took a request: its peak of outstanding requests, and a memory crash past its limit."""
    n = r.slot_i[b, i, Q_BUSY] + r.slot_i[b, i, Q_QLEN]
    if n > r.slot_f[b, i, S_PEAK]:
        r.slot_f[b, i, S_PEAK] = n
        p = s.params
        # (the platform mode models no instance failures, as the fast platform step: docs/model.md 12)
        over = (p[b, P_MEM_BASE] + p[b, P_MEM_REQ] * n) / p[b, P_MEM_LIMIT] > 1.0
        if p[b, P_MEM_CRASH] > 0.5 and over and p[b, P_PLATFORM] < 0.5:
            crash_slot(r, s, m, b, i, t)


@njit(**_OPTS)
def reclaim_at(r, s, b, i):
    """Platform mode: the time warm slot i is reclaimed, ``keep_alive`` s after it became idle (inf: provisioned,
    or not idle). The keep-alive is the one in force now (the action may change it)."""
    if s.inst_i[b, i, I_PROV] == 1 or r.slot_i[b, i, Q_BUSY] + r.slot_i[b, i, Q_QLEN] > 0:
        return math.inf
    return r.slot_f[b, i, S_IDLE_AT] + s.env_state[b, E_PF_KEEP_ALIVE]


@njit(**_OPTS)
def went_idle(r, s, b, i, t):
    """Platform mode, after slot i's requests changed at ``t``: if it is idle now, its keep-alive clock starts."""
    if r.slot_i[b, i, Q_BUSY] + r.slot_i[b, i, Q_QLEN] == 0:
        r.slot_f[b, i, S_IDLE_AT] = t
        r.gen[b, G_NEXT_EVENT] = min(r.gen[b, G_NEXT_EVENT], reclaim_at(r, s, b, i))


@njit(**_OPTS)
def fail_requests(r, b, i, t):
    """Every request in service or waiting on slot i fails now; returns how many."""
    set_busy(r, b, i, t, 0)
    removed, _ = heap_remove_slot(r, b, i, t)
    lost = removed + r.slot_i[b, i, Q_QLEN]
    r.slot_i[b, i, Q_BUSY] = 0
    r.slot_i[b, i, Q_QLEN] = 0
    r.slot_i[b, i, Q_QHEAD] = 0
    return lost


@njit(**_OPTS)
def stop_serving(r, b, i, t):
    f = r.slot_f
    if f[b, i, S_SERVE_FROM] >= 0.0:
        f[b, i, S_SERVE_TIME] += t - f[b, i, S_SERVE_FROM]
        f[b, i, S_SERVE_FROM] = -1.0


@njit(**_OPTS)
def turn_off(r, s, b, i, t):
    """Slot i stops at ``t`` (billed until then)."""
    stop_serving(r, b, i, t)
    r.slot_f[b, i, S_BILLED] += t - r.slot_f[b, i, S_BILL_FROM]
    r.slot_f[b, i, S_BILL_FROM] = t
    s.inst_i[b, i, I_STATE] = OFF
    s.inst_i[b, i, I_BACKLOG] = 0


@njit(**_OPTS)
def crash_slot(r, s, m, b, i, t):
    """Slot i crashes at ``t``: its requests fail; the health checks find it at ``t_d``."""
    m[b, M_FAILED] += fail_requests(r, b, i, t)
    m[b, M_CRASHES] += 1
    stop_serving(r, b, i, t)
    s.inst_i[b, i, I_STATE] = FAILED
    s.inst_i[b, i, I_BACKLOG] = 0
    interval = s.params[b, P_HC_INTERVAL]
    r.slot_f[b, i, S_DETECT_AT] = (math.floor(t / interval + _EPS) + s.params[b, P_HC_THRESHOLD]) * interval
    r.slot_f[b, i, S_CRASH_AT] = math.inf
    r.gen[b, G_NEXT_EVENT] = min(r.gen[b, G_NEXT_EVENT], r.slot_f[b, i, S_DETECT_AT])


@njit(**_OPTS)
def init_slot(r, b, i, t):
    """Fresh request bookkeeping for a slot launched at ``t``."""
    f = r.slot_f
    f[b, i, S_BILL_FROM] = t
    f[b, i, S_SERVE_FROM] = -1.0
    f[b, i, S_LAST_T] = t
    f[b, i, S_PEAK] = 0.0
    f[b, i, S_CRASH_AT] = math.inf
    r.slot_i[b, i, Q_BUSY] = 0
    r.slot_i[b, i, Q_QLEN] = 0
    r.slot_i[b, i, Q_QHEAD] = 0


@njit(**_OPTS)
def replace(r, s, m, b, i, t):
    """With ``replace_unhealthy``: launch a replacement for unhealthy slot i at ``t`` and start its termination;
    with no free slot it stays kept (and counted). Without: it is kept until a scale-in."""
    p = s.params
    s.inst_f[b, i, F_TIMER] = -1.0
    if p[b, P_REPLACE] < 0.5:
        return
    started, top = launch(s.inst_f, s.inst_i, s.rng, b, 1, p[b, P_BOOT_MEAN], p[b, P_BOOT_JITTER])
    if started == 0:
        return
    j = top - 1
    init_slot(r, b, j, t)
    r.slot_f[b, j, S_READY] = t + s.inst_f[b, j, F_TIMER]
    s.env_state[b, E_HI] = max(s.env_state[b, E_HI], top)
    m[b, M_COLD_STARTS] += 1
    s.inst_f[b, i, F_TIMER] = p[b, P_TERMINATION]
    r.slot_f[b, i, S_END_AT] = t + p[b, P_TERMINATION]
    if p[b, P_TERMINATION] <= 0.0:
        turn_off(r, s, b, i, t)


@njit(**_OPTS)
def slot_event(r, s, m, b, i, t):
    """Run slot i's lifecycle event if it is due at ``t``."""
    st = s.inst_i[b, i, I_STATE]
    f = r.slot_f
    if st == BOOTING and f[b, i, S_READY] <= t + _EPS:
        s.inst_i[b, i, I_STATE] = WARM
        s.inst_f[b, i, F_TIMER] = 0.0
        f[b, i, S_SERVE_FROM] = t
        set_busy(r, b, i, t, 0)
        if s.params[b, P_PLATFORM] > 0.5:
            m[b, M_COLD_WAITS] += r.slot_i[b, i, Q_QLEN]
        start_waiting(r, s, b, i, t)
        if s.params[b, P_PLATFORM] > 0.5:
            went_idle(r, s, b, i, t)
    elif st == WARM and f[b, i, S_CRASH_AT] <= t + _EPS:
        crash_slot(r, s, m, b, i, t)
    elif st == WARM and s.params[b, P_PLATFORM] > 0.5 and reclaim_at(r, s, b, i) <= t + _EPS:
        m[b, M_RECLAIMED] += 1
        turn_off(r, s, b, i, t)
    elif st == FAILED and f[b, i, S_DETECT_AT] <= t + _EPS:
        s.inst_i[b, i, I_STATE] = UNHEALTHY
        replace(r, s, m, b, i, t)
    elif st == UNHEALTHY and s.inst_f[b, i, F_TIMER] >= 0.0 and f[b, i, S_END_AT] <= t + _EPS:
        turn_off(r, s, b, i, t)
    elif st == DRAINING and f[b, i, S_END_AT] <= t + _EPS:
        m[b, M_FAILED] += fail_requests(r, b, i, t)
        turn_off(r, s, b, i, t)


@njit(**_OPTS)
def outage(r, s, m, b, fraction, t):
    """An outage at ``t`` crashes ``floor(fraction * warm + 0.5)`` of the warm instances, chosen uniformly
    (selection sampling, Knuth's Algorithm S, as the fast model)."""
    hi = int(s.env_state[b, E_HI])
    n_warm = 0
    for i in range(hi):
        if s.inst_i[b, i, I_STATE] == WARM:
            n_warm += 1
    count = int(math.floor(fraction * n_warm + 0.5))
    left = n_warm
    crashed = 0
    for i in range(hi):
        if crashed >= count:
            break
        if s.inst_i[b, i, I_STATE] == WARM:
            if uniform(s.rng, b) * left < count - crashed:
                crash_slot(r, s, m, b, i, t)
                crashed += 1
            left -= 1


@njit(**_OPTS)
def slot_next_time(r, s, b, i):
    """Time of slot i's next lifecycle event (inf: none scheduled)."""
    st = s.inst_i[b, i, I_STATE]
    if st == BOOTING:
        return r.slot_f[b, i, S_READY]
    if st == WARM:
        if s.params[b, P_PLATFORM] > 0.5:
            return min(r.slot_f[b, i, S_CRASH_AT], reclaim_at(r, s, b, i))
        return r.slot_f[b, i, S_CRASH_AT]
    if st == FAILED:
        return r.slot_f[b, i, S_DETECT_AT]
    if (st == UNHEALTHY and s.inst_f[b, i, F_TIMER] >= 0.0) or st == DRAINING:
        return r.slot_f[b, i, S_END_AT]
    return math.inf


@njit(**_OPTS)
def instance_events(r, s, m, b, t, t0, t1):
    """Run every lifecycle event and outage due at ``t``; then find the next one (``G_NEXT_EVENT``)."""
    for o in range(s.outages.shape[1]):
        ot = s.outages[b, o, 0]
        if r.outage_done[b, o] == 0 and ot >= 0.0 and ot <= t + _EPS:
            r.outage_done[b, o] = 1
            outage(r, s, m, b, s.outages[b, o, 1], t)
    for i in range(int(s.env_state[b, E_HI])):
        slot_event(r, s, m, b, i, t)
    next_event(r, s, b)


@njit(**_OPTS)
def next_event(r, s, b):
    """``G_NEXT_EVENT``: the earliest pending lifecycle event or outage."""
    nxt = math.inf
    for o in range(s.outages.shape[1]):
        ot = s.outages[b, o, 0]
        if r.outage_done[b, o] == 0 and ot >= 0.0:
            nxt = min(nxt, ot)
    for i in range(int(s.env_state[b, E_HI])):
        nxt = min(nxt, slot_next_time(r, s, b, i))
    r.gen[b, G_NEXT_EVENT] = nxt
