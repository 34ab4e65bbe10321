"""Names, bounds and meanings of the observation and of the per-step metrics, in one place.

The observation space, the env docstring's table and the compiled core's column indices all come from the
tuples below; the ``O_*`` and ``M_*`` constants are checked against them at import.
"""

from __future__ import annotations

import numpy as np

# (name, low, high, meaning)
OBS_FIELDS: tuple[tuple[str, float, float, str], ...] = (
    ("cpu_mean", 0.0, 1.0, "mean CPU utilisation (busy share of concurrency) of serving instances"),
    ("cpu_max", 0.0, 1.0, "highest CPU utilisation of a serving instance"),
    ("memory_mean", 0.0, 2.0, "mean memory use / limit of serving instances (above 1: crashing)"),
    ("memory_max", 0.0, 2.0, "highest memory use / limit of a serving instance"),
    ("request_rate", 0.0, 10.0, "arrivals per second / capacity of max_instances (clipped at 10)"),
    ("latency_p95", 0.0, 10.0, "p95 latency of the step / SLO (clipped at 10)"),
    ("backlog", 0.0, 1.0, "queued requests / (max_instances * max(max_queue, 1)) (clipped at 1)"),
    ("dropped_share", 0.0, 1.0, "share of the step's requests dropped (queues full, no instance)"),
    ("failed_share", 0.0, 1.0, "share of the step's requests failed (crashed instances)"),
    ("instances_warm", 0.0, 2.0, "warm (serving) instances / max_instances"),
    ("instances_booting", 0.0, 2.0, "booting (cold-starting) instances / max_instances"),
    ("instances_unhealthy", 0.0, 2.0, "instances taken out by health checks / max_instances"),
    ("instances_draining", 0.0, 2.0, "draining (scaled-in) instances / max_instances"),
    ("boot_remaining", 0.0, 1.0, "mean remaining cold start of booting instances / longest cold start"),
    ("cooldown_out", 0.0, 1.0, "remaining scale-out cooldown / its length (0 = scale-out allowed)"),
    ("cooldown_in", 0.0, 1.0, "remaining scale-in cooldown / its length (0 = scale-in allowed)"),
    ("time_of_day_sin", -1.0, 1.0, "sin(2 pi clock / day_seconds)"),
    ("time_of_day_cos", -1.0, 1.0, "cos(2 pi clock / day_seconds)"),
    ("episode_progress", 0.0, 1.0, "steps taken / episode_steps"),
)
OBS_NAMES: tuple[str, ...] = tuple(f[0] for f in OBS_FIELDS)
OBS_LOW = np.array([f[1] for f in OBS_FIELDS], dtype=np.float32)
OBS_HIGH = np.array([f[2] for f in OBS_FIELDS], dtype=np.float32)

(
    O_CPU_MEAN,
    O_CPU_MAX,
    O_MEM_MEAN,
    O_MEM_MAX,
    O_RATE,
    O_P95,
    O_BACKLOG,
    O_DROPPED,
    O_FAILED,
    O_WARM,
    O_BOOTING,
    O_UNHEALTHY,
    O_DRAINING,
    O_BOOT_REMAINING,
    O_CD_OUT,
    O_CD_IN,
    O_TOD_SIN,
    O_TOD_COS,
    O_PROGRESS,
) = range(len(OBS_FIELDS))
N_OBS = len(OBS_FIELDS)

