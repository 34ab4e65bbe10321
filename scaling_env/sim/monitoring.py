"""What the monitoring delivers and what the agent remembers: runs after every step of any backend, on its metrics.

Two things happen here, per cluster, in one compiled pass over the batch (no Python loop per cluster):

1. **Metrics as a monitoring system delivers them** (config ``metrics``, docs/model.md "Metrics as a monitoring
   system delivers them"). Each observable metric (``fields.OBSERVED_METRICS``) belongs to a source with an
   aggregation period P and a delivery delay D. Periods are aligned to the episode start: period n covers
   ``[(n - 1) P, n P)``. At time t (the end of a step) the value shown is that of the latest period that ended at
   or before ``t - D``: the time-weighted mean of the step values over the period (steps are piecewise constant, so
   a period that cuts a step weighs its overlap), or their maximum for the "max" metrics (the p95 of a mix of steps
   is at most the largest step p95). Times before the episode start hold the ``prior``: the steady state of the
   initial fleet under the first step's expected rate (``steady_state``). The value goes to the info column
   ``observed_<metric>``; when any metric is delayed, the observation's metric fields are rewritten from them too.
   With the default (period = one step, no delay) each observed column is a copy of the true one, bit for bit.
2. **The observation's history** (config ``observation``, ``fields.HISTORY_FIELDS``): exponential moving averages
   ``e <- e + (1 - exp(-dt / tau)) (x - e)`` of the delivered metrics with three time constants (the Linux kernel's
   load average, kernel/sched/loadavg.c: ``load = load * exp(-5 s / 60 s) + n (1 - exp(-5 s / 60 s))`` every 5 s
   for its 1-minute average, and 5 and 15 minutes; the SageMaker RL autoscaling example keeps EMAs of load,
   failures and machines with several alphas, ``MultiEma`` in aws/amazon-sagemaker-examples
   reinforcement_learning/rl_predictive_autoscaling_coach_customEnv/src/autoscalesim.py), their trends, lost
   shares and crashes, the fleet against the demand, and the last scaling action.

State (the ``Monitor`` record; snapshot.py copies it like ``State``/``Outputs``): ``history`` (B, R, n) the true
step values of the observable metrics in a ring of R steps, ``prior`` (B, n), ``ema`` (B, N_EMA), ``control``
(B, 2) = (last applied change / max step, time it was applied).
"""

from __future__ import annotations

import math
from collections import namedtuple

import numpy as np
from numba import njit

from ..config import EnvConfig
from ..fields import (
    HISTORY_FIELDS,
    M_CONTROLLED,
    M_SCALE_APPLIED,
    M_WARM,
    N_HISTORY,
    N_OBS,
    OBSERVED_COLS,
    OBSERVED_IS_MAX,
    OBSERVED_NAMES,
    OBSERVED_TRUE_COLS,
)
from .kernel import observe_metrics
from .load_balancer import balancer_queue
from .queueing import response_p95
from .state import (
    E_STEP,
    E_TIME,
    P_ALGO,
    P_CONC,
    P_DT,
    P_MAX,
    P_MAX_RPS,
    P_MAX_STEP,
    P_MAXQ,
    P_MEM_BASE,
    P_MEM_LIMIT,
    P_MEM_REQ,
    P_SLO,
    P_SVC,
    P_SVC_CV,
)

_KERNEL = {"cache": True, "_nrt": False}
Monitor = namedtuple("Monitor", "history prior ema control")

N_MON = len(OBSERVED_NAMES)
(
    K_ARRIVALS,
    K_BACKLOG,
    K_LAT_MEAN,
    K_LAT_P95,
    K_CPU,
    K_MEM,
    K_CPU_MAX,
    K_MEM_MAX,
    K_DROPPED_SHARE,
    K_FAILED_SHARE,
    K_CRASHES,
) = range(N_MON)
if tuple(n for n in OBSERVED_NAMES) != (
    "arrivals",
    "backlog",
    "latency_mean_s",
    "latency_p95_s",
    "cpu_utilization",
    "memory_utilization",
    "cpu_max",
    "memory_max",
    "dropped_share",
    "failed_share",
    "crashes",
):
    raise ImportError("monitoring: the K_* constants do not match fields.OBSERVED_METRICS")
if OBSERVED_COLS != tuple(range(OBSERVED_COLS[0], OBSERVED_COLS[0] + N_MON)):
    raise ImportError("monitoring: the observed_* info columns must be contiguous, in OBSERVED_METRICS order")
