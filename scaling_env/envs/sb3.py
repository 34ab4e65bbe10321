"""A stable-baselines3 ``VecEnv`` over the batched core, so that PPO trains on the native batch.

Same-step autoreset as SB3 expects: at the end of an episode ``dones[i]`` is True, the observation is the
first of the next episode and ``infos[i]["terminal_observation"]`` holds the last one, with
``infos[i]["TimeLimit.truncated"] = True`` (episodes end only by truncation).

Several configs (e.g. training scenarios) can share one VecEnv: each gets its own ``BatchSimulator`` and its
clusters follow those of the previous configs. Their action sets (``scaling.scale_steps``) must be equal.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices

from ..config import ConfigError, EnvConfig
from ..fields import N_METRICS, N_REWARD, observation_bounds
from ..sim.simulator import BatchSimulator
from .info import batch_info, info_dicts, overlay_final
from .vector import check_actions

ConfigLike = EnvConfig | dict | str


def split_counts(num_envs: int | Sequence[int], n_configs: int) -> list[int]:
    """Clusters per config: a list as given, or ``num_envs`` split as evenly as possible (the first configs
    take the remainder)."""
    if isinstance(num_envs, (int, np.integer)):
        counts = [int(num_envs) // n_configs + (i < int(num_envs) % n_configs) for i in range(n_configs)]
    else:
        counts = [int(n) for n in num_envs]
        if len(counts) != n_configs:
            raise ValueError(f"num_envs lists {len(counts)} counts for {n_configs} configs")
    if min(counts) < 1:
        raise ValueError(f"every config needs at least one cluster: num_envs={num_envs!r} for {n_configs} configs")
    return counts


class ServerlessScalingVecEnv(VecEnv):
    """``ServerlessScalingVecEnv(num_envs, config)``; seed with ``.seed(s)`` (env i gets s + i) before reset.

    ``config`` may be a list of configs; ``num_envs`` is then split evenly among them (or is a list of counts).
    Cluster i of a batch seeded s follows the same trajectory as in a one-config VecEnv seeded s + offset of its
    config, or a single env reset with seed s + i.

    After each step, ``step_rewards`` (float64), ``step_dones``, ``step_metrics`` and ``step_reward_parts``
    hold the step's values as arrays (the last step's values for clusters whose episode ended), and
    ``batch_info()`` returns them as the vector env's dict of (B,) arrays, for per-episode statistics.
    """

    def __init__(
        self,
        num_envs: int | Sequence[int] = 1,
        config: ConfigLike | Sequence[ConfigLike] | None = None,
        parallel: bool | None = None,
        version: int = 0,
    ) -> None:
        configs = list(config) if isinstance(config, (list, tuple)) else [config]
        if not configs:
            raise ValueError("config: give at least one config")
        # the env version's observation where a config leaves it unset (0: ServerlessScaling-v0, 1: -v1)
        self.configs = [EnvConfig.coerce(c).for_version(version) for c in configs]
        groups = [c.observation.groups for c in self.configs]
        if any(g != groups[0] for g in groups):
            raise ConfigError(
                "the configs of one VecEnv must show the same observation: observation.history differs "
                f"({', '.join(str(list(g)) for g in groups)})"
            )
        steps = [c.scaling.scale_steps for c in self.configs]
        if any(s != steps[0] for s in steps):
            raise ConfigError(
                "the configs of one VecEnv must have the same action set: scaling.scale_steps differ "
                f"({', '.join(str(list(s)) for s in steps)})"
            )
        counts = split_counts(num_envs, len(self.configs))
        self.sims = [BatchSimulator(c, num_envs=n, parallel=parallel) for c, n in zip(self.configs, counts)]
        starts = np.cumsum([0, *counts])
        self.slices = [slice(int(a), int(b)) for a, b in zip(starts[:-1], starts[1:])]  # clusters of each config
        self.config = self.configs[0]
        total = int(starts[-1])
        observation_space = spaces.Box(*observation_bounds(groups[0]), dtype=np.float32)
        action_space = spaces.Discrete(self.sims[0].num_actions)
        super().__init__(total, observation_space, action_space)
        self._actions = np.zeros(total, dtype=np.int64)
        self.step_rewards = np.zeros(total)
        self.step_dones = np.zeros(total, dtype=np.bool_)
        self.step_metrics = np.zeros((total, N_METRICS))
        self.step_reward_parts = np.zeros((total, N_REWARD))

    @property
    def sim(self) -> BatchSimulator:
        """The simulator of a one-config VecEnv (``sims`` holds one per config)."""
        if len(self.sims) != 1:
            raise AttributeError(f"this VecEnv holds {len(self.sims)} simulators (one per config): use .sims")
        return self.sims[0]

    # ---- VecEnv API
    def seed(self, seed: int | Sequence[Any] | None = None) -> Sequence[Any]:
        """Seeds for the next reset: an int gives cluster i ``seed + i`` (SB3's convention, None a random one);
        a list gives one seed per cluster (anything ``numpy.random.default_rng`` takes, e.g. a SeedSequence)."""
        if seed is None or isinstance(seed, (int, np.integer)):
            return super().seed(None if seed is None else int(seed))
        seeds = list(seed)
        if len(seeds) != self.num_envs:
            raise ValueError(f"expected {self.num_envs} seeds, got {len(seeds)}")
        self._seeds = seeds
        return seeds

    def reset(self) -> np.ndarray:
        for sim, sl in zip(self.sims, self.slices):
            seeds = self._seeds[sl]
            if any(s is not None for s in seeds):
                sim.seed(list(seeds))
            sim.reset()
        self._reset_seeds()
        self.step_metrics = self._cat([sim.metrics for sim in self.sims])
        self.step_reward_parts = self._cat([sim.reward_parts for sim in self.sims])
        self.step_rewards[:] = 0.0
        self.step_dones[:] = False
        self.reset_infos = self._infos(self.step_metrics, self.step_reward_parts)
        return self._cat([sim.obs for sim in self.sims])

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = check_actions(actions, self.num_envs, self.action_space.n)

    def step_wait(self):
        metrics, parts, ends = [], [], []
        for sim, sl in zip(self.sims, self.slices):
            final = sim.step_autoreset(self._actions[sl])
            m, p = overlay_final(sim.metrics, sim.reward_parts, final)
            if final is not None:
                ends.extend(zip((final.ids + sl.start).tolist(), final.obs))
            metrics.append(m)
            parts.append(p)
        obs = self._cat([sim.obs for sim in self.sims])
        self.step_rewards = self._cat([sim.rewards for sim in self.sims])
        self.step_dones = self._cat([sim.truncated for sim in self.sims])
        self.step_metrics = self._cat(metrics)
        self.step_reward_parts = self._cat(parts)
        infos = self._infos(self.step_metrics, self.step_reward_parts)
        for i, last_obs in ends:
            infos[i]["terminal_observation"] = last_obs
            infos[i]["TimeLimit.truncated"] = True
        # float32 rewards, as SB3's DummyVecEnv returns them
        return obs, self.step_rewards.astype(np.float32), self.step_dones.copy(), infos

    def close(self) -> None:
        pass

    def action_masks(self) -> np.ndarray:
        """(B, n_actions) bool: the valid actions of each cluster."""
        return self._cat([sim.action_masks() for sim in self.sims])

    def batch_info(self) -> dict[str, Any]:
        """The last step's info as the vector env gives it: a (B,) array per info key, and
        ``reward_components`` a dict of (B,) arrays (final-step values for clusters whose episode ended)."""
        return batch_info(self.step_metrics, self.step_reward_parts)

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """Per-cluster attributes: ``render_mode``, ``workload`` (the episode's rate function), ``config``,
        ``action_space``, ``observation_space``; any other attribute of this VecEnv, once per index."""
        idx = list(self._get_indices(indices))
        if attr_name == "render_mode":
            return [None for _ in idx]
        if attr_name in ("workload", "config"):
            out = []
            for i in idx:
                sim, j = self._locate(i)
                out.append(sim.episodes[j] if attr_name == "workload" else sim.config)
            return out
        if not hasattr(self, attr_name):
            raise AttributeError(f"{type(self).__name__} has no attribute {attr_name!r}")
        value = getattr(self, attr_name)
        return [value for _ in idx]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """The clusters share simulators, so attributes can only be set for all of them at once."""
        if indices is not None and sorted(self._get_indices(indices)) != list(range(self.num_envs)):
            raise ValueError(
                f"{type(self).__name__}: the clusters share one simulator; set_attr applies to all "
                f"of them (indices=None), not to {indices!r}"
            )
        setattr(self, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices: VecEnvIndices = None, **method_kwargs) -> list:
        """Per-cluster methods: ``action_masks`` (sb3-contrib's get_action_masks calls it), ``reset`` (starts a
        new episode in the given clusters only; returns (obs, info) per cluster) and ``render``."""
        idx = list(self._get_indices(indices))
        if method_name == "action_masks":
            masks = self.action_masks()
            return [masks[i] for i in idx]
        if method_name == "reset":
            for sim, sl in zip(self.sims, self.slices):
                mine = [i - sl.start for i in idx if sl.start <= i < sl.stop]
                if mine:
                    sim.reset(np.asarray(mine, dtype=np.int64))
            metrics = self._cat([sim.metrics for sim in self.sims])
            infos = self._infos(metrics, self._cat([sim.reward_parts for sim in self.sims]))
            obs = self._cat([sim.obs for sim in self.sims])
            return [(obs[i], infos[i]) for i in idx]
        if method_name == "render":
            return [None for _ in idx]
        raise AttributeError(
            f"{type(self).__name__}: no per-cluster method {method_name!r} (available: action_masks, reset, render)"
        )

    def env_is_wrapped(self, wrapper_class: type, indices: VecEnvIndices = None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]

    def _get_indices(self, indices: VecEnvIndices) -> Sequence[int]:
        if indices is None:
            return range(self.num_envs)
        if isinstance(indices, int):
            return [indices]
        return indices

    def _locate(self, i: int) -> tuple[BatchSimulator, int]:
        for sim, sl in zip(self.sims, self.slices):
            if sl.start <= i < sl.stop:
                return sim, i - sl.start
        raise IndexError(f"cluster index {i} is outside [0, {self.num_envs - 1}]")

    @staticmethod
    def _cat(arrays: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(arrays)  # a copy, also for one simulator

    def _infos(self, metrics: np.ndarray, parts: np.ndarray) -> list[dict[str, Any]]:
        return info_dicts(metrics, parts)
