"""Residual policy learning on top of a rule (Silver et al. 2018, "Residual Policy Learning", arXiv:1812.06298;
Johannink et al., "Residual Reinforcement Learning for Robot Control", ICRA 2019): the agent does not choose the
scale step itself but a correction of the step a rule policy proposes.

With ``residual: {policy: "predictive@generalist", max_offset: K}`` the agent's action space is ``Discrete(2K+1)``;
action ``a`` moves the rule's chosen step by ``a - K`` places in the env's ``scaling.scale_steps`` ordered by
change (clipped to the first and last step), so action ``K`` ("zero correction") applies exactly the rule's step.
The agent observes the env's observation followed by the one-hot of the rule's proposed step (in the order of
``scale_steps``). The rule runs per cluster beside the env: :class:`ResidualVecEnv` in training (it wraps the
native VecEnv), :class:`ResidualPolicy` in evaluation and the benchmark (it wraps the loaded model).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.vec_env import VecEnvWrapper

from scaling_env.config import EnvConfig
from scaling_env.envs.info import batch_info
from scaling_env.envs.sb3 import ServerlessScalingVecEnv

from ..base import PolicyBase, PolicyParams


def step_order(config: EnvConfig) -> tuple[np.ndarray, np.ndarray]:
    """(rank of each action index in the scale steps sorted by change, action index of each rank)."""
    by_change = np.argsort(np.asarray(config.scaling.scale_steps), kind="stable")
    rank = np.empty_like(by_change)
    rank[by_change] = np.arange(len(by_change))
    return rank, by_change


def corrected(rule_actions: np.ndarray, offsets: np.ndarray, config: EnvConfig, max_offset: int) -> np.ndarray:
    """The applied action indices: each rule action moved by ``offset - max_offset`` places in the ordered steps."""
    rank, by_change = step_order(config)
    moved = np.clip(rank[rule_actions] + np.asarray(offsets, dtype=np.int64) - max_offset, 0, len(rank) - 1)
    return by_change[moved].astype(np.int64)


def with_proposal(obs: np.ndarray, rule_actions: np.ndarray, n_actions: int) -> np.ndarray:
    """The observation followed by the one-hot of the rule's proposed action."""
    onehot = np.zeros((len(obs), n_actions), dtype=np.float32)
    onehot[np.arange(len(obs)), rule_actions] = 1.0
    return np.concatenate([np.asarray(obs, dtype=np.float32), onehot], axis=1)


def make_rule(spec: str, config: EnvConfig, scenario: str | None = None) -> Any:
    from ..registry import make_policy

    return make_policy(spec, config, scenario=scenario)


class ResidualVecEnv(VecEnvWrapper):
    """The native VecEnv (``base``, possibly under a reward wrapper ``venv``) with a rule per training scenario
    proposing each cluster's step; the agent's action corrects it (module docstring)."""

    def __init__(
        self,
        base: ServerlessScalingVecEnv,
        spec: str,
        max_offset: int,
        venv: Any = None,
        names: list[str] | None = None,
    ) -> None:
        inner = base if venv is None else venv
        n_obs = int(base.observation_space.shape[0])
        self.n_actions = int(base.action_space.n)
        low = np.concatenate([base.observation_space.low, np.zeros(self.n_actions, dtype=np.float32)])
        high = np.concatenate([base.observation_space.high, np.ones(self.n_actions, dtype=np.float32)])
        super().__init__(
            inner,
            observation_space=spaces.Box(low, high, shape=(n_obs + self.n_actions,), dtype=np.float32),
            action_space=spaces.Discrete(2 * max_offset + 1),
        )
        self.base = base
        self.max_offset = int(max_offset)
        names = names or [None] * len(base.configs)
        self.rules = [make_rule(spec, c, scenario=n) for c, n in zip(base.configs, names)]
        self.rule_actions = np.zeros(base.num_envs, dtype=np.int64)

    def _propose(self, obs: np.ndarray, fresh: np.ndarray | None) -> np.ndarray:
        # the rules read the simulators' own state: after an autoreset, the new episode's first info
        for rule, sim, sl in zip(self.rules, self.base.sims, self.base.slices):
            if fresh is not None and fresh[sl].all():
                rule.reset(num_envs=sl.stop - sl.start)
            info = batch_info(sim.metrics, sim.reward_parts)
            self.rule_actions[sl] = rule.act_batch(obs[sl], info)
        return with_proposal(obs, self.rule_actions, self.n_actions)

    def reset(self) -> np.ndarray:
        obs = self.venv.reset()
        for rule, sl in zip(self.rules, self.base.slices):
            rule.reset(num_envs=sl.stop - sl.start)
        return self._propose(obs, None)

    def step_async(self, actions: np.ndarray) -> None:
        applied = np.empty_like(self.rule_actions)
        for config, sl in zip(self.base.configs, self.base.slices):
            applied[sl] = corrected(self.rule_actions[sl], np.asarray(actions)[sl], config, self.max_offset)
        self.venv.step_async(applied)

    def step_wait(self) -> Any:
        obs, rewards, dones, infos = self.venv.step_wait()
        for i in np.flatnonzero(dones):
            infos[i]["terminal_observation"] = with_proposal(
                infos[i]["terminal_observation"][None], self.rule_actions[i : i + 1], self.n_actions
            )[0]
        return self._propose(obs, dones), rewards, dones, infos


class ResidualPolicy(PolicyBase):
    """A batched policy: ``rule`` proposes each cluster's step, ``agent`` (a policy acting on the observation
    followed by the proposal's one-hot, whose actions are corrections) moves it (module docstring)."""

    name = "residual"
    Params = PolicyParams

    def __init__(self, env_config: Any, *, rule: Any, agent: Any, max_offset: int) -> None:
        super().__init__(env_config)
        self.rule = rule
        self.agent = agent
        self.max_offset = int(max_offset)
        self.n_actions = len(self.env_config.scaling.scale_steps)

    def bind(self, env: Any) -> None:
        for p in (self.rule, self.agent):
            if hasattr(p, "bind"):
                p.bind(env)

    def reset(self, seed: int | None = None, num_envs: int = 1) -> None:
        super().reset(seed, num_envs)
        self.rule.reset(seed, num_envs)
        self.agent.reset(seed, num_envs)

    def act_batch(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        proposed = np.asarray(self.rule.act_batch(obs, info), dtype=np.int64)
        offsets = self.agent.act_batch(with_proposal(obs, proposed, self.n_actions), info)
        return corrected(proposed, offsets, self.env_config, self.max_offset)


def prefer_zero_correction(model: Any, max_offset: int, bias: float) -> None:
    """Add ``bias`` to the zero-correction logit of a fresh PPO policy's action head, so that early training
    follows the rule (the head's weights start near 0: SB3 initialises it with gain 0.01)."""
    import torch

    if bias:
        with torch.no_grad():
            model.policy.action_net.bias[max_offset] += float(bias)
