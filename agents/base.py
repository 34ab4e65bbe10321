"""The ``Policy`` interface shared by every autoscaler, and the helpers the policies share.

A policy sees what a real autoscaler sees: the step's metrics in the env's ``info`` (``cpu_utilization``,
``arrivals``, ``instances_warm``, ...; see ``scaling_env.fields.INFO_FIELDS``), and answers one action index per
cluster. It keeps its own windows and timers. Each call of :meth:`Policy.act_batch` is one decision, taken
``env_config.step_seconds`` after the previous one; the first call after a reset gets the reset's info (all
metrics 0, ``instances_warm`` = the initial count), which carries no measurement.

How a decision becomes an action
--------------------------------
Most autoscalers compute a *desired instance count* (AWS's desired capacity, Kubernetes' ``spec.replicas``). A
policy stores it in ``self.desired`` (one per cluster, clipped to ``[min_instances, max_instances]``), and the
base class turns it into the action whose change is nearest to ``desired - current`` (:func:`action_for_target`),
where ``current`` is the count the env controls (:func:`controlled_count`). When the env's ``scale_steps`` are
coarser than the wanted change, or a cooldown blocks it, the policy keeps asking at the next decisions until the
count reaches the desired one, as an auto-scaling group converges on its desired capacity.

Rounding rule of :func:`action_for_target` (``rounding="nearest"``): among the available steps, the one whose
*effective* change (after the env clips ``current + step`` into the bounds) is nearest to the wanted change;
a tie goes to the larger step, i.e. to the count with more instances: a scale-out of +3 with steps
``{+2, +4}`` adds 4, a scale-in of -3 with steps ``{-2, -4}`` removes 2. Both AWS and Kubernetes round a
fractional capacity towards availability (AWS target tracking adds 2 for "1.5 instances" and removes 1 for
"-1.5"; the HPA takes ``ceil`` of its replica count), so a tie between two steps is broken the same way rather
than under-provisioning a scale-out. Because the effective change is what is compared, the bounds are never
overshot, and a step larger than the room left reaches the bound exactly. With ``rounding="up"`` (used by the
oracle, which must not under-provision) it is the smallest effective change at least as large as the wanted
one, or the largest available if none is.

A step that overshoots is accepted as the decision: when the count the chosen step reaches (``current + step``,
clipped to the bounds) lies beyond ``desired`` in the direction of the move, ``desired`` becomes that count, so
the base class does not "correct" a rounded-up scale-out by a scale-in the policy never decided (+7 taken as +8
is not followed by -1, which would also start the env's scale-in cooldown). Subclasses that keep state derived
from ``desired`` are told through :meth:`Policy._rounded` (step scaling counts the extra instance as warming
up; the HPA records the accepted count in its stabilisation window). With ``rounding="nearest"``, a count
accepted above the one asked for also stands while the policy keeps asking for the count it asked for when the
step was rounded (a policy that recomputes ``desired`` at every decision, e.g. ``static`` or ``kpa``, would
otherwise ask to go back); it is dropped as soon as the policy asks for anything else. A count accepted below
the one asked for (a scale-in of -7 taken as -8) is not kept that way: the base class never holds a fleet below
what the policy keeps asking for, so such a policy adds the instance back at its next decision.

Episode boundaries
------------------
Vector envs reset clusters on their own (autoreset). A cluster whose ``info["time_s"]`` is 0 has just been
reset: the policy clears that cluster's windows and timers before deciding (``fresh`` clusters).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from scaling_env import EnvConfig
from scaling_env.config import ConfigError, format_validation_error

Metric = Literal["cpu", "memory", "requests_per_instance"]
Rounding = Literal["nearest", "up"]

# the largest value a threshold or target can take for each metric: utilisations are fractions (CPU at most 1;
# memory use / limit can pass 1 before an instance crashes, so up to 2); requests per instance are unbounded
METRIC_LIMITS: dict[str, float | None] = {"cpu": 1.0, "memory": 2.0, "requests_per_instance": None}
METRIC_HELP = "cpu (fraction, <= 1) | memory (fraction, <= 2) | requests_per_instance (requests/s)"


class PolicyConfigError(ConfigError):
    """Policy parameters (or a policy file) are invalid. The message names the file and the field at fault."""


class PolicyParams(BaseModel):
    """Base of every policy's parameter model: frozen, and unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# ------------------------------------------------------------------------------------------ validation
