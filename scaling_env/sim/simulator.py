"""The batched simulation core: B independent clusters stepped by one compiled call.

This module imports neither gymnasium nor stable-baselines3. The single env, the Gymnasium vector env and the
SB3 VecEnv are thin adapters over :class:`BatchSimulator`.

One step of cluster b (``_step_cluster``), in order:

1. action: the requested change is bounded by [min, max] and blocked by the running cooldown of its direction;
   scale-outs start cold starts, scale-ins drain the chosen instances;
2. crashes at the step start: correlated outages due in the step, then spontaneous crashes (hazard
   ``1 - exp(-dt / mtbf)`` per warm instance);
3. pool time: cold starts that end in the step join the pool for the rest of it; crashed instances stay in
   the pool until the health checks take them out;
4. arrivals ~ Poisson(integral of lambda over the step) (or the rounded integral);
5. routing over the pool (``load_balancer.route``); with no instance in the pool at the step start, requests
   wait on booting instances (as a serverless platform holds a request during a cold start), or are dropped
   if none boots;
6. serving and billing: fluid queue per instance for backlog, overload, drops and cold-start waits, plus the
   stationary GI/G/c wait at the step's offered rate; memory use and overload crashes; drains finish;
7. lifecycle: cold starts complete, detected instances become unhealthy and are replaced;
8. latency of the step's served requests (mean and p95);
9. cooldown clocks and time advance;
10. metrics, observation, reward components, truncation.

The queueing model and its sources are written down in docs/model.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from ..config import EnvConfig, TraceWorkload, draw_ranges
from ..fields import (
    M_ARRIVALS,
    M_BACKLOG,
    M_BILLED,
    M_BLOCKED,
    M_BOOTING,
    M_COLD_STARTS,
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
    M_SCALE_APPLIED,
    M_SCALE_REQ,
    M_SERVED,
    M_SLO_VIOLATED,
    M_TIME,
    M_UNHEALTHY,
    M_WARM,
    N_METRICS,
    N_OBS,
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
    R_COST,
    R_DROPPED,
    R_FAILED,
    R_SCALING,
    R_SLO,
)
from ..workload import EpisodeWorkload, Workload
from .instances import (
    BOOTING,
    DRAINING,
    F_AGE,
    F_DROPC,
    F_LOAD,
    F_QFLUID,
    F_SERVE,
    F_TIMER,
    F_WEIGHT,
    FAILED,
    I_ARRIVALS,
    I_BACKLOG,
    I_CHECKS,
    I_EVENT,
    I_STATE,
    N_INST_F,
    N_INST_I,
    OFF,
    UNHEALTHY,
    WARM,
    count_state,
    counted,
    crash,
    crash_random_warm,
    launch,
    scale_in,
)
from .load_balancer import ALGORITHMS, LEAST_OUTSTANDING, ROUND_ROBIN, health_checks, pool_shares, route
from .queueing import fifo_waits, fluid_segment, response_p95, stationary_wait
from .rng import binomial, poisson

# ---- per-cluster parameters: columns of params[b, :]
(
    P_DT,
    P_MIN,
    P_MAX,
    P_CONC,
    P_MAXQ,
    P_SVC,
    P_SVC_CV,
    P_BOOT_MEAN,
    P_BOOT_JITTER,
    P_MEM_LIMIT,
    P_MEM_BASE,
    P_MEM_REQ,
    P_DEREG,
    P_CD_OUT,
    P_CD_IN,
    P_ALGO,
    P_HC_INTERVAL,
    P_HC_THRESHOLD,
    P_HAZARD,
    P_MEM_CRASH,
    P_REPLACE,
    P_TERMINATION,
    P_PRICE_INST_S,
    P_PRICE_REQ,
    P_SLO,
    P_W_COST,
    P_W_SLO,
    P_W_DROPPED,
    P_W_FAILED,
    P_W_SCALING,
    P_POISSON,
    P_DAY,
    P_EPISODE_STEPS,
    P_REF_COST,
    P_MAX_STEP,
    P_MAX_RPS,
    P_CLOCK0,
) = range(37)
N_PARAMS = 37

# ---- per-cluster state: columns of env_state[b, :]
E_TIME, E_STEP, E_CD_OUT, E_CD_IN, E_RR, E_HI, E_CARRY = range(7)
N_ENV_STATE = 7

_EPS = 1e-9


@njit(cache=True)
def _observe(b, params, env_state, inst_f, inst_i, metrics, obs):
    """Fill obs[b] from the step's metrics and the current state (also used at reset)."""
    max_n = params[b, P_MAX]
    hi = int(env_state[b, E_HI])
    boot_sum = 0.0
    n_boot = 0
    for i in range(hi):
        if inst_i[b, i, I_STATE] == BOOTING:
            boot_sum += inst_f[b, i, F_TIMER]
            n_boot += 1
    longest_boot = params[b, P_BOOT_MEAN] * (1.0 + params[b, P_BOOT_JITTER])
    boot_rem = boot_sum / n_boot / longest_boot if (n_boot > 0 and longest_boot > 0.0) else 0.0
    cap = max_n * max(params[b, P_MAXQ], 1.0)
    clock = params[b, P_CLOCK0] + env_state[b, E_TIME]
    angle = 2.0 * math.pi * clock / params[b, P_DAY]
    cd_out = env_state[b, E_CD_OUT] / params[b, P_CD_OUT] if params[b, P_CD_OUT] > 0.0 else 0.0
    cd_in = env_state[b, E_CD_IN] / params[b, P_CD_IN] if params[b, P_CD_IN] > 0.0 else 0.0
    dt = params[b, P_DT]
    p95_slo = metrics[b, M_LAT_P95] / params[b, P_SLO]
    vals = (
        (O_CPU_MEAN, metrics[b, M_CPU]),
        (O_CPU_MAX, metrics[b, M_CPU_MAX]),
        (O_MEM_MEAN, metrics[b, M_MEM]),
        (O_MEM_MAX, metrics[b, M_MEM_MAX]),
        (O_RATE, metrics[b, M_ARRIVALS] / dt / params[b, P_MAX_RPS]),
        (O_P95, p95_slo),
        (O_BACKLOG, metrics[b, M_BACKLOG] / cap),
        (O_DROPPED, metrics[b, M_DROPPED_SHARE]),
        (O_FAILED, metrics[b, M_FAILED_SHARE]),
        (O_WARM, metrics[b, M_WARM] / max_n),
        (O_BOOTING, metrics[b, M_BOOTING] / max_n),
        (O_UNHEALTHY, metrics[b, M_UNHEALTHY] / max_n),
        (O_DRAINING, metrics[b, M_DRAINING] / max_n),
        (O_BOOT_REMAINING, boot_rem),
        (O_CD_OUT, cd_out),
        (O_CD_IN, cd_in),
        (O_TOD_SIN, math.sin(angle)),
        (O_TOD_COS, math.cos(angle)),
        (O_PROGRESS, env_state[b, E_STEP] / params[b, P_EPISODE_STEPS]),
    )
    for j, v in vals:
        obs[b, j] = min(max(v, OBS_LOW[j]), OBS_HIGH[j])


