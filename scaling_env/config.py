"""Typed, validated configuration of one simulated serverless service.

Every parameter of the simulation lives here, with its default and its unit (in the field name or its
description). A config is built from defaults, a dict (``EnvConfig.model_validate``), or a YAML file
(``EnvConfig.from_yaml``). Unknown keys are rejected and every bad value is reported with the field's
dotted path and the allowed range.

Sources of the defaults:
- ``step_seconds = 15``: the Kubernetes HPA sync period (``--horizontal-pod-autoscaler-sync-period``).
- ``scale_in_cooldown_seconds = 300``: AWS EC2 Auto Scaling's default cooldown for simple scaling.
- ``health_check_interval_seconds = 30`` and ``unhealthy_threshold = 2``: AWS ALB target-group defaults.
- ``deregistration_delay_seconds = 300``: AWS ALB target-group default deregistration (draining) delay.
- ``gb_second_usd = 0.0000166667`` and ``request_usd_per_million = 0.20``: AWS Lambda x86 prices (us-east-1).
- ``algorithm = "round_robin"``: the AWS ALB default routing algorithm.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError, create_model, model_validator

from .fields import HISTORY_GROUPS, OBSERVED_NAMES


class _Strict(BaseModel):
    """Base for all config sections: unknown keys are errors, infinities and NaN too; a config is immutable
    (derive a new one with ``EnvConfig.with_updates``), so an env never sees it change under it."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


MAX_RPS = 1e9  # a bound on every rate, far above any real service, that keeps counts inside int64


class ConfigError(ValueError):
    """A configuration value or file is invalid. The message names the field (or file) at fault."""


# --------------------------------------------------------------------------------------------- ranges
class Range(_Strict):
    """A range given instead of a value: every reset draws the value uniformly from ``[low, high]`` with the
    env's seeded generator (domain randomisation). In YAML: ``{low: 1000, high: 3000}`` or ``[1000, 3000]``."""

    low: float
    high: float

    @model_validator(mode="before")
    @classmethod
    def _from_pair(cls, data: Any) -> Any:
        if isinstance(data, (list, tuple)):
            if len(data) != 2:
                raise ValueError(f"a range is [low, high], got {len(data)} values")
            return {"low": data[0], "high": data[1]}
        return data

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if self.low > self.high:
            raise ValueError(f"range low ({self.low}) must be <= high ({self.high})")
        return self


