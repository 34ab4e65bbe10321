"""The single-cluster Gymnasium environment (a thin adapter over the batched core)."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import logger, spaces

from ..config import EnvConfig
from ..fields import HISTORY_GROUPS, INFO_NAMES, N_METRICS, info_table, observation_bounds, observation_table
from ..sim.simulator import BatchSimulator
from .info import info_dict
from .rendering import ansi_line
from .snapshot import EnvSnapshot, check_env_snapshot, copy_value, get_env_state


def check_action(action: Any, n: int) -> int:
    """An action index as int, or a ValueError that says what was wrong. Booleans are refused (True is not
    the index 1 by intent), as the vector env refuses boolean arrays; so are inf and NaN."""
    if isinstance(action, (bool, np.bool_)) or (isinstance(action, np.ndarray) and action.dtype.kind == "b"):
        raise ValueError(f"action must be an integer index in [0, {n - 1}], got the boolean {action!r}")
    try:
        a = int(action)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"action must be an integer index in [0, {n - 1}], got {action!r}") from None
    if a != action or not 0 <= a < n:
        raise ValueError(f"action must be an integer index in [0, {n - 1}], got {action!r}")
    return a


class ServerlessScalingEnv(gym.Env):
    __doc__ = f"""Autoscaling a serverless service: instances behind a health-checked load balancer.

    Every ``step_seconds`` (default 15 s) the agent asks for a change in the instance count. Requests arrive
    from a workload lambda(t); the load balancer routes them over its warm instances; instances cold-start,
    serve with limited concurrency, queue, drop, crash, are detected by health checks and replaced. The model
    and its sources are in ``docs/model.md``.

    ## Action space
    ``Discrete(len(scaling.scale_steps))``: action ``i`` asks for a change of ``scale_steps[i]`` instances
    (default ``[-2, -1, 0, +1, +2]``). The change is clipped to ``[min_instances, max_instances]``; a scale-out
    is ignored while the scale-out cooldown runs, a scale-in while the scale-in cooldown runs (``info`` says
    what was asked, what was applied and whether a cooldown blocked it). ``env.unwrapped.action_masks()`` gives
    the actions that are not blocked, for sb3-contrib's MaskablePPO (through ``gymnasium.make``'s wrappers, use
    ``env.unwrapped`` or ``env.get_wrapper_attr("action_masks")``); ``env.unwrapped.workload.rate(t)`` is the
    episode's arrival rate lambda(t), for look-ahead.

    ## Observation space
    ``ServerlessScaling-v0``: ``Box(low, high, (19,), float32)``, every value clipped into its bounds:

{observation_table()}

    ``ServerlessScaling-v1``: ``Box(low, high, (43,), float32)``: the 19 fields above, then the history an
    autoscaler keeps (``fields.HISTORY_FIELDS``, computed after each step by ``scaling_env/sim/monitoring.py``
    from the metrics as the monitoring delivers them, config ``metrics``). "short", "mid" and "long" are
    exponential moving averages with the time constants ``observation.ema_seconds`` (default 60, 300 and 900 s,
    the 1-, 5- and 15-minute load averages; docs/model.md "The observation's history"):