def validate_params(model: type[PolicyParams], data: PolicyParams | dict | None, source: str) -> PolicyParams:
    """``data`` validated by ``model``; a :class:`PolicyConfigError` naming ``source`` and every bad field."""
    if isinstance(data, model):
        return data
    if isinstance(data, PolicyParams):
        raise PolicyConfigError(f"invalid {source}: expected {model.__name__}, got {type(data).__name__}")
    if data is not None and not isinstance(data, dict):
        raise PolicyConfigError(f"invalid {source}: expected a mapping of parameters, got {type(data).__name__}")
    try:
        return model.model_validate(data or {})
    except ValidationError as exc:
        unknown = "unknown key (not a parameter of this policy)"
        raise PolicyConfigError(format_validation_error(exc, source, model, unknown)) from None


def check_metric_value(metric: str, field: str, value: float | None, relative: bool = False) -> None:
    """A ValueError naming ``field`` if ``value`` cannot be a threshold or target of ``metric`` (or, with
    ``relative``, a distance from one): AWS and Kubernetes write utilisations as percent, this project as
    fractions, and a value such as 80 would otherwise pass and make the policy scale in on any load."""
    limit = METRIC_LIMITS.get(metric)
    if limit is None or value is None or abs(value) <= limit:
        return
    what = f"the distance between two {metric} utilisations" if relative else f"a {metric} utilisation"
    raise ValueError(
        f"{field} = {value:g} is out of range for metric {metric!r} ({what} is at most "
        f"{limit:g}): utilisations are fractions (0.8), not percent (80)"
    )


# ------------------------------------------------------------------------------------------ metrics
def info_array(info: dict[str, Any], key: str) -> np.ndarray:
    """``info[key]`` as a float64 array of shape (B,); a KeyError naming the key if it is missing."""
    try:
        return np.asarray(info[key], dtype=np.float64).reshape(-1)
    except KeyError:
        raise KeyError(f"info has no {key!r} (see scaling_env.fields.INFO_FIELDS)") from None


def controlled_count(info: dict[str, Any], config: EnvConfig) -> np.ndarray:
    """The instance count the env's actions change (docs/model.md section 2), from the step's info:
    booting + warm + crashed-but-undetected, plus unhealthy ones when they are kept rather than replaced."""
    n = info_array(info, "instances_warm") + info_array(info, "instances_booting")
    n = n + info_array(info, "instances_failed")
    if not config.failures.replace_unhealthy:
        n = n + info_array(info, "instances_unhealthy")
    return np.rint(n).astype(np.int64)


def metric_values(info: dict[str, Any], metric: Metric, step_seconds: float) -> np.ndarray:
    """The utilisation metric a policy tracks: ``cpu`` and ``memory`` are the mean utilisations of the serving
    instances (0..1); ``requests_per_instance`` is the arrival rate per warm instance, requests/s (the whole rate
    when none is warm)."""
    if metric == "cpu":
        return info_array(info, "cpu_utilization")
    if metric == "memory":
        return info_array(info, "memory_utilization")
    rate = info_array(info, "arrivals") / step_seconds
    return rate / np.maximum(info_array(info, "instances_warm"), 1.0)


def stranded_demand(info: dict[str, Any]) -> np.ndarray:
    """Requests arrive but no instance is warm or booting: no utilisation metric can say so (it is 0), so
    every policy launches at least one instance then (as Knative's activator or a Lambda invocation would)."""
    idle = (info_array(info, "instances_warm") + info_array(info, "instances_booting")) <= 0
    return idle & (info_array(info, "arrivals") > 0)


