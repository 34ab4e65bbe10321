"""A stable-baselines3 ``VecEnv`` over the batched core, so that PPO trains on the native batch.

Same-step autoreset as SB3 expects: at the end of an episode ``dones[i]`` is True, the observation is the
first of the next episode and ``infos[i]["terminal_observation"]`` holds the last one, with
``infos[i]["TimeLimit.truncated"] = True`` (episodes end only by truncation).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices

from .config import EnvConfig
from .core import BatchSimulator
from .fields import INFO_NAMES, OBS_HIGH, OBS_LOW, REWARD_NAMES
from .vector_env import check_actions


class ServerlessScalingVecEnv(VecEnv):
    """``ServerlessScalingVecEnv(num_envs, config)``; seed with ``.seed(s)`` (env i gets s + i) before reset."""

    def __init__(self, num_envs: int = 1, config: EnvConfig | dict | str | None = None,
                 parallel: bool | None = None) -> None:
        self.config = EnvConfig.coerce(config)
        self.sim = BatchSimulator(self.config, num_envs=num_envs, parallel=parallel)
        observation_space = spaces.Box(OBS_LOW, OBS_HIGH, dtype=np.float32)
        action_space = spaces.Discrete(self.sim.num_actions)
        super().__init__(num_envs, observation_space, action_space)
        self._actions = np.zeros(num_envs, dtype=np.int64)

    # ---- VecEnv API
    def reset(self) -> np.ndarray:
        if any(s is not None for s in self._seeds):
            self.sim.seed(list(self._seeds))
        self.sim.reset()
        self._reset_seeds()
        self.reset_infos = self._infos(self.sim.metrics, self.sim.reward_parts)
        return self.sim.obs.copy()

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = check_actions(actions, self.num_envs, self.sim.num_actions)

    def step_wait(self):
        sim = self.sim
        final = sim.step_autoreset(self._actions)
        obs = sim.obs.copy()
        if final is None:
            infos = self._infos(sim.metrics, sim.reward_parts)
        else:
            metrics = sim.metrics.copy()
            metrics[final.ids] = final.metrics
            parts = sim.reward_parts.copy()
            parts[final.ids] = final.reward_parts
            infos = self._infos(metrics, parts)
            for j, i in enumerate(final.ids.tolist()):
                infos[i]["terminal_observation"] = final.obs[j]
                infos[i]["TimeLimit.truncated"] = True
        # float32 rewards, as SB3's DummyVecEnv returns them
        return obs, sim.rewards.astype(np.float32), sim.truncated.copy(), infos

    def close(self) -> None:
        pass

    def action_masks(self) -> np.ndarray:
        """(B, n_actions) bool: the valid actions of each cluster."""
        return self.sim.action_masks()

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """Per-cluster attributes: ``render_mode``, ``workload`` (the episode's rate function), ``config``,
        ``action_space``, ``observation_space``; any other attribute of this VecEnv, once per index."""
        idx = list(self._get_indices(indices))
        if attr_name == "render_mode":
            return [None for _ in idx]
        if attr_name == "workload":
            return [self.sim.episodes[i] for i in idx]
        if not hasattr(self, attr_name):
            raise AttributeError(f"{type(self).__name__} has no attribute {attr_name!r}")
        value = getattr(self, attr_name)
        return [value for _ in idx]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """The clusters share one simulator, so attributes can only be set for all of them at once."""
        if indices is not None and sorted(self._get_indices(indices)) != list(range(self.num_envs)):
            raise ValueError(f"{type(self).__name__}: the clusters share one simulator; set_attr applies to all "
                             f"of them (indices=None), not to {indices!r}")
        setattr(self, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices: VecEnvIndices = None, **method_kwargs) -> list:
        """Per-cluster methods: ``action_masks`` (sb3-contrib's get_action_masks calls it), ``reset`` (starts a
        new episode in the given clusters only; returns (obs, info) per cluster) and ``render``."""
        idx = list(self._get_indices(indices))
        if method_name == "action_masks":
            masks = self.sim.action_masks()
            return [masks[i] for i in idx]
        if method_name == "reset":
            self.sim.reset(np.asarray(idx, dtype=np.int64))
            infos = self._infos(self.sim.metrics, self.sim.reward_parts)
            return [(self.sim.obs[i].copy(), infos[i]) for i in idx]
        if method_name == "render":
            return [None for _ in idx]
        raise AttributeError(f"{type(self).__name__}: no per-cluster method {method_name!r} "
                             "(available: action_masks, reset, render)")

    def env_is_wrapped(self, wrapper_class: type, indices: VecEnvIndices = None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]

    def _get_indices(self, indices: VecEnvIndices) -> Sequence[int]:
        if indices is None:
            return range(self.num_envs)
        if isinstance(indices, int):
            return [indices]
        return indices

    def _infos(self, metrics: np.ndarray, parts: np.ndarray) -> list[dict[str, Any]]:
        rows = metrics.tolist()
        part_rows = parts.tolist()
        infos = []
        for row, prow in zip(rows, part_rows):
            info = dict(zip(INFO_NAMES, row))
            info["reward_components"] = dict(zip(REWARD_NAMES, prow))
            infos.append(info)
        return infos
