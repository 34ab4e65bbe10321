"""Reward normalisation per training family (``normalize.reward_per_family``).

VecNormalize divides every cluster's reward by one running standard deviation of the discounted return, pooled
over all clusters. When the training families' returns differ in scale (on paired rewards with an SLO penalty,
failure_storm's per-episode differences are several times steady's), the pooled scale is set by the loudest
family and the others' advantages shrink towards PPO's noise (issue 15, rl34: the penalised gate never learns
steady's move that the unpenalised one finds). :class:`FamilyVecNormalize` keeps one return statistic per family
and divides each cluster's reward by its own family's, the per-task scale of PopArt (Hessel et al., "Multi-task
deep reinforcement learning with PopArt", AAAI 2019) without its output-layer correction: the value network sees
each family's returns at a similar scale. Observations are normalised as VecNormalize does, over all clusters.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from stable_baselines3.common.running_mean_std import RunningMeanStd
from stable_baselines3.common.vec_env import VecNormalize


class FamilyVecNormalize(VecNormalize):
    """VecNormalize with the return's running variance kept per group of clusters (``groups[i]``: cluster i's
    family index, 0..n-1). Saved and loaded as VecNormalize is (a pickle; the groups and statistics with it)."""

    def __init__(self, venv: Any, groups: np.ndarray, **kwargs: Any) -> None:
        super().__init__(venv, **kwargs)
        self.groups = np.asarray(groups, dtype=np.int64)
        n = int(self.groups.max()) + 1 if self.groups.size else 0
        if self.groups.shape != (self.num_envs,) or not np.array_equal(np.unique(self.groups), np.arange(n)):
            raise ValueError(
                f"groups: one family index per cluster ({self.num_envs}), every family 0..n-1 with a cluster; "
                f"got {groups!r}"
            )
        self.family_rms = [RunningMeanStd(shape=()) for _ in range(n)]

    def _update_reward(self, reward: np.ndarray) -> None:
        self.returns = self.returns * self.gamma + reward
        for g, rms in enumerate(self.family_rms):
            rms.update(self.returns[self.groups == g])
        self.ret_rms.update(self.returns)  # the pooled statistic, as VecNormalize keeps it (not used to scale)

    def reward_scale(self) -> np.ndarray:
        """Each cluster's divisor: the standard deviation of its family's discounted return."""
        var = np.array([rms.var for rms in self.family_rms])
        return np.sqrt(var[self.groups] + self.epsilon)

    def normalize_reward(self, reward: np.ndarray) -> np.ndarray:
        if self.norm_reward:
            reward = np.clip(reward / self.reward_scale(), -self.clip_reward, self.clip_reward)
        return reward.astype(np.float32)  # as VecNormalize returns it (the rollout buffer stores float32)

    def unnormalize_reward(self, reward: np.ndarray) -> np.ndarray:
        if self.norm_reward:
            return reward * self.reward_scale()
        return reward
