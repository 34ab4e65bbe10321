"""Per-episode metrics of a batch of clusters: the numbers the benchmark, the evaluation and TensorBoard report.

Feed every step's rewards and info (the vector env's dict of (B,) arrays) to :meth:`EpisodeStats.update`;
:meth:`EpisodeStats.pop` returns the metrics of finished episodes and clears their accumulators. Nothing here
is on the simulator's hot path: it is a handful of numpy operations per batch step.

Definitions (one episode):

- ``reward``: sum of the step rewards; ``reward_<part>``: sum of each weighted reward component.
- ``cost_usd``: sum of the step costs.
- ``slo_violation_share``: share of steps that violated the SLO (``info["slo_violated"]``: p95 above it, or
  more than ``reward.slo_max_lost_share``, default 5 %, of the step's requests lost).
- ``p95_s``: 95th percentile of the steps' p95 latencies, each step weighted by the requests that arrived in it
  (the latency that steps carrying 95 % of the traffic stayed under; the p95 is of the served requests, and
  saturates at about max_queue / capacity + the service p95 when queues are full: 1.3 s in the scenarios).
- ``dropped_share``, ``failed_share``: dropped (failed) requests / arrivals over the episode.
- ``mean_instances``: billed instance-seconds / episode seconds (the average billed fleet).
- ``scale_actions``: steps in which the instance count was changed; ``cold_starts``: instances launched.
- ``steps``: steps of the episode.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .fields import REWARD_NAMES

METRICS: tuple[tuple[str, str], ...] = (
    ("reward", "sum of step rewards"),
    ("cost_usd", "total cost, USD"),
    (
        "slo_violation_share",
        "share of steps that violated the SLO (p95 above it, or > reward.slo_max_lost_share of requests lost)",
    ),
    ("p95_s", "95th percentile of step p95 latency, weighted by arrivals, s"),
    ("dropped_share", "dropped requests / arrivals"),
    ("failed_share", "failed requests / arrivals"),
    ("mean_instances", "billed instance-seconds / episode seconds"),
    ("scale_actions", "steps that changed the instance count"),
    ("cold_starts", "instances launched"),
    ("arrivals", "requests that arrived"),
    ("steps", "steps in the episode"),
    ("throttled_share", "throttled requests / arrivals (platform mode)"),
)
METRIC_NAMES: tuple[str, ...] = tuple(m[0] for m in METRICS) + tuple(f"reward_{n}" for n in REWARD_NAMES)

_SUMS = (
    "reward",
    "cost_usd",
    "slo_violated",
    "arrivals",
    "dropped",
    "failed",
    "instance_seconds",
    "scale_actions",
    "cold_starts",
    "steps",
    "throttled",
) + tuple(f"reward_{n}" for n in REWARD_NAMES)


class EpisodeStats:
    """Running per-episode sums for ``num_envs`` clusters; ``max_steps`` bounds the episode length."""

    def __init__(self, num_envs: int, max_steps: int, step_seconds: float) -> None:
        self.num_envs = num_envs
        self.step_seconds = step_seconds
        self.sums = {k: np.zeros(num_envs) for k in _SUMS}
        self.p95 = np.zeros((num_envs, max_steps))
        self.weight = np.zeros((num_envs, max_steps))
        self._all = np.arange(num_envs)

    def update(self, rewards: np.ndarray, info: dict[str, Any], active: np.ndarray | None = None) -> None:
        """Add one step. ``active`` (bool, (B,)) marks the clusters whose step counts (default: all)."""
        idx = self._all if active is None else np.flatnonzero(active)
        if idx.size == 0:
            return
        s = self.sums
        s["reward"][idx] += np.asarray(rewards, dtype=np.float64)[idx]
        s["cost_usd"][idx] += info["cost_usd"][idx]
        s["slo_violated"][idx] += info["slo_violated"][idx]
        s["arrivals"][idx] += info["arrivals"][idx]
        s["dropped"][idx] += info["dropped"][idx]
        s["failed"][idx] += info["failed"][idx]
        s["instance_seconds"][idx] += info["instance_seconds"][idx]
        s["scale_actions"][idx] += info["scale_applied"][idx] != 0
        s["cold_starts"][idx] += info["cold_starts"][idx]
        s["throttled"][idx] += info["throttled"][idx]
        for name in REWARD_NAMES:
            s[f"reward_{name}"][idx] += info["reward_components"][name][idx]
        k = s["steps"][idx].astype(np.int64)
        if np.any(k >= self.p95.shape[1]):
            raise ValueError(f"an episode ran longer than max_steps={self.p95.shape[1]}")
        self.p95[idx, k] = info["latency_p95_s"][idx]
        self.weight[idx, k] = np.maximum(info["arrivals"][idx], 1.0)
        s["steps"][idx] += 1

    def pop(self, ids: np.ndarray | list[int] | None = None) -> list[dict[str, float]]:
        """Metrics of the episodes in clusters ``ids`` (default: all), then clear those clusters."""
        ids = self._all if ids is None else np.asarray(ids, dtype=np.int64)
        out = [self.metrics(int(b)) for b in ids]
        for v in self.sums.values():
            v[ids] = 0.0
        self.p95[ids] = 0.0
        self.weight[ids] = 0.0
        return out

    def metrics(self, b: int) -> dict[str, float]:
        s = {k: float(v[b]) for k, v in self.sums.items()}
        steps = int(s["steps"])
        arrivals = max(s["arrivals"], 1.0)
        out = {
            "reward": s["reward"],
            "cost_usd": s["cost_usd"],
            "slo_violation_share": s["slo_violated"] / max(steps, 1),
            "p95_s": weighted_quantile(self.p95[b, :steps], self.weight[b, :steps], 0.95),
            "dropped_share": s["dropped"] / arrivals,
            "failed_share": s["failed"] / arrivals,
            "mean_instances": s["instance_seconds"] / (max(steps, 1) * self.step_seconds),
            "scale_actions": s["scale_actions"],
            "cold_starts": s["cold_starts"],
            "arrivals": s["arrivals"],
            "steps": float(steps),
            "throttled_share": s["throttled"] / arrivals,
        }
        for name in REWARD_NAMES:
            out[f"reward_{name}"] = s[f"reward_{name}"]
        return out


def weighted_quantile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    """The smallest value v such that the weight of values <= v is at least q of the total (0 if empty)."""
    if values.size == 0:
        return 0.0
    order = np.argsort(values, kind="stable")
    cum = np.cumsum(weights[order])
    i = int(np.searchsorted(cum, q * cum[-1], side="left"))
    return float(values[order][min(i, values.size - 1)])
