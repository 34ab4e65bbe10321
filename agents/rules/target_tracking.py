"""``target_tracking``: AWS target tracking, keep a utilisation metric near a target value."""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field

from ..base import CapacityParams
from .base import RulePolicy
from .cloudwatch import Alarm, AlarmPair
from .metrics import METRIC_HELP, Metric, metric_limited, metric_values


class TargetTrackingParams(CapacityParams):
    metric: Metric = Field("cpu", description=METRIC_HELP)
    target_value: float = Field(0.5, gt=0.0, description="metric value to keep, in the metric's unit (0.5 = 50 %)")
    period_seconds: float = Field(60.0, gt=0.0, description="one data point per period, s")
    scale_out_datapoints: int = Field(3, ge=1, le=1440, description="breaching data points to scale out")
    scale_in_datapoints: int = Field(15, ge=1, le=1440, description="low data points to scale in")
    scale_in_ratio: float = Field(0.9, gt=0.0, le=1.0, description="scale-in alarm threshold / target_value")
    scale_in_cooldown_seconds: float = Field(300.0, ge=0.0, description="no scale-in this long after one, s")
    disable_scale_in: bool = Field(False, description="scale out only")

    _limits = metric_limited("target_value")


class TargetTrackingPolicy(RulePolicy):
    """AWS target tracking (Application Auto Scaling / Amazon EC2 Auto Scaling "target tracking scaling
    policies"), keeping ``metric`` near ``target_value``.

    AWS creates two CloudWatch alarms on 1-minute data points (``agents.rules.cloudwatch``): a high alarm, metric
    > target for 3 consecutive data points, and a low alarm, metric < about 90 % of the target for 15 data
    points ("3 datapoints within 3 minutes" / "15 datapoints within 15 minutes"; the user guide: capacity is
    removed "only when utilization passes a threshold that is far enough below the target value (usually more
    than 10% lower)"). While an alarm is in ALARM, at each data point:

        desired = ceil(current * metric / target)

    with the latest data point. Scale-out applies if it raises the desired count (during AWS's scale-out
    cooldown, capacity already added counts as part of the desired capacity, so only a larger scale-out
    applies: the same rule). Scale-in applies if it lowers it and no scale-in happened within
    ``scale_in_cooldown_seconds`` (default 300 s for ECS services and custom resources); a scale-out ends the
    scale-in cooldown. Rounding is conservative: up in both directions, so that "adding 1.5 instances" adds 2
    and "removing 1.5 instances" removes 1 (AWS user guides). Sources: Application Auto Scaling User Guide,
    "Target tracking scaling policies" (https://docs.aws.amazon.com/autoscaling/application/userguide/
    application-auto-scaling-target-tracking.html); Amazon EC2 Auto Scaling User Guide, same chapter; the
    alarm data-point counts as AWS configures them (e.g. aws/containers-roadmap#1208: "1 minute and 3 out of 3
    datapoints for scale out rule and 15 out of 15 for scale in").

    Default target 50 % CPU, the user guide's example ("you want the CPU utilization of the fleet to stay at
    around 50 percent"); AWS has no default target. AWS writes the target in percent (``TargetValue: 50``); here
    utilisations are fractions (``target_value: 0.5``), and a value above what the metric can reach (1 for cpu,
    2 for memory) is rejected.

    Action mapping: the desired count is reached with the nearest available ``scale_steps``
    (``agents.actions.action_for_target``). A coarser step that overshoots (a scale-out of +7 taken as +8) becomes
    the desired count, as if the policy had asked for it: it is not followed by a scale-in of 1.
    """

    name = "target_tracking"
    Params = TargetTrackingParams

    def _setup(self) -> None:
        p = self.params
        high = Alarm(p.target_value, ">", p.scale_out_datapoints)
        low = Alarm(p.scale_in_ratio * p.target_value, "<", p.scale_in_datapoints)
        self.alarms = self._per_cluster_part(AlarmPair(p.period_seconds, self.dt, high, low))
        self._per_cluster("in_until", 0.0)  # no scale-in before this time, s

    def _metric(self, info: dict[str, Any]) -> np.ndarray:
        """The tracked metric's values of this decision (a subclass may track another metric)."""
        return metric_values(info, self.params.metric, self.dt)

    def _decide(
        self, obs: np.ndarray, info: dict[str, Any], fresh: np.ndarray, current: np.ndarray, now: np.ndarray
    ) -> None:
        p = self.params
        high, low = self.alarms.update(self._metric(info), ~fresh)
        v = np.nan_to_num(self.alarms.last)
        wanted = np.ceil(current * v / p.target_value - 1e-9).astype(np.int64)  # 1e-9: 10 * 0.6 / 0.5 is 12
        out = high & (wanted > self.desired)
        self.desired[out] = wanted[out]
        self.in_until[out] = 0.0
        down = low & ~out & (wanted < self.desired) & (now >= self.in_until) & (not p.disable_scale_in)
        self.desired[down] = wanted[down]
        self.in_until[down] = now[down] + p.scale_in_cooldown_seconds