# ---- observe (issue 15): the history an autoscaler keeps, appended to the observation above by the groups chosen
# in config ``observation.history`` (ServerlessScaling-v1: all of them); computed after the step from the observed
# (delivered) metrics by scaling_env/sim/monitoring.py. "short", "mid", "long": exponential moving averages with
# the time constants ``observation.ema_seconds`` (default 60, 300, 900 s: the 1-, 5- and 15-minute load averages).
# (name, low, high, group, meaning)
HISTORY_FIELDS: tuple[tuple[str, float, float, str, str], ...] = (
    *(
        (f"request_rate_ema_{w}", 0.0, 10.0, "ema", f"{w} moving average of request_rate")
        for w in ("short", "mid", "long")
    ),
    *((f"cpu_ema_{w}", 0.0, 1.0, "ema", f"{w} moving average of cpu_mean") for w in ("short", "mid", "long")),
    *((f"memory_ema_{w}", 0.0, 2.0, "ema", f"{w} moving average of memory_mean") for w in ("short", "mid", "long")),
    *(
        (f"latency_p95_ema_{w}", 0.0, 10.0, "ema", f"{w} moving average of latency_p95")
        for w in ("short", "mid", "long")
    ),
    ("request_rate_trend", -10.0, 10.0, "trend", "request_rate_ema_short - request_rate_ema_long"),
    ("cpu_trend", -1.0, 1.0, "trend", "cpu_ema_short - cpu_ema_long"),
    ("memory_trend", -2.0, 2.0, "trend", "memory_ema_short - memory_ema_long"),
    ("latency_p95_trend", -10.0, 10.0, "trend", "latency_p95_ema_short - latency_p95_ema_long"),
    ("dropped_share_ema", 0.0, 1.0, "errors", "mid moving average of dropped_share"),
    ("failed_share_ema", 0.0, 1.0, "errors", "mid moving average of failed_share"),
    ("crashes_ema", 0.0, 1.0, "errors", "mid moving average of the step's crashes / max_instances"),
    (
        "instances_controlled",
        0.0,
        2.0,
        "fleet",
        "instances the action changes (info instances_controlled) / max_instances",
    ),
    (
        "demand_per_capacity",
        0.0,
        10.0,
        "fleet",
        "short average request rate / capacity of the controlled instances (1: they would run at full concurrency; "
        "none controlled: 10 if requests arrive)",
    ),
    ("demand_per_capacity_long", 0.0, 10.0, "fleet", "as demand_per_capacity with the long average rate"),
    ("last_scale_applied", -1.0, 1.0, "control", "the change applied by the last scaling action / max |scale_steps|"),
    (
        "time_since_scale",
        0.0,
        1.0,
        "control",
        "seconds since the last applied change / the long time constant (1: none that recent, or none yet)",
    ),
)
HISTORY_GROUPS: tuple[str, ...] = ("ema", "trend", "errors", "fleet", "control")
HISTORY_NAMES: tuple[str, ...] = tuple(f[0] for f in HISTORY_FIELDS)
N_HISTORY = len(HISTORY_FIELDS)
if {f[3] for f in HISTORY_FIELDS} != set(HISTORY_GROUPS) or len(
    set(HISTORY_NAMES) | set(OBS_NAMES)
) != N_OBS + N_HISTORY:
    raise ImportError("fields: HISTORY_FIELDS has an unknown group or repeats a name")


def observation_fields(groups: tuple[str, ...] = ()) -> tuple[tuple[str, float, float, str], ...]:
    """The observation's fields (name, low, high, meaning) with the history ``groups`` (config
    ``observation.history``): the 19 fields of OBS_FIELDS, then the chosen groups' fields in HISTORY_FIELDS order."""
    unknown = [g for g in groups if g not in HISTORY_GROUPS]
    if unknown:
        raise ValueError(f"unknown observation history groups {unknown}; choose from {list(HISTORY_GROUPS)}")
    return OBS_FIELDS + tuple((n, lo, hi, doc) for n, lo, hi, g, doc in HISTORY_FIELDS if g in groups)


