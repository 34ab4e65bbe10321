"""The phases of the request-driven serverless platform mode (``platform.enabled``; issue 17).

In this mode the platform, not the policy, starts on-demand instances: a request that finds no free capacity
starts one and waits for its cold start (AWS Lambda: each execution environment serves one request at a time;
Cloud Run / Knative: ``instances.concurrency`` at once), up to a concurrency limit (``pf_limit`` instances) and a
scaling rate (a token bucket: ``pf_burst`` instances, refilled at ``pf_rate`` per second, as Lambda refills its
1,000 per 10 s continuously without accruing more). Past either limit a request is throttled (HTTP 429), or,
with Knative's activator, buffered until capacity frees. Idle on-demand instances are reclaimed
``keep_alive`` seconds after the step in which they last served. The action sets the provisioned (pre-warmed)
count, billed at its own price whether used or not, or the keep-alive. The recipe that calls these phases is
``kernel.step_platform``; the model and its sources are docs/model.md section 12.

A step is accounted in whole requests, per cluster, with loops over the slots only (no per-request work):

- the warm instances at the step start take up to ``conc * dt / svc`` requests each (Little's law: the
  concurrency of the step's requests is ``A * svc / dt``), provisioned ones first, then on-demand ones in slot
  order (packing, so that spare instances stay idle and are reclaimed);
- the rest need new instances: as many as their concurrency during the cold start needs,
  ``min(ceil(R * (boot + svc) / (dt * conc)), ceil(R / conc))``, at most the room under the concurrency limit
  and the scaling tokens; the requests that triggered a cold start (``conc`` per new instance) wait exactly its
  length; with fewer instances than needed, the same share of the rest is admitted and the others throttled.
"""

from __future__ import annotations

import math

from numba import njit

from ..fields import (
    M_BACKLOG,
    M_BILLED,
    M_BLOCKED,
    M_BUFFERED,
    M_COLD_STARTS,
    M_COLD_WAITS,
    M_CONTROLLED,
    M_CPU,
    M_CPU_MAX,
    M_INST_SECONDS,
    M_KEEP_ALIVE,
    M_LAT_MEAN,
    M_LAT_P95,
    M_MEM,
    M_MEM_MAX,
    M_PROV_COST,
    M_PROV_UTIL,
    M_PROVISIONED,
    M_RECLAIMED,
    M_SCALE_APPLIED,
    M_SCALE_REQ,
    M_SERVED,
    M_THROTTLED,
)
from .instances import (
    BOOTING,
    F_BOOT_LEN,
    F_IDLE,
    F_TIMER,
    I_BACKLOG,
    I_EVENT,
    I_PROV,
    I_STATE,
    OFF,
    WARM,
    bounded_change,
    launch,
)
from .queueing import response_p95, waiting_latency
from .rng import poisson, uniform
from .state import (
    E_CD_IN,
    E_CD_OUT,
    E_HI,
    E_PF_BUFFER,
    E_PF_BUFFER_AGE,
    E_PF_KEEP_ALIVE,
    E_PF_PROV,
    E_PF_TOKENS,
    P_BOOT_JITTER,
    P_BOOT_MEAN,
    P_CD_IN,
    P_CD_OUT,
    P_CONC,
    P_DT,
    P_MAX,
    P_MEM_BASE,
    P_MEM_LIMIT,
    P_MEM_REQ,
    P_MIN,
    P_PF_ACTIVATOR,
    P_PF_BUFFER,
    P_PF_BURST,
    P_PF_CONTROL,
    P_PF_INITIAL_PROV,
    P_PF_KA_MAX,
    P_PF_KA_STEP,
    P_PF_KEEP_ALIVE,
    P_PF_LIMIT,
    P_PF_PRICE_PROV_BUSY_S,
    P_PF_PRICE_PROV_S,
    P_PF_RATE,
    P_POISSON,
    P_SVC,
    P_SVC_CV,
)
from .warm_pool import erlang_b_advance, instances_used, last_use_age, overflow_share, use_probability

_EPS = 1e-9
_KERNEL = {"cache": True, "_nrt": False}  # as kernel._KERNEL: nothing here allocates
NEW_SLOT = 7  # I_EVENT mark of a slot launched in the current call of ``start``


