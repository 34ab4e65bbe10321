"""Baselines for the serverless platform mode (``platform.enabled``; docs/model.md section 12), where the action
sets the provisioned (pre-warmed) count or the keep-alive:

- ``provisioned_tracking``: Application Auto Scaling target tracking on provisioned-concurrency utilisation;
- ``scheduled``: scheduled scaling of the provisioned count from a forecast, the workload's known daily shape;
- ``fixed_keep_alive`` and ``hybrid_histogram``: the keep-alive of idle instances, fixed or from the histogram of
  idle times (Shahrad et al., "Serverless in the Wild", USENIX ATC 2020), with ``platform.control: keep_alive``.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from scaling_env import EnvConfig
from scaling_env.config import ConstantWorkload, DiurnalWorkload, RampWorkload, SpikeWorkload
from scaling_env.fields import OBS_NAMES
from scaling_env.workload import EpisodeWorkload

from ..base import PolicyBase, PolicyParams, info_array
from .base import RulePolicy
from .target_tracking import TargetTrackingParams, TargetTrackingPolicy

_TOD_SIN, _TOD_COS = OBS_NAMES.index("time_of_day_sin"), OBS_NAMES.index("time_of_day_cos")


def runs_on(policy: PolicyBase, config: EnvConfig) -> bool:
    """Whether ``policy`` can control an env of ``config``: the platform baselines need platform mode with the
    control they set (``platform_control``); the other policies set an instance count, which in platform mode
    with ``control: provisioned`` is the provisioned count, and have nothing to set with ``control: keep_alive``."""
    pf = config.platform
    needs = getattr(policy, "platform_control", None)
    if needs is not None:
        return pf.enabled and pf.control == needs
    return not (pf.enabled and pf.control == "keep_alive")


def _require_platform(policy: PolicyBase, control: str) -> None:
    """A clear error when a platform baseline is run on an env it cannot control (checked at reset, so that
    the policy can be built, listed and validated against any config)."""
    pf = policy.env_config.platform
    if not pf.enabled or pf.control != control:
        raise ValueError(
            f"{policy.name} policy: needs an env with platform.enabled: true and platform.control: {control} "
            f"(got enabled={pf.enabled}, control={pf.control})"
        )


# ------------------------------------------------------------------------------------------ target tracking
class ProvisionedTrackingParams(TargetTrackingParams):
    metric: Literal["provisioned"] = Field(
        "provisioned", description="provisioned-concurrency utilisation (info provisioned_utilization)"
    )
    target_value: float = Field(0.7, gt=0.0, le=1.0, description="utilisation to keep (AWS's examples: 0.7)")


class ProvisionedTrackingPolicy(TargetTrackingPolicy):
    """Application Auto Scaling target tracking of Lambda provisioned concurrency: the scalable target is the
    provisioned count, the metric ``LambdaProvisionedConcurrencyUtilization`` (here ``info
    ["provisioned_utilization"]``: the share of the provisioned instances' concurrency in use), the target 0.7
    as in the AWS Lambda Developer Guide's example ("Configuring provisioned concurrency", Application Auto
    Scaling with ``TargetValue: 0.7``). The alarms, cooldown and rounding are ``target_tracking``'s (AWS creates
    the same pair of CloudWatch alarms for every target-tracking policy). With the utilisation capped at 1, a
    fleet whose on-demand instances take the overflow grows by at most ``1 / target`` per alarm."""

    name = "provisioned_tracking"
    Params = ProvisionedTrackingParams
    platform_control: ClassVar[str] = "provisioned"
    launch_on_demand = False  # the platform starts instances for requests itself

    def reset(self, seed: int | None = None, num_envs: int = 1) -> None:
        _require_platform(self, "provisioned")
        super().reset(seed, num_envs)

    def _metric(self, info: dict[str, Any]) -> np.ndarray:
        return info_array(info, "provisioned_utilization")


# ------------------------------------------------------------------------------------------ scheduled
class ScheduledParams(PolicyParams):
    target_utilization: float = Field(
        0.7, gt=0.0, le=1.0, description="provisioned utilisation the schedule plans for at the forecast rate"
    )
    slot_seconds: float = Field(300.0, gt=0.0, description="one scheduled action per slot of the day, s")
    lead_seconds: float = Field(
        60.0, ge=0.0, description="each slot's capacity is set this long before it starts (provisioning time), s"
    )


class ScheduledPolicy(RulePolicy):
    """Scheduled scaling (Application Auto Scaling scheduled actions) of the provisioned count from a forecast:
    the workload's known shape (the config's rate function with the episode scale 1: a daily cycle as a function
    of the clock, read from the observation's time of day so that a random phase is followed; a constant rate; a
    spike or a ramp at its known time after the episode start, as a planned event). The time is cut into slots of
    ``slot_seconds``; the action scheduled for a slot sets

        provisioned = ceil(peak forecast rate in the slot * service_seconds / (concurrency * target_utilization))

    (Little's law: the concurrency of the slot's peak, at the planned utilisation), due ``lead_seconds`` before the
    slot starts, and earlier by the time the env's scale steps (and scale-out cooldown) need to reach that count
    from the current one; the desired count is the largest of the actions due (the slot under way included)."""

    name = "scheduled"
    Params = ScheduledParams
    platform_control: ClassVar[str] = "provisioned"
    launch_on_demand = False

    def reset(self, seed: int | None = None, num_envs: int = 1) -> None:
        _require_platform(self, "provisioned")
        shape = self.env_config.workload.shape
        if not isinstance(shape, (DiurnalWorkload, ConstantWorkload, SpikeWorkload, RampWorkload)):
            raise ValueError(
                f"scheduled policy: the forecast is the workload's known shape (constant, diurnal, spike or ramp); "
                f"this env's workload is {shape.kind}"
            )
        # the rate function with the episode scale 1 (a random scale is not known in advance)
        self.shape = EpisodeWorkload(self.env_config, clock_start_seconds=0.0, scale=1.0, walk=None)
        super().reset(seed, num_envs)

    def forecast(self, clock: np.ndarray, t: np.ndarray) -> np.ndarray:
        """The forecast rate, requests/s, at clock times ``clock`` (diurnal) or ``t`` s after the episode start."""
        shape = self.env_config.workload.shape
        if isinstance(shape, DiurnalWorkload):
            return self.shape.rate(clock)  # (clock start 0: the rate at a clock time)
        return self.shape.rate(t)

    def _decide(
        self, obs: np.ndarray, info: dict[str, Any], fresh: np.ndarray, current: np.ndarray, now: np.ndarray
    ) -> None:
        p, env = self.params, self.env_config
        day = env.workload.day_seconds
        slot = p.slot_seconds
        clock = (np.arctan2(obs[:, _TOD_SIN], obs[:, _TOD_COS]) / (2.0 * np.pi) * day) % day
        # how fast the action can raise the count: max(scale_steps) per decision, or per scale-out cooldown
        max_up = max(max(env.scaling.scale_steps), 1)
        per_move = max(self.dt, math.ceil(env.scaling.scale_out_cooldown_seconds / self.dt - 1e-9) * self.dt)
        horizon = p.lead_seconds + math.ceil(env.scaling.max_instances / max_up) * per_move + slot
        ahead = np.arange(math.ceil(horizon / slot) + 1, dtype=np.float64) * slot  # the current slot and the next
        # slots are aligned to the clock for a daily cycle, to the episode start otherwise
        c0 = np.floor(clock / slot) * slot
        t0 = np.floor(now / slot) * slot
        offsets = np.linspace(0.0, slot * (1.0 - 1e-9), 17)  # [start, end): the end is the next slot's
        c = (c0[:, None, None] + ahead[None, :, None] + offsets[None, None, :]) % day
        t = t0[:, None, None] + ahead[None, :, None] + offsets[None, None, :]
        per_instance = env.instances.concurrency * p.target_utilization / env.instances.service_seconds
        counts = np.ceil(self.forecast(c, t).max(axis=2) / per_instance - 1e-9).astype(np.int64)  # (B, slots)
        np.clip(counts, env.scaling.min_instances, env.scaling.max_instances, out=counts)
        # a slot's scheduled action is due lead_seconds before it starts, earlier by the time the steps need to
        # reach its count from the current one
        if isinstance(env.workload.shape, DiurnalWorkload):
            until = ahead[None, :] - (clock - c0)[:, None]
        else:
            until = ahead[None, :] - (now - t0)[:, None]
        ramp = np.ceil(np.maximum(counts - current[:, None], 0) / max_up) * per_move
        due = until <= p.lead_seconds + ramp
        due[:, 0] = True  # the slot under way
        self.desired[:] = np.where(due, counts, 0).max(axis=1)


# ------------------------------------------------------------------------------------------ keep-alive
class FixedKeepAliveParams(PolicyParams):
    keep_alive_seconds: float = Field(600.0, ge=0.0, description="the keep-alive to hold, s")


class FixedKeepAlivePolicy(PolicyBase):
    """A fixed keep-alive (Shahrad et al.'s baseline: 10 minutes, as the providers' fixed policies of the time):
    steers the env's keep-alive (``platform.control: keep_alive``) to ``keep_alive_seconds`` and holds it."""

    name = "fixed_keep_alive"
    Params = FixedKeepAliveParams
    platform_control: ClassVar[str] = "keep_alive"

    def _setup(self) -> None:
        pf = self.env_config.platform
        self.steps = np.asarray(self.env_config.scaling.scale_steps, dtype=np.float64) * pf.keep_alive_step_seconds

    def reset(self, seed: int | None = None, num_envs: int = 1) -> None:
        _require_platform(self, "keep_alive")
        super().reset(seed, num_envs)

    def target(self, info: dict[str, Any]) -> np.ndarray:
        """The keep-alive wanted for each cluster, s."""
        return np.full(self.num_envs, self.params.keep_alive_seconds)

    def act_batch(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        self._batch_size(np.asarray(obs))
        wanted = self.target(info)
        current = info_array(info, "keep_alive_seconds")
        reached = np.clip(current[:, None] + self.steps[None, :], 0.0, self.env_config.platform.max_keep_alive_seconds)
        # the step that lands nearest to the wanted keep-alive (ties: the smaller change)
        cost = np.abs(reached - wanted[:, None]) + 1e-6 * np.abs(self.steps)[None, :]
        return np.argmin(cost, axis=1).astype(np.int64)


class HybridHistogramParams(PolicyParams):
    bin_seconds: float = Field(60.0, gt=0.0, description="width of a histogram bin (the paper: 1 minute), s")
    range_seconds: float = Field(14400.0, gt=0.0, description="longest idle time the histogram holds (4 h), s")
    tail_percentile: float = Field(99.0, gt=0.0, le=100.0, description="keep-alive: this percentile of idle times")
    margin: float = Field(0.10, ge=0.0, le=1.0, description="the keep-alive is lengthened by this share")
    min_samples: int = Field(3, ge=1, description="idle times needed before the histogram is used")
    cv_threshold: float = Field(2.0, ge=0.0, description="bin counts with a lower CV are not representative")
    fallback_seconds: float = Field(
        600.0, ge=0.0, description="keep-alive while the histogram is not representative (fixed policy), s"
    )


class HybridHistogramPolicy(FixedKeepAlivePolicy):
    """The hybrid histogram keep-alive policy of Shahrad et al., "Serverless in the Wild: Characterizing and
    Optimizing the Serverless Workload at a Large Cloud Provider" (USENIX ATC 2020), section 4.2: the idle times
    between invocations of an application go into a histogram of 1-minute bins over 4 hours; when it is
    representative (enough samples, and a coefficient of variation of the bin counts of at least 2), the
    keep-alive is the tail (99th percentile) of the idle times plus a 10 % margin; otherwise a standard fixed
    keep-alive is used. Here an idle time is the time from the end of a step with requests to the start of the
    next one (1 step of granularity); the paper's pre-warming (unload after the call, load again at the head
    percentile) has no counterpart, so the keep-alive window counts from the end of the execution; the paper's
    ARIMA fallback for idle times beyond the range is not modelled (the fixed keep-alive is used instead)."""

    name = "hybrid_histogram"
    Params = HybridHistogramParams  # type: ignore[assignment]

    def reset(self, seed: int | None = None, num_envs: int = 1) -> None:
        super().reset(seed, num_envs)
        p = self.params
        self.bins = np.zeros((self.num_envs, max(1, math.ceil(p.range_seconds / p.bin_seconds))), dtype=np.int64)
        self.idle = np.full(self.num_envs, -1.0)  # seconds idle since the last step with requests (-1: none yet)

    def target(self, info: dict[str, Any]) -> np.ndarray:
        p = self.params
        arrivals = info_array(info, "arrivals") if "arrivals" in info else np.zeros(self.num_envs)
        fresh = info_array(info, "time_s") == 0.0 if "time_s" in info else np.ones(self.num_envs, dtype=bool)
        self.idle[fresh] = -1.0  # a new episode in a cluster: its histogram is kept until the policy is reset
        busy = (arrivals > 0) & ~fresh
        ended = busy & (self.idle > 0.0)  # an idle period ended: record it
        if ended.any():
            b = np.minimum((self.idle[ended] // p.bin_seconds).astype(np.int64), self.bins.shape[1] - 1)
            self.bins[np.flatnonzero(ended), b] += 1
        self.idle[busy] = 0.0
        self.idle[~busy & (self.idle >= 0.0)] += self.dt
        out = np.full(self.num_envs, p.fallback_seconds)
        n = self.bins.sum(axis=1)
        mean = self.bins.mean(axis=1)
        cv = np.where(mean > 0, self.bins.std(axis=1) / np.maximum(mean, 1e-12), 0.0)
        ok = (n >= p.min_samples) & (cv >= p.cv_threshold)
        for b in np.flatnonzero(ok):
            cdf = np.cumsum(self.bins[b]) / n[b]
            tail_bin = int(np.searchsorted(cdf, p.tail_percentile / 100.0 - 1e-12))
            # the upper edge of the tail bin, lengthened by the margin (the paper rounds to whole minutes)
            out[b] = (tail_bin + 1) * p.bin_seconds * (1.0 + p.margin)
        return out
