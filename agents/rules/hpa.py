"""``hpa``: the Kubernetes Horizontal Pod Autoscaler (autoscaling/v2, default behaviour)."""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field

from ..base import CapacityParams, info_array
from .base import RulePolicy
from .metrics import METRIC_HELP, Metric, metric_limited, metric_values, steps_within


class HpaParams(CapacityParams):
    metric: Metric = Field("cpu", description=METRIC_HELP)
    target: float = Field(0.8, gt=0.0, description="target average of the metric per ready pod (0.8 = 80 %)")
    tolerance: float = Field(0.1, ge=0.0, lt=1.0, description="no change while |metric/target - 1| <= this")
    scale_down_stabilization_seconds: float = Field(
        300.0, ge=0.0, le=3600.0, description="scale down to the highest recommendation of this window, s"
    )
    scale_up_stabilization_seconds: float = Field(
        0.0, ge=0.0, le=3600.0, description="scale up to the lowest recommendation of this window, s"
    )
    scale_up_pods: int = Field(4, ge=0, le=4096, description="scale-up policy 'Pods': pods added per period")
    scale_up_percent: float = Field(100.0, ge=0.0, description="scale-up policy 'Percent': % added per period")
    scale_up_period_seconds: float = Field(15.0, gt=0.0, le=1800.0, description="period of the scale-up policies")
    scale_down_percent: float = Field(100.0, ge=0.0, le=100.0, description="scale-down policy: % removed per period")
    scale_down_period_seconds: float = Field(15.0, gt=0.0, le=1800.0, description="period of the scale-down policy")

    _limits = metric_limited("target")