@njit(**_KERNEL)
def platform_reset(b, s, m):
    """At reset: the first ``pf_initial_prov`` of the warm instances are the provisioned ones; full scaling
    tokens, the configured keep-alive, an empty activator; the reset's info shows the provisioned count (as the
    count the action changes) and the keep-alive."""
    p, env = s.params, s.env_state
    n_prov = int(p[b, P_PF_INITIAL_PROV])
    for i in range(n_prov):
        s.inst_i[b, i, I_PROV] = 1
    env[b, E_PF_PROV] = n_prov
    env[b, E_PF_TOKENS] = p[b, P_PF_BURST]
    env[b, E_PF_KEEP_ALIVE] = p[b, P_PF_KEEP_ALIVE]
    env[b, E_PF_BUFFER] = 0.0
    env[b, E_PF_BUFFER_AGE] = 0.0
    m[b, M_CONTROLLED] = n_prov
    m[b, M_PROVISIONED] = n_prov
    m[b, M_KEEP_ALIVE] = env[b, E_PF_KEEP_ALIVE]


@njit(**_KERNEL)
def refill(b, s, seconds):
    """The scaling tokens after ``seconds`` more of refill: continuous, at ``pf_rate`` per second, up to the
    bucket's size (the one owner of the rule: the fast step and the request-level backend call it)."""
    p = s.params
    return min(s.env_state[b, E_PF_TOKENS] + p[b, P_PF_RATE] * seconds, p[b, P_PF_BURST])


@njit(**_KERNEL)
def spread_launches(b, s, need, span):
    """How many of ``need`` launches, needed one after the other evenly over ``span`` s from the step start (the
    k-th at ``k span / need``), find a scaling token at their time, as the request-level backend launches: the
    bucket refilled to that moment (``refill``'s rate; a bucket drained as it refills loses nothing to its cap),
    one token per launch, a launch that finds none throttled (its need does not wait for the next token). With
    ``T0`` tokens at the step start and the refill rate ``r`` the tokens by ``t`` are ``T0 + r t`` and the needs
    by ``t`` ``1 + need t / span``, both linear: the launches are the fewer of the needs, the tokens by the last
    need's time, ``floor(T0 + r span (need - 1) / need)``, and ``floor(T0) + need - 1`` (no token for the first
    when the bucket holds less than one)."""
    if need <= 0:
        return 0
    tokens0 = s.env_state[b, E_PF_TOKENS]
    last = span * (need - 1.0) / need
    by_last = int(math.floor(tokens0 + s.params[b, P_PF_RATE] * last + _EPS))
    return max(min(need, by_last, int(math.floor(tokens0 + _EPS)) + need - 1), 0)


@njit(**_KERNEL)
def step_end_tokens(b, s, seconds, started):
    """The bucket after ``seconds`` in which ``started`` launches took their tokens as they came
    (``spread_launches``): beyond the tokens of the step start, the launches took the refill as it came, which
    left the bucket empty at the last of them, ``(started - T0) / rate`` s in, and it refills after (``refill``,
    capped at the bucket's size); within them, ``T0 - started`` refills over the step."""
    p, env = s.params, s.env_state
    tokens0 = env[b, E_PF_TOKENS]
    left = tokens0 - started  # (negative: launches took refilled tokens, each as it came)
    env[b, E_PF_TOKENS] = max(left, 0.0)
    seconds_left = seconds
    if left < 0.0 and p[b, P_PF_RATE] > 0.0:
        seconds_left = max(seconds + left / p[b, P_PF_RATE], 0.0)  # refill after the last launch
    tokens = refill(b, s, seconds_left)
    env[b, E_PF_TOKENS] = tokens0
    return tokens


@njit(**_KERNEL)
def start(b, s, count, hi, prov):
    """Launch ``count`` cold starts (``instances.launch``) as provisioned (``prov``) or on-demand instances;
    returns (started, new slot bound). The new slots are marked ``I_EVENT = NEW_SLOT`` until ``serve_platform``."""
    inst_f, inst_i = s.inst_f, s.inst_i
    if count <= 0:
        return 0, hi
    for i in range(hi):  # launch takes the lowest OFF slots: tell the new ones from those booting already
        if inst_i[b, i, I_STATE] == BOOTING:
            inst_i[b, i, I_EVENT] = 1
    started, top = launch(inst_f, inst_i, s.rng, b, count, s.params[b, P_BOOT_MEAN], s.params[b, P_BOOT_JITTER])
    for i in range(top):
        if inst_i[b, i, I_STATE] == BOOTING and inst_i[b, i, I_EVENT] != 1 and inst_i[b, i, I_EVENT] != NEW_SLOT:
            inst_i[b, i, I_EVENT] = NEW_SLOT
            inst_i[b, i, I_PROV] = 1 if prov else 0
            inst_f[b, i, F_BOOT_LEN] = inst_f[b, i, F_TIMER]
            inst_f[b, i, F_IDLE] = 0.0
    for i in range(hi):
        if inst_i[b, i, I_EVENT] == 1:
            inst_i[b, i, I_EVENT] = 0
    return started, max(hi, top)


