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
) = range(len(INFO_FIELDS))
N_METRICS = len(INFO_FIELDS)

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


def observation_table() -> str:
    """The observation table in reStructuredText-ish Markdown, for docstrings and docs."""
    rows = ["| index | name | min | max | meaning |", "|---:|---|---:|---:|---|"]
    for i, (name, lo, hi, doc) in enumerate(OBS_FIELDS):
        rows.append(f"| {i} | `{name}` | {lo:g} | {hi:g} | {doc} |")
    return "\n".join(rows)


def info_table() -> str:
    rows = ["| key | meaning |", "|---|---|"]
    rows += [f"| `{name}` | {doc} |" for name, doc in INFO_FIELDS]
    rows.append("| `reward_components` | dict: each component times its weight, negated; they sum to the reward |")
    return "\n".join(rows)