# (name, meaning): every key of info (besides reward_components), one float column of the core's metrics
INFO_FIELDS: tuple[tuple[str, str], ...] = (
    ("arrivals", "requests that arrived in the step"),
    ("served", "requests completed in the step"),
    ("dropped", "requests rejected: queue full, or no instance to take them"),
    (
        "failed",
        "requests lost: routed to or queued on a crashed instance, left when a drain timed out, or queued "
        "on a booting instance that was scaled in",
    ),
    ("backlog", "requests queued at the end of the step (carried over)"),
    (
        "latency_mean_s",
        "mean response time of the step's served requests, s (none served: how long the queued "
        "requests have waited so far; nothing queued either: 0)",
    ),
    (
        "latency_p95_s",
        "p95 response time of the step's served requests, s, reported at least latency_mean_s (none served: as "
        "latency_mean_s; docs/model.md section 6.3)",
    ),
    ("cpu_utilization", "mean CPU utilisation of serving instances"),
    ("memory_utilization", "mean memory use / limit of serving instances"),
    ("cpu_max", "highest CPU utilisation of a serving instance"),
    ("memory_max", "highest memory use / limit of a serving instance"),
    ("instances_warm", "warm instances at the end of the step"),
    ("instances_booting", "booting instances at the end of the step"),
    ("instances_failed", "crashed, not yet detected instances at the end of the step"),
    ("instances_unhealthy", "instances found unhealthy at the end of the step"),
    ("instances_draining", "draining instances at the end of the step"),
    ("instances_billed", "instances billed for some time in the step"),
    ("instance_seconds", "billed instance-seconds in the step"),
    ("cost_usd", "cost of the step, USD (instance memory-seconds + requests)"),
    (
        "slo_violated",
        "1 if the step's p95 latency exceeded the SLO (reward.slo_p95_seconds), or more than "
        "reward.slo_max_lost_share (default 5 %) of its requests were lost (dropped or failed: never answered in time)",
    ),
    ("scale_requested", "change in instance count asked for by the action"),
    ("scale_applied", "change in instance count applied (after bounds and cooldowns)"),
    ("blocked_by_cooldown", "1 if a cooldown blocked the (bounded) request"),
    ("cold_starts", "instances launched in the step (scale-out and replacements)"),
    ("crashes", "instances that crashed in the step"),
    ("dropped_share", "dropped / (previous backlog + arrivals)"),
    ("failed_share", "failed / (previous backlog + arrivals)"),
    ("time_s", "simulated seconds since episode start, at the end of the step"),
    (
        "instances_controlled",
        "instances the autoscaler controls at the end of the step, the count an action changes (booting, warm, "
        "undetected failed, and unhealthy ones kept until replaced)",
    ),
    # serverless platform mode (issue 17; 0 when platform.enabled is false)
    (
        "throttled",
        "requests refused in the step (HTTP 429): the concurrency limit or the scaling rate was reached",
    ),
    ("throttled_share", "throttled / (previous backlog + arrivals)"),
    ("provisioned", "provisioned (pre-warmed) instances configured at the end of the step"),
    (
        "provisioned_utilization",
        "share of the provisioned instances' concurrency in use in the step (AWS ProvisionedConcurrencyUtilization)",
    ),
    ("provisioned_cost_usd", "the part of cost_usd billed for provisioned capacity"),
    ("keep_alive_seconds", "keep-alive of idle on-demand instances in force at the end of the step, s"),
    ("instances_reclaimed", "idle on-demand instances reclaimed in the step (keep-alive ran out)"),
    ("cold_start_waits", "served requests that waited for a cold start"),
    ("activator_buffered", "requests the activator holds at the end of the step (part of backlog)"),
)
# ---- observe (issue 17): the metrics as the monitoring system delivers them (scaling_env/sim/monitoring.py)
# Each is the value of the aggregation period of its metric source (config ``metrics``) that was delivered last;
# with the default sources (period = one step, no delay) each equals its true column above.
OBSERVED_METRICS: tuple[tuple[str, str], ...] = (
    # (true info key, statistic of a period: "mean" = time-weighted mean of the steps, "max" = the largest step)
    ("arrivals", "mean"),
    ("backlog", "mean"),
    ("latency_mean_s", "mean"),
    ("latency_p95_s", "max"),
    ("cpu_utilization", "mean"),
    ("memory_utilization", "mean"),
    ("cpu_max", "max"),
    ("memory_max", "max"),
    ("dropped_share", "mean"),
    ("failed_share", "mean"),
    ("crashes", "mean"),
)
INFO_FIELDS = INFO_FIELDS + tuple(
    (
        "observed_" + name,
        f"{name} as the monitoring system shows it after the step: the {stat} over the last aggregation period of "
        "its metric source that has been delivered (config metrics; per step for counts)",
    )
    for name, stat in OBSERVED_METRICS
)
INFO_NAMES: tuple[str, ...] = tuple(f[0] for f in INFO_FIELDS)
(
    M_ARRIVALS,
    M_SERVED,
    M_DROPPED,
    M_FAILED,
    M_BACKLOG,
    M_LAT_MEAN,
    M_LAT_P95,
    M_CPU,
    M_MEM,
    M_CPU_MAX,
    M_MEM_MAX,
    M_WARM,
    M_BOOTING,
    M_FAILED_INST,
    M_UNHEALTHY,
    M_DRAINING,
    M_BILLED,
    M_INST_SECONDS,
    M_COST,
    M_SLO_VIOLATED,
    M_SCALE_REQ,
    M_SCALE_APPLIED,
    M_BLOCKED,
    M_COLD_STARTS,
    M_CRASHES,
    M_DROPPED_SHARE,
    M_FAILED_SHARE,
    M_TIME,
    M_CONTROLLED,
    M_THROTTLED,
    M_THROTTLED_SHARE,
    M_PROVISIONED,
    M_PROV_UTIL,
    M_PROV_COST,
    M_KEEP_ALIVE,
    M_RECLAIMED,
    M_COLD_WAITS,
    M_BUFFERED,
    M_OBS_ARRIVALS,
    M_OBS_BACKLOG,
    M_OBS_LAT_MEAN,
    M_OBS_LAT_P95,
    M_OBS_CPU,
    M_OBS_MEM,
    M_OBS_CPU_MAX,
    M_OBS_MEM_MAX,
    M_OBS_DROPPED_SHARE,
    M_OBS_FAILED_SHARE,
    M_OBS_CRASHES,
) = range(len(INFO_FIELDS))
N_METRICS = len(INFO_FIELDS)
# the true column of each observed one, and whether its period statistic is the max (else the time-weighted mean)
OBSERVED_TRUE_COLS: tuple[int, ...] = tuple(INFO_NAMES.index(name) for name, _ in OBSERVED_METRICS)
OBSERVED_COLS: tuple[int, ...] = tuple(INFO_NAMES.index("observed_" + name) for name, _ in OBSERVED_METRICS)
OBSERVED_IS_MAX: tuple[bool, ...] = tuple(stat == "max" for _, stat in OBSERVED_METRICS)
OBSERVED_NAMES: tuple[str, ...] = tuple(name for name, _ in OBSERVED_METRICS)
if OBSERVED_COLS[0] != M_OBS_ARRIVALS or OBSERVED_COLS[-1] != M_OBS_CRASHES or len(OBSERVED_COLS) != 11:
    raise ImportError("fields: the M_OBS_* constants do not match OBSERVED_METRICS")

