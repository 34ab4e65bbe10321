from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest

from scaling_env import EnvConfig, ServerlessScalingEnv


def merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict) and k != "shape":  # a new shape replaces the old
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out


# a small, quiet cluster for hand-computed scenarios: no random crashes, no jitter, deterministic arrivals
QUIET: dict[str, Any] = {
    "episode_steps": 40,
    "workload": {"shape": {"kind": "constant", "rate_rps": 100.0}, "arrival_process": "deterministic"},
    "instances": {"cold_start_seconds": 2.0, "cold_start_jitter": 0.0, "max_queue": 100_000,
                  "memory_mb_per_request": 0.0},
    "scaling": {"min_instances": 0, "max_instances": 8, "initial_instances": 1},
    "failures": {"mtbf_seconds": None},
}


def quiet_config(**over: Any) -> EnvConfig:
    return EnvConfig.from_dict(merge(QUIET, over))


def started(config: EnvConfig, seed: int = 0) -> ServerlessScalingEnv:
    """A single env on this config, reset with ``seed``."""
    env = ServerlessScalingEnv(config)
    env.reset(seed=seed)
    return env


def action_for(config: EnvConfig, change: int) -> int:
    return config.scaling.scale_steps.index(change)


@pytest.fixture
def make_env():
    def _make(config: EnvConfig | dict | None = None, seed: int = 0) -> tuple[ServerlessScalingEnv, dict]:
        env = ServerlessScalingEnv(config)
        _, info = env.reset(seed=seed)
        return env, info

    return _make


def conservation_ok(prev_backlog: float, info: dict) -> bool:
    lhs = prev_backlog + info["arrivals"]
    rhs = info["served"] + info["dropped"] + info["failed"] + info["backlog"]
    return lhs == rhs


__all__ = ["QUIET", "quiet_config", "started", "action_for", "merge", "conservation_ok", "np"]
