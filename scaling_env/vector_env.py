"""The native Gymnasium vector env: B clusters stepped by one compiled call, no Python loop over clusters."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from .config import EnvConfig
from .core import BatchSimulator
from .fields import INFO_NAMES, OBS_HIGH, OBS_LOW, REWARD_NAMES
from .rendering import ansi_line


def check_actions(actions: Any, num_envs: int, n: int) -> np.ndarray:
    """A (num_envs,) int64 array of valid indices, or a ValueError that says what was wrong."""
    a = np.asarray(actions)
    if a.shape != (num_envs,):
        raise ValueError(f"actions must have shape ({num_envs},), got {a.shape}")
    if a.dtype.kind not in "iu":
        if a.dtype.kind != "f" or not np.all(np.mod(a, 1) == 0):
            raise ValueError(f"actions must be integer indices in [0, {n - 1}], got {a!r}")
    if num_envs and (a.min() < 0 or a.max() >= n):
        bad = int(np.flatnonzero((a < 0) | (a >= n))[0])
        raise ValueError(f"actions[{bad}] = {a[bad]} is outside [0, {n - 1}]")
    return a.astype(np.int64, copy=False)


def seeds_for(seed: int | list[int | None] | None, num_envs: int) -> list[int | None]:
    """Gymnasium's convention: an int seeds env i with seed + i; a list gives one seed per env."""
    if seed is None:
        return [None] * num_envs
    if isinstance(seed, (int, np.integer)):
        return [int(seed) + i for i in range(num_envs)]
    seeds = list(seed)
    if len(seeds) != num_envs:
        raise ValueError(f"expected {num_envs} seeds, got {len(seeds)}")
    return seeds


class ServerlessScalingVectorEnv(VectorEnv):
    """``gymnasium.make_vec("ServerlessScaling-v0", num_envs=B, vectorization_mode="vector_entry_point")``.

    Same-step autoreset: when the episodes end (all clusters truncate together), the returned observation is
    the first of the new episode; ``info["final_obs"]`` and ``info["final_info"]`` hold the last step's.
    Info values are arrays of shape (B,), as Gymnasium's vector envs give them.
    """

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": ["ansi"]}

    def __init__(self, num_envs: int = 1, config: EnvConfig | dict | str | None = None,
                 render_mode: str | None = None, parallel: bool | None = None) -> None:
        self.config = EnvConfig.coerce(config)
        self.num_envs = num_envs
        self.render_mode = render_mode
        self.sim = BatchSimulator(self.config, num_envs=num_envs, parallel=parallel)
        self.single_observation_space = spaces.Box(OBS_LOW, OBS_HIGH, dtype=np.float32)
        self.single_action_space = spaces.Discrete(self.sim.num_actions)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self._mask = np.ones(num_envs, dtype=np.bool_)
        self._steps = 0

    def reset(self, *, seed: int | list[int | None] | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self.sim.seed(seeds_for(seed, self.num_envs))
        self.sim.reset()
        self._steps = 0
        return self.sim.obs.copy(), self._info(self.sim.metrics, self.sim.reward_parts)

    def step(self, actions):
        acts = check_actions(actions, self.num_envs, self.sim.num_actions)
        sim = self.sim
        final = sim.step_autoreset(acts)
        self._steps += 1
        info = self._info(sim.metrics, sim.reward_parts)
        if final is not None:
            done = np.zeros(self.num_envs, dtype=np.bool_)
            done[final.ids] = True
            final_obs = np.zeros_like(sim.obs)
            final_obs[final.ids] = final.obs
            metrics = sim.metrics.copy()
            metrics[final.ids] = final.metrics
            parts = sim.reward_parts.copy()
            parts[final.ids] = final.reward_parts
            info["final_obs"], info["_final_obs"] = final_obs, done
            info["final_info"], info["_final_info"] = self._info(metrics, parts), done
            self._steps = 0
        if self.render_mode == "ansi":
            print(ansi_line(sim.metrics[0], float(sim.rewards[0]), self._steps))
        return (sim.obs.copy(), sim.rewards.copy(), np.zeros(self.num_envs, dtype=np.bool_),
                sim.truncated.copy(), info)

    def render(self) -> tuple[str, ...] | None:
        if self.render_mode == "ansi":
            return tuple(ansi_line(m, float(r), self._steps) for m, r in zip(self.sim.metrics, self.sim.rewards))
        return None

    def action_masks(self) -> np.ndarray:
        """(B, n_actions) bool: the valid actions of each cluster."""
        return self.sim.action_masks()

    def _info(self, metrics: np.ndarray, parts: np.ndarray) -> dict[str, Any]:
        m = metrics.T.copy()  # one copy; every key is a row view of it
        info: dict[str, Any] = dict(zip(INFO_NAMES, m))
        info["reward_components"] = dict(zip(REWARD_NAMES, parts.T.copy()))
        for key in INFO_NAMES:
            info["_" + key] = self._mask
        info["_reward_components"] = self._mask
        return info