@njit(cache=True)
def _count_states(b, env_state, inst_i, metrics):
    hi = int(env_state[b, E_HI])
    warm = 0
    boot = 0
    fail = 0
    unh = 0
    drain = 0
    last = -1
    for i in range(hi):
        s = inst_i[b, i, I_STATE]
        if s == OFF:
            continue
        last = i
        if s == WARM:
            warm += 1
        elif s == BOOTING:
            boot += 1
        elif s == FAILED:
            fail += 1
        elif s == UNHEALTHY:
            unh += 1
        elif s == DRAINING:
            drain += 1
    metrics[b, M_WARM] = warm
    metrics[b, M_BOOTING] = boot
    metrics[b, M_FAILED_INST] = fail
    metrics[b, M_UNHEALTHY] = unh
    metrics[b, M_DRAINING] = drain
    env_state[b, E_HI] = last + 1


@njit(cache=True)
def _step_cluster(
    b,
    params,
    env_state,
    inst_f,
    inst_i,
    rng,
    expected,
    outages,
    scale_steps,
    actions,
    obs,
    metrics,
    rewards,
    reward_parts,
    truncated,
):
    dt = params[b, P_DT]
    t0 = env_state[b, E_TIME]
    k = int(env_state[b, E_STEP])
    hi = int(env_state[b, E_HI])
    conc = int(params[b, P_CONC])
    svc = params[b, P_SVC]
    cap_rps = conc / svc  # requests/s one warm instance completes at full concurrency
    maxq = params[b, P_MAXQ]
    for j in range(N_METRICS):
        metrics[b, j] = 0.0
    backlog_before = 0
    for i in range(hi):
        backlog_before += inst_i[b, i, I_BACKLOG]
        inst_i[b, i, I_EVENT] = 0
    failed = 0
    dropped = 0
    served = 0
    crashes = 0

    # ---- 1. action: bounds, cooldowns, scale-out / scale-in
    live = 0
    for i in range(hi):
        if counted(inst_i[b, i, I_STATE], inst_f[b, i, F_TIMER]):
            live += 1
    requested = int(scale_steps[actions[b]])
    target = min(max(live + requested, int(params[b, P_MIN])), int(params[b, P_MAX]))
    applied = target - live
    blocked = 0
    if applied > 0 and env_state[b, E_CD_OUT] > _EPS:
        blocked = 1
        applied = 0
    elif applied < 0 and env_state[b, E_CD_IN] > _EPS:
        blocked = 1
        applied = 0
    launches = 0
    if applied > 0:
        launches, top = launch(inst_f, inst_i, rng, b, applied, params[b, P_BOOT_MEAN], params[b, P_BOOT_JITTER])
        applied = launches
        if launches > 0:
            env_state[b, E_CD_OUT] = params[b, P_CD_OUT]
        hi = max(hi, top)
    elif applied < 0:
        failed += scale_in(inst_f, inst_i, b, -applied, hi)
        env_state[b, E_CD_IN] = params[b, P_CD_IN]

    # ---- 2. crashes at the step start: correlated outages, then spontaneous crashes
    for o in range(outages.shape[1]):
        ot = outages[b, o, 0]
        if ot >= 0.0 and t0 - _EPS <= ot < t0 + dt - _EPS:
            n_warm = count_state(inst_i, b, hi, WARM)
            lost, n = crash_random_warm(
                inst_f, inst_i, rng, b, hi, int(math.floor(outages[b, o, 1] * n_warm + 0.5)), n_warm
            )
            failed += lost
            crashes += n
    hazard = params[b, P_HAZARD]
    if hazard > 0.0:
        # each warm instance crashes with probability `hazard`: draw how many, then which
        n_warm = count_state(inst_i, b, hi, WARM)
        lost, n = crash_random_warm(inst_f, inst_i, rng, b, hi, binomial(rng, b, n_warm, hazard), n_warm)
        failed += lost
        crashes += n

    # ---- 3. pool time and serving time of each slot in this step
    interval = params[b, P_HC_INTERVAL]
    threshold = int(params[b, P_HC_THRESHOLD])
    wsum = 0.0
    w_healthy = 0.0
    n_pool = 0
    n_boot = 0
    pool_at_start = False
    for i in range(hi):
        s = inst_i[b, i, I_STATE]
        w = 0.0
        tau = 0.0
        if s == WARM:
            w = 1.0
            tau = dt
        elif s == BOOTING:
            n_boot += 1
            r = inst_f[b, i, F_TIMER]
            if r <= dt + _EPS:
                tau = max(dt - r, 0.0)
                w = tau / dt
                inst_i[b, i, I_EVENT] = 1
        elif s == FAILED:
            w = health_checks(inst_i, b, i, t0, dt, interval, threshold)
            if w < 1.0 or inst_i[b, i, I_CHECKS] >= threshold:
                inst_i[b, i, I_EVENT] = 2
        elif s == DRAINING:
            tau = dt
        inst_f[b, i, F_WEIGHT] = w
        inst_f[b, i, F_SERVE] = tau
        inst_i[b, i, I_ARRIVALS] = 0
        if w > 0.0:
            wsum += w
            n_pool += 1
            if s != FAILED:
                w_healthy += w
            if s == WARM or s == FAILED:
                pool_at_start = True

    # ---- 4. arrivals
    mean = expected[b, k] if k < expected.shape[1] else 0.0
    if params[b, P_POISSON] > 0.5:
        arrivals = poisson(rng, b, mean)
    else:
        # deterministic: the running total rounded down, so the episode's count is its expected total
        # (the fraction left over is carried to the next step; the 1e-9 absorbs rounding of the expectations)
        due = env_state[b, E_CARRY] + mean
        arrivals = int(math.floor(due + 1e-9))
        env_state[b, E_CARRY] = due - arrivals
    offered_rps = mean / dt

    # ---- 5. routing
    to_booting = False
    if pool_at_start:
        total_share = pool_shares(inst_f, inst_i, b, hi, dt)
        pointer, no_target = route(
            inst_f, inst_i, rng, b, hi, arrivals, total_share, int(params[b, P_ALGO]), int(env_state[b, E_RR]), cap_rps
        )
        env_state[b, E_RR] = pointer
        dropped += no_target  # arrived while every member had been taken out
    elif n_boot > 0:
        # nothing in the pool at the step start: requests wait for the cold starts, split evenly
        to_booting = True
        share = arrivals // n_boot
        extra = arrivals - share * n_boot
        for i in range(hi):
            if inst_i[b, i, I_STATE] == BOOTING:
                inst_i[b, i, I_ARRIVALS] = share + (1 if extra > 0 else 0)
                extra -= 1
    else:
        dropped += arrivals

    # ---- 6. serving: stationary queue at the offered rate, fluid queue for backlog, overload and cold starts
    algo = int(params[b, P_ALGO])
    cs2 = params[b, P_SVC_CV] * params[b, P_SVC_CV]
    if to_booting:
        # requests wait on the booting instances, split evenly (every n-th request)
        w_stat, p_stat, p_block = stationary_wait(conc, offered_rps / n_boot, svc, 1.0 / n_boot, cs2, maxq)
    elif algo == LEAST_OUTSTANDING:
        # one pooled queue over the healthy pool time (w_healthy instance-steps)
        lam = offered_rps * (w_healthy / wsum) if wsum > 0.0 else 0.0
        w_stat, p_stat, p_block = stationary_wait(
            int(math.floor(w_healthy * conc + 0.5)), lam, svc, 1.0, cs2, maxq * w_healthy
        )
    elif wsum > 0.0:
        ca2 = 1.0 / n_pool if algo == ROUND_ROBIN else 1.0  # every n-th of a Poisson stream: Erlang-n gaps
        w_stat, p_stat, p_block = stationary_wait(conc, offered_rps / wsum, svc, ca2, cs2, maxq)
    else:
        w_stat, p_stat, p_block = 0.0, 0.0, 0.0
    w_stat = min(w_stat, dt)  # longer waits than a step build up as fluid backlog, step by step
    fluid_wait_sum = 0.0  # waiting of the step's served requests in fluid queues, request-seconds
    queued_age = 0.0  # age of the requests still queued at the end, request-seconds
    stat_wait_sum = 0.0
    p_wait_sum = 0.0
    max_fluid_wait = 0.0
    cpu_sum = 0.0
    mem_sum = 0.0
    cpu_max = 0.0
    mem_max = 0.0
    n_serving = 0
    inst_seconds = 0.0
    billed = 0
    mem_limit = params[b, P_MEM_LIMIT]
    for i in range(hi):
        s = inst_i[b, i, I_STATE]
        if s == OFF:
            continue
        a_i = inst_i[b, i, I_ARRIVALS]
        q = inst_i[b, i, I_BACKLOG]
        bill = dt
        cpu = 0.0
        if s == FAILED:
            failed += a_i + q
            inst_i[b, i, I_BACKLOG] = 0
            inst_f[b, i, F_QFLUID] = 0.0
            inst_f[b, i, F_AGE] = 0.0
        elif s == UNHEALTHY:
            if inst_f[b, i, F_TIMER] >= 0.0:  # being replaced: billed until terminated
                bill = min(inst_f[b, i, F_TIMER], dt)
                inst_f[b, i, F_TIMER] -= dt
                if inst_f[b, i, F_TIMER] <= _EPS:
                    inst_i[b, i, I_STATE] = OFF
        # a slot still booting, with nothing routed or queued to it, has nothing to do
        elif not (s == BOOTING and not to_booting and inst_f[b, i, F_SERVE] <= 0.0 and q == 0):
            tau = inst_f[b, i, F_SERVE]
            # a full waiting room turns requests away even below capacity (M/M/c/K blocking)
            turned_away = 0
            if a_i > 0 and p_block > 1e-12 and not to_booting:
                turned_away = binomial(rng, b, a_i, p_block)
            a_in = a_i - turned_away
            qf = inst_f[b, i, F_QFLUID]
            if abs(qf - q) >= 1.0:  # the integer queue was changed elsewhere: restart the fluid from it
                qf = float(q)
            # phase 1, before the cold start ends: requests queue (and wait) on it, nothing is served
            in_rps = a_in / dt if to_booting else (a_in / tau if tau > 0.0 else 0.0)
            idle = dt - tau
            in1 = in_rps if to_booting else 0.0
            if idle > 0.0:
                q1, area1, drop1 = fluid_segment(qf, in1, idle, maxq)
            else:
                q1, area1, drop1 = qf, 0.0, 0.0
            # phase 2: serving at concurrency / service time
            net = in_rps - cap_rps
            if tau > 0.0:
                q2, area2, drop2 = fluid_segment(q1, net, tau, maxq)
            else:
                q2, area2, drop2 = q1, 0.0, 0.0
            # whole requests; the fractions are carried to the next step, so long-run counts are exact
            q_end = int(math.floor(q2 + 0.5))
            carry = inst_f[b, i, F_DROPC] + drop1 + drop2
            d_i = int(math.floor(carry + 1e-9))  # a drop of 4.9999999 requests is 5
            done = q + a_in - q_end - d_i
            if done < 0 or (tau <= 0.0 and done > 0):  # rounding: a slot that serves nothing completes nothing
                q_end += done
                done = 0
                if q_end < 0:
                    d_i += q_end
                    q_end = 0
                q2 = float(q_end)
            inst_f[b, i, F_DROPC] = max(carry - d_i, 0.0)
            inst_f[b, i, F_QFLUID] = q2
            served += done
            dropped += d_i + turned_away
            inst_i[b, i, I_BACKLOG] = q_end
            if qf > 0.0 or area1 + area2 > 0.0:  # (most slots, most steps: an empty fluid queue, nothing to do)
                age_end, waited_s, longest = fifo_waits(
                    qf,
                    inst_f[b, i, F_AGE],
                    in1 * idle - drop1,
                    in_rps * tau - drop2,
                    q2,
                    area1 + area2,
                    idle,
                    tau,
                    cap_rps,
                )
                inst_f[b, i, F_AGE] = age_end
                queued_age += age_end
                fluid_wait_sum += waited_s
                max_fluid_wait = max(max_fluid_wait, longest)
            if tau > 0.0:
                cpu = min(done * svc / (conc * tau), 1.0)
                peak_q = max(max(qf, q1), q2)
                mem = (params[b, P_MEM_BASE] + params[b, P_MEM_REQ] * (cpu * conc + peak_q)) / mem_limit
                inst_f[b, i, F_LOAD] = cpu
                cpu_sum += cpu
                mem_sum += mem
                cpu_max = max(cpu_max, cpu)
                mem_max = max(mem_max, mem)
                n_serving += 1
                if done > 0:
                    # requests that went through the fluid queue all waited: the queue at the start, the
                    # cold-start arrivals, and those arriving while the queue was not empty
                    if net < 0.0:
                        busy = min(tau, q1 / -net)  # the queue empties after busy seconds
                    elif q1 > 0.0 or net > 0.0:
                        busy = tau
                    else:
                        busy = 0.0
                    waited = min(float(done), qf + in1 * idle + in_rps * busy)
                    if s != DRAINING:
                        # the stationary queue is for requests that found the fluid queue empty
                        stat_wait_sum += (done - waited) * w_stat
                        p_wait_sum += waited + (done - waited) * p_stat
                    else:
                        p_wait_sum += waited
                if params[b, P_MEM_CRASH] > 0.5 and mem > 1.0:
                    failed += crash(inst_f, inst_i, b, i)
                    crashes += 1
                    if s == DRAINING:  # it was leaving anyway: it stops, out of the pool
                        inst_i[b, i, I_STATE] = OFF
                    s = FAILED
            if s == DRAINING:
                inst_f[b, i, F_TIMER] += dt
                if q_end == 0:
                    # billed until the last request in service finishes
                    bill = min(dt, (q + cpu * conc) / cap_rps + svc) if tau > 0.0 else dt
                    inst_i[b, i, I_STATE] = OFF
                elif inst_f[b, i, F_TIMER] >= params[b, P_DEREG] - _EPS:
                    failed += q_end
                    inst_i[b, i, I_BACKLOG] = 0
                    inst_i[b, i, I_STATE] = OFF
        inst_seconds += bill
        if bill > 0.0:
            billed += 1

    # ---- 7. lifecycle at the end of the step
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
    if params[b, P_REPLACE] > 0.5:
        # as an auto-scaling group does: launch a replacement, then terminate the unhealthy one; with no free
        # slot it stays counted and the replacement is tried again next step
        for i in range(hi):
            if inst_i[b, i, I_STATE] == UNHEALTHY and inst_f[b, i, F_TIMER] < 0.0:
                started, top = launch(inst_f, inst_i, rng, b, 1, params[b, P_BOOT_MEAN], params[b, P_BOOT_JITTER])
                if started == 0:
                    break
                launches += 1
                inst_f[b, i, F_TIMER] = params[b, P_TERMINATION]
                new_hi = max(new_hi, top)
    env_state[b, E_HI] = new_hi
    _count_states(b, env_state, inst_i, metrics)

    # ---- 8. latency of the step's served requests
    backlog = 0
    for i in range(int(env_state[b, E_HI])):
        backlog += inst_i[b, i, I_BACKLOG]
    if served > 0:
        fluid_wait = fluid_wait_sum / served
        mean_wait = fluid_wait + stat_wait_sum / served
        p_wait = min(p_wait_sum / served, 1.0)
        lat_mean = svc + mean_wait
        lat_p95 = response_p95(svc, params[b, P_SVC_CV], mean_wait, p_wait)
        if max_fluid_wait > 0.0:
            # the p95 model has an exponential tail, but a fluid wait is at most the longest one: requests either
            # waited in a fluid queue (p95 <= longest + service p95) or in the stationary queue, and the p95 of
            # the mix is at most the larger of the two groups' p95
            bound = max(
                max_fluid_wait + response_p95(svc, params[b, P_SVC_CV], 0.0, 0.0),
                response_p95(svc, params[b, P_SVC_CV], w_stat, p_stat),
            )
            lat_p95 = max(min(lat_p95, bound), lat_mean)
    elif backlog > 0:
        # nothing completed: report how long the queued requests have waited so far
        lat_mean = svc + queued_age / backlog
        lat_p95 = lat_mean
    else:
        lat_mean = 0.0
        lat_p95 = 0.0
    handled = backlog_before + arrivals

    # ---- 9. clocks
    env_state[b, E_CD_OUT] = max(env_state[b, E_CD_OUT] - dt, 0.0)
    env_state[b, E_CD_IN] = max(env_state[b, E_CD_IN] - dt, 0.0)
    env_state[b, E_TIME] = t0 + dt
    env_state[b, E_STEP] = k + 1

    # ---- 10. metrics, observation, reward, truncation
    cost = inst_seconds * params[b, P_PRICE_INST_S] + (served + failed) * params[b, P_PRICE_REQ]
    # the SLO is on all of the step's requests: a dropped or failed request never gets an answer in time, so
    # more than 5 % of them lost is a violation even when the served ones were fast (or none were served)
    lost_share = (dropped + failed) / handled if handled > 0 else 0.0
    violated = 1.0 if lat_p95 > params[b, P_SLO] or lost_share > 0.05 else 0.0
    metrics[b, M_ARRIVALS] = arrivals
    metrics[b, M_SERVED] = served
    metrics[b, M_DROPPED] = dropped
    metrics[b, M_FAILED] = failed
    metrics[b, M_BACKLOG] = backlog
    metrics[b, M_LAT_MEAN] = lat_mean
    metrics[b, M_LAT_P95] = lat_p95
    metrics[b, M_CPU] = cpu_sum / n_serving if n_serving > 0 else 0.0
    metrics[b, M_MEM] = mem_sum / n_serving if n_serving > 0 else 0.0
    metrics[b, M_CPU_MAX] = cpu_max
    metrics[b, M_MEM_MAX] = mem_max
    metrics[b, M_BILLED] = billed
    metrics[b, M_INST_SECONDS] = inst_seconds
    metrics[b, M_COST] = cost
    metrics[b, M_SLO_VIOLATED] = violated
    metrics[b, M_SCALE_REQ] = requested
    metrics[b, M_SCALE_APPLIED] = applied
    metrics[b, M_BLOCKED] = blocked
    metrics[b, M_COLD_STARTS] = launches
    metrics[b, M_CRASHES] = crashes
    metrics[b, M_DROPPED_SHARE] = dropped / handled if handled > 0 else 0.0
    metrics[b, M_FAILED_SHARE] = min(failed / handled, 1.0) if handled > 0 else 0.0
    metrics[b, M_TIME] = t0 + dt
    _observe(b, params, env_state, inst_f, inst_i, metrics, obs)
    reward_parts[b, R_COST] = -params[b, P_W_COST] * cost / params[b, P_REF_COST]
    reward_parts[b, R_SLO] = -params[b, P_W_SLO] * violated
    reward_parts[b, R_DROPPED] = -params[b, P_W_DROPPED] * metrics[b, M_DROPPED_SHARE]
    reward_parts[b, R_FAILED] = -params[b, P_W_FAILED] * metrics[b, M_FAILED_SHARE]
    reward_parts[b, R_SCALING] = -params[b, P_W_SCALING] * abs(applied) / params[b, P_MAX_STEP]
    total = 0.0
    for j in range(N_REWARD):
        total += reward_parts[b, j]
    rewards[b] = total
    truncated[b] = k + 1 >= int(params[b, P_EPISODE_STEPS])


