"""A policy's search space: which parameters the tuner may change, and over which ranges.

A policy file may carry, next to its ``params``, a ``search_space`` mapping from a parameter path to a range::

    search_space:
      target: {low: 0.3, high: 0.95}                      # a float, uniform
      scale_up_pods: {low: 1, high: 64, int: true, log: true}
      cooldown_seconds: {low: 0, high: 600, step: 15}     # a float on a grid
      metric: {choices: [cpu, memory]}                    # categorical
      scale_out.steps.1.adjustment: {low: 0, high: 100}   # a nested parameter: dots, list indices as numbers

The tuner (``agents.experiments.tune``) reads it through :func:`parse_search_space`, so a new policy is tunable
by declaring its space in its file, without touching the tuner. Each range is checked against the policy's own
parameter model: its bounds (and each choice) set alone into the file's params must give valid parameters.
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .base import PolicyConfigError, PolicyParams, validate_params


class Dimension(BaseModel):
    """One tunable parameter: ``low``/``high`` (with ``log``, ``step``, ``int``) or ``choices``."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    low: float | None = Field(None, description="lowest value (inclusive)")
    high: float | None = Field(None, description="highest value (inclusive)")
    log: bool = Field(False, description="sample on a log scale (low > 0; not with step)")
    step: float | None = Field(None, gt=0, description="grid spacing from low")
    integer: bool = Field(False, alias="int", description="an integer parameter")
    choices: list[Any] | None = Field(None, min_length=1, description="categorical: one of these values")

    @model_validator(mode="after")
    def _consistent(self) -> Dimension:
        if self.choices is not None:
            if self.low is not None or self.high is not None or self.log or self.step is not None or self.integer:
                raise ValueError("give either choices or low/high (with log, step, int), not both")
            return self
        if self.low is None or self.high is None:
            raise ValueError("give low and high (or choices)")
        if self.low >= self.high:
            raise ValueError(f"low ({self.low:g}) must be below high ({self.high:g})")
        if self.log and self.low <= 0:
            raise ValueError(f"log scale needs low > 0, got {self.low:g}")
        if self.log and self.step is not None:
            raise ValueError("log and step cannot be combined (Optuna samples a log range continuously)")
        if self.integer:
            for key in ("low", "high", "step"):
                value = getattr(self, key)
                if value is not None and value != int(value):
                    raise ValueError(f"{key} = {value:g} is not an integer (int: true)")
        return self

    def suggest(self, trial: Any, name: str) -> Any:
        """The value an Optuna trial proposes for this dimension."""
        if self.choices is not None:
            return trial.suggest_categorical(name, self.choices)
        if self.integer:
            return trial.suggest_int(name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(name, self.low, self.high, step=self.step, log=self.log)

    def edge_values(self) -> list[Any]:
        """Values to check against the policy's parameter model: the bounds or every choice."""
        if self.choices is not None:
            return list(self.choices)
        if self.integer:
            return [int(self.low), int(self.high)]
        return [self.low, self.high]


def _split(path: str) -> list[str | int]:
    return [int(p) if p.isdigit() else p for p in path.split(".")]


def set_path(params: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of ``params`` with the parameter at ``path`` (dots; list indices as numbers) set to ``value``.
    A KeyError names the missing part: nested parameters must be written out in ``params`` to be tuned."""
    out = copy.deepcopy(params)
    node: Any = out
    parts = _split(path)
    for i, part in enumerate(parts[:-1]):
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            where = ".".join(str(p) for p in parts[: i + 1])
            raise KeyError(f"params has no {where!r}: write the nested parameter out under params to tune it") from None
        if not isinstance(node, (dict, list)):
            raise KeyError(f"params.{'.'.join(str(p) for p in parts[: i + 1])} is not a mapping or list")
    last = parts[-1]
    if isinstance(node, list):
        if not isinstance(last, int) or last >= len(node):
            raise KeyError(f"params has no {path!r}")
    node[last] = value
    return out


def apply_values(params: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """``params`` with every ``path: value`` of ``values`` set."""
    for path, value in values.items():
        params = set_path(params, path, value)
    return params


def get_path(params: dict[str, Any], path: str) -> Any:
    """The value at ``path`` in ``params``; KeyError if absent."""
    node: Any = params
    for part in _split(path):
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            raise KeyError(path) from None
    return node


def _dimension_error(exc: ValidationError, source: str, field: str) -> str:
    lines = [f"invalid {source}:"]
    for err in exc.errors():
        loc = ".".join([field, *(str(p) for p in err["loc"])])
        msg = "unknown key (low, high, log, step, int or choices)" if err["type"] == "extra_forbidden" else err["msg"]
        lines.append(f"  {loc}: {msg.removeprefix('Value error, ')}")
    return "\n".join(lines)


def parse_search_space(
    data: Any, params: dict[str, Any], model: type[PolicyParams], source: str
) -> dict[str, Dimension]:
    """The validated search space of a policy file: ``data`` is its ``search_space`` value, ``params`` the file's
    params, ``model`` the policy's parameter model. Errors name ``source`` and the field
    (``search_space.<path>.<key>``)."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise PolicyConfigError(f"invalid {source}:\n  search_space: expected a mapping, got {type(data).__name__}")
    space: dict[str, Dimension] = {}
    for path, spec in data.items():
        field = f"search_space.{path}"
        if not isinstance(path, str) or not path:
            raise PolicyConfigError(f"invalid {source}:\n  search_space: a parameter path must be a string")
        if not isinstance(spec, dict):
            raise PolicyConfigError(
                f"invalid {source}:\n  {field}: expected a mapping such as {{low: 0.1, high: 0.9}}, "
                f"got {type(spec).__name__}"
            )
        try:
            dim = Dimension.model_validate(spec)
        except ValidationError as exc:
            raise PolicyConfigError(_dimension_error(exc, source, field)) from None
        for value in dim.edge_values():
            try:
                candidate = set_path(params, path, value)
            except KeyError as exc:
                raise PolicyConfigError(f"invalid {source}:\n  {field}: {exc.args[0]}") from None
            try:
                validate_params(model, candidate, f"{source}: {field} = {value!r}: params")
            except PolicyConfigError as exc:
                raise PolicyConfigError(f"{exc}\n  (the range of {field} must give valid parameters)") from None
        space[path] = dim
    return space
