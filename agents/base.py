"""The ``Policy`` interface: what a rollout, the benchmark and the envs' users need from any autoscaler.

A policy answers one action index per cluster for a batch of B clusters of one env configuration:

- ``name``: its registry name;
- ``reset(seed, num_envs)``: forget everything, prepare for a batch of ``num_envs`` clusters;
- ``act_batch(obs, info)``: one decision per cluster, ``obs`` (B, 19) and ``info`` the vector env's dict of (B,)
  arrays, returning (B,) int64 action indices;
- ``act(obs, info)``: the same for a single env (one observation, an info of scalars);
- ``bind(env)``: take what it reads from the env (the simulator, the action masks); most policies read nothing
  and do nothing here. ``scaling_env.rollout`` calls it when a policy has it.

:class:`Policy` is that protocol (any object with these members is a policy). :class:`PolicyBase` is the base
of this package's policies: it holds the env config and the validated parameters (``Params``, a pydantic
model) and implements ``reset``, ``act`` and ``bind``; a subclass sets ``name`` and ``Params``, prepares what
its parameters imply in :meth:`PolicyBase._setup`, and implements ``act_batch``. Rule policies (a desired
instance count, rounded to the env's scale steps) build on ``agents.rules.base.RulePolicy``; the clairvoyant
oracle and trained models implement ``act_batch`` directly.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from scaling_env import EnvConfig
from scaling_env.config import ConfigError, format_validation_error

ConfigLike = EnvConfig | dict[str, Any] | str | None  # what EnvConfig.coerce takes


class PolicyConfigError(ConfigError):
    """Policy parameters (or a policy file) are invalid. The message names the file and the field at fault."""


class PolicyParams(BaseModel):
    """Base of every policy's parameter model: frozen, and unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class CapacityParams(PolicyParams):
    """A rule's own minimum capacity (an auto-scaling group's minimum size, the HPA's ``minReplicas``, Knative's
    ``min-scale``): its desired count is never below it (nor below the env's ``scaling.min_instances``)."""

    min_capacity: int = Field(0, ge=0, le=4096, description="the rule's minimum instance count (0: the env's bound)")


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


def clip_counts(x: np.ndarray, lo: Any, hi: Any, out: np.ndarray | None = None) -> np.ndarray:
    """``np.clip(x, lo, hi, out=out)`` for integer arrays, the same values: min(max(x, lo), hi). It skips
    np.clip's Python-level checks of integer bounds (``np.iinfo`` on every call), which cost more than the clip
    itself on the short arrays of a rule's decision."""
    return np.minimum(np.maximum(x, lo, out=out), hi, out=out)


def info_array(info: dict[str, Any], key: str) -> np.ndarray:
    """``info[key]`` as a float64 array of shape (B,); a KeyError naming the key if it is missing."""
    try:
        return np.asarray(info[key], dtype=np.float64).reshape(-1)
    except KeyError:
        raise KeyError(f"info has no {key!r} (see scaling_env.fields.INFO_FIELDS)") from None


@runtime_checkable
class Policy(Protocol):
    """What a rollout needs from a policy (module docstring)."""

    name: ClassVar[str]

    def reset(self, seed: int | None = None, num_envs: int = 1) -> None: ...

    def act_batch(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray: ...

    def act(self, obs: np.ndarray, info: dict[str, Any]) -> int: ...

    def bind(self, env: Any) -> None: ...


class PolicyBase(ABC):
    """Base of this package's policies: the env config, the validated ``params``, and ``reset``/``act``/``bind``.

    A subclass sets ``name`` and ``Params``, computes what its parameters imply in :meth:`_setup` (called at
    the end of ``__init__``; ``self.env_config``, ``self.params`` and ``self.dt`` are set then) and implements
    :meth:`act_batch`.
    """

    name: ClassVar[str]
    Params: ClassVar[type[PolicyParams]]

    def __init__(self, env_config: ConfigLike, params: PolicyParams | dict | None = None) -> None:
        self.env_config = EnvConfig.coerce(env_config)
        self.params = validate_params(self.Params, params, f"{self.name} policy params")
        self.dt = float(self.env_config.step_seconds)  # seconds between two decisions
        self.num_envs = 0  # 0 until reset: the first act_batch resets for its batch
        self.rng = np.random.default_rng()
        self._setup()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.params!r})"

    def _setup(self) -> None:  # noqa: B027 - an optional hook, deliberately empty
        """Optional hook: derive what the parameters and the env config imply (windows, tables)."""

    def reset(self, seed: int | None = None, num_envs: int = 1) -> None:
        """Forget every window and timer; prepare for a batch of ``num_envs`` clusters."""
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.num_envs = int(num_envs)
        self.rng = np.random.default_rng(seed)

    def bind(self, env: Any) -> None:  # noqa: B027 - an optional hook, deliberately empty
        """Optional hook: a policy that reads the env (the oracle, a masked model) takes it from ``env`` here."""

    @abstractmethod
    def act_batch(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        """One decision for each of B clusters: ``obs`` (B, 19), ``info`` the vector env's dict of (B,) arrays.
        Returns (B,) int64 action indices."""

    def act(self, obs: np.ndarray, info: dict[str, Any]) -> int:
        """One decision for a single env: wraps ``obs`` and each scalar of ``info`` into a batch of one."""
        batch = {k: np.asarray([v]) for k, v in info.items() if np.ndim(v) == 0 and not isinstance(v, (str, dict))}
        return int(self.act_batch(np.asarray(obs)[None], batch)[0])

    def _batch_size(self, obs: np.ndarray) -> int:
        """B of a (B, n_obs) batch; resets for it if the policy was never reset, else it must be the reset's."""
        if obs.ndim != 2:
            raise ValueError(f"obs must have shape (B, n_obs), got {obs.shape}")
        b = obs.shape[0]
        if self.num_envs == 0:
            self.reset(num_envs=b)
        elif b != self.num_envs:
            raise ValueError(f"{self.name}: reset for {self.num_envs} clusters, got a batch of {b}; call reset()")
        return b
