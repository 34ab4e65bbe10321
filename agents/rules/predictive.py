"""``predictive``: forecast the request rate and provision for it ahead of the cold start."""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field

from ..base import CapacityParams
from .base import RulePolicy
from .metrics import read_metric, steps_within


class PredictiveParams(CapacityParams):
    target_utilization: float = Field(0.7, gt=0.0, le=1.0, description="planned load / capacity of the fleet")
    alpha: float = Field(0.5, gt=0.0, le=1.0, description="Holt level smoothing")
    beta: float = Field(0.2, ge=0.0, le=1.0, description="Holt trend smoothing")
    phi: float = Field(0.95, gt=0.0, le=1.0, description="trend damping (1 = Holt's linear trend)")
    buffer_seconds: float = Field(
        0.0, ge=0.0, le=3600.0, description="extra look-ahead, s (AWS 'pre-launch instances' buffer)"
    )


class PredictivePolicy(RulePolicy):
    """Predictive scaling: forecast the request rate from the history seen so far and provision capacity for
    it ahead of time, as AWS predictive scaling does ("launching capacity in advance of forecasted load", with a
    target utilisation for the capacity it plans; Amazon EC2 Auto Scaling User Guide, "Predictive scaling",
    https://docs.aws.amazon.com/autoscaling/ec2/userguide/ec2-auto-scaling-predictive-scaling.html).

    AWS's product learns daily and weekly patterns from at least 24 hours of history. A policy here is reset with
    every episode, and an episode is at most one simulated day, so no season has been seen before; the forecast
    is therefore Holt's damped-trend exponential smoothing of the observed rate ``y = arrivals / step_seconds``
    (E. S. Gardner & E. McKenzie, "Forecasting trends in time series", Management Science 31(10), 1985;
    Hyndman & Athanasopoulos, "Forecasting: Principles and Practice", 3rd ed., section 8.2):

        level  l = alpha * y + (1 - alpha) * (l' + phi * b')
        trend  b = beta * (l - l') + (1 - beta) * phi * b'
        forecast h steps ahead = l + (phi + phi^2 + ... + phi^h) * b

    The count chosen now serves until capacity launched at the next possible scale-out is warm: the env's
    ``scale_out_cooldown_seconds`` plus the longest cold start ``cold_start_seconds * (1 + cold_start_jitter)``
    plus ``buffer_seconds``, i.e. ``horizon_steps`` steps (h = 1 is the step being decided, one after the step the
    latest info describes). The policy provisions for the highest forecast over them, plus the step's backlog:

        demand  = max_h forecast(h) + backlog / step_seconds                       (requests/s)
        desired = ceil(demand / (target_utilization * concurrency / service_seconds))

    It scales in too when the forecast falls (AWS pairs predictive scaling with a dynamic policy for that).
    ``target_utilization`` 0.7 is the CPU target of the user guide's example policy (``TargetValue: 70``); the
    smoothing constants are this project's choice (no published default applies).

    Action mapping: the desired count is reached with the nearest available ``scale_steps``
    (``agents.actions.action_for_target``).
    """

    name = "predictive"
    Params = PredictiveParams

    def _setup(self) -> None:
        p = self.params
        ins = self.env_config.instances
        lead = (
            self.env_config.scaling.scale_out_cooldown_seconds
            + ins.cold_start_seconds * (1.0 + ins.cold_start_jitter)
            + p.buffer_seconds
        )
        self.horizon_steps = steps_within(lead, self.dt)
        self.capacity_rps = ins.concurrency / ins.service_seconds  # one instance at 100 % utilisation
        h = np.arange(1, self.horizon_steps + 1)
        self.damp = np.cumsum(p.phi**h)  # phi + ... + phi^h for h = 1..H
        self._per_cluster("level", 0.0)  # Holt's level and trend of the rate, requests/s
        self._per_cluster("trend", 0.0)
        self._per_cluster("seen", False, np.bool_)  # a rate has been observed since the reset

    def forecast(self) -> np.ndarray:
        """(B, horizon_steps) forecast rates, requests/s, for h = 1..H steps after the latest observation."""
        return self.level[:, None] + self.damp[None, :] * self.trend[:, None]

    def _decide(
        self, obs: np.ndarray, info: dict[str, Any], fresh: np.ndarray, current: np.ndarray, now: np.ndarray
    ) -> None:
        p = self.params
        data = ~fresh
        y = read_metric(info, "arrivals") / self.dt
        first = data & ~self.seen
        later = data & self.seen
        self.level[first] = y[first]
        self.trend[first] = 0.0
        prev = self.level.copy()
        level = p.alpha * y + (1.0 - p.alpha) * (prev + p.phi * self.trend)
        trend = p.beta * (level - prev) + (1.0 - p.beta) * p.phi * self.trend
        self.level = np.where(later, level, self.level)
        self.trend = np.where(later, trend, self.trend)
        self.seen |= data
        demand = np.maximum(self.forecast().max(axis=1), 0.0) + read_metric(info, "backlog") / self.dt
        wanted = np.ceil(demand / (p.target_utilization * self.capacity_rps) - 1e-9).astype(np.int64)
        self.desired[data] = wanted[data]