@njit(cache=True)
def step_batch(
    params,
    env_state,
    inst_f,
    inst_i,
    rng,
    expected,
    outages,
    scale_steps,
    actions,
    active,
    obs,
    metrics,
    rewards,
    reward_parts,
    truncated,
):
    for b in range(params.shape[0]):
        if active[b]:
            _step_cluster(
                b,
                params,
                env_state,
                inst_f,
                inst_i,
                rng,
                expected,
                outages,
                scale_steps,
                actions,
                obs,
                metrics,
                rewards,
                reward_parts,
                truncated,
            )


@njit(cache=True, parallel=True)
def step_batch_parallel(
    params,
    env_state,
    inst_f,
    inst_i,
    rng,
    expected,
    outages,
    scale_steps,
    actions,
    active,
    obs,
    metrics,
    rewards,
    reward_parts,
    truncated,
):
    for b in prange(params.shape[0]):
        if active[b]:
            _step_cluster(
                b,
                params,
                env_state,
                inst_f,
                inst_i,
                rng,
                expected,
                outages,
                scale_steps,
                actions,
                obs,
                metrics,
                rewards,
                reward_parts,
                truncated,
            )


@njit(cache=True)
def reset_clusters(ids, initial, params, env_state, inst_f, inst_i, obs, metrics):
    """Empty the clusters ``ids`` and start ``initial[j]`` warm instances in each."""
    for j in range(ids.shape[0]):
        b = ids[j]
        for c in range(env_state.shape[1]):
            env_state[b, c] = 0.0
        for i in range(inst_i.shape[1]):
            for c in range(inst_i.shape[2]):
                inst_i[b, i, c] = 0
            for c in range(inst_f.shape[2]):
                inst_f[b, i, c] = 0.0
        for i in range(initial[j]):
            inst_i[b, i, I_STATE] = WARM
        env_state[b, E_HI] = initial[j]
        for c in range(metrics.shape[1]):
            metrics[b, c] = 0.0
        _count_states(b, env_state, inst_i, metrics)
        _observe(b, params, env_state, inst_f, inst_i, metrics, obs)


