"""``step_scaling``: AWS step scaling, step adjustments sized by how far the alarm metric breaches."""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from ..base import CapacityParams, PolicyParams, clip_counts
from .base import RulePolicy
from .cloudwatch import Alarm, AlarmPair
from .metrics import METRIC_HELP, Metric, check_metric_value, metric_values, steps_within

AdjustmentType = Literal["ChangeInCapacity", "ExactCapacity", "PercentChangeInCapacity"]


def aws_percent_adjustment(
    capacity: np.ndarray | float, percent: np.ndarray | float, min_adjustment_magnitude: int | None = None
) -> np.ndarray:
    """Instances to add (or remove, if negative) for ``PercentChangeInCapacity``, rounded as AWS does.

    AWS rounds the non-integer result ``capacity * percent / 100`` as follows: values greater than 1 are
    rounded down (12.7 -> 12), values between 0 and 1 are rounded to 1 (0.67 -> 1), values between 0 and -1
    to -1 (-0.58 -> -1) and values less than -1 are rounded up, towards 0 (-6.67 -> -6). With
    ``MinAdjustmentMagnitude`` the change is at least that many instances: "+25 % of 4 instances is 1, but
    with a MinAdjustmentMagnitude of 2, 2 instances are added" (Amazon EC2 Auto Scaling User Guide, "Step and
    simple scaling policies", section "Scaling adjustment types"). A 0 % step changes nothing.
    """
    raw = np.asarray(capacity, dtype=np.float64) * np.asarray(percent, dtype=np.float64) / 100.0
    eps = 1e-9  # 3.0000000001 from binary floating point is 3, not 3 rounded down from above
    out = np.where(
        raw > 1.0,
        np.floor(raw + eps),
        np.where(raw > 0.0, 1.0, np.where(raw < -1.0, np.ceil(raw - eps), np.where(raw < 0.0, -1.0, 0.0))),
    )
    if min_adjustment_magnitude:
        small = (np.asarray(percent) != 0) & (np.abs(out) < min_adjustment_magnitude)
        out = np.where(small, np.sign(percent) * min_adjustment_magnitude, out)
    return out.astype(np.int64)


class StepAdjustment(PolicyParams):
    """One step: the metric interval, relative to the alarm threshold, and its adjustment."""

    lower: float | None = Field(None, description="lower bound of (metric - threshold); null = -infinity")
    upper: float | None = Field(None, description="upper bound of (metric - threshold); null = +infinity")
    adjustment: float = Field(description="instances, percent, or the exact count (see adjustment_type)")


class AlarmPolicy(PolicyParams):
    """One alarm (metric >= or <= ``threshold`` for ``evaluation_periods`` data points) and its steps."""

    threshold: float = Field(description="alarm threshold, in the metric's unit (cpu, memory: 0.5 = 50 %)")
    evaluation_periods: int = Field(1, ge=1, le=1440, description="consecutive breaching data points to alarm")
    steps: tuple[StepAdjustment, ...] = Field(min_length=1, description="step adjustments, in any order")

    @model_validator(mode="after")
    def _contiguous(self) -> AlarmPolicy:
        # AWS's rules: the ranges can't overlap or have a gap; one null bound at each end at most
        lows = sorted(self.steps, key=lambda s: -math.inf if s.lower is None else s.lower)
        for a, b in zip(lows[:-1], lows[1:]):
            if a.upper is None or b.lower is None or a.upper != b.lower:
                raise ValueError(
                    f"steps must be contiguous without overlap or gap: [{a.lower}, {a.upper}) is "
                    f"followed by [{b.lower}, {b.upper})"
                )
        for s in self.steps:
            if s.lower is not None and s.upper is not None and s.lower >= s.upper:
                raise ValueError(f"step [{s.lower}, {s.upper}): lower must be below upper")
        return self


def _default_out() -> AlarmPolicy:
    # the example of the AWS user guide: alarm at 50 %; +10 % from 60 %, +30 % from 70 %
    return AlarmPolicy(
        threshold=0.5,
        steps=(
            StepAdjustment(lower=0.0, upper=0.1, adjustment=0),
            StepAdjustment(lower=0.1, upper=0.2, adjustment=10),
            StepAdjustment(lower=0.2, upper=None, adjustment=30),
        ),
    )


def _default_in() -> AlarmPolicy:
    # the same example: -10 % from 40 %, -30 % from 30 %
    return AlarmPolicy(
        threshold=0.5,
        steps=(
            StepAdjustment(lower=-0.1, upper=0.0, adjustment=0),
            StepAdjustment(lower=-0.2, upper=-0.1, adjustment=-10),
            StepAdjustment(lower=None, upper=-0.2, adjustment=-30),
        ),
    )