@njit(**_KERNEL)
def live_counts(b, s, hi):
    """(live instances, live provisioned instances): booting or warm."""
    live = 0
    prov = 0
    for i in range(hi):
        st = s.inst_i[b, i, I_STATE]
        if st == BOOTING or st == WARM:
            live += 1
            prov += s.inst_i[b, i, I_PROV]
    return live, prov


@njit(**_KERNEL)
def platform_action(b, s, m, requested, hi):
    """1. The action changes the provisioned count (bounded by [min, min(max, limit)], blocked by the cooldowns as
    in ``kernel.apply_action``) or the keep-alive; then provisioned instances are launched or stopped to match
    the count (under the concurrency limit; provisioned capacity does not use the scaling tokens). Returns the
    new slot bound."""
    p, env, inst_i = s.params, s.env_state, s.inst_i
    applied = 0.0
    blocked = 0
    if p[b, P_PF_CONTROL] < 0.5:
        target = int(env[b, E_PF_PROV])
        change = bounded_change(target, requested, int(p[b, P_MIN]), min(int(p[b, P_MAX]), int(p[b, P_PF_LIMIT])))
        if (change > 0 and env[b, E_CD_OUT] > _EPS) or (change < 0 and env[b, E_CD_IN] > _EPS):
            blocked = 1
        elif change != 0:
            env[b, E_PF_PROV] = target + change
            applied = change
            if change > 0:
                env[b, E_CD_OUT] = p[b, P_CD_OUT]
            else:
                env[b, E_CD_IN] = p[b, P_CD_IN]
    else:
        old = env[b, E_PF_KEEP_ALIVE]
        wanted = old + requested * p[b, P_PF_KA_STEP]
        new = min(max(wanted, 0.0), p[b, P_PF_KA_MAX])
        env[b, E_PF_KEEP_ALIVE] = new
        # in units of scale_steps (a bound may cut the change; computed so that it never exceeds the request)
        applied = float(requested) if new == wanted else min(abs((new - old) / p[b, P_PF_KA_STEP]), abs(requested))
        if new < old:
            applied = -abs(applied)
    m[b, M_SCALE_REQ] = requested
    m[b, M_SCALE_APPLIED] = applied
    m[b, M_BLOCKED] = blocked
    live, prov = live_counts(b, s, hi)
    target = int(env[b, E_PF_PROV])
    if prov < target:
        started, hi = start(b, s, min(target - prov, int(p[b, P_PF_LIMIT]) - live), hi, True)
        m[b, M_COLD_STARTS] += started
    elif prov > target:
        # stop the surplus: booting ones first, then warm ones, highest slot first (they hold no requests)
        surplus = prov - target
        for phase in range(2):
            want = BOOTING if phase == 0 else WARM
            for j in range(hi):
                i = hi - 1 - j
                if surplus > 0 and inst_i[b, i, I_PROV] == 1 and inst_i[b, i, I_STATE] == want:
                    inst_i[b, i, I_STATE] = OFF
                    inst_i[b, i, I_PROV] = 0
                    surplus -= 1
    return hi


