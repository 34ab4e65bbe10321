"""``RulePolicy``: the base of the rule policies, which compute a desired instance count from the metrics a
real autoscaler sees and let the base turn it into an action.

A rule policy sees what a real autoscaler sees: the step's metrics in the env's ``info`` as the monitoring
delivers them (``observed_cpu_utilization``, ``observed_arrivals``, ...: late and aggregated when the env's config
``metrics`` says so; read through ``agents.rules.metrics.read_metric``) and the instance counts (``instances_warm``,
...; see ``scaling_env.fields.INFO_FIELDS``). It keeps its own windows and
timers. Each call of :meth:`RulePolicy.act_batch` is one decision, taken ``env_config.step_seconds`` after the
previous one; the first call after a reset gets the reset's info (all metrics 0, ``instances_warm`` = the
initial count), which carries no measurement.

How a decision becomes an action
--------------------------------
Most autoscalers compute a *desired instance count* (AWS's desired capacity, Kubernetes' ``spec.replicas``). A
policy stores it in ``self.desired`` (one per cluster, clipped to ``[min_instances, max_instances]``), and the
base class turns it into the action whose change is nearest to ``desired - current`` (``agents.actions``:
:func:`~agents.actions.action_for_target`, rounding rule there), where ``current`` is the count the env
controls (:func:`~agents.actions.controlled_count`). When the env's ``scale_steps`` are coarser than the wanted
change, or a cooldown blocks it, the policy keeps asking at the next decisions until the count reaches the
desired one, as an auto-scaling group converges on its desired capacity.

A step that overshoots is accepted as the decision: when the count the chosen step reaches (``current + step``,
clipped to the bounds) lies beyond ``desired`` in the direction of the move, ``desired`` becomes that count, so
the base class does not "correct" a rounded-up scale-out by a scale-in the policy never decided (+7 taken as +8
is not followed by -1, which would also start the env's scale-in cooldown). Subclasses that keep state derived
from ``desired`` are told through :meth:`RulePolicy._rounded` (step scaling counts the extra instance as warming
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

from abc import abstractmethod
from typing import Any, ClassVar, Protocol, TypeVar

import numpy as np
from numpy.typing import DTypeLike

from ..actions import Rounding, controlled_count, settle_desired
from ..base import ConfigLike, PolicyBase, PolicyParams, info_array
from .metrics import stranded_demand


class ClusterState(Protocol):
    """Per-cluster state kept by a part of a policy (e.g. ``agents.rules.cloudwatch.AlarmPair``)."""

    def allocate(self, num_envs: int) -> None: ...

    def clear(self, mask: np.ndarray) -> None: ...


S = TypeVar("S", bound=ClusterState)


class RulePolicy(PolicyBase):
    """A policy that decides a desired instance count per cluster (module docstring).

    A subclass sets ``name`` and ``Params``; in ``_setup`` it derives its constants and declares its per-cluster
    windows and timers (:meth:`_per_cluster` for an array, :meth:`_per_cluster_part` for an object with
    ``allocate``/``clear``), which the base creates at each reset and clears for the clusters that start a new
    episode; and it implements ``_decide`` (update ``self.desired`` from a decision's metrics). State that is not
    a constant fill is prepared in the optional hooks ``_allocate`` and ``_clear``.

    ``rounding`` chooses how ``self.desired`` becomes an action (:func:`~agents.actions.action_for_target`).
    With ``launch_on_demand`` (the default), a cluster that receives requests with no instance warm or booting
    gets at least one instance (:func:`~agents.rules.metrics.stranded_demand`): utilisation metrics are 0 then
    and could never ask for one.
    """

    rounding: ClassVar[Rounding] = "nearest"
    launch_on_demand: ClassVar[bool] = True

    def __init__(self, env_config: ConfigLike, params: PolicyParams | dict | None = None) -> None:
        self._arrays: dict[str, tuple[Any, DTypeLike, int | None]] = {}  # declared in _setup
        self._parts: list[ClusterState] = []
        super().__init__(env_config, params)
        self._steps = np.asarray(self.env_config.scaling.scale_steps, dtype=np.int64)
        self._new_batch(0)

    def _new_batch(self, num_envs: int) -> None:
        self.decisions = np.zeros(num_envs, dtype=np.int64)  # decisions taken since each cluster's reset
        self.desired = np.zeros(num_envs, dtype=np.int64)
        self.rounded_from = np.full(num_envs, -1, dtype=np.int64)  # what the policy asked for when a step
        self.rounded_to = np.zeros(num_envs, dtype=np.int64)  # overshot it, and the count accepted instead

    # ---- the Policy interface
    def reset(self, seed: int | None = None, num_envs: int = 1) -> None:
        """Forget every window and timer; prepare for a batch of ``num_envs`` clusters."""
        super().reset(seed, num_envs)
        n = self.num_envs
        self._new_batch(n)
        for name, (fill, dtype, width) in self._arrays.items():
            setattr(self, name, np.full((n,) if width is None else (n, width), fill, dtype=dtype))
        for part in self._parts:
            part.allocate(n)
        self._allocate(n)

    def min_count(self) -> int:
        """The lowest desired count: the env's ``scaling.min_instances`` or the rule's ``min_capacity``."""
        return max(self.env_config.scaling.min_instances, int(getattr(self.params, "min_capacity", 0)))

    def act_batch(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        """One decision for each of B clusters: ``obs`` (B, 19), ``info`` the vector env's dict of (B,) arrays.
        Returns (B,) int64 action indices."""
        obs = np.asarray(obs)
        self._batch_size(obs)
        fresh = self.decisions == 0
        if "time_s" in info:
            fresh = fresh | (info_array(info, "time_s") == 0.0)
        current = controlled_count(info, self.env_config)
        if fresh.any():
            self.decisions[fresh] = 0
            self.desired[fresh] = current[fresh]
            for name, (fill, _, _) in self._arrays.items():
                getattr(self, name)[fresh] = fill
            for part in self._parts:
                part.clear(fresh)
            self._clear(fresh)
        now = self.decisions * self.dt
        self._decide(obs, info, fresh, current, now)
        if self.launch_on_demand:
            stranded = ~fresh & stranded_demand(info)
        else:
            stranded = np.zeros(len(fresh), dtype=np.bool_)
        sc = self.env_config.scaling
        # clip, held rounding, action choice and accepted overshoot, one compiled pass (agents.actions)
        actions, delta, overshot = settle_desired(
            self.desired,
            self.rounded_from,
            self.rounded_to,
            fresh,
            stranded,
            current,
            self._steps,
            sc.min_instances,
            sc.max_instances,
            self.min_count(),
            self.rounding == "nearest",
        )
        if overshot:
            self._rounded(delta)
        self.decisions += 1
        return actions

    # ---- for subclasses
    def _per_cluster(self, name: str, fill: Any, dtype: DTypeLike = np.float64, width: int | None = None) -> None:
        """Declare ``self.<name>``: per-cluster state of shape (B,) (or (B, ``width``)) filled with ``fill`` at
        each reset and for each cluster that starts a new episode. Call it in ``_setup``."""
        self._arrays[name] = (fill, dtype, width)

    def _per_cluster_part(self, part: S) -> S:
        """Declare a part with its own per-cluster state (``allocate(num_envs)`` at each reset, ``clear(mask)``
        for the clusters that start a new episode); returns ``part``. Call it in ``_setup``."""
        self._parts.append(part)
        return part

    def _allocate(self, num_envs: int) -> None:  # noqa: B027 - an optional hook, deliberately empty
        """Optional hook: create per-cluster state that is not a constant fill, for a batch."""

    def _clear(self, mask: np.ndarray) -> None:  # noqa: B027 - an optional hook, deliberately empty
        """Optional hook: clear such state for the clusters in ``mask`` (they start a new episode)."""

    def _rounded(self, delta: np.ndarray) -> None:  # noqa: B027 - an optional hook, deliberately empty
        """Optional hook, called in the decision that took it: ``delta`` (B,) is how far the count the chosen
        step reaches overshoots what :meth:`_decide` asked for (``self.desired`` already holds the accepted
        count; 0 where nothing overshot). A policy that keeps state derived from ``desired`` updates it here."""

    @abstractmethod
    def _decide(
        self, obs: np.ndarray, info: dict[str, Any], fresh: np.ndarray, current: np.ndarray, now: np.ndarray
    ) -> None:
        """Update ``self.desired`` from this decision's metrics. ``fresh`` marks clusters whose info is a
        reset's (no measurement yet); ``current`` is the controlled count; ``now`` the seconds since reset."""
