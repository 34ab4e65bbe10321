"""The serverless platform mode (``platform.enabled``; docs/model.md sections 11-12) in the request-level backend.

The platform's rules that act at steps are ``sim.platform``'s, called as they are: the action changes the
provisioned count or the keep-alive and launches or stops provisioned instances (``platform_action``), the
launch of a cold start (``platform.start``) and the scaling tokens' refill (``platform.refill``). What the fast
model accounts per step in whole requests happens here per request, at its exact time:

- a request arriving at ``t`` starts at once on a warm instance with a free server (provisioned ones first, then
  on-demand ones in slot order: packing, so that spare instances stay idle and are reclaimed, as the fast model);
  else it waits on an on-demand instance booting for fewer than ``concurrency`` requests; else the platform
  starts an instance for it if fewer than ``platform.max_concurrency`` are live and a scaling token is left (the
  tokens refilled continuously to ``t``), and it waits for that cold start; else, with the activator, it joins the
  activator's FIFO buffer (up to ``activator_capacity``), else it is throttled;
- buffered requests go first (FIFO): the buffer is offered capacity at the step start, after each completion,
  after cold starts end and before each arrival (an arrival finding a non-empty buffer queues behind it);
- an idle on-demand instance (nothing in service or waiting) is reclaimed exactly ``keep_alive`` seconds after
  its last request completed (``S_IDLE_AT + keep_alive``, with the keep-alive in force at the time: the action
  may change it); billed until then. Provisioned instances are never reclaimed;
- lowering the provisioned count stops provisioned instances at the step start (``platform_action``: booting ones
  first); a warm one stopped with requests in service keeps running them as an on-demand instance (and is then
  reclaimed when idle), so no request is lost;
- billing: on-demand instances per second from launch to reclaim; provisioned ones at their own price for every
  second they are live plus the duration of the requests they run (their busy server-seconds / concurrency).
"""

from __future__ import annotations

from numba import njit

from ...fields import (
    M_ARRIVALS,
    M_BACKLOG,
    M_BUFFERED,
    M_COLD_STARTS,
    M_INST_SECONDS,
    M_KEEP_ALIVE,
    M_PROV_COST,
    M_PROV_UTIL,
    M_PROVISIONED,
    M_THROTTLED,
)
from ..instances import BOOTING, F_TIMER, I_EVENT, I_PROV, I_STATE, OFF, WARM
from ..platform import NEW_SLOT, live_counts, platform_action, refill, start
from ..state import (
    E_HI,
    E_PF_BUFFER,
    E_PF_KEEP_ALIVE,
    E_PF_PROV,
    E_PF_TOKENS,
    P_CONC,
    P_DT,
    P_MEM_LIMIT,
    P_PF_ACTIVATOR,
    P_PF_BUFFER,
    P_PF_LIMIT,
    P_PF_PRICE_PROV_BUSY_S,
    P_PF_PRICE_PROV_S,
)
from .draws import service_time
from .heap import heap_push, ring_push
from .layout import (
    G_ACT_HEAD,
    G_ACT_LEN,
    G_NEXT_EVENT,
    G_PF_T,
    Q_BUSY,
    Q_QLEN,
    S_BILLED,
    S_BUSY_AREA,
    S_READY,
)
from .lifecycle import init_slot, note_load, set_busy

_OPTS = {"cache": True, "_nrt": False}  # no allocation here: no reference counting (see kernel._KERNEL)
_EPS = 1e-9


@njit(**_OPTS)
def platform_begin(r, s, m, b, t0, requested):
    """The step's action (``platform.platform_action``), with request-level bookkeeping for what it changed: new
    provisioned cold starts get fresh slots; a warm instance it stopped with requests in service finishes them as
    an on-demand one. Then the step's token clock starts at ``t0``."""
    hi = platform_action(b, s, m, requested, int(s.env_state[b, E_HI]))
    for i in range(hi):
        inst = s.inst_i
        if inst[b, i, I_EVENT] == NEW_SLOT:
            inst[b, i, I_EVENT] = 0
            init_slot(r, b, i, t0)
        elif inst[b, i, I_STATE] == OFF and r.slot_i[b, i, Q_BUSY] + r.slot_i[b, i, Q_QLEN] > 0:
            inst[b, i, I_STATE] = WARM
    s.env_state[b, E_HI] = max(s.env_state[b, E_HI], hi)
    r.gen[b, G_PF_T] = t0


@njit(**_OPTS)
def launch_for(r, s, m, b, t):
    """The platform starts one on-demand instance at ``t`` if the concurrency limit and a scaling token allow;
    returns its slot (-1: neither allows)."""
    hi = int(s.env_state[b, E_HI])
    tokens = refill(b, s, t - r.gen[b, G_PF_T])
    s.env_state[b, E_PF_TOKENS] = tokens
    r.gen[b, G_PF_T] = t
    live, _ = live_counts(b, s, hi)
    if live >= int(s.params[b, P_PF_LIMIT]) or tokens < 1.0 - _EPS:
        return -1
    started, hi = start(b, s, 1, hi, False)
    if started == 0:
        return -1
    s.env_state[b, E_PF_TOKENS] = tokens - 1.0
    s.env_state[b, E_HI] = hi
    m[b, M_COLD_STARTS] += 1
    for i in range(hi):
        if s.inst_i[b, i, I_EVENT] == NEW_SLOT:
            s.inst_i[b, i, I_EVENT] = 0
            init_slot(r, b, i, t)
            r.slot_f[b, i, S_READY] = t + s.inst_f[b, i, F_TIMER]
            r.gen[b, G_NEXT_EVENT] = min(r.gen[b, G_NEXT_EVENT], r.slot_f[b, i, S_READY])
            return i
    return -1