def config_params(config: EnvConfig) -> np.ndarray:
    """The parameter row of one cluster (all but the per-episode clock start)."""
    c = config
    p = np.zeros(N_PARAMS)
    dt = c.step_seconds
    p[P_DT] = dt
    p[P_MIN] = c.scaling.min_instances
    p[P_MAX] = c.scaling.max_instances
    p[P_CONC] = c.instances.concurrency
    p[P_MAXQ] = c.instances.max_queue
    p[P_SVC] = c.instances.service_seconds
    p[P_SVC_CV] = c.instances.service_cv
    p[P_BOOT_MEAN] = c.instances.cold_start_seconds
    p[P_BOOT_JITTER] = c.instances.cold_start_jitter
    p[P_MEM_LIMIT] = c.instances.instance_memory_gb * 1024.0
    p[P_MEM_BASE] = c.instances.memory_base_mb
    p[P_MEM_REQ] = c.instances.memory_mb_per_request
    p[P_DEREG] = c.instances.deregistration_delay_seconds
    p[P_CD_OUT] = c.scaling.scale_out_cooldown_seconds
    p[P_CD_IN] = c.scaling.scale_in_cooldown_seconds
    p[P_ALGO] = ALGORITHMS.index(c.load_balancer.algorithm)
    p[P_HC_INTERVAL] = c.load_balancer.health_check_interval_seconds
    p[P_HC_THRESHOLD] = c.load_balancer.unhealthy_threshold
    mtbf = c.failures.mtbf_seconds
    p[P_HAZARD] = 0.0 if mtbf is None else -math.expm1(-dt / mtbf)
    p[P_MEM_CRASH] = float(c.failures.memory_crash)
    p[P_REPLACE] = float(c.failures.replace_unhealthy)
    p[P_TERMINATION] = c.failures.termination_seconds
    p[P_PRICE_INST_S] = c.instances.instance_memory_gb * c.cost.gb_second_usd
    p[P_PRICE_REQ] = c.cost.request_usd_per_million * 1e-6
    p[P_SLO] = c.reward.slo_p95_seconds
    w = c.reward.weights
    p[P_W_COST], p[P_W_SLO], p[P_W_DROPPED], p[P_W_FAILED], p[P_W_SCALING] = (
        w.cost,
        w.slo_violation,
        w.dropped,
        w.failed,
        w.scaling,
    )
    p[P_POISSON] = float(c.workload.arrival_process == "poisson")
    shape = c.workload.shape
    # a trace's clock runs at its own compressed pace: a trace day lasts 86400 / time_compression seconds
    p[P_DAY] = 86400.0 / shape.time_compression if isinstance(shape, TraceWorkload) else c.workload.day_seconds
    p[P_EPISODE_STEPS] = c.episode_steps
    # reward scale: the cost of max_instances serving at full concurrency for one step (1 if all prices are 0)
    full_rps = c.instances.concurrency / c.instances.service_seconds
    ref = c.scaling.max_instances * dt * (p[P_PRICE_INST_S] + full_rps * p[P_PRICE_REQ])
    p[P_REF_COST] = ref if ref > 0.0 else 1.0
    p[P_MAX_STEP] = max(max(abs(s) for s in c.scaling.scale_steps), 1)
    p[P_MAX_RPS] = c.scaling.max_instances * c.instances.concurrency / c.instances.service_seconds
    return p


