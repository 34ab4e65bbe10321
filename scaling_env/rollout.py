"""Run a policy over a batch of episodes and collect their metrics and, optionally, their per-step traces.

The one loop that the benchmark, ``scaling-env simulate``, the evaluation and the notebooks share. A policy is
any object with ``reset(seed, num_envs)``, ``act_batch(obs, info) -> actions`` and optionally ``bind(env)``
(the ``agents.Policy`` interface); this module does not import ``agents``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from .config import EnvConfig
from .envs.vector import ServerlessScalingVectorEnv
from .episode_stats import EpisodeStats

# the per-step values the dashboard and the benchmark plots draw
DASHBOARD_KEYS: tuple[str, ...] = (
    "arrivals",
    "served",
    "dropped",
    "failed",
    "backlog",
    "latency_p95_s",
    "cpu_utilization",
    "cpu_max",
    "memory_utilization",
    "memory_max",
    "instances_warm",
    "instances_booting",
    "instances_failed",
    "instances_unhealthy",
    "instances_draining",
    "cost_usd",
    "slo_violated",
    "scale_applied",
    "blocked_by_cooldown",
    "crashes",
    "cold_starts",
    "time_s",
)


class BatchPolicy(Protocol):
    def reset(self, seed: int | None = None, num_envs: int = 1) -> None: ...

    def act_batch(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray: ...


@dataclass
class Rollout:
    """Episodes of one policy on one config: ``metrics[i]`` (see ``episode_stats``) and ``traces[key][i, k]``,
    the info value ``key`` at step ``k`` of episode ``i``; ``traces["rate_rps"]`` is the workload's mean
    arrival rate of each step (lambda, before the arrival draw)."""

    config: EnvConfig
    seeds: list[int]
    metrics: list[dict[str, float]]
    traces: dict[str, np.ndarray] = field(default_factory=dict)

    def episode(self, i: int = 0) -> dict[str, np.ndarray]:
        """The per-step traces of episode ``i``."""
        return {k: v[i] for k, v in self.traces.items()}


def rollout(
    config: EnvConfig,
    policy: BatchPolicy,
    seeds: list[int] | int,
    record: tuple[str, ...] = (),
    parallel: bool | None = None,
) -> Rollout:
    """Run one episode per seed, all in one batch (cluster i reset with ``seeds[i]``), under ``policy``.

    ``record`` names info keys to keep per step (``DASHBOARD_KEYS`` for a dashboard).
    """
    seeds = [seeds] if isinstance(seeds, int) else list(seeds)
    n, steps = len(seeds), config.episode_steps
    env = ServerlessScalingVectorEnv(num_envs=n, config=config, autoreset_mode="next_step", parallel=parallel)
    obs, info = env.reset(seed=seeds)
    policy.reset(seed=seeds[0], num_envs=n)
    bind = getattr(policy, "bind", None)
    if bind is not None:
        bind(env)
    stats = EpisodeStats(n, steps, config.step_seconds)
    traces = {key: np.zeros((n, steps)) for key in record}
    for k in range(steps):
        obs, rewards, _, _, info = env.step(policy.act_batch(obs, info))
        stats.update(rewards, info)
        for key in record:
            traces[key][:, k] = info[key]
    if record:
        traces["rate_rps"] = env.sim.expected[:, :steps] / config.step_seconds
    env.close()
    return Rollout(config, seeds, stats.pop(), traces)
