"""``threshold``: AWS simple scaling, one upper and one lower threshold with a fixed adjustment each."""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field, model_validator

from ..actions import action_for_target, counts_reached
from ..base import CapacityParams, clip_counts, info_array
from .base import RulePolicy
from .cloudwatch import Alarm, AlarmPair
from .metrics import METRIC_HELP, Metric, metric_limited, metric_values, stranded_demand


class ThresholdParams(CapacityParams):
    metric: Metric = Field("cpu", description=METRIC_HELP)
    upper_threshold: float = Field(0.8, ge=0.0, description="scale out when the data point is >= this (0.8 = 80 %)")
    lower_threshold: float = Field(0.3, ge=0.0, description="scale in when the data point is <= this (0.3 = 30 %)")
    scale_out_adjustment: int = Field(2, ge=0, le=4096, description="instances added (ChangeInCapacity)")
    scale_in_adjustment: int = Field(-1, ge=-4096, le=0, description="instances removed (ChangeInCapacity, <= 0)")
    cooldown_seconds: float = Field(300.0, ge=0.0, description="no new activity this long after one completes, s")
    period_seconds: float = Field(60.0, gt=0.0, description="alarm period: one data point per period, s")
    evaluation_periods: int = Field(1, ge=1, le=1440, description="consecutive breaching data points to alarm")

    _limits = metric_limited("upper_threshold", "lower_threshold")

    @model_validator(mode="after")
    def _order(self) -> ThresholdParams:
        if self.lower_threshold >= self.upper_threshold:
            raise ValueError(
                f"lower_threshold ({self.lower_threshold}) must be below upper_threshold ({self.upper_threshold})"
            )
        return self


class ThresholdPolicy(RulePolicy):
    """Simple scaling (Amazon EC2 Auto Scaling "simple scaling policies"), as in the project's seed example:
    "add 2 instances when CPU utilisation reaches 80 %".

    A simple scaling policy is invoked by a CloudWatch alarm, as a step scaling policy is (``agents.rules.cloudwatch``):
    the metric is averaged into one data point per ``period_seconds`` (60 s: 4 decisions of 15 s), and an alarm
    is in ALARM when its last ``evaluation_periods`` data points all breach. So a single 15 s sample does not
    scale. Rule, at each completed data point:

    - high alarm (data point >= ``upper_threshold``) in ALARM: desired = current + ``scale_out_adjustment``
      (default +2);
    - else low alarm (data point <= ``lower_threshold``) in ALARM: desired = current + ``scale_in_adjustment``
      (default -1);
    - unless a scaling activity is still in progress or its cooldown has not expired.

    An alarm in ALARM invokes its policy again at every data point (``agents.rules.cloudwatch``), and "after a scaling
    activity is started, the policy must wait for the scaling activity or health check replacement to complete
    and the cooldown period to expire before responding to additional alarms"; the default cooldown
    (``DefaultCooldown``) is 300 s (Amazon EC2 Auto Scaling User Guide, "Step and simple scaling policies" and
    "Available warm-up and cooldown settings",
    https://docs.aws.amazon.com/autoscaling/ec2/userguide/as-scaling-simple-step.html). Here the activity is
    complete once the controlled count equals the desired one (or no available step gets nearer to it) and no
    instance is booting (the new instances, and any health-check replacement, are warm). With the default 2 s
    cold start that is within the step the action is applied in; cold_start_heavy's cold starts of 31 to 59 s
    take 3 to 4 steps, and the cooldown only starts after them. The policy sees the activity complete at the
    first decision whose info shows it so, and counts the cooldown from the start of the step before that
    decision (within one step of the true completion time).

    Alarm defaults: 1-minute data points and 1 evaluation period. AWS has no default for either: the user
    guide's console procedure for a scaling alarm says "For Period, choose the evaluation period for the alarm,
    for example, 1 minute" and has the number of data points entered (Amazon EC2 Auto Scaling User Guide,
    "Create a step scaling policy for scale out", https://docs.aws.amazon.com/autoscaling/ec2/userguide/
    step-scaling-create-scale-out-policy.html; simple scaling policies use the same alarms), CloudWatch's
    ``PutMetricAlarm`` requires ``EvaluationPeriods``, and the AWS CDK creates the alarms of its Auto Scaling
    step policies with 1 evaluation period unless told otherwise (``@aws-cdk/aws-autoscaling``,
    ``lib/step-scaling-policy.ts``: ``evaluationPeriods ?? 1``, "@default 1"). The 60 s period is the user
    guide's example and the 1-minute data points that ``step_scaling`` and ``target_tracking`` use too. The
    thresholds 0.8 / 0.3 and the -1 scale-in come from the seed's example policy; AWS has no defaults for them.

    Metrics, as the monitoring delivers them (``metrics.read_metric``): ``cpu``
    (``info["observed_cpu_utilization"]``), ``memory`` (``observed_memory_utilization``) or
    ``requests_per_instance`` (arrivals per second per warm instance; thresholds in requests/s). AWS writes CPU
    thresholds in percent (80); here utilisations are fractions (0.8), and a threshold above what the metric can
    reach (1 for cpu, 2 for memory) is rejected. If requests arrive with no instance warm or booting, the policy
    scales out at once, without waiting for a data point (there is no utilisation to read).

    Action mapping: the desired count is reached with the nearest available ``scale_steps``
    (``agents.actions.action_for_target``); with the default steps ``(-2..2)`` the +2 / -1 adjustments are
    single actions. A coarser step that overshoots becomes the desired count (the activity then completes at
    that count).
    """

    name = "threshold"
    Params = ThresholdParams

    def _setup(self) -> None:
        p = self.params
        high = Alarm(p.upper_threshold, ">=", p.evaluation_periods)
        low = Alarm(p.lower_threshold, "<=", p.evaluation_periods)
        self.alarms = self._per_cluster_part(AlarmPair(p.period_seconds, self.dt, high, low))
        self._per_cluster("active", False, np.bool_)  # a scaling activity is in progress
        self._per_cluster("cooldown_until", 0.0)

    def _decide(
        self, obs: np.ndarray, info: dict[str, Any], fresh: np.ndarray, current: np.ndarray, now: np.ndarray
    ) -> None:
        p = self.params
        # a scaling activity completes when the count is the desired one (or no step gets nearer) and nothing
        # is booting any more
        sc = self.env_config.scaling
        toward = action_for_target(self.desired, current, self.env_config, floor=self.min_count())
        reached = counts_reached(current, self.env_config, toward) == current
        booting = info_array(info, "instances_booting") > 0
        done = self.active & ~fresh & reached & ~booting
        self.cooldown_until[done] = now[done] - self.dt + p.cooldown_seconds
        self.active[done] = False
        ready = ~fresh & ~self.active & (now >= self.cooldown_until)
        high, low = self.alarms.update(metric_values(info, p.metric, self.dt), ~fresh)
        out = ready & (high | stranded_demand(info))
        inn = ready & ~out & low
        wanted = np.where(out, current + p.scale_out_adjustment, current + p.scale_in_adjustment)
        wanted = clip_counts(wanted, self.min_count(), sc.max_instances)
        acted = (out | inn) & (wanted != current)  # an adjustment the bounds cancel is no activity
        self.desired[acted] = wanted[acted]
        self.active[acted] = True
