"""``kpa``: the Knative Pod Autoscaler on request concurrency (stable and panic modes)."""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field

from ..base import CapacityParams, clip_counts, info_array
from .base import RulePolicy
from .metrics import read_metric, steps_per


class KpaParams(CapacityParams):
    target_utilization: float = Field(
        0.7,
        gt=0.0,
        le=1.0,
        description="container-concurrency-target-percentage / 100: target per pod = this "
        "x the container concurrency (instances.concurrency)",
    )
    stable_window_seconds: float = Field(60.0, ge=6.0, le=3600.0, description="stable-window, s")
    panic_window_percentage: float = Field(10.0, ge=1.0, le=100.0, description="panic window, % of the stable one")
    panic_threshold_percentage: float = Field(
        200.0, ge=110.0, le=1000.0, description="panic when panic-window demand >= this % of the ready pods"
    )
    max_scale_up_rate: float = Field(1000.0, gt=1.0, description="at most this x the ready pods per decision")
    max_scale_down_rate: float = Field(2.0, gt=1.0, description="at least ready pods / this per decision")
    scale_to_zero_grace_period_seconds: float = Field(30.0, ge=0.0, description="keep the last pod this long, s")
    enable_scale_to_zero: bool = Field(True, description="allow 0 pods (if the env's min_instances is 0)")


class KpaPolicy(RulePolicy):
    """The Knative Pod Autoscaler (KPA) with the defaults of Knative Serving's ``config-autoscaler``.

    Observed concurrency: the KPA scales on in-flight requests per pod, which Knative's queue-proxy measures;
    the env reports no such gauge, so each step's total concurrency is taken from Little's law,
    ``arrivals / step_seconds * max(latency_mean_s, service_seconds)`` (mean number in the system = arrival rate
    x mean time in the system; the service time is a floor for steps with no completed request).

    Every decision, with ``target = 0.7 x container concurrency`` (``container-concurrency-target-percentage``
    70; the container concurrency is the env's ``instances.concurrency``) and ``ready`` = warm pods (1 if none):

    - stable and panic averages of the concurrency over the stable window (``stable-window`` 60 s: the last 4
      steps) and the panic window (``panic-window-percentage`` 10 % of it, 6 s: shorter than a 15 s decision
      step, so the panic window is the latest step alone);
    - ``stable pods = ceil(stable / target)``, ``panic pods = ceil(panic / target)``, both kept within
      ``[floor(ready / max-scale-down-rate), ceil(max-scale-up-rate x ready)]`` (2 and 1000): scale-down at most
      by half per decision;
    - panic starts when ``panic pods / ready >= 2`` (``panic-threshold-percentage`` 200) and is extended each
      decision that is still over it; it ends only after a whole stable window without one, so it lasts at least
      the stable window. While panicking the count is ``max(stable pods, panic pods)`` and never decreases;
    - otherwise the count is the stable one.
    - scale to zero (``enable-scale-to-zero``, ``scale-to-zero-grace-period`` 30 s): a count of 0 is applied only
      after the recommendation has been 0 for the grace period (and 0 needs a stable window with no traffic);
      until then one pod stays. The env's ``min_instances`` (default 1) bounds it anyway.

    Sources: Knative documentation, "Additional autoscaling configuration for Knative Pod Autoscaler" and
    "Configuring scale to zero" (https://knative.dev/docs/serving/autoscaling/kpa-specific/); the defaults of
    ``config/core/configmaps/autoscaler.yaml`` in knative/serving (target percentage 70, stable window 60 s,
    panic window 10 %, panic threshold 200 %, max scale-up rate 1000, max scale-down rate 2, grace period 30 s);
    the decision rule of ``pkg/autoscaler/scaling/autoscaler.go`` in knative/serving. Knative decides every 2 s
    (``tick-interval``); here at each env step.

    Action mapping: the desired count is reached with the nearest available ``scale_steps``
    (``agents.actions.action_for_target``).
    """

    name = "kpa"
    Params = KpaParams

    def _setup(self) -> None:
        p = self.params
        self.target = p.target_utilization * self.env_config.instances.concurrency
        self.stable_steps = steps_per(p.stable_window_seconds, self.dt)
        self.panic_steps = steps_per(p.stable_window_seconds * p.panic_window_percentage / 100.0, self.dt)
        self.service_seconds = self.env_config.instances.service_seconds
        self._per_cluster("samples", 0.0, width=self.stable_steps)  # concurrency of the last steps, newest first
        self._per_cluster("count", 0, np.int64)  # samples taken
        self._per_cluster("panic_since", np.nan)  # time of the last decision over the panic threshold
        self._per_cluster("max_panic", 0, np.int64)  # the highest count of the panic so far
        self._per_cluster("zero_since", np.nan)  # since when the count asked for is 0

    def concurrency(self, info: dict[str, Any]) -> np.ndarray:
        """Mean requests in the system during the step (Little's law), the KPA's observed concurrency."""
        rate = read_metric(info, "arrivals") / self.dt
        return rate * np.maximum(read_metric(info, "latency_mean_s"), self.service_seconds)

    def _decide(
        self, obs: np.ndarray, info: dict[str, Any], fresh: np.ndarray, current: np.ndarray, now: np.ndarray
    ) -> None:
        p = self.params
        data = ~fresh
        self.samples[data, 1:] = self.samples[data, :-1]
        self.samples[data, 0] = self.concurrency(info)[data]
        self.count[data] += 1
        n_stable = clip_counts(self.count, 1, self.stable_steps)
        n_panic = clip_counts(self.count, 1, self.panic_steps)
        cols = np.arange(self.stable_steps)[None, :]
        stable = (self.samples * (cols < n_stable[:, None])).sum(axis=1) / n_stable
        panic = (self.samples * (cols < n_panic[:, None])).sum(axis=1) / n_panic
        ready = np.maximum(np.rint(info_array(info, "instances_warm")), 1.0)
        stable_pods = np.ceil(stable / self.target - 1e-9)
        panic_pods = np.ceil(panic / self.target - 1e-9)
        lo = np.floor(ready / p.max_scale_down_rate)
        hi = np.ceil(p.max_scale_up_rate * ready)
        stable_n = np.clip(stable_pods, lo, hi).astype(np.int64)
        panic_n = np.clip(panic_pods, lo, hi).astype(np.int64)
        # panic mode
        over = data & (panic_pods / ready >= p.panic_threshold_percentage / 100.0)
        self.panic_since[over] = now[over]
        ended = data & ~over & (now > self.panic_since + p.stable_window_seconds)  # NaN compares False
        self.panic_since[ended] = np.nan
        self.max_panic[ended] = 0
        panicking = ~np.isnan(self.panic_since)
        self.max_panic = np.where(panicking, np.maximum(self.max_panic, np.maximum(stable_n, panic_n)), self.max_panic)
        desired = np.where(panicking, self.max_panic, stable_n)
        # scale to zero only after the grace period
        zero = desired == 0
        self.zero_since = np.where(zero, np.where(np.isnan(self.zero_since), now, self.zero_since), np.nan)
        grace_over = zero & (now - self.zero_since >= p.scale_to_zero_grace_period_seconds)
        keep_one = zero & (~grace_over | (not p.enable_scale_to_zero))
        desired = np.where(keep_one, np.minimum(current, 1), desired)  # the last pod stays; none is added
        self.desired[data] = desired[data]