# ------------------------------------------------------------------------------------------ actions
def action_for_change(
    change: np.ndarray, current: np.ndarray, config: EnvConfig, rounding: Rounding = "nearest"
) -> np.ndarray:
    """Index into ``config.scaling.scale_steps`` for each wanted change (rule in the module docstring)."""
    steps = np.asarray(config.scaling.scale_steps, dtype=np.int64)
    lo, hi = config.scaling.min_instances, config.scaling.max_instances
    change = np.asarray(change, dtype=np.int64).reshape(-1)
    current = np.asarray(current, dtype=np.int64).reshape(-1)
    effective = np.clip(current[:, None] + steps[None, :], lo, hi) - current[:, None]  # (B, K)
    gap = effective - change[:, None]
    if rounding == "nearest":
        primary = np.abs(gap)
    elif rounding == "up":
        big = 4 * (hi + int(np.abs(steps).max()) + 1)
        primary = np.where(gap >= 0, gap, big - gap)  # any step reaching the change beats every one that falls short
    else:
        raise ValueError(f"rounding must be 'nearest' or 'up', got {rounding!r}")
    m = int(np.abs(steps).max())
    # ties: the larger effective change (more instances), then (same count reached) the smaller |step|
    key = (primary * (2 * m + 1) + (m - effective)) * (m + 1) + np.abs(steps)[None, :]
    return np.argmin(key, axis=1).astype(np.int64)


def action_for_target(
    target: np.ndarray, current: np.ndarray, config: EnvConfig, rounding: Rounding = "nearest"
) -> np.ndarray:
    """Index of the action that brings ``current`` nearest to ``target`` (clipped into the bounds)."""
    lo, hi = config.scaling.min_instances, config.scaling.max_instances
    target = np.clip(np.asarray(target, dtype=np.int64).reshape(-1), lo, hi)
    current = np.asarray(current, dtype=np.int64).reshape(-1)
    return action_for_change(target - current, current, config, rounding)


def steps_per(seconds: float, step_seconds: float) -> int:
    """How many decisions make up ``seconds`` (at least 1): a window of ``seconds`` rounded to whole steps."""
    return max(1, int(round(seconds / step_seconds)))


