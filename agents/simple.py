"""Two minimal batched rule policies used by ``scaling-env simulate``.

They act on the vector env's info arrays (shape (B,)) and answer one action index per cluster.
"""

from __future__ import annotations

import numpy as np

from scaling_env import EnvConfig


def nearest_action(config: EnvConfig, change: np.ndarray) -> np.ndarray:
    """Index of the available ``scale_steps`` entry nearest to each wanted change (ties: the smaller)."""
    steps = np.asarray(config.scaling.scale_steps)
    order = np.argsort(steps, kind="stable")
    dist = np.abs(steps[order][None, :] - np.asarray(change)[:, None])
    return order[np.argmin(dist, axis=1)]


class StaticPolicy:
    """No autoscaling: hold the instance count (the env starts ``initial_instances`` warm)."""

    name = "static"

    def __init__(self, config: EnvConfig) -> None:
        self.hold = int(nearest_action(config, np.array([0]))[0])

    def act(self, info: dict[str, np.ndarray], num_envs: int) -> np.ndarray:
        return np.full(num_envs, self.hold, dtype=np.int64)


class CpuThresholdPolicy:
    """Simple scaling on CPU: add ``out`` instances when mean CPU >= ``upper``, remove ``in_`` below ``lower``.

    The seed example of the project: "add 2 instances when CPU utilisation reaches 80 %". The env's own
    cooldowns apply.
    """

    name = "threshold"

    def __init__(self, config: EnvConfig, upper: float = 0.8, lower: float = 0.3, out: int = 2, in_: int = 1) -> None:
        self.upper, self.lower = upper, lower
        self.actions = nearest_action(config, np.array([out, -in_, 0]))

    def act(self, info: dict[str, np.ndarray], num_envs: int) -> np.ndarray:
        cpu = info["cpu_utilization"]
        warm = info["instances_warm"]
        # with nothing warm there is no CPU signal: scale out if requests arrive
        hot = (cpu >= self.upper) | ((warm == 0) & (info["arrivals"] > 0))
        cold = (cpu < self.lower) & ~hot
        return np.where(hot, self.actions[0], np.where(cold, self.actions[1], self.actions[2])).astype(np.int64)