@njit(**_OPTS)
def place(r, s, m, b, t, a):
    """A request that arrived at ``a`` is offered capacity at ``t``: a free server of a warm instance, a place
    waiting on a booting on-demand one, or a new cold start. Returns whether it found one."""
    hi = int(s.env_state[b, E_HI])
    conc = int(s.params[b, P_CONC])
    inst = s.inst_i
    target = -1
    for pass_ in range(2):  # provisioned first, then on demand, each in slot order
        for i in range(hi):
            if inst[b, i, I_STATE] == WARM and inst[b, i, I_PROV] == 1 - pass_ and r.slot_i[b, i, Q_BUSY] < conc:
                target = i
                break
        if target >= 0:
            break
    if target >= 0:
        set_busy(r, b, target, t, 1)
        heap_push(r, b, t + service_time(s, b), a, target)
        note_load(r, s, m, b, target, t)
        return True
    for i in range(hi):
        if inst[b, i, I_STATE] == BOOTING and inst[b, i, I_PROV] == 0 and r.slot_i[b, i, Q_QLEN] < conc:
            target = i
            break
    if target < 0:
        target = launch_for(r, s, m, b, t)
        if target < 0:
            return False
    ring_push(r, b, target, a)
    note_load(r, s, m, b, target, t)
    return True


@njit(**_OPTS)
def drain_activator(r, s, m, b, t):
    """Offer capacity at ``t`` to the activator's buffered requests, oldest first, until one finds none."""
    cap = r.act_ring.shape[1]
    while r.gen[b, G_ACT_LEN] > 0:
        head = int(r.gen[b, G_ACT_HEAD])
        if not place(r, s, m, b, t, r.act_ring[b, head]):
            return
        r.gen[b, G_ACT_HEAD] = (head + 1) % cap
        r.gen[b, G_ACT_LEN] -= 1


@njit(**_OPTS)
def platform_arrive(r, s, m, b, t):
    """A request arrives at ``t``: behind the activator's buffer if one is left waiting, else placed (``place``),
    else buffered by the activator if it has room, else throttled."""
    m[b, M_ARRIVALS] += 1
    if r.gen[b, G_ACT_LEN] > 0:
        drain_activator(r, s, m, b, t)
    if r.gen[b, G_ACT_LEN] == 0 and place(r, s, m, b, t, t):
        return
    n = int(r.gen[b, G_ACT_LEN])
    if s.params[b, P_PF_ACTIVATOR] > 0.5 and n < int(s.params[b, P_PF_BUFFER]):
        cap = r.act_ring.shape[1]
        r.act_ring[b, (int(r.gen[b, G_ACT_HEAD]) + n) % cap] = t
        r.gen[b, G_ACT_LEN] = n + 1
    else:
        m[b, M_THROTTLED] += 1


@njit(**_OPTS)
def platform_end(r, s, m, b, t1, backlog):
    """At the step end (after ``loop.end_events`` billed every slot): provisioned seconds and their busy duration
    priced apart from the on-demand ones; the provisioned metrics, keep-alive, tokens, the activator's buffer.
    Returns the backlog with the buffered requests."""
    p, env = s.params, s.env_state
    conc = int(p[b, P_CONC])
    dt = p[b, P_DT]
    prov_seconds = 0.0
    busy_prov_s = 0.0
    for i in range(int(env[b, E_HI])):
        if s.inst_i[b, i, I_PROV] == 1:
            prov_seconds += r.slot_f[b, i, S_BILLED]
            busy_prov_s += r.slot_f[b, i, S_BUSY_AREA] / conc
    m[b, M_INST_SECONDS] -= prov_seconds
    gb = p[b, P_MEM_LIMIT] / 1024.0
    m[b, M_PROV_COST] = prov_seconds * p[b, P_PF_PRICE_PROV_S] + busy_prov_s * gb * p[b, P_PF_PRICE_PROV_BUSY_S]
    target = env[b, E_PF_PROV]
    m[b, M_PROVISIONED] = target
    m[b, M_PROV_UTIL] = busy_prov_s / (dt * target) if target > 0 else 0.0
    m[b, M_KEEP_ALIVE] = env[b, E_PF_KEEP_ALIVE]
    env[b, E_PF_TOKENS] = refill(b, s, t1 - r.gen[b, G_PF_T])
    r.gen[b, G_PF_T] = t1
    buffered = int(r.gen[b, G_ACT_LEN])
    env[b, E_PF_BUFFER] = buffered
    m[b, M_BUFFERED] = buffered
    m[b, M_BACKLOG] += buffered
    return backlog + buffered