# ------------------------------------------------------------------------------------------ interface
class Policy(ABC):
    """Chooses scale actions for a batch of B clusters of one env configuration.

    A subclass sets ``name`` (its registry name) and ``Params`` (its pydantic parameter model) and implements
    ``_allocate`` (create its per-cluster windows and timers for a batch), ``_clear`` (clear them for the
    clusters that start a new episode) and ``_decide`` (update ``self.desired`` from a decision's metrics). A
    policy that computes its actions otherwise (a trained model) may override :meth:`act_batch` instead.

    ``rounding`` chooses how ``self.desired`` becomes an action (see :func:`action_for_target`). With
    ``launch_on_demand`` (the default), a cluster that receives requests with no instance warm or booting gets
    at least one instance (:func:`stranded_demand`): utilisation metrics are 0 then and could never ask for one.
    """

    name: ClassVar[str]
    Params: ClassVar[type[PolicyParams]]
    rounding: ClassVar[Rounding] = "nearest"
    launch_on_demand: ClassVar[bool] = True

    def __init__(self, env_config: EnvConfig, params: PolicyParams | dict | None = None) -> None:
        self.env_config = EnvConfig.coerce(env_config)
        self.params = validate_params(self.Params, params, f"{self.name} policy params")
        self.dt = float(self.env_config.step_seconds)
        self.num_envs = 0
        self.decisions = np.zeros(0, dtype=np.int64)  # decisions taken since each cluster's reset
        self.desired = np.zeros(0, dtype=np.int64)
        self.rounded_from = np.zeros(0, dtype=np.int64)
        self.rounded_to = np.zeros(0, dtype=np.int64)
        self.rng = np.random.default_rng()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.params!r})"

    # ---- public API
    def reset(self, seed: int | None = None, num_envs: int = 1) -> None:
        """Forget every window and timer; prepare for a batch of ``num_envs`` clusters."""
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.num_envs = int(num_envs)
        self.rng = np.random.default_rng(seed)
        self.decisions = np.zeros(num_envs, dtype=np.int64)
        self.desired = np.zeros(num_envs, dtype=np.int64)
        self.rounded_from = np.full(num_envs, -1, dtype=np.int64)  # what the policy asked for when a step
        self.rounded_to = np.zeros(num_envs, dtype=np.int64)  # overshot it, and the count accepted instead
        self._allocate(num_envs)

    def bind(self, env: Any) -> None:  # noqa: B027 - an optional hook, deliberately empty
        """Optional hook: a policy that reads the simulator (the oracle) takes it from ``env`` here."""

    def act_batch(self, obs: np.ndarray, info: dict[str, np.ndarray]) -> np.ndarray:
        """One decision for each of B clusters: ``obs`` (B, 19), ``info`` the vector env's dict of (B,) arrays.
        Returns (B,) int64 action indices."""
        obs = np.asarray(obs)
        if obs.ndim != 2:
            raise ValueError(f"obs must have shape (B, n_obs), got {obs.shape}")
        b = obs.shape[0]
        if self.num_envs == 0:
            self.reset(num_envs=b)
        elif b != self.num_envs:
            raise ValueError(f"{self.name}: reset for {self.num_envs} clusters, got a batch of {b}; call reset()")
        fresh = self.decisions == 0
        if "time_s" in info:
            fresh = fresh | (info_array(info, "time_s") == 0.0)
        current = controlled_count(info, self.env_config)
        if fresh.any():
            self.decisions[fresh] = 0
            self.desired[fresh] = current[fresh]
            self._clear(fresh)
        now = self.decisions * self.dt
        self._decide(obs, info, fresh, current, now)
        if self.launch_on_demand:
            stranded = ~fresh & stranded_demand(info)
            self.desired[stranded] = np.maximum(self.desired[stranded], 1)
        sc = self.env_config.scaling
        np.clip(self.desired, sc.min_instances, sc.max_instances, out=self.desired)
        asked = self.desired.copy()
        if self.rounding == "nearest":
            # a coarser step accepted earlier stands while the policy asks for what it asked for then
            held = (self.rounded_from >= 0) & ~fresh
            repeat = held & (asked == self.rounded_from)
            self.desired[repeat] = self.rounded_to[repeat]
            self.rounded_from[(held & ~repeat) | fresh] = -1
        actions = action_for_target(self.desired, current, self.env_config, self.rounding)
        reached = np.clip(
            current + np.asarray(sc.scale_steps, dtype=np.int64)[actions], sc.min_instances, sc.max_instances
        )
        over = ((self.desired > current) & (reached > self.desired)) | (
            (self.desired < current) & (reached < self.desired)
        )
        if over.any():
            delta = np.where(over, reached - self.desired, 0)
            more = over & (delta > 0)  # remembered only when it leaves more instances than asked for
            self.rounded_from[more] = asked[more]
            self.rounded_to[more] = reached[more]
            self.desired[over] = reached[over]
            self._rounded(delta)
        self.decisions += 1
        return actions

    def act(self, obs: np.ndarray, info: dict[str, Any]) -> int:
        """One decision for a single env: wraps ``obs`` and each scalar of ``info`` into a batch of one."""
        batch = {k: np.asarray([v]) for k, v in info.items() if np.ndim(v) == 0 and not isinstance(v, (str, dict))}
        return int(self.act_batch(np.asarray(obs)[None], batch)[0])

    # ---- for subclasses
    def _rounded(self, delta: np.ndarray) -> None:  # noqa: B027 - an optional hook, deliberately empty
        """Optional hook, called in the decision that took it: ``delta`` (B,) is how far the count the chosen
        step reaches overshoots what :meth:`_decide` asked for (``self.desired`` already holds the accepted
        count; 0 where nothing overshot). A policy that keeps state derived from ``desired`` updates it here."""

    @abstractmethod
    def _allocate(self, num_envs: int) -> None:
        """Create the per-cluster state (windows, timers) for a batch, all cleared."""

    @abstractmethod
    def _clear(self, mask: np.ndarray) -> None:
        """Clear the state of the clusters in ``mask`` (they start a new episode)."""

    @abstractmethod
    def _decide(
        self, obs: np.ndarray, info: dict[str, Any], fresh: np.ndarray, current: np.ndarray, now: np.ndarray
    ) -> None:
        """Update ``self.desired`` from this decision's metrics. ``fresh`` marks clusters whose info is a
        reset's (no measurement yet); ``current`` is the controlled count; ``now`` the seconds since reset."""