@njit(**_KERNEL)
def warm_take(b, s, arrivals, total, n_warm):
    """The requests the instances warm at the step start take, and the instances of the hunting order (provisioned
    first, then on demand in slot order) the step uses. Poisson arrivals (``warm_pool``): ``M`` is drawn from the
    running maximum of the step's occupancy; if it passes the warm instances, an overflow happened, and its
    requests are ``arrivals * B(n_warm conc, a) / P(M > n_warm)`` on average (Erlang B given that there was at
    least one), rounded at random. Deterministic arrivals: packing at the mean concurrency (``ceil`` of the
    requests over what one instance completes in a step). Both at most ``floor(n_warm * conc * dt / svc)``.
    Returns (taken, instances used)."""
    p = s.params
    dt = p[b, P_DT]
    conc = int(p[b, P_CONC])
    svc = p[b, P_SVC]
    per_inst = conc * dt / svc  # requests one instance completes in a step at full concurrency
    cap = int(math.floor(n_warm * per_inst + _EPS))
    if p[b, P_POISSON] < 0.5:
        x_w = min(total, cap)
        return x_w, int(math.ceil(x_w / per_inst - _EPS)) if x_w > 0 else 0
    lam = arrivals / dt
    used = instances_used(lam, svc, dt, conc, uniform(s.rng, b))
    over = 0
    if used > n_warm:
        share = overflow_share(n_warm, conc, lam, svc)
        p_over = max(use_probability(n_warm, conc, lam, svc, dt), 1e-300)
        over = int(math.floor(arrivals * share / p_over + uniform(s.rng, b)))
        over = min(max(over, (used - n_warm - 1) * conc + 1), arrivals)  # each new instance takes one at least
    return min(total - over, cap), used


@njit(**_KERNEL)
def new_capacity(b, s, hi, tokens0):
    """The requests the on-demand instances launched in this step can take in it: their first ``conc`` each
    (which wait for the cold start), and at full concurrency from the end of their cold start plus one service
    to the step end. The ``tokens0`` tokens left at the step start launch at once, the refilled ones at the
    refill rate (one each ``1 / rate`` s); a new instance's cold start is its own (``F_BOOT_LEN``)."""
    p, inst_f, inst_i = s.params, s.inst_f, s.inst_i
    dt = p[b, P_DT]
    conc = int(p[b, P_CONC])
    svc = p[b, P_SVC]
    rate = p[b, P_PF_RATE]
    cap = 0.0
    k = 0
    for i in range(hi):
        if inst_i[b, i, I_EVENT] == NEW_SLOT and inst_i[b, i, I_PROV] == 0:
            t_i = 0.0 if k + 1 <= tokens0 + _EPS or rate <= 0.0 else (k + 1 - tokens0) / rate
            cap += conc + max(dt - t_i - inst_f[b, i, F_BOOT_LEN] - svc, 0.0) * conc / svc
            k += 1
    return int(math.floor(cap + _EPS))


@njit(**_KERNEL)
def boot_relief(b, s, hi, arrivals, rest, n_warm):
    """Poisson arrivals, instances booting at the step start (e.g. provisioned ones the action launched): from the
    end of their cold starts (``tau``: the first one's ``F_TIMER``) they are capacity too, so after ``tau`` only
    ``B((n_warm + n_boot) conc, a) / B(n_warm conc, a)`` of the overflow is left. Returns (requests they take
    after their cold start, the overflow's part before ``tau``, ``tau``, ``n_boot``); ``tau = 0`` without them."""
    p, inst_f, inst_i = s.params, s.inst_f, s.inst_i
    dt = p[b, P_DT]
    conc = int(p[b, P_CONC])
    svc = p[b, P_SVC]
    n_boot = 0
    tau = dt
    for i in range(hi):
        if inst_i[b, i, I_STATE] == BOOTING and inst_f[b, i, F_TIMER] <= dt + _EPS:
            n_boot += 1
            tau = min(tau, inst_f[b, i, F_TIMER])
    if n_boot == 0 or rest <= 0 or arrivals <= 0 or p[b, P_POISSON] < 0.5:
        return 0, rest, 0.0, 0
    lam = arrivals / dt
    before = overflow_share(n_warm, conc, lam, svc)
    left = overflow_share(n_warm + n_boot, conc, lam, svc) / before if before > 0.0 else 1.0
    r_before = int(math.floor(rest * tau / dt + _EPS))
    r_after = rest - r_before
    take = min(r_after - int(math.ceil(r_after * left - _EPS)), int(n_boot * max(dt - tau - svc, 0.0) * conc / svc))
    return max(take, 0), r_before, tau, n_boot