class StepScalingParams(CapacityParams):
    metric: Metric = Field("cpu", description=METRIC_HELP)
    adjustment_type: AdjustmentType = "PercentChangeInCapacity"
    min_adjustment_magnitude: int | None = Field(
        None, ge=1, le=4096, description="smallest change of a PercentChangeInCapacity step (null: none)"
    )
    period_seconds: float = Field(60.0, gt=0.0, description="alarm period: one data point per period, s")
    cooldown_seconds: float = Field(
        300.0,
        ge=0.0,
        description="instance warm-up / cooldown: capacity added within it counts as already "
        "there for the next scale-out, and no scale-in starts within it after a scale-out or a scale-in, s",
    )
    scale_out: AlarmPolicy | None = Field(default_factory=_default_out, description="null: never scale out")
    scale_in: AlarmPolicy | None = Field(default_factory=_default_in, description="null: never scale in")

    @model_validator(mode="after")
    def _sides(self) -> StepScalingParams:
        for name, side in (("scale_out", self.scale_out), ("scale_in", self.scale_in)):
            if side is None:
                continue
            check_metric_value(self.metric, f"{name}.threshold", side.threshold)
            for i, s in enumerate(side.steps):
                check_metric_value(self.metric, f"{name}.steps.{i}.lower", s.lower, relative=True)
                check_metric_value(self.metric, f"{name}.steps.{i}.upper", s.upper, relative=True)
        if self.scale_out is not None:
            for s in self.scale_out.steps:
                if (s.lower is not None and s.lower < 0) or (s.upper is not None and s.upper <= 0):
                    raise ValueError("scale_out steps must lie above the threshold (bounds >= 0)")
        if self.scale_in is not None:
            for s in self.scale_in.steps:
                if (s.upper is not None and s.upper > 0) or (s.lower is not None and s.lower >= 0):
                    raise ValueError("scale_in steps must lie below the threshold (bounds <= 0)")
        if self.adjustment_type == "ExactCapacity":
            for side in (self.scale_out, self.scale_in):
                if side is not None and any(s.adjustment < 0 for s in side.steps):
                    raise ValueError("ExactCapacity adjustments must be >= 0 (the instance count to set)")
        return self


