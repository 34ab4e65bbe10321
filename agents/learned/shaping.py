"""Training-only reward shaping: penalties for blocked requests, direction reversals and SLO-violating steps.

The env's reward charges ``reward.weights.scaling`` on the *applied* change only, so a request that a cooldown
blocks costs nothing: a policy trained on it may ask to scale in on almost every step (issue 15: ~182 of 240
steps on ``steady``) and cycle 12 -> 20 -> 16 -> 12 instances. :class:`FlapPenalty` subtracts, per step and
cluster, ``blocked`` if the request was blocked by a cooldown and ``reversal`` if the applied change goes the
other way from the cluster's previous applied change in the episode. It wraps the native VecEnv below
VecMonitor and VecNormalize and reads the step's metrics the VecEnv exposes (``step_metrics``: on a step that
ends an episode, the last step's values), so it adds no work to the compiled step. The periodic evaluation,
the benchmark and the verdict see the env's own reward. ``slo_violation`` adds to the env's own SLO term
(``reward.weights.slo_violation`` per violating step): a policy judged at no higher SLO share than a rule's
(issue 15) can be trained to weigh a violation more than the env's reward does; ``slo_violation`` may also be one
value per cluster, which :func:`lagrange_step` adapts per training scenario (``reward_shaping.slo_lagrangian``):
each FlapPenalty counts the SLO-violating steps of each cluster since its counts were last taken
(:meth:`FlapPenalty.take_violations`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from stable_baselines3.common.vec_env import VecEnvWrapper

from scaling_env.envs.sb3 import ServerlessScalingVecEnv
from scaling_env.fields import M_BLOCKED, M_SCALE_APPLIED, M_SLO_VIOLATED


class FlapPenalty(VecEnvWrapper):
    """``reward - blocked * blocked_by_cooldown - reversal * [sign(applied) == -sign(previous applied)]
    - slo_violation * slo_violated``."""

    def __init__(
        self, venv: ServerlessScalingVecEnv, blocked: float = 0.0, reversal: float = 0.0, slo_violation: float = 0.0
    ) -> None:
        if not isinstance(venv, ServerlessScalingVecEnv):
            raise TypeError("FlapPenalty wraps the native ServerlessScalingVecEnv (it reads its step_metrics)")
        super().__init__(venv)
        self.blocked = float(blocked)
        self.reversal = float(reversal)
        self.slo_violation: float | np.ndarray = float(slo_violation)  # or one value per cluster (the Lagrangian)
        self.last_sign = np.zeros(venv.num_envs, dtype=np.int8)  # sign of each cluster's last applied change
        self.last_penalty = np.zeros(venv.num_envs)
        self.violations = np.zeros(venv.num_envs)  # SLO-violating steps per cluster since take_violations
        self.counted_steps = 0

    def reset(self) -> np.ndarray:
        self.last_sign[:] = 0
        return self.venv.reset()

    def step_wait(self) -> Any:
        obs, rewards, dones, infos = self.venv.step_wait()
        m = self.venv.step_metrics
        sign = np.sign(m[:, M_SCALE_APPLIED]).astype(np.int8)
        reversed_ = (sign != 0) & (sign == -self.last_sign)
        self.last_penalty = (
            self.blocked * (m[:, M_BLOCKED] > 0) + self.reversal * reversed_ + self.slo_violation * m[:, M_SLO_VIOLATED]
        )
        self.violations += m[:, M_SLO_VIOLATED]
        self.counted_steps += 1
        self.last_sign = np.where(sign != 0, sign, self.last_sign)
        self.last_sign[dones] = 0  # a new episode has no previous change
        return obs, (rewards - self.last_penalty).astype(np.float32), dones, infos

    def take_violations(self) -> tuple[np.ndarray, int]:
        """(SLO-violating steps per cluster, env steps) since the last call, and start counting afresh."""
        taken = (self.violations.copy(), self.counted_steps)
        self.violations[:] = 0.0
        self.counted_steps = 0
        return taken


def lagrange_step(
    penalty: np.ndarray,
    agent_share: np.ndarray,
    base_share: np.ndarray,
    lr: float,
    margin: float | np.ndarray,
    high: float,
) -> np.ndarray:
    """One update of the per-scenario SLO penalties (``reward_shaping.slo_lagrangian``): each moves by ``lr`` per
    percentage point by which the agent's SLO share exceeds ``(1 - margin)`` times expert 0's (shares as
    fractions; ``margin`` one for all or one per scenario), and stays in [0, ``high``]. A scenario whose agent
    stays below its target loses its penalty."""
    margin = np.asarray(margin, dtype=np.float64)
    gap = 100.0 * (np.asarray(agent_share, dtype=np.float64) - (1.0 - margin) * np.asarray(base_share))
    return np.clip(np.asarray(penalty, dtype=np.float64) + lr * gap, 0.0, high)