@njit(**_KERNEL)
def admit(b, s, m, hi, arrivals, n_warm, n_live):
    """2. The step's requests (the activator's buffer first, then the arrivals) on warm capacity, on new
    instances, in the activator's buffer, or throttled. Returns (taken by warm instances, admitted on new
    instances without a cold-start wait, buffered requests served and their total wait s, new slot bound,
    instances of the hunting order the step uses)."""
    p, env, inst_i = s.params, s.env_state, s.inst_i
    dt = p[b, P_DT]
    conc = int(p[b, P_CONC])
    svc = p[b, P_SVC]
    buffered = int(env[b, E_PF_BUFFER])
    total = buffered + arrivals
    x_w, used = warm_take(b, s, arrivals, total, n_warm)
    boot_take, r_before, tau, n_boot = boot_relief(b, s, hi, arrivals, total - x_w, n_warm)
    rest = total - x_w - boot_take
    # the buffer is served first (FIFO): the part of it that found capacity, with its age
    buf_served = min(buffered, x_w)
    tokens0 = env[b, E_PF_TOKENS]
    started = 0
    admitted = 0
    quick = boot_take  # served by instances booting at the step start, after their cold start: no wait
    if rest > 0:
        # the instances the rest needs: the first request's, and one more per conc of those that come during its
        # cold start (Poisson arrivals: their count is drawn), at most one per conc of them, and at least the
        # new instances of the hunting order the step uses
        window = p[b, P_BOOT_MEAN] + svc
        during = rest * window / dt
        if tau > 0.0:  # the overflow before the booting ones are warm fans out over at most tau
            r_before = min(r_before, rest)
            during = r_before * min(window, tau) / tau + (rest - r_before) * window / dt
        if p[b, P_POISSON] > 0.5:
            cold = int(math.ceil((1 + poisson(s.rng, b, during)) / conc - _EPS))
        else:
            cold = int(math.ceil(during / conc - _EPS))
        fan_out = min(cold, int(math.ceil(rest / conc - _EPS)))
        sustained = max(used - n_warm - n_boot, int(math.ceil(rest * svc / (dt * conc) - _EPS)))
        need = max(fan_out, sustained)
        # each launch takes its token when it is needed (tokens refilled within the step): the fan-out's spread
        # over the first cold start (``window``), the instances the rest keeps busy (the hunting order's new
        # ones, or the rest's mean concurrency) over the step
        budget = max(spread_launches(b, s, fan_out, min(window, dt)), spread_launches(b, s, sustained, dt))
        n_new = max(min(budget, int(p[b, P_PF_LIMIT]) - n_live), 0)
        started, hi = start(b, s, n_new, hi, False)
        m[b, M_COLD_STARTS] += started
        admitted = rest if started >= need else min(rest, new_capacity(b, s, hi, tokens0))
        if started > 0:
            # the requests that triggered the cold starts wait for them (conc per instance); the rest of the
            # admitted ones arrive when the new instances are warm
            waiting = min(admitted, started * conc)
            quick += admitted - waiting
            share = waiting // started
            extra = waiting - share * started
            for i in range(hi):
                if inst_i[b, i, I_EVENT] == NEW_SLOT and inst_i[b, i, I_PROV] == 0:
                    inst_i[b, i, I_BACKLOG] = share + (1 if extra > 0 else 0)
                    extra -= 1
    if buffered > buf_served:  # buffered requests admitted on new capacity without a cold-start wait
        buf_served += min(buffered - buf_served, quick)
    env[b, E_PF_TOKENS] = step_end_tokens(b, s, dt, started)
    over = rest - admitted
    keep = 0
    if p[b, P_PF_ACTIVATOR] > 0.5:
        keep = min(over, int(p[b, P_PF_BUFFER]))
    m[b, M_THROTTLED] = over - keep
    # ages: requests of the buffer have waited their age plus this step until served; a newly buffered request
    # arrived on average half a step before the step's end (arrivals are spread over the step)
    age = env[b, E_PF_BUFFER_AGE]
    buf_wait = age * buf_served / buffered if buffered > 0 else 0.0
    old_kept = min(buffered - buf_served, keep)
    env[b, E_PF_BUFFER_AGE] = (age - buf_wait) * (old_kept / max(buffered - buf_served, 1)) + old_kept * dt
    env[b, E_PF_BUFFER_AGE] += (keep - old_kept) * 0.5 * dt
    env[b, E_PF_BUFFER] = keep
    m[b, M_BUFFERED] = keep
    return x_w, quick, buf_served, buf_wait, hi, used


