"""CloudWatch-style metric data points and alarms, shared by the AWS policies (simple, step and target tracking).

A data point is the mean (CloudWatch statistic ``Average``) of the per-step metric over one alarm period
(``period_seconds``, 60 s for the 1-minute metrics AWS recommends). With the env's 15 s steps a period is 4
decisions: the data point of the first minute completes at the decision at t = 60 s (it averages the info of
the steps that ended at 15, 30, 45 and 60 s). A period that is not a whole number of steps is rounded to the
nearest (at least one step).

An alarm is in ALARM when its last ``n`` data points all breach. Alarms that drive Auto Scaling actions keep
invoking the action while they stay in ALARM: "an alarm invokes an Auto Scaling action once each minute when
the alarm remains in a new state" (AWS Knowledge Center, "Why doesn't my CloudWatch alarm's state change invoke
my Amazon EC2 Auto Scaling policy?", https://repost.aws/knowledge-center/autoscaling-policy-cloudwatch-alarm).
With 1-minute data points the policies therefore act at every completed data point of an alarm in ALARM.

Each of these policies watches one metric with two alarms, a high one that scales out and a low one that scales
in (:class:`AlarmPair`); an alarm compares each data point with its threshold (CloudWatch's
``ComparisonOperator``: ``>=`` GreaterThanOrEqualToThreshold, ``>`` GreaterThanThreshold, ``<=``, ``<``).
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Literal

import numpy as np

from .metrics import steps_per

Comparison = Literal[">=", ">", "<=", "<"]
_COMPARE: dict[str, Callable[[np.ndarray, float], np.ndarray]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
}


class DataPoints:
    """Per-cluster running mean of a metric, emitted as one data point every ``period_seconds``."""

    def __init__(self, period_seconds: float, step_seconds: float) -> None:
        self.period_steps = steps_per(period_seconds, step_seconds)
        self.sum = np.zeros(0)
        self.count = np.zeros(0, dtype=np.int64)
        self.last = np.zeros(0)  # the latest completed data point

    def allocate(self, num_envs: int) -> None:
        self.sum = np.zeros(num_envs)
        self.count = np.zeros(num_envs, dtype=np.int64)
        self.last = np.full(num_envs, np.nan)

    def clear(self, mask: np.ndarray) -> None:
        self.sum[mask] = 0.0
        self.count[mask] = 0
        self.last[mask] = np.nan

    def add(self, values: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """Add this step's metric where ``valid``; returns the mask of clusters whose data point completed
        (its value is then in ``self.last``)."""
        self.sum[valid] += values[valid]
        self.count[valid] += 1
        done = valid & (self.count >= self.period_steps)
        # rounded to 1e-9 so that e.g. the mean of four 0.6 compares as 0.6 with thresholds and step bounds
        self.last[done] = np.round(self.sum[done] / self.count[done], 9)
        self.sum[done] = 0.0
        self.count[done] = 0
        return done


class Alarm:
    """One alarm: a data point breaches when ``value <comparison> threshold``; the alarm is in ALARM after
    ``datapoints`` consecutive breaching data points. Per cluster."""

    def __init__(self, threshold: float, comparison: Comparison, datapoints: int) -> None:
        self.threshold = threshold
        self.compare = _COMPARE[comparison]
        self.datapoints = datapoints
        self.streak = np.zeros(0, dtype=np.int64)

    def allocate(self, num_envs: int) -> None:
        self.streak = np.zeros(num_envs, dtype=np.int64)

    def clear(self, mask: np.ndarray) -> None:
        self.streak[mask] = 0

    def update(self, done: np.ndarray, value: np.ndarray) -> np.ndarray:
        """Record the data points that completed (``done``; ``value`` the latest data points); returns the
        clusters whose alarm is in ALARM at this data point (the policy acts on them)."""
        breaching = self.compare(value, self.threshold)
        self.streak[done & breaching] += 1
        self.streak[done & ~breaching] = 0
        return done & (self.streak >= self.datapoints)


class AlarmPair:
    """The data points of one metric and its two alarms: ``high`` (scale out) and ``low`` (scale in)."""

    def __init__(self, period_seconds: float, step_seconds: float, high: Alarm, low: Alarm) -> None:
        self.points = DataPoints(period_seconds, step_seconds)
        self.high = high
        self.low = low

    @property
    def last(self) -> np.ndarray:
        """(B,) the latest completed data point of each cluster (NaN before the first)."""
        return self.points.last

    def allocate(self, num_envs: int) -> None:
        self.points.allocate(num_envs)
        self.high.allocate(num_envs)
        self.low.allocate(num_envs)

    def clear(self, mask: np.ndarray) -> None:
        self.points.clear(mask)
        self.high.clear(mask)
        self.low.clear(mask)

    def update(self, values: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Add this step's metric where ``valid``; returns the clusters whose high and whose low alarm is in
        ALARM at a data point completed now (each (B,) bool)."""
        done = self.points.add(values, valid)
        return self.high.update(done, self.last), self.low.update(done, self.last)