class _Steps:
    """The step table of one alarm as arrays, for vectorised lookup."""

    def __init__(self, alarm: AlarmPolicy, above: bool) -> None:
        self.lower = np.array([-np.inf if s.lower is None else s.lower for s in alarm.steps])
        self.upper = np.array([np.inf if s.upper is None else s.upper for s in alarm.steps])
        self.adjustment = np.array([s.adjustment for s in alarm.steps], dtype=np.float64)
        self.above = above

    def lookup(self, breach: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(adjustment, found) for each breach size. Above the threshold the lower bound is inclusive and the
        upper exclusive; below it the lower bound is exclusive and the upper inclusive (AWS)."""
        b = np.round(breach, 9)[:, None]  # 0.6 - 0.5 is 0.1, not 0.09999999999999998
        if self.above:
            hit = (self.lower[None, :] <= b) & (b < self.upper[None, :])
        else:
            hit = (self.lower[None, :] < b) & (b <= self.upper[None, :])
        idx = np.argmax(hit, axis=1)
        return self.adjustment[idx], hit.any(axis=1)


class StepScalingPolicy(RulePolicy):
    """AWS step scaling (Amazon EC2 Auto Scaling / Application Auto Scaling "step scaling policies").

    A scale-out alarm fires when the metric's data point is >= ``scale_out.threshold`` for
    ``evaluation_periods`` consecutive periods (1-minute data points; ``agents.rules.cloudwatch``), a scale-in alarm
    when it is <= ``scale_in.threshold``. While an alarm is in ALARM the policy runs once per data point and
    applies the step whose interval holds ``metric - threshold`` (intervals relative to the threshold, lower
    bound inclusive above the threshold and exclusive below it). Adjustment types:

    - ``ChangeInCapacity``: add the step's value;
    - ``ExactCapacity``: set the count to the step's value;
    - ``PercentChangeInCapacity``: add that percentage of the capacity, rounded as AWS does and at least
      ``min_adjustment_magnitude`` (:func:`aws_percent_adjustment`).

    Warm-up and cooldown (``cooldown_seconds``, default 300 s): capacity added by a scale-out within the last
    ``cooldown_seconds`` is treated as already part of the desired capacity, so repeated alarms in the same step
    add nothing and a larger step adds only the difference. The AWS example: desired 10, +10 % at 60 % gives 11;
    at 62 % while the new instance warms up the policy still computes 10 + 1 = 11 and adds nothing; at 70 % it
    computes 10 + 30 % = 13 and adds 2. No scale-in starts while a scale-out is within its warm-up, nor within
    ``cooldown_seconds`` of a scale-in; a scale-out during a scale-in cooldown happens at once. Sources: Amazon
    EC2 Auto Scaling User Guide, "Step and simple scaling policies" (step adjustments, adjustment types and
    rounding, instance warm-up; https://docs.aws.amazon.com/autoscaling/ec2/userguide/as-scaling-simple-step.html);
    Application Auto Scaling API, ``StepScalingPolicyConfiguration.Cooldown`` (default 300 s); the estimated
    instance warm-up falls back to the default cooldown of 300 s ("Available warm-up and cooldown settings").

    Defaults: the user guide's example policy (alarm threshold 50 % CPU; +10 % from 60 %, +30 % from 70 %;
    -10 % from 40 %, -30 % from 30 %; PercentChangeInCapacity); ``evaluation_periods`` 1 (AWS has no default:
    CloudWatch requires one). AWS writes CPU thresholds and step bounds in percent (threshold 50, bounds 10 and
    20); here utilisations are fractions (0.5, 0.1, 0.2), and a threshold or bound larger than the metric can
    reach (1 for cpu, 2 for memory) is rejected. The adjustments of ``PercentChangeInCapacity`` stay in percent
    of the capacity, as in AWS.

    Action mapping: the desired count is reached with the nearest available ``scale_steps``
    (``agents.actions.action_for_target``), repeatedly when a step is larger than one action. A coarser step that
    overshoots a scale-out becomes the desired count, and its extra instances count as warming up like the
    rest of the scale-out.
    """

    name = "step_scaling"
    Params = StepScalingParams

    def _setup(self) -> None:
        p = self.params
        self.out_steps = None if p.scale_out is None else _Steps(p.scale_out, above=True)
        self.in_steps = None if p.scale_in is None else _Steps(p.scale_in, above=False)
        # a side that is null has no alarm: a threshold no data point reaches (its state is never read)
        out, inn = p.scale_out, p.scale_in
        high = Alarm(out.threshold, ">=", out.evaluation_periods) if out else Alarm(math.inf, ">=", 1)
        low = Alarm(inn.threshold, "<=", inn.evaluation_periods) if inn else Alarm(-math.inf, "<=", 1)
        self.alarms = self._per_cluster_part(AlarmPair(p.period_seconds, self.dt, high, low))
        # decisions within the cooldown: j * dt < cooldown for j = 1 .. ring-1
        self.ring = steps_within(p.cooldown_seconds, self.dt)
        self._per_cluster("added", 0, np.int64, width=self.ring)  # scale-out increases, by decision
        self._per_cluster("in_until", 0.0)  # no scale-in before this time, s

    def _new_capacity(self, base: np.ndarray, adjustment: np.ndarray) -> np.ndarray:
        """The desired count a step asks for, within the env's bounds (as AWS keeps min and max capacity)."""
        p = self.params
        if p.adjustment_type == "ExactCapacity":
            new = np.rint(adjustment).astype(np.int64)
        elif p.adjustment_type == "ChangeInCapacity":
            new = base + np.rint(adjustment).astype(np.int64)
        else:
            new = base + aws_percent_adjustment(base, adjustment, p.min_adjustment_magnitude)
        sc = self.env_config.scaling
        return clip_counts(new, self.min_count(), sc.max_instances)

    def _decide(
        self, obs: np.ndarray, info: dict[str, Any], fresh: np.ndarray, current: np.ndarray, now: np.ndarray
    ) -> None:
        p = self.params
        slot = self.decisions % self.ring
        rows = np.arange(self.num_envs)
        self.added[rows, slot] = 0  # this slot held the scale-out of `ring` decisions ago: out of the window
        recent = self.added.sum(axis=1)
        high, low = self.alarms.update(metric_values(info, p.metric, self.dt), ~fresh)
        v = self.alarms.last
        increase = np.zeros(self.num_envs, dtype=np.int64)
        out = np.zeros(self.num_envs, dtype=np.bool_)
        if self.out_steps is not None and high.any():  # (no alarm in ALARM: nothing changes)
            adj, found = self.out_steps.lookup(np.where(high, v - p.scale_out.threshold, 0.0))
            base = self.desired - recent  # capacity before the scale-outs still warming up
            new = np.where(high & found, self._new_capacity(base, adj), self.desired)
            out = new > self.desired
            increase = np.where(out, new - self.desired, 0)
            self.desired[out] = new[out]
            self.in_until[out] = 0.0  # a scale-out ends a scale-in cooldown
        allowed = low & ~out & (recent == 0) & (now >= self.in_until)
        if self.in_steps is not None and allowed.any():
            adj, found = self.in_steps.lookup(np.where(allowed, v - p.scale_in.threshold, 0.0))
            new = np.where(allowed & found, self._new_capacity(self.desired, adj), self.desired)
            down = new < self.desired
            self.desired[down] = new[down]
            self.in_until[down] = now[down] + p.cooldown_seconds
        self.added[rows, slot] = increase

    def _rounded(self, delta: np.ndarray) -> None:
        # a coarser step added more than the scale-out asked for: the extra instances warm up with it
        self.added[np.arange(self.num_envs), self.decisions % self.ring] += np.maximum(delta, 0)