@njit(**_KERNEL)
def boots(b, s, m, hi):
    """3. Cold starts that end in the step: their waiting requests are served, each after exactly the cold
    start it triggered; the instance is warm (and has just served) at the step end. Returns (requests served,
    their total wait s)."""
    inst_f, inst_i = s.inst_f, s.inst_i
    dt = s.params[b, P_DT]
    served = 0
    wait = 0.0
    for i in range(hi):
        if inst_i[b, i, I_STATE] != BOOTING:
            continue
        inst_i[b, i, I_EVENT] = 0
        if inst_f[b, i, F_TIMER] <= dt + _EPS:
            q = inst_i[b, i, I_BACKLOG]
            served += q
            wait += q * inst_f[b, i, F_BOOT_LEN]
            inst_i[b, i, I_BACKLOG] = 0
            inst_i[b, i, I_STATE] = WARM
            inst_f[b, i, F_TIMER] = 0.0
            inst_f[b, i, F_IDLE] = 0.0
        else:
            inst_f[b, i, F_TIMER] -= dt
    m[b, M_COLD_WAITS] = served
    return served, wait


@njit(**_KERNEL)
def keep_alive_and_bill(b, s, m, hi, x_w, was_warm_hi, used, arrivals):
    """4. The warm instances that served (the first ``used`` of the hunting order: provisioned first, then on
    demand in slot order) restart their idle clock; idle on-demand ones are reclaimed ``keep_alive`` s after
    they last served, and billed until then; provisioned instances are billed at their own price whether used or
    not, plus the duration of the requests they ran. Fills CPU, memory, billing and the provisioned metrics."""
    p, env, inst_f, inst_i = s.params, s.env_state, s.inst_f, s.inst_i
    dt = p[b, P_DT]
    conc = int(p[b, P_CONC])
    svc = p[b, P_SVC]
    per_inst = conc * dt / svc
    keep_alive = env[b, E_PF_KEEP_ALIVE]
    n_prov_warm = 0
    n_warm = 0
    for i in range(was_warm_hi):
        if inst_i[b, i, I_STATE] == WARM and inst_i[b, i, I_EVENT] == 2:
            n_warm += 1
            n_prov_warm += inst_i[b, i, I_PROV]
    x_prov = float(min(x_w, int(math.floor(n_prov_warm * per_inst + _EPS))))
    lam = arrivals / dt
    if p[b, P_POISSON] > 0.5 and arrivals > 0 and n_warm > n_prov_warm:
        # the provisioned ones carry 1 - B(n_prov conc, a) of the requests the warm ones carry, 1 - B(n_warm conc, a)
        carried = 1.0 - overflow_share(n_warm, conc, lam, svc)
        if carried > _EPS:
            x_prov = min(x_prov, x_w * (1.0 - overflow_share(n_prov_warm, conc, lam, svc)) / carried)
    n_busy = int(math.ceil(x_w / per_inst - _EPS)) if x_w > 0 else 0  # warm instances the requests need
    n_busy = min(max(n_busy, used), n_warm)  # and those the step's peak reaches
    busy_left = n_busy - min(n_busy, n_prov_warm)  # of them on demand
    poisson_arr = p[b, P_POISSON] > 0.5 and arrivals > 0
    slots = min(n_busy, n_prov_warm) * conc  # the first on-demand one's place in the hunting order
    blocking = overflow_share(min(n_busy, n_prov_warm), conc, lam, svc) if poisson_arr else 0.0
    od_seconds = 0.0
    prov_seconds = 0.0
    billed = 0
    reclaimed = 0
    for i in range(hi):
        st = inst_i[b, i, I_STATE]
        if st == OFF:
            continue
        if inst_i[b, i, I_PROV] == 1:
            prov_seconds += dt
            billed += 1
            continue
        bill = dt
        if st == WARM and inst_i[b, i, I_EVENT] == 2:  # warm at the step start, on demand
            if busy_left > 0:
                # its idle clock starts at its last use in the step (Poisson arrivals; at the step end otherwise)
                busy_left -= 1
                inst_f[b, i, F_IDLE] = 0.0
                if poisson_arr:
                    inst_f[b, i, F_IDLE] = last_use_age(lam, svc, slots, blocking, dt)
                    blocking = erlang_b_advance(blocking, slots, conc, lam * svc)  # the next in the hunting order
                    slots += conc
            else:
                idle = inst_f[b, i, F_IDLE]
                if idle + dt >= keep_alive - _EPS:  # reclaimed keep_alive s after it last served
                    bill = max(keep_alive - idle, 0.0)
                    inst_i[b, i, I_STATE] = OFF
                    reclaimed += 1
                else:
                    inst_f[b, i, F_IDLE] = idle + dt
        inst_i[b, i, I_EVENT] = 0
        od_seconds += bill
        if bill > 0.0:
            billed += 1
    gb = p[b, P_MEM_LIMIT] / 1024.0
    busy_prov_s = x_prov * svc / conc
    m[b, M_PROV_COST] = prov_seconds * p[b, P_PF_PRICE_PROV_S] + busy_prov_s * gb * p[b, P_PF_PRICE_PROV_BUSY_S]
    target = env[b, E_PF_PROV]
    m[b, M_PROVISIONED] = target
    m[b, M_PROV_UTIL] = busy_prov_s / (dt * target) if target > 0 else 0.0
    m[b, M_KEEP_ALIVE] = keep_alive
    m[b, M_RECLAIMED] = reclaimed
    m[b, M_INST_SECONDS] = od_seconds
    m[b, M_BILLED] = billed
    if n_busy > 0:
        cpu = x_w / (n_busy * per_inst)
        cpu_max = min(x_w / per_inst, 1.0)
        m[b, M_CPU] = cpu
        m[b, M_CPU_MAX] = cpu_max
        m[b, M_MEM] = (p[b, P_MEM_BASE] + p[b, P_MEM_REQ] * cpu * conc) / p[b, P_MEM_LIMIT]
        m[b, M_MEM_MAX] = (p[b, P_MEM_BASE] + p[b, P_MEM_REQ] * cpu_max * conc) / p[b, P_MEM_LIMIT]