@dataclass(frozen=True)
class _Bounds:
    """The numeric bounds of a field that takes a value or a range (read by the error messages)."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None


def _value_or_range(v: Any) -> str:
    if v is None:
        return "none"
    return "range" if isinstance(v, (dict, list, tuple, Range)) else "value"


def ranged(optional: bool = False, **bounds: float) -> Any:
    """The type of a float field that also takes a :class:`Range`; both ends of a range obey the bounds."""
    range_type = create_model("Range", __base__=Range, low=(float, Field(**bounds)), high=(float, Field(**bounds)))
    options: list[Any] = [Annotated[float, Field(**bounds), Tag("value")], Annotated[range_type, Tag("range")]]
    if optional:
        options.append(Annotated[None, Tag("none")])
    return Annotated[Union[tuple(options)], Discriminator(_value_or_range), _Bounds(**bounds)]


def lowest(v: float | Range | None) -> float | None:
    """The smallest value a field can take (its value, or a range's low end)."""
    return v.low if isinstance(v, Range) else v


def highest(v: float | Range | None) -> float | None:
    """The largest value a field can take (its value, or a range's high end)."""
    return v.high if isinstance(v, Range) else v


Rate = ranged(ge=0.0, le=MAX_RPS)
Seconds = ranged(ge=0.0)
PositiveSeconds = ranged(gt=0.0)


# --------------------------------------------------------------------------------------------- workload
class ConstantWorkload(_Strict):
    """A constant arrival rate."""

    kind: Literal["constant"] = "constant"
    rate_rps: Rate = Field(500.0, description="arrival rate, requests/s")


class DiurnalWorkload(_Strict):
    """A sinusoidal daily cycle between a trough and a peak; the period is ``WorkloadConfig.day_seconds``."""

    kind: Literal["diurnal"] = "diurnal"
    trough_rps: Rate = Field(200.0, description="lowest rate of the day, requests/s")
    peak_rps: Rate = Field(1500.0, description="highest rate of the day, requests/s")
    peak_time_seconds: Seconds = Field(
        1800.0,
        description="time of day of the peak, seconds after the clock's midnight (the default, half of the "
        "default 3600 s day, starts episodes at the trough)",
    )

    @model_validator(mode="after")
    def _peak_above_trough(self) -> DiurnalWorkload:
        if lowest(self.peak_rps) < highest(self.trough_rps):
            raise ValueError(
                f"peak_rps ({self.peak_rps}) must be >= trough_rps ({self.trough_rps}) (with ranges: "
                f"the lowest peak >= the highest trough)"
            )
        return self


class SpikeWorkload(_Strict):
    """A flash crowd: ``base_rps`` plus a rectangular burst to ``peak_rps`` from ``start_seconds``."""

    kind: Literal["spike"] = "spike"
    base_rps: Rate = Field(300.0, description="rate outside the burst, requests/s")
    peak_rps: Rate = Field(3000.0, description="rate during the burst, requests/s")
    start_seconds: Seconds = Field(1200.0, description="burst start, seconds after episode start")
    duration_seconds: Seconds = Field(300.0, description="burst length, seconds")


class RampWorkload(_Strict):
    """A linear ramp from ``start_rps`` to ``end_rps`` over ``duration_seconds``, then flat."""

    kind: Literal["ramp"] = "ramp"
    start_rps: Rate = Field(100.0, description="rate at episode start, requests/s")
    end_rps: Rate = Field(2000.0, description="rate at the end of the ramp, requests/s")
    duration_seconds: PositiveSeconds = Field(3600.0, description="ramp length, seconds")


class RandomWalkWorkload(_Strict):
    """A mean-reverting geometric random walk of the rate, one move per step, drawn at reset.

    ``log r[k+1] = log r[k] + reversion * (log start_rps - log r[k]) + volatility * N(0, 1)``, clipped to
    ``[min_rps, max_rps]``. The whole path is drawn at reset from the env's generator, so the rate function of
    the episode is known in advance (a clairvoyant policy can look ahead).
    """

    kind: Literal["random_walk"] = "random_walk"
    start_rps: float = Field(800.0, gt=0.0, le=MAX_RPS, description="initial and long-run rate, requests/s")
    volatility: float = Field(0.05, ge=0.0, le=2.0, description="std of the log-rate change per step")
    reversion: float = Field(0.02, ge=0.0, le=1.0, description="pull towards start_rps per step (0..1)")
    min_rps: float = Field(10.0, ge=0.0, le=MAX_RPS, description="lower clip, requests/s")
    max_rps: float = Field(5000.0, gt=0.0, le=MAX_RPS, description="upper clip, requests/s")

    @model_validator(mode="after")
    def _bounds(self) -> RandomWalkWorkload:
        if not self.min_rps <= self.start_rps <= self.max_rps:
            raise ValueError(
                f"start_rps ({self.start_rps}) must lie in [min_rps, max_rps] = [{self.min_rps}, {self.max_rps}]"
            )
        return self


class TraceWorkload(_Strict):
    """Replay of a request-count trace: a CSV file (``path``) or a series given inline (``counts``).

    Each interval's count is spread evenly over it, so any step length keeps the trace's request total (see
    ``scaling_env/traces.py``). The episode's clock (time-of-day observation) follows the trace's timestamps; a
    trace day lasts ``86400 / time_compression`` simulated seconds (``day_seconds`` is not used).
    """

    kind: Literal["trace"] = "trace"
    path: str | None = Field(
        None, description="CSV file 'timestamp,requests', relative to the traces folder (or absolute)"
    )
    counts: tuple[Annotated[float, Field(ge=0.0, le=1e15)], ...] | None = Field(
        None, min_length=1, description="the series itself: requests per interval (instead of path)"
    )
    interval_seconds: float | None = Field(
        None,
        ge=1.0,
        le=3600.0,
        description="interval of the inline counts, s; for a file, its interval when it leaves out many "
        "intervals (default: the most common step between its timestamps)",
    )
    missing: Literal["interpolate", "zero", "previous"] = Field(
        "interpolate", description="how to fill missing intervals (gaps in the timestamps)"
    )
    rescale: Literal["none", "mean", "peak"] = Field(
        "none", description="replay as is, or scale the counts so the trace's mean or peak rate is target_rps"
    )
    target_rps: Rate | None = Field(None, description="mean or peak rate after rescaling, requests/s")
    time_compression: ranged(gt=0.0, le=1e5) = Field(
        1.0, description="trace seconds per simulated second (24 replays a day in an hour)"
    )
    start: Literal["fixed", "random"] = Field(
        "fixed", description="episode window: at start_offset_seconds, or at a random point drawn at each reset"
    )
    start_offset_seconds: float = Field(
        0.0, ge=0.0, description="window start, seconds of trace time after the first timestamp (start: fixed)"
    )
    loop: bool = Field(True, description="past the trace's end, replay it again from its start (else no load)")

    @model_validator(mode="after")
    def _source(self) -> TraceWorkload:
        if (self.path is None) == (self.counts is None):
            raise ValueError("give exactly one of path (a CSV file) and counts (an inline series)")
        if self.counts is not None and self.interval_seconds is None:
            raise ValueError("interval_seconds is required with inline counts")
        if (self.rescale == "none") != (self.target_rps is None):
            raise ValueError("target_rps is needed with rescale: mean or peak, and only then")
        return self


Shape = Annotated[
    Union[ConstantWorkload, DiurnalWorkload, SpikeWorkload, RampWorkload, RandomWalkWorkload, TraceWorkload],
    Field(discriminator="kind"),
]


class WorkloadConfig(_Strict):
    """Where requests come from: a rate function lambda(t) and how counts are drawn from it."""

    shape: Shape = Field(default_factory=DiurnalWorkload)
    arrival_process: Literal["poisson", "deterministic"] = Field(
        "poisson",
        description="poisson: counts per step ~ Poisson(integral of lambda); deterministic: the running "
        "integral rounded down, the fraction carried to the next step (replays a trace request for request)",
    )
    day_seconds: PositiveSeconds = Field(
        3600.0,
        description="length of one 'day' of the clock, seconds: the diurnal period and the period of the "
        "time-of-day observation (86400 for real time; the default compresses a day into one episode)",
    )
    start_time_seconds: float = Field(0.0, ge=0.0, description="clock time at episode start, seconds")
    random_phase: bool = Field(False, description="draw the episode's start time uniformly over one day at each reset")
    scale_jitter: float = Field(
        0.0, ge=0.0, lt=1.0, description="multiply the rate by U(1-j, 1+j), drawn at each reset"
    )


# --------------------------------------------------------------------------------------------- instances
class InstanceConfig(_Strict):
    """One serverless instance (container): capacity, cold start, memory."""

    concurrency: int = Field(10, ge=1, le=1000, description="requests served at once per instance")
    max_queue: int = Field(100, ge=0, le=1_000_000, description="requests waiting per instance before drops")
    service_seconds: float = Field(0.1, gt=0.0, le=600.0, description="mean CPU time per request, seconds")
    service_cv: float = Field(
        1.0, ge=0.0, le=10.0, description="coefficient of variation of the service time (1 = exponential)"
    )
    cold_start_seconds: float = Field(2.0, ge=0.0, le=3600.0, description="mean cold-start (boot) time, s")
    cold_start_jitter: float = Field(
        0.25, ge=0.0, le=1.0, description="boot time ~ mean * U(1-j, 1+j) (0 = exactly the mean)"
    )
    instance_memory_gb: float = Field(1.0, gt=0.0, le=64.0, description="memory limit per instance, GB")
    memory_base_mb: float = Field(256.0, ge=0.0, description="memory of an idle instance, MB")
    memory_mb_per_request: float = Field(4.0, ge=0.0, description="memory per in-flight request, MB")
    deregistration_delay_seconds: float = Field(
        300.0, ge=0.0, description="longest drain of a scaled-in instance; requests left after it fail, s"
    )


# --------------------------------------------------------------------------------------------- scaling
class ScalingConfig(_Strict):
    """Bounds, cooldowns and the action set of the autoscaler."""

    min_instances: int = Field(1, ge=0, le=4096, description="lower bound on the instance count")
    max_instances: int = Field(64, ge=1, le=4096, description="upper bound on the instance count")
    initial_instances: int = Field(3, ge=0, le=4096, description="warm instances at reset (clipped)")
    scale_steps: tuple[int, ...] = Field(
        (-2, -1, 0, 1, 2),
        min_length=1,
        description="action i asks for a change of scale_steps[i] instances",
    )
    scale_out_cooldown_seconds: float = Field(60.0, ge=0.0, description="scale-outs blocked after one, s")
    scale_in_cooldown_seconds: float = Field(300.0, ge=0.0, description="scale-ins blocked after one, s")

    @model_validator(mode="after")
    def _bounds(self) -> ScalingConfig:
        if self.min_instances > self.max_instances:
            raise ValueError(f"min_instances ({self.min_instances}) must be <= max_instances ({self.max_instances})")
        if len(set(self.scale_steps)) != len(self.scale_steps):
            raise ValueError(f"scale_steps has repeated values: {self.scale_steps}")
        return self


# --------------------------------------------------------------------------------------------- LB
class LoadBalancerConfig(_Strict):
    """Routing and health checks of the load balancer in front of the instances."""

    algorithm: Literal["round_robin", "least_outstanding", "random"] = "round_robin"
    health_check_interval_seconds: float = Field(30.0, gt=0.0, le=3600.0, description="seconds between checks")
    unhealthy_threshold: int = Field(2, ge=1, le=100, description="consecutive failed checks to take one out")


# --------------------------------------------------------------------------------------------- failures
class Outage(_Strict):
    """A correlated outage: ``fraction`` of the warm instances crash at once at ``time_seconds``."""

    time_seconds: Seconds = Field(description="seconds after episode start")
    fraction: ranged(gt=0.0, le=1.0) = Field(description="share of warm instances that crash")


class FailureConfig(_Strict):
    """Crashes, overload and replacement."""

    mtbf_seconds: ranged(optional=True, gt=0.0) = Field(
        86400.0, description="mean time between spontaneous crashes per instance, s (null = never)"
    )
    memory_crash: bool = Field(True, description="an instance whose memory exceeds its limit crashes")
    replace_unhealthy: bool = Field(
        True, description="launch a replacement when an instance is found unhealthy, as an ASG does"
    )
    termination_seconds: float = Field(
        30.0, ge=0.0, description="an unhealthy instance being replaced is billed this long, s"
    )
    outages: tuple[Outage, ...] = Field((), max_length=64)


# --------------------------------------------------------------------------------------------- cost & reward
class CostConfig(_Strict):
    """Prices (AWS Lambda x86, us-east-1)."""

    gb_second_usd: float = Field(0.0000166667, ge=0.0, description="price per GB-second of instance memory")
    request_usd_per_million: float = Field(0.20, ge=0.0, description="price per million requests handled")


class RewardWeights(_Strict):
    """Weights of the reward components, named like the components in ``info['reward_components']``."""

    cost: float = Field(
        1.0, ge=0.0, description="scales cost / cost of max_instances serving at full concurrency for one step"
    )
    slo_violation: float = Field(
        1.0, ge=0.0, description="scales 1 if p95 latency > SLO or the lost share > slo_max_lost_share in the step"
    )
    dropped: float = Field(10.0, ge=0.0, description="scales the share of the step's arrivals dropped")
    failed: float = Field(10.0, ge=0.0, description="scales the share of the step's arrivals failed")
    scaling: float = Field(0.01, ge=0.0, description="scales |instances added or removed| / max |scale_step|")
    # serverless platform mode (issue 17)
    throttled: float = Field(
        10.0, ge=0.0, description="scales the share of the step's requests throttled (platform mode, HTTP 429)"
    )


class RewardConfig(_Strict):
    slo_p95_seconds: float = Field(0.5, gt=0.0, description="latency objective: p95 of the step, seconds")
    slo_max_lost_share: float = Field(
        0.05,
        ge=0.0,
        le=1.0,
        description="a step whose lost share (dropped + failed) / (previous backlog + arrivals) exceeds this "
        "violates the SLO even if its p95 is met",
    )
    weights: RewardWeights = Field(default_factory=RewardWeights)


# --------------------------------------------------------------------------------------------- observation
HistoryGroup = Literal[HISTORY_GROUPS]
# env version -> the observation it shows when the config leaves ``observation.history``/``reset`` unset (None)
OBSERVATION_VERSIONS: dict[int, tuple[tuple[str, ...], str]] = {0: ((), "empty"), 1: (HISTORY_GROUPS, "steady_state")}


class ObservationConfig(_Strict):
    """What the agent observes besides the 19 fields of the step (docs/model.md, "The observation's history")."""

    history: tuple[HistoryGroup, ...] | None = Field(
        None,
        description="groups of history fields appended to the observation (fields.HISTORY_FIELDS): ema, trend, "
        "errors, fleet, control; null = the env version's default (v0: none, v1: all)",
    )
    reset: Literal["empty", "steady_state"] | None = Field(
        None,
        description="the observation at reset: 'empty' = the reset's metrics (no load, CPU or latency: v0), "
        "'steady_state' = the initial fleet serving the first step's expected rate (v1); null = the version's",
    )
    ema_seconds: tuple[float, float, float] = Field(
        (60.0, 300.0, 900.0),
        description="time constants of the short, mid and long moving averages, seconds (the 1-, 5- and 15-minute "
        "load averages)",
    )

    @model_validator(mode="after")
    def _check(self) -> ObservationConfig:
        if self.history is not None and len(set(self.history)) != len(self.history):
            raise ValueError(f"history has repeated groups: {list(self.history)}")
        a, b, c = self.ema_seconds
        if not 0.0 < a <= b <= c:
            raise ValueError(
                f"ema_seconds must be positive and non-decreasing (short <= mid <= long), got {a}, {b}, {c}"
            )
        return self

    def resolved(self, version: int) -> ObservationConfig:
        """This section with unset fields taken from env version ``version``'s observation."""
        if version not in OBSERVATION_VERSIONS:
            raise ConfigError(f"unknown env version {version}; known: {sorted(OBSERVATION_VERSIONS)}")
        history, reset = OBSERVATION_VERSIONS[version]
        return self.model_copy(
            update={
                "history": history if self.history is None else self.history,
                "reset": reset if self.reset is None else self.reset,
            }
        )

    @property
    def groups(self) -> tuple[str, ...]:
        """The history groups shown (unset: none, as v0), in the order of fields.HISTORY_GROUPS."""
        chosen = self.history or ()
        return tuple(g for g in HISTORY_GROUPS if g in chosen)


# --------------------------------------------------------------------------------------------- metrics
ObservedMetric = Literal[OBSERVED_NAMES]


class MetricSource(_Strict):
    """A monitoring system that delivers some metrics: it aggregates each over periods of ``period_seconds``
    (aligned to the episode start) and a period's value becomes visible ``delay_seconds`` after the period ends
    (docs/model.md, "Metrics as a monitoring system delivers them"). Any positive period and delay; they need not
    be multiples of step_seconds."""

    period_seconds: float | None = Field(
        None, gt=0.0, le=86400.0, description="aggregation period, seconds (null = one step)"
    )
    delay_seconds: float = Field(0.0, ge=0.0, le=86400.0, description="delivery delay after a period ends, seconds")
    metrics: tuple[ObservedMetric, ...] = Field(
        min_length=1, description="the info keys it delivers (the observed_<key> info columns)"
    )


class MetricsConfig(_Strict):
    """Metric sources by name (e.g. ``cloudwatch``, ``prometheus``). A metric no source names is delivered as it
    is (period = one step, no delay): the default, with no sources, is what every scenario saw before."""

    sources: dict[str, MetricSource] = Field(
        default_factory=dict, description="metric sources by name, each with period_seconds, delay_seconds, metrics"
    )

    @model_validator(mode="after")
    def _one_source_each(self) -> MetricsConfig:
        seen: dict[str, str] = {}
        for name, source in self.sources.items():
            for metric in source.metrics:
                if metric in seen:
                    raise ValueError(
                        f"metric {metric!r} is delivered by two sources ({seen[metric]!r} and {name!r}): "
                        "name it in one source's metrics"
                    )
                seen[metric] = name
        return self

    def timing(self, step_seconds: float) -> dict[str, tuple[float, float]]:
        """(period, delay) in seconds of every observable metric (fields.OBSERVED_NAMES)."""
        out = {m: (step_seconds, 0.0) for m in OBSERVED_NAMES}
        for source in self.sources.values():
            period = step_seconds if source.period_seconds is None else source.period_seconds
            for metric in source.metrics:
                out[metric] = (period, source.delay_seconds)
        return out


MAX_METRIC_HISTORY_STEPS = 100_000  # steps of per-step values the monitoring keeps per cluster (period + delay)


# --------------------------------------------------------------------------------------------- platform
class PlatformConfig(_Strict):
    """Request-driven serverless platform mode (issue 17; off by default). Sources in docs/model.md section 12.

    With ``enabled``, the platform starts an instance for a request that finds no free capacity (a cold start
    the request waits for), up to ``max_concurrency`` instances and a scaling rate of ``scale_rate_instances``
    new instances per ``scale_rate_period_seconds`` (a token bucket of ``scale_burst_instances``); past either
    limit the request is throttled (HTTP 429). Idle on-demand instances are reclaimed ``keep_alive_seconds``
    after their last request. The action changes the provisioned (pre-warmed) count, or with
    ``control = "keep_alive"`` the keep-alive."""

    enabled: bool = Field(False, description="request-driven platform mode (false: the pool the policy scales)")
    max_concurrency: int = Field(
        1000,
        ge=1,
        le=4096,
        description="most instances (execution environments) at once, the function's concurrency limit "
        "(Lambda's default account limit: 1,000); must not exceed scaling.max_instances",
    )
    scale_rate_instances: int = Field(
        1000, ge=1, le=1_000_000, description="new instances the platform may start per scale_rate_period_seconds"
    )
    scale_rate_period_seconds: float = Field(
        10.0, gt=0.0, le=86400.0, description="period of the scaling rate, s (Lambda: 1,000 per 10 s per function)"
    )
    scale_burst_instances: int | None = Field(
        None,
        ge=1,
        le=1_000_000,
        description="most new instances at once (the token bucket's size); null: scale_rate_instances (Lambda "
        "does not accrue unused scaling rate)",
    )
    keep_alive_seconds: float = Field(
        600.0,
        ge=0.0,
        le=86400.0,
        description="an idle on-demand instance is reclaimed this long after the step it last served in, s",
    )
    provisioned_gb_second_usd: float = Field(
        0.0000041667,
        ge=0.0,
        description="price per GB-second of provisioned capacity, charged whether used or not (Lambda x86 us-east-1)",
    )
    provisioned_duration_gb_second_usd: float = Field(
        0.0000097222,
        ge=0.0,
        description="price per GB-second of requests running on provisioned capacity (Lambda x86 us-east-1)",
    )
    initial_provisioned: int = Field(
        0, ge=0, le=4096, description="provisioned instances at reset (warm; clipped to scaling bounds)"
    )
    control: Literal["provisioned", "keep_alive"] = Field(
        "provisioned",
        description="what the action changes: the provisioned count (bounded by scaling.min/max_instances, with "
        "the scaling cooldowns) or the keep-alive (by scale_steps[a] * keep_alive_step_seconds)",
    )
    keep_alive_step_seconds: float = Field(
        60.0, gt=0.0, le=86400.0, description="keep-alive change per unit of scale_steps (control: keep_alive), s"
    )
    max_keep_alive_seconds: float = Field(
        3600.0, ge=0.0, le=86400.0, description="upper bound of the keep-alive the action can set, s"
    )
    activator: bool = Field(
        False,
        description="Knative's activator: requests that find no capacity and cannot start one are buffered "
        "(served when capacity frees) instead of throttled",
    )
    activator_capacity: int = Field(
        100, ge=0, le=1_000_000_000, description="requests the activator buffers at most; beyond it they are throttled"
    )

    @model_validator(mode="after")
    def _keep_alive_bound(self) -> PlatformConfig:
        if self.keep_alive_seconds > self.max_keep_alive_seconds:
            raise ValueError(
                f"keep_alive_seconds ({self.keep_alive_seconds}) must be <= max_keep_alive_seconds "
                f"({self.max_keep_alive_seconds})"
            )
        return self


# --------------------------------------------------------------------------------------------- root
class EnvConfig(_Strict):
    """All parameters of one simulated serverless service (defaults in one place)."""

    step_seconds: float = Field(15.0, gt=0.0, le=3600.0, description="decision interval, seconds")
    episode_steps: int = Field(240, ge=1, le=1_000_000, description="steps per episode (truncation)")
    workload: WorkloadConfig = Field(default_factory=WorkloadConfig)
    instances: InstanceConfig = Field(default_factory=InstanceConfig)
    scaling: ScalingConfig = Field(default_factory=ScalingConfig)
    load_balancer: LoadBalancerConfig = Field(default_factory=LoadBalancerConfig)
    failures: FailureConfig = Field(default_factory=FailureConfig)
    cost: CostConfig = Field(default_factory=CostConfig)
    reward: RewardConfig = Field(default_factory=RewardConfig)
    platform: PlatformConfig = Field(default_factory=PlatformConfig)
    observation: ObservationConfig = Field(default_factory=ObservationConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    # request-level backend (issue 16): which simulator steps the env
    simulator: Literal["fast", "request"] = Field(
        "fast",
        description="fast: the per-step fluid and stationary-queue model (docs/model.md); request: every request "
        "and instance event simulated at its exact time (scaling_env/sim/request, docs/fidelity.md)",
    )

    @model_validator(mode="after")
    def _cross_checks(self) -> EnvConfig:
        for name, source in self.metrics.sources.items():
            period = self.step_seconds if source.period_seconds is None else source.period_seconds
            reach = 2.0 * period + source.delay_seconds  # how far back the monitoring keeps step values
            if reach / self.step_seconds > MAX_METRIC_HISTORY_STEPS:
                raise ValueError(
                    f"metrics.sources.{name}: 2 * period_seconds + delay_seconds = {reach:g} s spans more than "
                    f"{MAX_METRIC_HISTORY_STEPS} steps of {self.step_seconds:g} s"
                )
        limit_mb = self.instances.instance_memory_gb * 1024.0
        if self.instances.memory_base_mb >= limit_mb:
            raise ValueError(
                f"instances.memory_base_mb ({self.instances.memory_base_mb}) must be below the limit "
                f"instances.instance_memory_gb * 1024 = {limit_mb}"
            )
        if self.platform.enabled:
            self._platform_checks()
        return self

    def _platform_checks(self) -> None:
        """What platform mode needs of the other sections (docs/model.md section 12)."""
        pf = self.platform
        if pf.max_concurrency > self.scaling.max_instances:
            raise ValueError(
                f"platform.max_concurrency ({pf.max_concurrency}) exceeds scaling.max_instances "
                f"({self.scaling.max_instances}): the simulator holds at most max_instances instances; raise "
                "scaling.max_instances or lower platform.max_concurrency"
            )
        f = self.failures
        if lowest(f.mtbf_seconds) is not None or f.outages:
            raise ValueError(
                "platform mode does not model instance failures: set failures.mtbf_seconds to null and "
                "failures.outages to []"
            )

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, source: str = "config") -> EnvConfig:
        """Validate a (nested) dict; errors name every field at fault and its allowed range."""
        try:
            return cls.model_validate(data or {})
        except ValidationError as exc:
            raise ConfigError(format_validation_error(exc, source)) from None

    @classmethod
    def from_yaml(cls, path: str | Path) -> EnvConfig:
        """Load a config from a YAML file (a mapping of the fields above; missing ones take defaults)."""
        return cls.from_dict(read_yaml_mapping(path), source=str(path))

    def with_updates(self, updates: dict[str, Any]) -> EnvConfig:
        """A new, validated config: this one with the nested ``updates`` merged in."""

        return EnvConfig.from_dict(deep_merge(self.model_dump(), updates))

    def for_version(self, version: int) -> EnvConfig:
        """This config with the observation of env version ``version`` where ``observation`` leaves it unset
        (``ServerlessScaling-v0``: 0, ``-v1``: 1). Version 0 returns the config itself: unset fields already mean
        the v0 observation, and a v0 env's config stays equal to the one it was made from."""
        observation = self.observation.resolved(version)
        if version == 0:
            return self
        return self.model_copy(update={"observation": observation})

    @classmethod
    def coerce(cls, config: EnvConfig | dict[str, Any] | str | Path | None) -> EnvConfig:
        """Accept a config, a dict, a YAML path or None (defaults)."""
        if config is None:
            return cls()
        if isinstance(config, EnvConfig):
            return config
        if isinstance(config, dict):
            return cls.from_dict(config)
        if isinstance(config, (str, Path)):
            return cls.from_yaml(config)
        raise ConfigError(f"config must be an EnvConfig, a dict or a YAML path, got {type(config).__name__}")


def deep_merge(base: dict[str, Any], over: dict[str, Any], replace: tuple[str, ...] = ()) -> dict[str, Any]:
    """``base`` with ``over`` merged in, recursively (the one merge of nested settings in the project).

    A mapping in ``over`` is merged into a mapping in ``base``; anything else replaces, and so does a mapping
    under a key in ``replace`` (e.g. ``("shape",)``: a new workload shape is not mixed with the old one's fields).
    Neither input is changed.
    """
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict) and k not in replace:
            out[k] = deep_merge(out[k], v, replace)
        else:
            out[k] = copy.deepcopy(v)
    return out