{observation_table(HISTORY_GROUPS, first=19)}

    The config section ``observation`` chooses the history groups (``history``: ``ema``, ``trend``, ``errors``,
    ``fleet``, ``control``; each group's fields keep their order, so an ablation drops columns), the reset
    observation (``reset``) and ``ema_seconds``; what it leaves unset is the version's (v0: no history, empty
    reset; v1: every group, steady-state reset). ``fields.observation_fields(groups)`` gives the names.

    ## Reward
    ``-(w_cost * cost + w_slo_violation * slo_violation + w_dropped * dropped + w_failed * failed
    + w_scaling * scaling)`` with the weights in ``config.reward.weights``:
    ``cost`` = step cost / cost of ``max_instances`` serving at full concurrency for a step;
    ``slo_violation`` = 1 if the step's p95 latency exceeds ``reward.slo_p95_seconds`` or more than
    ``reward.slo_max_lost_share`` (default 5 %) of its requests were lost (dropped or failed);
    ``dropped`` and ``failed`` = shares of the step's requests;
    ``scaling`` = |instances added or removed| / max |scale_steps|. Each is O(1) per step; the weighted,
    negated parts are in ``info["reward_components"]`` and sum to the reward.

    ## Episode end
    Never terminated; truncated after ``episode_steps`` steps (default 240 = 1 hour), computed in the core.
    ``gymnasium.make(..., max_episode_steps=N)`` adds Gymnasium's ``TimeLimit``, which can only shorten that.

    ## Info
{info_table()}

    ## Rendering
    ``render_mode="ansi"``: ``render()`` returns one line of text for the last step; ``"human"``: every step
    prints that line; ``"rgb_array"``: ``render()`` returns the episode dashboard so far (request rate and warm
    capacity, instances by state, CPU and memory, p95 latency against the SLO, dropped and failed requests,
    cost; ``scaling_env/dashboard.py``) as an ``(H, W, 3)`` uint8 frame, for Gymnasium's ``RecordVideo`` and
    frame tools. A frame takes matplotlib about a tenth of a second to draw.

    ## Arguments
    ``gymnasium.make("ServerlessScaling-v0", config=..., render_mode=None | "ansi" | "human")``; ``config`` is
    an :class:`EnvConfig`, a dict or a YAML path. In worker processes that do not import ``scaling_env`` (e.g.
    SB3's ``SubprocVecEnv``), use the id ``"scaling_env:ServerlessScaling-v0"``. ``ServerlessScaling-v1`` takes
    the same arguments; the classes take ``version=0 | 1`` (``ServerlessScalingEnv(config, version=1)``, and so
    do the vector env and the SB3 VecEnv). Gymnasium notes on ``make("ServerlessScaling-v0")`` that a newer
    version exists; v0 stays supported with exactly its observation.

    ## Version History
    * v0: the first registered version: the 19 observation fields, 5 reward terms and info keys above; the step
      is the phased kernel of ``scaling_env/sim/kernel.py``. Within v0, ``info["instances_controlled"]`` and the
      config field ``reward.slo_max_lost_share`` (default 0.05, the lost share that was a fixed 5 % before) were
      added without changing any trajectory of the default config. The config field ``simulator`` (``fast``, the
      default, or ``request``: every request and instance event simulated at its exact time; docs/model.md "The
      request-level backend", docs/fidelity.md) was added within v0 too; the default's trajectories are unchanged.
      Config sections ``observation`` (unset: the v0 observation) and ``metrics`` (default: every metric
      delivered as measured, period one step, no delay) and the ``observed_*`` info keys were added within v0
      without changing any of its trajectories.
      Package 0.2.0 (before any release of 0.1.0 to an index) **changed v0's and v1's dynamics**: the fast model
      was corrected where the request-level backend showed it wrong (issue 16; docs/fidelity.md): round robin's
      queue is E_n/M/c and is followed from step to step near capacity, the p95 follows a lognormal service law,
      a crash acts at its time inside the step, arrivals split around a pool change. Every trajectory of the
      default configs changed (the golden digests were re-recorded); numbers measured with 0.1.0 are not
      comparable with 0.2.0's. The ids stay v0/v1 because no release carried the old dynamics.
    * v1: the observation gains the 24 history fields above (moving averages of rate, CPU, memory and p95 over
      three time scales, their trends, lost shares and crashes, the fleet against the demand, the last scaling
      action), and the reset observation shows the initial fleet serving the first step's expected rate at
      steady state (v0 shows no load, CPU or latency at reset). Dynamics, rewards and info are those of v0.
    """

    metadata = {"render_modes": ["ansi", "human", "rgb_array"], "render_fps": 4}

    def __init__(
        self, config: EnvConfig | dict | str | None = None, render_mode: str | None = None, version: int = 0
    ) -> None:
        # the env version's observation where the config leaves it unset (ServerlessScaling-v1 passes version=1)
        self.config = EnvConfig.coerce(config).for_version(version)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            # not an error: stable-baselines3's make_vec_env asks for "rgb_array" by default
            logger.warn(
                f"render_mode {render_mode!r} is not supported {self.metadata['render_modes']}; render() returns None"
            )
        self.render_mode = render_mode
        self.sim = BatchSimulator(self.config, num_envs=1, parallel=False)
        self.observation_space = spaces.Box(*observation_bounds(self.config.observation.groups), dtype=np.float32)
        self.action_space = spaces.Discrete(self.sim.num_actions)
        self._actions = np.zeros(1, dtype=np.int64)
        self._n_actions = self.sim.num_actions
        self._steps = 0
        self._done = True
        # rgb_array: the episode's metrics, one row per step, for the dashboard frame
        self._history = np.zeros((self.config.episode_steps, N_METRICS)) if render_mode == "rgb_array" else None

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.sim.generators[0] = self.np_random
        self.sim.reset([0])
        self._steps = 0
        self._done = False
        return self.sim.obs[0].copy(), self._info()

    def step(self, action):
        if self._done:
            raise RuntimeError("the episode has ended (truncated); call reset() before step()")
        self._actions[0] = check_action(action, self._n_actions)
        sim = self.sim
        sim.step(self._actions)
        self._steps += 1
        truncated = bool(sim.truncated[0])
        self._done = truncated
        if self.render_mode == "human":
            print(ansi_line(sim.metrics[0], float(sim.rewards[0]), self._steps))
        elif self._history is not None:
            self._history[self._steps - 1] = sim.metrics[0]
        return sim.obs[0].copy(), float(sim.rewards[0]), False, truncated, self._info()

    def render(self) -> str | np.ndarray | None:
        if self.render_mode == "ansi":
            return ansi_line(self.sim.metrics[0], float(self.sim.rewards[0]), self._steps)
        if self.render_mode == "rgb_array":
            from ..dashboard import dashboard_rgb

            assert self._history is not None
            n = self._steps
            trace = {name: self._history[:n, i] for i, name in enumerate(INFO_NAMES)}
            trace["rate_rps"] = self.sim.expected[0, :n] / self.config.step_seconds
            return dashboard_rgb(trace, self.config, title=f"step {n} of {self.config.episode_steps}")
        return None

    def action_masks(self) -> np.ndarray:
        """Valid actions now (bounds and cooldowns), as MaskablePPO expects."""
        return self.sim.action_masks()[0]

    @property
    def workload(self):
        """The current episode's workload: ``rate(t)`` gives lambda(t) in requests/s (for look-ahead)."""
        return self.sim.episodes[0]

    def get_state(self) -> EnvSnapshot:
        """A copy of the env's whole state (the simulator's: instances, queues, timers, cooldowns, random streams,
        workload position and episode workload; and the env's step count and dashboard history).
        ``set_state`` of it, on this env or another one made with the same config, continues exactly from here:
        the same actions give the same observations, rewards and infos, bit for bit."""
        return get_env_state(self, [0], _SNAPSHOT_ATTRS)

    def set_state(self, state: EnvSnapshot) -> None:
        """Restore what :meth:`get_state` returned (the env's ``np_random`` becomes the restored generator). A
        snapshot of an env with another config, or of another env class, raises a ``SnapshotError``."""
        state = check_env_snapshot(self, state)
        self.sim.set_state(state.sim, [0])
        self.np_random = self.sim.generators[0]  # the episode's generator is the env's, as after reset()
        for name, value in state.adapter.items():
            setattr(self, name, copy_value(value))

    def _info(self) -> dict[str, Any]:
        return info_dict(self.sim.metrics[0], self.sim.reward_parts[0])


_SNAPSHOT_ATTRS = ("_steps", "_done", "_history")  # what the env keeps outside its simulator