class HpaPolicy(RulePolicy):
    """The Kubernetes Horizontal Pod Autoscaler with its default behaviour.

    Every sync (the env's step, 15 s, is the default ``--horizontal-pod-autoscaler-sync-period``):

    1. ``ratio = metric / target`` with the metric averaged over the ready pods (``cpu_utilization``; target
       0.8 = 80 %, the default when an HPA names no metric; written as a fraction, like the metric). Booting
       instances are the not-yet-ready pods; crashed, not yet detected instances (``instances_failed``) are the
       pods with missing metrics.
    2. Without booting or missing pods to account for: within the tolerance (``|ratio - 1| <= 0.1``,
       ``--horizontal-pod-autoscaler-tolerance``) nothing changes, otherwise ``desired = ceil(ready * ratio)``.
       Otherwise the metrics are rebalanced as ``GetResourceReplicas`` in Kubernetes'
       ``pkg/controller/podautoscaler/replica_calculator.go`` does: on a scale-down (ratio < 1) each missing pod
       counts as using 100 % of its request (utilisation 1, or the target if that is higher; for the
       ``requests_per_instance`` pods metric, ``calcPlainMetricReplicas``, the target), on a scale-up (ratio > 1)
       as using 0; if the ratio says scale up while pods are still booting, those count as using 0 too ("unready
       pods not counted", dampening scale-ups). The ratio is recomputed over all the pods counted, and nothing
       changes if it is within the tolerance, if it points the other way than the first one, or if
       ``ceil(pods * ratio)`` moves the count against it. Example, target 0.8: 10 ready pods at CPU 0.5 and 2
       missing give 7 without the missing pods, but (10 x 0.5 + 2 x 1) / 12 = 0.58, ratio 0.73, 9 with them;
       at CPU 1.0 the raw ratio 1.25 gives 13, but (10 x 1.0 + 2 x 0) / 12 = 0.83 is within the tolerance of the
       target: the count holds at 12.
    3. Scale-down stabilisation: the count used is the highest recommendation of the last 300 s (the HPA's
       current count at its start counts as one), so a drop takes effect only once every recommendation of the
       last 5 minutes agrees. Scale-up stabilisation window: 0 s.
    4. Rate limits of the default ``behavior``: up by at most ``max(+4 pods, +100 %)`` of the count at the start
       of each 15 s period (``selectPolicy: Max``); down by up to 100 % per 15 s (no limit). A count already
       beyond a limit holds (``convertDesiredReplicasWithBehaviorRate`` in ``horizontal.go``).

    Sources: Kubernetes documentation, "Horizontal Pod Autoscaling" (algorithm details, tolerance, not-ready
    pods, stabilisation window, default behavior; https://kubernetes.io/docs/tasks/run-application/
    horizontal-pod-autoscale/), and the autoscaling/v2 API reference (``HPAScalingRules``: "For scale up:
    allow doubling the number of pods, or an absolute change of 4 pods in a 15s window"; scale down: 300 s
    stabilisation). ``minReplicas``/``maxReplicas`` are the env's bounds. The HPA cannot scale from 0 pods on a
    utilisation metric; when requests arrive with nothing warm or booting one instance is launched
    (``agents.rules.base.RulePolicy.launch_on_demand``).

    Action mapping: the desired count is reached with the nearest available ``scale_steps``
    (``agents.actions.action_for_target``); with the default steps ``(-2..2)`` a larger change takes several
    decisions (and the env's cooldowns). When a coarser step overshoots a scale-up (+7 taken as +8), the count
    reached is the decision: it enters the scale-down stabilisation window as this sync's recommendation, so the
    HPA does not scale down to the count it first asked for within the window.
    """

    name = "hpa"
    Params = HpaParams

    def _setup(self) -> None:
        p = self.params
        self.down_window = steps_within(p.scale_down_stabilization_seconds, self.dt)
        self.up_window = steps_within(p.scale_up_stabilization_seconds, self.dt)
        self.rec_len = max(self.down_window, self.up_window)
        # scale events j decisions back (j >= 1) lie within a period if j * dt < period
        self.up_period = steps_within(p.scale_up_period_seconds, self.dt)
        self.down_period = steps_within(p.scale_down_period_seconds, self.dt)
        self.event_len = max(self.up_period, self.down_period)
        # what a missing pod counts as on a scale-down: 100 % of its request (utilisation 1), or the target if
        # higher, for a resource metric (cpu, memory); the target for a pods metric (requests per instance)
        self.fallback = max(1.0, p.target) if p.metric in ("cpu", "memory") else p.target
        self._per_cluster("recs", -1, np.int64, width=self.rec_len)  # recommendations, newest first (-1: none)
        self._per_cluster("events", 0, np.int64, width=self.event_len)  # changes made, newest first

    def recommend(
        self, value: np.ndarray, ready: np.ndarray, unready: np.ndarray, missing: np.ndarray, current: np.ndarray
    ) -> np.ndarray:
        """The replica calculator's recommendation (step 2 of the class docstring), per cluster: ``value`` the
        metric averaged over the ``ready`` pods, ``unready`` the booting pods, ``missing`` the pods without a
        metric (crashed, not yet detected), ``current`` the replica count."""
        p = self.params
        ready = np.asarray(ready, dtype=np.float64)
        unready = np.asarray(unready, dtype=np.float64)
        missing = np.asarray(missing, dtype=np.float64)
        current = np.asarray(current, dtype=np.int64)
        value = np.asarray(value, dtype=np.float64)
        ratio = value / p.target
        up_unready = (unready > 0) & (ratio > 1.0)
        # no pod to rebalance: the ratio over the ready pods decides
        plain = np.where(np.abs(ratio - 1.0) <= p.tolerance, current, np.ceil(ready * ratio - 1e-9))
        # rebalanced: missing pods at the fallback on a scale-down and at 0 on a scale-up, booting pods at 0 on a
        # scale-up; then the ratio over all the pods counted, held if within the tolerance or if the direction
        # (of the ratio, or of the count it gives) flips
        down_missing = (missing > 0) & (ratio < 1.0)
        up_missing = (missing > 0) & (ratio > 1.0)
        usage = value * ready + np.where(down_missing, missing * self.fallback, 0.0)
        pods = ready + np.where(down_missing | up_missing, missing, 0.0) + np.where(up_unready, unready, 0.0)
        ratio2 = usage / np.maximum(pods, 1.0) / p.target
        rec2 = np.ceil(pods * ratio2 - 1e-9)
        hold = (
            (np.abs(ratio2 - 1.0) <= p.tolerance)
            | ((ratio < 1.0) & (ratio2 > 1.0))
            | ((ratio > 1.0) & (ratio2 < 1.0))
            | ((ratio2 < 1.0) & (rec2 > current))
            | ((ratio2 > 1.0) & (rec2 < current))
        )
        rebalanced = np.where(hold, current, rec2)
        rec = np.where(up_unready | (missing > 0), rebalanced, plain)
        return np.where(ready > 0, rec, current).astype(np.int64)  # no ready pod: no metric, no change

    def _decide(
        self, obs: np.ndarray, info: dict[str, Any], fresh: np.ndarray, current: np.ndarray, now: np.ndarray
    ) -> None:
        p = self.params
        ready = np.rint(info_array(info, "instances_warm")).astype(np.int64)
        unready = np.rint(info_array(info, "instances_booting")).astype(np.int64)
        missing = np.rint(info_array(info, "instances_failed")).astype(np.int64)
        # 1-2. the raw recommendation
        rec = self.recommend(metric_values(info, p.metric, self.dt), ready, unready, missing, current)
        # a fresh cluster has no metrics; its window starts with the current count (as the HPA's does)
        rec = np.where(fresh, current, rec)
        # 3. stabilisation over the recommendations of the windows (newest first, -1 = none)
        self.recs[:, 1:] = self.recs[:, :-1]
        self.recs[:, 0] = rec
        down_max = self.recs[:, : self.down_window].max(axis=1)
        upw = self.recs[:, : self.up_window]
        up_min = np.where(upw >= 0, upw, np.iinfo(np.int64).max).min(axis=1)
        stabilized = np.minimum(np.maximum(current, up_min), down_max)
        # 4. rate limits, from the count at the start of each period
        changes_up = np.maximum(self.events, 0)[:, : self.up_period - 1].sum(axis=1)
        changes_down = np.minimum(self.events, 0)[:, : self.down_period - 1].sum(axis=1)
        start_up = current - changes_up
        up_limit = np.maximum(start_up + p.scale_up_pods, np.ceil(start_up * (1.0 + p.scale_up_percent / 100.0)))
        start_down = current - changes_down
        down_limit = np.floor(start_down * (1.0 - p.scale_down_percent / 100.0))
        # no limit forces a move the other way: at or above the scale-up limit the count holds until the
        # period's events expire (horizontal.go: "We shouldn't scale up further until the scaleUpEvents will be
        # cleaned up"), and likewise for scale-down
        up_limit = np.maximum(up_limit, current)
        down_limit = np.minimum(down_limit, current)
        desired = np.clip(stabilized, down_limit.astype(np.int64), up_limit.astype(np.int64))
        self.desired[:] = desired
        # the change this decision asks for, for the rate limits of the next periods
        self.events[:, 1:] = self.events[:, :-1]
        self.events[:, 0] = desired - current

    def _rounded(self, delta: np.ndarray) -> None:
        # the count a coarser step reached is this sync's decision: its change counts for the rate limits, and
        # a scale-up's count enters the scale-down stabilisation window as this sync's recommendation (the HPA
        # does not go below it within the window)
        self.events[:, 0] += delta
        up = delta > 0
        self.recs[up, 0] = np.maximum(self.recs[up, 0], self.desired[up])
