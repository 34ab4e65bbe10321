"""``hpa``: the Kubernetes Horizontal Pod Autoscaler (autoscaling/v2, default behaviour)."""

from __future__ import annotations

import math

import numpy as np
from pydantic import Field

from .base import Metric, Policy, PolicyParams, info_array, metric_values


class HpaParams(PolicyParams):
    metric: Metric = Field("cpu", description="cpu | memory (0..1) | requests_per_instance (requests/s)")
    target: float = Field(0.8, gt=0.0, description="target average of the metric per ready pod")
    tolerance: float = Field(0.1, ge=0.0, lt=1.0, description="no change while |metric/target - 1| <= this")
    scale_down_stabilization_seconds: float = Field(
        300.0, ge=0.0, le=3600.0, description="scale down to the highest recommendation of this window, s")
    scale_up_stabilization_seconds: float = Field(
        0.0, ge=0.0, le=3600.0, description="scale up to the lowest recommendation of this window, s")
    scale_up_pods: int = Field(4, ge=0, le=4096, description="scale-up policy 'Pods': pods added per period")
    scale_up_percent: float = Field(100.0, ge=0.0, description="scale-up policy 'Percent': % added per period")
    scale_up_period_seconds: float = Field(15.0, gt=0.0, le=1800.0, description="period of the scale-up policies")
    scale_down_percent: float = Field(100.0, ge=0.0, le=100.0, description="scale-down policy: % removed per period")
    scale_down_period_seconds: float = Field(15.0, gt=0.0, le=1800.0, description="period of the scale-down policy")


def _window(seconds: float, dt: float) -> int:
    """Decisions j = 0 .. n-1 back whose time lies within the last ``seconds`` (now - j*dt > now - seconds)."""
    return max(1, math.ceil(seconds / dt - 1e-9))


class HpaPolicy(Policy):
    """The Kubernetes Horizontal Pod Autoscaler with its default behaviour.

    Every sync (the env's step, 15 s, is the default ``--horizontal-pod-autoscaler-sync-period``):

    1. ``ratio = metric / target`` with the metric averaged over the ready pods (``cpu_utilization``; target
       80 %, the default when an HPA names no metric). Booting instances are the not-yet-ready pods.
    2. Within the tolerance (``|ratio - 1| <= 0.1``, ``--horizontal-pod-autoscaler-tolerance``) nothing changes.
       Otherwise ``desired = ceil(ready * ratio)``. If the ratio says scale up while pods are still booting, those
       pods are taken to use 0 % of the target and the ratio is recomputed over all pods; if the result is then
       within the tolerance or points down, nothing changes ("unready pods not counted", dampening scale-ups).
    3. Scale-down stabilisation: the count used is the highest recommendation of the last 300 s (the HPA's
       current count at its start counts as one), so a drop takes effect only once every recommendation of the
       last 5 minutes agrees. Scale-up stabilisation window: 0 s.
    4. Rate limits of the default ``behavior``: up by at most ``max(+4 pods, +100 %)`` of the count at the start
       of each 15 s period (``selectPolicy: Max``); down by up to 100 % per 15 s (no limit).

    Sources: Kubernetes documentation, "Horizontal Pod Autoscaling" (algorithm details, tolerance, not-ready
    pods, stabilisation window, default behavior; https://kubernetes.io/docs/tasks/run-application/
    horizontal-pod-autoscale/), and the autoscaling/v2 API reference (``HPAScalingRules``: "For scale up:
    allow doubling the number of pods, or an absolute change of 4 pods in a 15s window"; scale down: 300 s
    stabilisation). ``minReplicas``/``maxReplicas`` are the env's bounds. The HPA cannot scale from 0 pods on a
    utilisation metric; when requests arrive with nothing warm or booting one instance is launched
    (``agents.base.Policy.launch_on_demand``).

    Action mapping: the desired count is reached with the nearest available ``scale_steps``
    (``agents.base.action_for_target``); with the default steps ``(-2..2)`` a larger change takes several
    decisions (and the env's cooldowns).
    """

    name = "hpa"
    Params = HpaParams

    def __init__(self, env_config, params=None) -> None:
        super().__init__(env_config, params)
        p = self.params
        self.down_window = _window(p.scale_down_stabilization_seconds, self.dt)
        self.up_window = _window(p.scale_up_stabilization_seconds, self.dt)
        self.rec_len = max(self.down_window, self.up_window)
        # scale events j decisions back (j >= 1) lie within a period if j * dt < period
        self.up_period = _window(p.scale_up_period_seconds, self.dt)
        self.down_period = _window(p.scale_down_period_seconds, self.dt)
        self.event_len = max(self.up_period, self.down_period)

    def _allocate(self, num_envs: int) -> None:
        self.recs = np.full((num_envs, self.rec_len), -1, dtype=np.int64)  # recommendations, newest first
        self.events = np.zeros((num_envs, self.event_len), dtype=np.int64)  # changes made, newest first

    def _clear(self, mask: np.ndarray) -> None:
        self.recs[mask] = -1
        self.events[mask] = 0

    def _decide(self, obs, info, fresh, current, now) -> None:
        p = self.params
        ready = np.rint(info_array(info, "instances_warm")).astype(np.int64)
        unready = np.rint(info_array(info, "instances_booting")).astype(np.int64)
        ratio = metric_values(info, p.metric, self.dt) / p.target
        # 1-2. the raw recommendation
        rec = np.ceil(ready * ratio - 1e-9).astype(np.int64)
        rec = np.where(np.abs(ratio - 1.0) <= p.tolerance, current, rec)
        up_unready = (unready > 0) & (ratio > 1.0)
        total = np.maximum(ready + unready, 1)
        ratio2 = ratio * ready / total  # booting pods at 0 % of the target
        rec2 = np.ceil(total * ratio2 - 1e-9).astype(np.int64)
        rec2 = np.where((np.abs(ratio2 - 1.0) <= p.tolerance) | (ratio2 < 1.0), current, rec2)
        rec = np.where(up_unready, rec2, rec)
        rec = np.where(ready > 0, rec, current)  # no ready pod: no metric, no change
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
        desired = np.clip(stabilized, down_limit.astype(np.int64), up_limit.astype(np.int64))
        self.desired[:] = desired
        # the change this decision asks for, for the rate limits of the next periods
        self.events[:, 1:] = self.events[:, :-1]
        self.events[:, 0] = desired - current