def has_ranges(model: BaseModel) -> bool:
    """Whether any field of ``model`` (recursively) holds a :class:`Range`."""
    for name in type(model).model_fields:
        v = getattr(model, name)
        items = v if isinstance(v, tuple) else (v,)
        for item in items:
            if isinstance(item, Range) or (isinstance(item, BaseModel) and has_ranges(item)):
                return True
    return False


def draw_ranges(model: Any, gen: np.random.Generator) -> Any:
    """``model`` with every :class:`Range` replaced by a value drawn uniformly from it, in field order (so the
    same generator state gives the same draws). Without ranges, the same object and no draws."""
    update: dict[str, Any] = {}
    for name in type(model).model_fields:
        v = getattr(model, name)
        if isinstance(v, Range):
            update[name] = float(gen.uniform(v.low, v.high))
        elif isinstance(v, BaseModel):
            new = draw_ranges(v, gen)
            if new is not v:
                update[name] = new
        elif isinstance(v, tuple) and v and isinstance(v[0], BaseModel):
            new_items = tuple(draw_ranges(item, gen) for item in v)
            if any(a is not b for a, b in zip(new_items, v)):
                update[name] = new_items
    return model.model_copy(update=update) if update else model


def read_yaml_mapping(path: str | Path, what: str = "config") -> dict[str, Any]:
    """The mapping a YAML file holds ({} for an empty file); errors name the file and say what is wrong."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read {what} file ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{path}: line {line}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x}); save the {what} file as UTF-8"
        ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of {what} fields, got {type(data).__name__}")
    return data


def format_validation_error(
    exc: ValidationError,
    source: str = "config",
    model: type[BaseModel] | None = None,
    unknown: str = "unknown key (not a field of this section)",
) -> str:
    """One line per fault: ``source: field.path: message (got value; allowed: range or choices)``; ``model``
    (default :class:`EnvConfig`) is where the allowed ranges are looked up."""
    model = EnvConfig if model is None else model
    lines = [f"invalid {source}:"]
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"] if p not in _TAGS) or "<root>"
        msg = unknown if err["type"] == "extra_forbidden" else err["msg"]
        got = err.get("input")
        extra = [] if isinstance(got, dict) else [f"got {got!r}"]
        allowed = allowed_values(model, err["loc"])
        if allowed:
            extra.append(f"allowed: {allowed}")
        lines.append(f"  {loc}: {msg}" + (f" ({'; '.join(extra)})" if extra else ""))
    return "\n".join(lines)


_SHAPES = {
    cls.model_fields["kind"].default: cls
    for cls in (ConstantWorkload, DiurnalWorkload, SpikeWorkload, RampWorkload, RandomWalkWorkload, TraceWorkload)
}
_TAGS = ("value", "range", "none")  # the tags of a value-or-range field's union (not field names)


def _annotation_parts(ann: Any) -> list[Any]:
    """An annotation and the types inside it, two levels deep (``tuple[X, ...] | None`` gives X)."""
    parts = [ann]
    for arg in getattr(ann, "__args__", ()):
        parts += [arg, *getattr(arg, "__args__", ())]
    return parts


def allowed_values(model: Any, loc: tuple) -> str | None:
    """The numeric bounds (e.g. '0 <= value <= 1000') or the choices of the field at ``loc`` of ``model``."""
    field = None
    for part in loc:
        if isinstance(part, int) or part in _TAGS or (field is not None and part in ("low", "high")):
            continue
        if part in _SHAPES and field is not None:
            model = _SHAPES[part]
            continue
        fields = getattr(model, "model_fields", None)
        if fields is None or part not in fields:
            return None
        field = fields[part]
        model = next(
            (a for a in _annotation_parts(field.annotation) if isinstance(a, type) and issubclass(a, BaseModel)), None
        )
    if field is None:
        return None
    ann = field.annotation
    if getattr(ann, "__origin__", None) is Literal:
        return " | ".join(repr(a) for a in ann.__args__)
    lo = hi = None
    for m in field.metadata:
        if getattr(m, "ge", None) is not None:
            lo = f"{m.ge} <= "
        if getattr(m, "gt", None) is not None:
            lo = f"{m.gt} < "
        if getattr(m, "le", None) is not None:
            hi = f" <= {m.le}"
        if getattr(m, "lt", None) is not None:
            hi = f" < {m.lt}"
    if lo is None and hi is None:
        return None
    return f"{lo or ''}value{hi or ''}"