TRUE_COLS = np.array(OBSERVED_TRUE_COLS, dtype=np.int64)
SEEN_COLS = np.array(OBSERVED_COLS, dtype=np.int64)
IS_MAX = np.array(OBSERVED_IS_MAX, dtype=np.bool_)
HIST_LOW = np.array([f[1] for f in HISTORY_FIELDS])
HIST_HIGH = np.array([f[2] for f in HISTORY_FIELDS])
# moving averages: 4 metrics x (short, mid, long), then 3 lost/crash shares at the mid time constant
EMA_RATE, EMA_CPU, EMA_MEM, EMA_P95 = 0, 3, 6, 9
EMA_DROPPED, EMA_FAILED, EMA_CRASHES = 12, 13, 14
N_EMA = 15
C_LAST, C_WHEN = 0, 1


class Monitoring:
    """The monitoring and history of a batch: its ``Monitor`` record and the constants derived from the config."""

    def __init__(self, config: EnvConfig, num_envs: int) -> None:
        dt = config.step_seconds
        timing = config.metrics.timing(dt)
        self.period = np.array([timing[m][0] for m in OBSERVED_NAMES])
        self.delay = np.array([timing[m][1] for m in OBSERVED_NAMES])
        # each metric is delivered as it is when its period is the step and it has no delay (exact copies)
        self.direct = (self.period == dt) & (self.delay == 0.0)
        self.delayed = not bool(self.direct.all())
        # the steps a delivered period can reach back: at time t the period ends after t - D - P, so it starts after
        # t - D - 2P (and steps are whole): (D + 2P) / dt steps, plus two for rounding
        ring = int(math.ceil(float(np.max((2.0 * self.period + self.delay) / dt)) - 1e-9)) + 2
        obs_config = config.observation
        self.groups = obs_config.groups
        self.steady_reset = obs_config.reset == "steady_state"
        taus = np.array(obs_config.ema_seconds)
        self.alphas = -np.expm1(-dt / taus)  # 1 - exp(-dt / tau)
        self.tau_long = float(taus[2])
        # the observation column of each history field (-1: its group is not shown)
        self.hist_cols = np.full(N_HISTORY, -1, dtype=np.int64)
        col = N_OBS
        for i, field in enumerate(HISTORY_FIELDS):
            if field[3] in self.groups:
                self.hist_cols[i] = col
                col += 1
        self.n_obs = col
        # with nothing to aggregate, delay or remember, the kernel's copies of the true metrics are what is delivered
        # and the pass after the step is skipped (it would cost a compiled call per step)
        self.needed = self.delayed or bool(self.groups) or self.steady_reset
        self.record = Monitor(
            np.zeros((num_envs, ring, N_MON)),
            np.zeros((num_envs, N_MON)),
            np.zeros((num_envs, N_EMA)),
            np.zeros((num_envs, 2)),
        )

    def after_reset(self, ids: np.ndarray, params, expected, metrics, obs) -> None:
        """Clusters ``ids`` were just reset: their prior, moving averages and reset observation."""
        if not self.needed:
            return
        monitor_reset(ids, params, expected, metrics, obs, *self.record, self.hist_cols, self.steady_reset, self.alphas)

    def after_step(self, active: np.ndarray, params, env_state, metrics, obs) -> None:
        """Every ``active`` cluster took a step: deliver its metrics, update its history, fill its observation."""
        if not self.needed:
            return
        monitor_step(
            active,
            params,
            env_state,
            metrics,
            obs,
            *self.record,
            self.period,
            self.delay,
            self.direct,
            self.delayed,
            self.alphas,
            self.tau_long,
            self.hist_cols,
        )


# ------------------------------------------------------------------------------------------ steady state
@njit(**_KERNEL)
def steady_state(b, p, mean_arrivals, n_warm, row):
    """The metrics of ``n_warm`` warm instances serving ``mean_arrivals`` per step for long (into ``row``, in
    ``OBSERVED_METRICS`` order), by the step's formulas: utilisation = rate / capacity, memory from the requests in
    service (``serve_slot``), waits and p95 of the balancer's stationary queue (``balancer_queue``,
    ``response_p95``) capped at a step as the step caps them. Above capacity there is no steady state: CPU 1, waits of
    a step, and the excess rate lost (1 - capacity / rate)."""
    dt = p[b, P_DT]
    rate = mean_arrivals / dt
    for i in range(N_MON):
        row[i] = 0.0
    row[K_ARRIVALS] = mean_arrivals
    if n_warm <= 0:
        row[K_DROPPED_SHARE] = 1.0 if rate > 0.0 else 0.0
        return
    conc = int(p[b, P_CONC])
    svc = p[b, P_SVC]
    cv = p[b, P_SVC_CV]
    rho = rate * svc / (conc * n_warm)
    cpu = min(rho, 1.0)
    mem = (p[b, P_MEM_BASE] + p[b, P_MEM_REQ] * cpu * conc) / p[b, P_MEM_LIMIT]
    n = float(n_warm)
    w_stat, p_stat, p_block = balancer_queue(int(p[b, P_ALGO]), rate, n_warm, n, n, conc, svc, cv * cv, p[b, P_MAXQ])
    lost = p_block
    if rho >= 1.0:
        w_stat, p_stat = dt, 1.0
        lost = max(lost, 1.0 - 1.0 / rho)
    w_stat = min(w_stat, dt)
    lat_mean = svc + w_stat if rate > 0.0 else 0.0
    row[K_LAT_MEAN] = lat_mean
    row[K_LAT_P95] = max(response_p95(svc, cv, w_stat, p_stat), lat_mean) if rate > 0.0 else 0.0
    row[K_CPU] = cpu
    row[K_CPU_MAX] = cpu
    row[K_MEM] = mem
    row[K_MEM_MAX] = mem
    row[K_DROPPED_SHARE] = lost


