"""The native Gymnasium vector env: B clusters stepped by one compiled call, no Python loop over clusters."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import logger, spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from ..config import EnvConfig
from ..fields import observation_bounds
from ..sim.simulator import BatchSimulator
from .info import batch_info, overlay_final
from .rendering import ansi_line
from .snapshot import EnvSnapshot, check_env_snapshot, get_env_state

RENDER_MODES = ("ansi", "human")


def check_actions(actions: Any, num_envs: int, n: int) -> np.ndarray:
    """A (num_envs,) int64 array of valid indices, or a ValueError that says what was wrong."""
    a = np.asarray(actions)
    if a.shape != (num_envs,):
        raise ValueError(f"actions must have shape ({num_envs},), got {a.shape}")
    if a.dtype.kind == "b":  # as the single env: True is not the index 1 by intent
        raise ValueError(f"actions must be integer indices in [0, {n - 1}], got booleans {a!r}")
    if a.dtype.kind not in "iu":
        with np.errstate(invalid="ignore"):  # inf and NaN: refused below, not warned about
            whole = a.dtype.kind == "f" and bool(np.all(np.isfinite(a) & (np.mod(a, 1) == 0)))
        if not whole:
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


def autoreset_mode_of(mode: AutoresetMode | str) -> AutoresetMode:
    if isinstance(mode, AutoresetMode):
        return mode
    key = str(mode).replace("_", "").replace("-", "").lower()
    for m in (AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP):
        if key == m.value.lower():
            return m
    raise ValueError(f"autoreset_mode must be 'next_step' or 'same_step', got {mode!r}")


class ServerlessScalingVectorEnv(VectorEnv):
    """``gymnasium.make_vec("ServerlessScaling-v0", num_envs=B, vectorization_mode="vector_entry_point")``.

    B independent clusters, stepped by one compiled call. Cluster i of ``reset(seed=s)`` follows the same
    trajectory as a single env reset with seed ``s + i``.

    Autoreset (``autoreset_mode``) works as in Gymnasium's own vector envs:

    - ``"next_step"`` (default, as Gymnasium's): the step that ends an episode returns its last observation;
      the next ``step()`` resets those clusters (their actions are ignored, reward 0) and returns the first
      observation of the new episode. Gymnasium's observation wrappers need this mode.
    - ``"same_step"`` (as stable-baselines3): the step that ends an episode returns the first observation of the
      next one; ``info["final_obs"]`` and ``info["final_info"]`` hold the last step's.

    Info values are arrays of shape (B,), each with its ``_key`` mask, as Gymnasium's vector envs give them.
    ``max_episode_steps`` (passed by ``make_vec``) overrides ``config.episode_steps``.
    """

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": list(RENDER_MODES), "render_fps": 4}

    def __init__(
        self,
        num_envs: int = 1,
        config: EnvConfig | dict | str | None = None,
        render_mode: str | None = None,
        parallel: bool | None = None,
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
        max_episode_steps: int | None = None,
        version: int = 0,
    ) -> None:
        # the env version's observation where the config leaves it unset (ServerlessScaling-v1 passes version=1)
        self.config = EnvConfig.coerce(config).for_version(version)
        if max_episode_steps is not None:
            self.config = self.config.with_updates({"episode_steps": max_episode_steps})
        if render_mode is not None and render_mode not in RENDER_MODES:
            logger.warn(f"render_mode {render_mode!r} is not supported ({RENDER_MODES}); render() returns None")
        self.num_envs = num_envs
        self.render_mode = render_mode
        self.autoreset_mode = autoreset_mode_of(autoreset_mode)
        self.metadata = {**self.metadata, "autoreset_mode": self.autoreset_mode}
        self.sim = BatchSimulator(self.config, num_envs=num_envs, parallel=parallel)
        self.single_observation_space = spaces.Box(
            *observation_bounds(self.config.observation.groups), dtype=np.float32
        )
        self.single_action_space = spaces.Discrete(self.sim.num_actions)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self._mask = np.ones(num_envs, dtype=np.bool_)
        self._mask.setflags(write=False)  # shared by every key: read-only, so nobody edits it by accident
        self._pending = np.zeros(num_envs, dtype=np.bool_)  # next-step mode: clusters to reset at next step
        self._started = False

    def reset(self, *, seed: int | list[int | None] | None = None, options: dict | None = None):
        super().reset(seed=seed if isinstance(seed, (int, np.integer)) else None)
        if seed is not None:
            self.sim.seed(seeds_for(seed, self.num_envs))
        mask = None if options is None else options.get("reset_mask")
        if mask is None:
            self.sim.reset()
            self._pending[:] = False
        else:
            mask = np.asarray(mask, dtype=np.bool_)
            if mask.shape != (self.num_envs,):
                raise ValueError(f"options['reset_mask'] must have shape ({self.num_envs},), got {mask.shape}")
            self.sim.reset(np.flatnonzero(mask))
            self._pending[mask] = False
        self._started = True
        return self.sim.obs.copy(), self._info(self.sim.metrics, self.sim.reward_parts)

    def step(self, actions):
        if not self._started:
            raise RuntimeError("call reset() before step()")
        acts = check_actions(actions, self.num_envs, self.sim.num_actions)
        sim = self.sim
        terminated = np.zeros(self.num_envs, dtype=np.bool_)
        if self.autoreset_mode == AutoresetMode.SAME_STEP:
            final = sim.step_autoreset(acts)
            info = self._info(sim.metrics, sim.reward_parts)
            if final is not None:
                done = np.zeros(self.num_envs, dtype=np.bool_)
                done[final.ids] = True
                final_obs = np.full(self.num_envs, None, dtype=object)
                for j, i in enumerate(final.ids.tolist()):
                    final_obs[i] = final.obs[j]
                metrics, parts = overlay_final(sim.metrics, sim.reward_parts, final)
                info["final_obs"], info["_final_obs"] = final_obs, done
                info["final_info"], info["_final_info"] = self._info(metrics, parts), done
                if self.render_mode == "human":  # show the episode's last step, not the reset state
                    print(ansi_line(metrics[0], float(sim.rewards[0]), self.config.episode_steps))
            elif self.render_mode == "human":
                print(self._line(0))
            return sim.obs.copy(), sim.rewards.copy(), terminated, sim.truncated.copy(), info
        # next-step autoreset
        if self._pending.any():
            ids = np.flatnonzero(self._pending)
            self._pending[:] = False
            if len(ids) == self.num_envs:  # every cluster starts over: nothing to step
                sim.reset(ids)
                return (
                    sim.obs.copy(),
                    np.zeros(self.num_envs),
                    terminated,
                    np.zeros(self.num_envs, dtype=np.bool_),
                    self._info(sim.metrics, sim.reward_parts),
                )
            sim.reset(ids)
            active = np.ones(self.num_envs, dtype=np.bool_)
            active[ids] = False
            sim.step(acts, active)
            sim.rewards[ids] = 0.0
            sim.truncated[ids] = False
        else:
            sim.step(acts)
        self._pending[:] = sim.truncated
        if self.render_mode == "human":
            print(self._line(0))
        return (
            sim.obs.copy(),
            sim.rewards.copy(),
            terminated,
            sim.truncated.copy(),
            self._info(sim.metrics, sim.reward_parts),
        )

    def render(self) -> tuple[str, ...] | None:
        if self.render_mode == "ansi":
            return tuple(self._line(i) for i in range(self.num_envs))
        return None

    def action_masks(self) -> np.ndarray:
        """(B, n_actions) bool: the valid actions of each cluster."""
        return self.sim.action_masks()

    def get_state(self, ids: np.ndarray | list[int] | None = None) -> EnvSnapshot:
        """A copy of the state of clusters ``ids`` (all if None): the simulator's (instances, queues, timers,
        cooldowns, random streams, workload position, episode workloads, last outputs) and which of them wait for
        a next-step autoreset. ``set_state`` of it continues exactly from here, bit for bit."""
        snap = get_env_state(self, ids, ("_started",))
        snap.adapter["_pending"] = self._pending[snap.sim.source_ids].copy()
        return snap

    def set_state(self, state: EnvSnapshot, ids: np.ndarray | list[int] | None = None) -> None:
        """Restore what :meth:`get_state` returned into clusters ``ids`` (default: the clusters it was taken
        from; a one-cluster snapshot is copied into every id). The env must have the same config."""
        state = check_env_snapshot(self, state)
        target = state.sim.source_ids if ids is None else np.asarray(ids, dtype=np.int64).reshape(-1)
        self.sim.set_state(state.sim, target)
        self._pending[target] = state.adapter["_pending"]
        self._started = self._started or state.adapter["_started"]

    def _line(self, i: int) -> str:
        return ansi_line(self.sim.metrics[i], float(self.sim.rewards[i]), int(self.sim.step_index()[i]))

    def _info(self, metrics: np.ndarray, parts: np.ndarray) -> dict[str, Any]:
        return batch_info(metrics, parts, self._mask)