# reward components, named like the config weights (RewardWeights) that scale them
REWARD_COMPONENTS: tuple[tuple[str, str], ...] = (
    ("cost", "cost_usd / (cost of max_instances serving at full concurrency for one step)"),
    (
        "slo_violation",
        "slo_violated: 1 if p95 latency > SLO or more than reward.slo_max_lost_share of the requests were lost",
    ),
    ("dropped", "dropped_share"),
    ("failed", "failed_share"),
    ("scaling", "|scale_applied| / max |scale_steps|"),
    ("throttled", "throttled_share (platform mode)"),
)
REWARD_NAMES: tuple[str, ...] = tuple(f[0] for f in REWARD_COMPONENTS)
R_COST, R_SLO, R_DROPPED, R_FAILED, R_SCALING, R_THROTTLED = range(len(REWARD_COMPONENTS))
N_REWARD = len(REWARD_COMPONENTS)


def observation_bounds(groups: tuple[str, ...] = ()) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) float32 arrays of the observation with the history ``groups``, for its Box space."""
    fields = observation_fields(groups)
    return np.array([f[1] for f in fields], dtype=np.float32), np.array([f[2] for f in fields], dtype=np.float32)


def observation_table(groups: tuple[str, ...] = (), first: int = 0) -> str:
    """The observation table (with the history ``groups``; rows from index ``first``) in reStructuredText-ish
    Markdown, for docstrings and docs."""
    rows = ["| index | name | min | max | meaning |", "|---:|---|---:|---:|---|"]
    for i, (name, lo, hi, doc) in enumerate(observation_fields(groups)):
        if i >= first:
            rows.append(f"| {i} | `{name}` | {lo:g} | {hi:g} | {doc} |")
    return "\n".join(rows)


def info_table() -> str:
    rows = ["| key | meaning |", "|---|---|"]
    rows += [f"| `{name}` | {doc} |" for name, doc in INFO_FIELDS]
    rows.append("| `reward_components` | dict: each component times its weight, negated; they sum to the reward |")
    return "\n".join(rows)
