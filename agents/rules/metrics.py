"""What rule policies read from a step's info (the delivered metrics, the utilisation metrics, stranded demand),
the limits of a threshold or target on those metrics (with a reusable parameter validator), and decision windows.

A rule reads every measured metric (``scaling_env.fields.OBSERVED_METRICS``: rates, utilisations, latencies, lost
shares) as the monitoring delivers it, ``info["observed_<key>"]`` (:func:`read_metric`; late and aggregated when
the env's config ``metrics`` says so), as a real autoscaler reads CloudWatch or the metrics API. Instance counts
(``instances_warm``, ``instances_booting``, ...) it reads as they are: the control plane knows them at once."""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
from pydantic import ValidationInfo, field_validator

from scaling_env.fields import OBSERVED_NAMES

from ..base import info_array

Metric = Literal["cpu", "memory", "requests_per_instance"]

# the largest value a threshold or target can take for each metric: utilisations are fractions (CPU at most 1;
# memory use / limit can pass 1 before an instance crashes, so up to 2); requests per instance are unbounded
METRIC_LIMITS: dict[str, float | None] = {"cpu": 1.0, "memory": 2.0, "requests_per_instance": None}
METRIC_HELP = "cpu (fraction, <= 1) | memory (fraction, <= 2) | requests_per_instance (requests/s)"


# ------------------------------------------------------------------------------------------ limits
def check_metric_value(metric: str, field: str, value: float | None, relative: bool = False) -> None:
    """A ValueError naming ``field`` if ``value`` cannot be a threshold or target of ``metric`` (or, with
    ``relative``, a distance from one): AWS and Kubernetes write utilisations as percent, this project as
    fractions, and a value such as 80 would otherwise pass and make the policy scale in on any load."""
    limit = METRIC_LIMITS.get(metric)
    if limit is None or value is None or abs(value) <= limit:
        return
    what = f"the distance between two {metric} utilisations" if relative else f"a {metric} utilisation"
    raise ValueError(
        f"{field} = {value:g} is out of range for metric {metric!r} ({what} is at most "
        f"{limit:g}): utilisations are fractions (0.8), not percent (80)"
    )


def _within_metric_limit(cls: type, value: float, info: ValidationInfo) -> float:
    check_metric_value(info.data.get("metric"), info.field_name, value)
    return value


def metric_limited(*fields: str) -> Any:
    """A pydantic field validator for a parameter model with a ``metric`` field (declared before ``fields``):
    each of ``fields`` is a threshold or target of that metric (:func:`check_metric_value`). Use it as a class
    attribute: ``_limits = metric_limited("target")``."""
    return field_validator(*fields)(_within_metric_limit)


# ------------------------------------------------------------------------------------------ metrics
def read_metric(info: dict[str, Any], key: str) -> np.ndarray:
    """The metric ``key`` (an info key) as a rule sees it: for a measured metric, ``info["observed_" + key]`` (the
    env's info always has it; an info dict made by hand without it gives the true ``key``), else ``info[key]``."""
    observed = "observed_" + key
    if key in OBSERVED_NAMES and observed in info:
        return info_array(info, observed)
    return info_array(info, key)


def metric_values(info: dict[str, Any], metric: Metric, step_seconds: float) -> np.ndarray:
    """The utilisation metric a policy tracks: ``cpu`` and ``memory`` are the mean utilisations of the serving
    instances (0..1); ``requests_per_instance`` is the arrival rate per warm instance, requests/s (the whole rate
    when none is warm)."""
    if metric == "cpu":
        return read_metric(info, "cpu_utilization")
    if metric == "memory":
        return read_metric(info, "memory_utilization")
    rate = read_metric(info, "arrivals") / step_seconds
    return rate / np.maximum(info_array(info, "instances_warm"), 1.0)


def stranded_demand(info: dict[str, Any]) -> np.ndarray:
    """Requests arrive but no instance is warm or booting: no utilisation metric can say so (it is 0), so
    every policy launches at least one instance then (as Knative's activator or a Lambda invocation would)."""
    idle = (info_array(info, "instances_warm") + info_array(info, "instances_booting")) <= 0
    return idle & (read_metric(info, "arrivals") > 0)


# ------------------------------------------------------------------------------------------ windows
def steps_per(seconds: float, step_seconds: float) -> int:
    """How many decisions make up ``seconds`` (at least 1): a window of ``seconds`` rounded to whole steps."""
    return max(1, int(round(seconds / step_seconds)))


def steps_within(seconds: float, step_seconds: float) -> int:
    """Decisions j = 0 .. n-1 back whose time lies within the last ``seconds`` (``j * step_seconds < seconds``),
    at least 1: ``seconds`` rounded up to whole steps."""
    return max(1, math.ceil(seconds / step_seconds - 1e-9))
