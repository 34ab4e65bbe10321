"""``threshold``: AWS simple scaling, one upper and one lower threshold with a fixed adjustment each."""

from __future__ import annotations

import numpy as np
from pydantic import Field, model_validator

from .base import Metric, Policy, PolicyParams, metric_values, stranded_demand


class ThresholdParams(PolicyParams):
    metric: Metric = Field("cpu", description="cpu | memory (0..1) | requests_per_instance (requests/s)")
    upper_threshold: float = Field(0.8, ge=0.0, description="scale out when the metric is >= this")
    lower_threshold: float = Field(0.3, ge=0.0, description="scale in when the metric is <= this")
    scale_out_adjustment: int = Field(2, ge=0, le=4096, description="instances added (ChangeInCapacity)")
    scale_in_adjustment: int = Field(-1, ge=-4096, le=0, description="instances removed (ChangeInCapacity, <= 0)")
    cooldown_seconds: float = Field(300.0, ge=0.0, description="no new activity this long after one, s")

    @model_validator(mode="after")
    def _order(self) -> ThresholdParams:
        if self.lower_threshold >= self.upper_threshold:
            raise ValueError(f"lower_threshold ({self.lower_threshold}) must be below upper_threshold "
                             f"({self.upper_threshold})")
        return self


class ThresholdPolicy(Policy):
    """Simple scaling (Amazon EC2 Auto Scaling "simple scaling policies"), as in the project's seed example:
    "add 2 instances when CPU utilisation reaches 80 %".

    Rule, at every decision (the env's step stands in for the alarm's evaluation period):

    - metric >= ``upper_threshold``: desired = current + ``scale_out_adjustment`` (default +2);
    - else metric <= ``lower_threshold``: desired = current + ``scale_in_adjustment`` (default -1);
    - and then no new activity, in either direction, for ``cooldown_seconds``.

    The cooldown is AWS's: "after a scaling activity is started, the policy must wait for the scaling activity
    or health check replacement to complete and the cooldown period to expire before responding to additional
    alarms"; the default cooldown (``DefaultCooldown``) is 300 s (Amazon EC2 Auto Scaling User Guide, "Step
    and simple scaling policies" and "Available warm-up and cooldown settings",
    https://docs.aws.amazon.com/autoscaling/ec2/userguide/as-scaling-simple-step.html). Here the cooldown
    starts at the decision that changed the desired count (the cold start of 2 s ends well within a step).
    The thresholds 0.8 / 0.3 and the -1 scale-in come from the seed's example policy; AWS has no defaults
    for them.

    Metrics: ``cpu`` (``info["cpu_utilization"]``), ``memory`` (``memory_utilization``) or
    ``requests_per_instance`` (arrivals per second per warm instance; thresholds in requests/s). If requests
    arrive with no instance warm or booting, the policy scales out (there is no utilisation to read).

    Action mapping: the desired count is reached with the nearest available ``scale_steps``
    (``agents.base.action_for_target``); with the default steps ``(-2..2)`` the +2 / -1 adjustments are
    single actions.
    """

    name = "threshold"
    Params = ThresholdParams

    def _allocate(self, num_envs: int) -> None:
        self.cooldown_until = np.zeros(num_envs)

    def _clear(self, mask: np.ndarray) -> None:
        self.cooldown_until[mask] = 0.0

    def _decide(self, obs, info, fresh, current, now) -> None:
        p = self.params
        m = metric_values(info, p.metric, self.dt)
        ready = ~fresh & (now >= self.cooldown_until)
        out = ready & ((m >= p.upper_threshold) | stranded_demand(info))
        inn = ready & ~out & (m <= p.lower_threshold)
        sc = self.env_config.scaling
        wanted = np.where(out, current + p.scale_out_adjustment, current + p.scale_in_adjustment)
        wanted = np.clip(wanted, sc.min_instances, sc.max_instances)
        acted = (out | inn) & (wanted != current)  # an adjustment the bounds cancel is no activity
        self.desired[acted] = wanted[acted]
        self.cooldown_until[acted] = now[acted] + p.cooldown_seconds