@njit(**_KERNEL)
def serve_platform(b, s, m, hi, arrivals):
    """2-4 of the platform step: admission, cold starts, keep-alive and billing. Returns (new slot bound, requests
    that waited, their total wait s)."""
    inst_i = s.inst_i
    n_warm = 0
    for i in range(hi):  # the instances warm at the step start (I_EVENT = 2 marks them for the billing)
        if inst_i[b, i, I_STATE] == WARM:
            inst_i[b, i, I_EVENT] = 2
            n_warm += 1
    was_warm_hi = hi
    n_live, _ = live_counts(b, s, hi)
    x_w, quick, buf_served, buf_wait, hi, used = admit(b, s, m, hi, arrivals, n_warm, n_live)
    cold_served, cold_wait = boots(b, s, m, hi)
    keep_alive_and_bill(b, s, m, hi, x_w, was_warm_hi, used, arrivals)
    m[b, M_SERVED] = x_w + quick + cold_served
    return hi, cold_served + buf_served, cold_wait + buf_wait


@njit(**_KERNEL)
def platform_latency(b, s, m, n_waited, wait_sum, t_end):
    """5. Mean and p95 response time of the step's served requests: the service time, plus for the share that
    waited (for a cold start, in the activator) their wait. Nothing served: how long the waiting requests have
    waited so far. Returns the backlog at the step end (requests waiting for cold starts, and buffered)."""
    p, env, inst_f, inst_i = s.params, s.env_state, s.inst_f, s.inst_i
    svc = p[b, P_SVC]
    cv = p[b, P_SVC_CV]
    backlog = int(env[b, E_PF_BUFFER])
    age = env[b, E_PF_BUFFER_AGE]
    for i in range(int(env[b, E_HI])):
        q = inst_i[b, i, I_BACKLOG]
        if q > 0:
            backlog += q
            age += q * (inst_f[b, i, F_BOOT_LEN] - inst_f[b, i, F_TIMER])
    served = int(m[b, M_SERVED])
    svc_p95 = response_p95(svc, cv, 0.0, 0.0)
    if served > 0:
        lat_mean = svc + wait_sum / served
        lat_p95 = svc_p95
        if n_waited > 0.05 * served:
            # more than 5 % waited: the p95 is about their (deterministic) wait plus the service p95
            lat_p95 = svc_p95 + wait_sum / n_waited
        lat_p95 = max(lat_p95, lat_mean)
    else:
        lat_mean, lat_p95 = waiting_latency(svc, age, backlog, t_end)
    m[b, M_LAT_MEAN] = lat_mean
    m[b, M_LAT_P95] = lat_p95
    m[b, M_BACKLOG] = backlog
    return backlog