def outage_table(config: EnvConfig) -> np.ndarray:
    """(n, 2) rows of (time_seconds, fraction) of the config's outages; a row of -1 when there are none."""
    table = np.full((max(len(config.failures.outages), 1), 2), -1.0)
    for o, outage in enumerate(config.failures.outages):
        table[o] = (outage.time_seconds, outage.fraction)
    return table


@dataclass(frozen=True)
class FinalStep:
    """What clusters ``ids`` showed at the last step of their episode, before the autoreset."""

    ids: np.ndarray
    obs: np.ndarray
    metrics: np.ndarray
    reward_parts: np.ndarray


class BatchSimulator:
    """B independent clusters of one configuration, stepped together.

    State is a handful of numpy arrays; ``step`` is one compiled call for the whole batch. Randomness comes
    from one SplitMix64 state per cluster, drawn at reset from the numpy ``Generator`` the adapter passes in
    (the env's seeded ``np_random``), so cluster b's trajectory does not depend on the batch size.
    """

    def __init__(self, config: EnvConfig, num_envs: int = 1, parallel: bool | None = None) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.config = config
        self.num_envs = num_envs
        self.workload = Workload(config)
        self.n_slots = 2 * config.scaling.max_instances
        # with ranges in the config, each reset writes its cluster's drawn parameters; until then, any draw
        base = config_params(draw_ranges(config, np.random.default_rng(0)))
        self.params = np.tile(base, (num_envs, 1))
        self.env_state = np.zeros((num_envs, N_ENV_STATE))
        self.inst_f = np.zeros((num_envs, self.n_slots, N_INST_F))
        self.inst_i = np.zeros((num_envs, self.n_slots, N_INST_I), dtype=np.int64)
        self.rng = np.zeros(num_envs, dtype=np.uint64)
        self.expected = np.zeros((num_envs, config.episode_steps))
        n_out = max(len(config.failures.outages), 1)
        self.outages = np.full((num_envs, n_out, 2), -1.0)
        if not self.workload.randomised:
            self.outages[:] = outage_table(config)
        self.scale_steps = np.asarray(config.scaling.scale_steps, dtype=np.float64)
        self.obs = np.zeros((num_envs, N_OBS), dtype=np.float32)
        self.metrics = np.zeros((num_envs, N_METRICS))
        self.rewards = np.zeros(num_envs)
        self.reward_parts = np.zeros((num_envs, N_REWARD))
        self.truncated = np.zeros(num_envs, dtype=np.bool_)
        self._all = np.ones(num_envs, dtype=np.bool_)
        self.episodes: list[EpisodeWorkload | None] = [None] * num_envs
        self.generators: list[np.random.Generator] = [np.random.default_rng() for _ in range(num_envs)]
        # with no per-episode randomness every episode has the same rate function: draw it once
        self._static_workload = self.workload.static
        self._static_episode: EpisodeWorkload | None = None
        # threads pay off only for large batches (a prange launch costs ~10 us)
        self.parallel = (num_envs >= 256) if parallel is None else parallel
        self._kernel = step_batch_parallel if self.parallel else step_batch
        initial = min(max(config.scaling.initial_instances, config.scaling.min_instances), config.scaling.max_instances)
        self._initial = initial

    @property
    def num_actions(self) -> int:
        return len(self.scale_steps)

    def seed(self, seeds: list[int | None]) -> None:
        """Give cluster i a fresh generator seeded with ``seeds[i]`` (None: from OS entropy)."""
        if len(seeds) != self.num_envs:
            raise ValueError(f"expected {self.num_envs} seeds, got {len(seeds)}")
        self.generators = [np.random.default_rng(s) for s in seeds]

    def reset(self, ids: np.ndarray | list[int] | None = None) -> None:
        """Start a new episode in clusters ``ids`` (all if None); each draws from its own generator."""
        ids = np.arange(self.num_envs) if ids is None else np.asarray(ids, dtype=np.int64)
        for b in ids.tolist():
            gen = self.generators[b]
            if self._static_workload:
                if self._static_episode is None:
                    self._static_episode = self.workload.sample_episode(gen)
                    self._static_expected = self._static_episode.expected_arrivals()
                episode, expected = self._static_episode, self._static_expected
            else:
                episode = self.workload.sample_episode(gen)
                expected = episode.expected_arrivals()
            self.episodes[b] = episode
            self.expected[b] = expected
            if self.workload.randomised:  # this episode's draws of the config's ranges
                self.params[b] = config_params(episode.config)
                self.outages[b] = outage_table(episode.config)
            self.params[b, P_CLOCK0] = episode.clock_start_seconds
            self.rng[b] = np.uint64(gen.integers(0, 2**63 - 1, dtype=np.int64))
        initial = np.full(len(ids), self._initial, dtype=np.int64)
        reset_clusters(ids, initial, self.params, self.env_state, self.inst_f, self.inst_i, self.obs, self.metrics)
        self.rewards[ids] = 0.0
        self.reward_parts[ids] = 0.0
        self.truncated[ids] = False

    def step(self, actions: np.ndarray, active: np.ndarray | None = None) -> None:
        """Advance the clusters by one decision step. ``actions`` must be valid int64 indices; with ``active``
        (bool, (B,)) only those clusters step, the others keep their state and outputs."""
        self._kernel(
            self.params,
            self.env_state,
            self.inst_f,
            self.inst_i,
            self.rng,
            self.expected,
            self.outages,
            self.scale_steps,
            actions,
            self._all if active is None else active,
            self.obs,
            self.metrics,
            self.rewards,
            self.reward_parts,
            self.truncated,
        )

    def step_autoreset(self, actions: np.ndarray) -> FinalStep | None:
        """Step, then start new episodes where one ended (same-step autoreset).

        Returns the last observation, metrics and reward parts of the clusters that ended, or None.
        ``obs`` then holds the first observation of their new episodes; rewards and truncation flags are
        those of the final step.
        """
        self.step(actions)
        if not self.truncated.any():
            return None
        ids = np.flatnonzero(self.truncated)
        final = FinalStep(ids, self.obs[ids].copy(), self.metrics[ids].copy(), self.reward_parts[ids].copy())
        truncated = self.truncated.copy()
        rewards = self.rewards.copy()
        self.reset(ids)
        self.truncated[:] = truncated
        self.rewards[:] = rewards
        return final

    # ---- public read-only views of the state (for policies that read the simulator, planners and tests)
    def step_index(self) -> np.ndarray:
        """(B,) int64: decision steps taken in each cluster's current episode."""
        return self.env_state[:, E_STEP].astype(np.int64)

    def cooldowns_remaining(self) -> tuple[np.ndarray, np.ndarray]:
        """Seconds left of the scale-out and of the scale-in cooldown, each (B,) (0: that direction is allowed)."""
        return self.env_state[:, E_CD_OUT].copy(), self.env_state[:, E_CD_IN].copy()

    def slot_states(self) -> np.ndarray:
        """(B, n_slots) int64: each slot's state (codes of ``scaling_env.sim.instances.STATE_NAMES``)."""
        return self.inst_i[:, :, I_STATE].copy()

    def boot_remaining(self) -> np.ndarray:
        """(B, n_slots): seconds until each booting instance's cold start ends (0 for slots not booting)."""
        booting = self.inst_i[:, :, I_STATE] == BOOTING
        return np.where(booting, self.inst_f[:, :, F_TIMER], 0.0)

    def expected_arrivals(self) -> np.ndarray:
        """(B, episode_steps): the Poisson mean of each step's arrivals in each cluster's current episode (what
        the simulator draws from; a clairvoyant reference reads the future from it)."""
        return self.expected

    def action_masks(self) -> np.ndarray:
        """(B, n_actions) bool: actions whose bounded change is not blocked by a cooldown.

        An action that changes nothing (0, or a change the bounds cancel) is always valid.
        """
        live = self.controlled_counts()
        lo, hi = self.config.scaling.min_instances, self.config.scaling.max_instances
        change = np.clip(live[:, None] + self.scale_steps[None, :].astype(np.int64), lo, hi) - live[:, None]
        out_ok = self.env_state[:, E_CD_OUT] <= _EPS
        in_ok = self.env_state[:, E_CD_IN] <= _EPS
        return (change == 0) | ((change > 0) & out_ok[:, None]) | ((change < 0) & in_ok[:, None])

    def controlled_counts(self) -> np.ndarray:
        """(B,) instances the autoscaler controls: booting, warm, undetected failed, and unhealthy ones that are
        kept until their replacement starts (the count an action changes)."""
        st = self.inst_i[:, :, I_STATE]
        kept_unhealthy = (st == UNHEALTHY) & (self.inst_f[:, :, F_TIMER] < 0.0)
        return ((st == BOOTING) | (st == WARM) | (st == FAILED) | kept_unhealthy).sum(axis=1)

    def states(self, b: int = 0) -> np.ndarray:
        """Slot states of cluster b (codes of ``instances.STATE_NAMES``)."""
        return self.inst_i[b, :, I_STATE].copy()