@njit(**_KERNEL)
def monitor_reset(ids, params, expected, metrics, obs, history, prior, ema, control, hist_cols, steady_reset, alphas):
    for j in range(ids.shape[0]):
        b = ids[j]
        row = np.int64(b) if expected.shape[0] > 1 else np.int64(0)
        first = expected[row, 0] if expected.shape[1] > 0 else 0.0
        steady_state(b, params, first, int(metrics[b, M_WARM]), prior[b])
        for i in range(N_MON):  # the reset's info carries no measurement: observed as the true row
            metrics[b, SEEN_COLS[i]] = metrics[b, TRUE_COLS[i]]
        if steady_reset:
            show_metrics(b, params, obs, prior[b])
        for w in range(3):
            start_ema(b, params, ema, prior[b], w)
        start_errors(b, params, ema, prior[b])
        control[b, C_LAST] = 0.0
        control[b, C_WHEN] = -1e300
        show_history(b, params, metrics, obs, ema, control, 0.0, 1.0, hist_cols)


@njit(**_KERNEL)
def start_ema(b, p, ema, x, w):
    r, c, m, l95 = inputs(b, p, x)
    ema[b, EMA_RATE + w] = r
    ema[b, EMA_CPU + w] = c
    ema[b, EMA_MEM + w] = m
    ema[b, EMA_P95 + w] = l95


@njit(**_KERNEL)
def start_errors(b, p, ema, x):
    ema[b, EMA_DROPPED] = x[K_DROPPED_SHARE]
    ema[b, EMA_FAILED] = x[K_FAILED_SHARE]
    ema[b, EMA_CRASHES] = x[K_CRASHES] / p[b, P_MAX]


@njit(**_KERNEL)
def inputs(b, p, x):
    """The averaged quantities of a row of observable metrics, scaled as the observation scales them and clipped
    to its bounds (a step of p95 at 100x the SLO counts as 10x, as the observation shows it)."""
    rate = min(max(x[K_ARRIVALS] / p[b, P_DT] / p[b, P_MAX_RPS], 0.0), 10.0)
    cpu = min(max(x[K_CPU], 0.0), 1.0)
    mem = min(max(x[K_MEM], 0.0), 2.0)
    p95 = min(max(x[K_LAT_P95] / p[b, P_SLO], 0.0), 10.0)
    return rate, cpu, mem, p95


@njit(**_KERNEL)
def show_metrics(b, p, obs, x):
    observe_metrics(
        b,
        p,
        obs,
        x[K_CPU],
        x[K_CPU_MAX],
        x[K_MEM],
        x[K_MEM_MAX],
        x[K_ARRIVALS],
        x[K_LAT_P95],
        x[K_BACKLOG],
        x[K_DROPPED_SHARE],
        x[K_FAILED_SHARE],
    )


# ------------------------------------------------------------------------------------------ the step
@njit(**_KERNEL)
def monitor_step(
    active,
    params,
    env_state,
    metrics,
    obs,
    history,
    prior,
    ema,
    control,
    period,
    delay,
    direct,
    delayed,
    alphas,
    tau_long,
    hist_cols,
):
    ring = history.shape[1]
    for b in range(params.shape[0]):
        if not active[b]:
            continue
        dt = params[b, P_DT]
        k = int(env_state[b, E_STEP]) - 1  # the step just taken covers [k dt, (k + 1) dt)
        t = (k + 1) * dt
        slot = k % ring
        for i in range(N_MON):
            history[b, slot, i] = metrics[b, TRUE_COLS[i]]
        for i in range(N_MON):
            if direct[i]:
                v = metrics[b, TRUE_COLS[i]]
            else:
                v = period_value(history, prior, b, i, k, t, dt, period[i], delay[i], IS_MAX[i])
            metrics[b, SEEN_COLS[i]] = v
        if delayed:
            show_metrics(b, params, obs, metrics[b, SEEN_COLS[0] : SEEN_COLS[0] + N_MON])
        update_history(b, params, metrics, ema, control, alphas, env_state[b, E_TIME])
        since = min((env_state[b, E_TIME] - control[b, C_WHEN]) / tau_long, 1.0)
        show_history(b, params, metrics, obs, ema, control, control[b, C_LAST], since, hist_cols)


@njit(**_KERNEL)
def period_value(history, prior, b, i, k, t, dt, period, delay, is_max):
    """Metric i as delivered at time t: the latest period [e - P, e) with e <= t - D (e a multiple of P), as the
    time-weighted mean (or the max) of the steps that overlap it; steps before the episode start hold the prior."""
    e = math.floor((t - delay) / period + 1e-9) * period
    start = e - period
    j0 = int(math.floor(start / dt + 1e-9))
    j1 = min(int(math.ceil(e / dt - 1e-9)) - 1, k)
    ring = history.shape[1]
    acc = 0.0
    weight = 0.0
    top = -math.inf
    for j in range(j0, j1 + 1):
        w = (min(e, (j + 1) * dt) - max(start, j * dt)) / dt
        if w <= 1e-9:
            continue
        v = prior[b, i] if j < 0 else history[b, j % ring, i]
        acc += w * v
        weight += w
        top = max(top, v)
    if weight <= 0.0:
        return prior[b, i]
    return top if is_max else acc / weight


@njit(**_KERNEL)
def update_history(b, p, metrics, ema, control, alphas, t):
    """The moving averages take the delivered metrics of this step; the last applied change is remembered."""
    x = metrics[b, SEEN_COLS[0] : SEEN_COLS[0] + N_MON]
    r, c, m, l95 = inputs(b, p, x)
    for w in range(3):
        a = alphas[w]
        ema[b, EMA_RATE + w] += a * (r - ema[b, EMA_RATE + w])
        ema[b, EMA_CPU + w] += a * (c - ema[b, EMA_CPU + w])
        ema[b, EMA_MEM + w] += a * (m - ema[b, EMA_MEM + w])
        ema[b, EMA_P95 + w] += a * (l95 - ema[b, EMA_P95 + w])
    a = alphas[1]
    ema[b, EMA_DROPPED] += a * (x[K_DROPPED_SHARE] - ema[b, EMA_DROPPED])
    ema[b, EMA_FAILED] += a * (x[K_FAILED_SHARE] - ema[b, EMA_FAILED])
    ema[b, EMA_CRASHES] += a * (x[K_CRASHES] / p[b, P_MAX] - ema[b, EMA_CRASHES])
    applied = metrics[b, M_SCALE_APPLIED]
    if applied != 0.0:
        control[b, C_LAST] = applied / p[b, P_MAX_STEP]
        control[b, C_WHEN] = t


@njit(**_KERNEL)
def show_history(b, p, metrics, obs, ema, control, last, since, hist_cols):
    """Write the history fields (``fields.HISTORY_FIELDS`` order) into their observation columns, clipped."""
    for i in range(12):  # the moving averages, in the order of the fields
        put(obs, b, hist_cols, i, ema[b, i])
    for v in range(4):  # trends: short - long
        put(obs, b, hist_cols, 12 + v, ema[b, 3 * v] - ema[b, 3 * v + 2])
    put(obs, b, hist_cols, 16, ema[b, EMA_DROPPED])
    put(obs, b, hist_cols, 17, ema[b, EMA_FAILED])
    put(obs, b, hist_cols, 18, ema[b, EMA_CRASHES])
    max_n = p[b, P_MAX]
    controlled = metrics[b, M_CONTROLLED]
    put(obs, b, hist_cols, 19, controlled / max_n)
    capacity = controlled / max_n  # controlled capacity / capacity of max_instances
    for i, w in ((20, 0), (21, 2)):
        rate = ema[b, EMA_RATE + w]
        put(obs, b, hist_cols, i, rate / capacity if capacity > 0.0 else (10.0 if rate > 0.0 else 0.0))
    put(obs, b, hist_cols, 22, last)
    put(obs, b, hist_cols, 23, since)


@njit(inline="always", **_KERNEL)
def put(obs, b, hist_cols, i, v):
    col = hist_cols[i]
    if col >= 0:
        obs[b, col] = min(max(v, HIST_LOW[i]), HIST_HIGH[i])
