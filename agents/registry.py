"""Policies by name, and ``make_policy``: build one from a name, a YAML file or a trained model.

Specs understood by :func:`make_policy`:

- a registry name (``"hpa"``): its parameters default to ``configs/policies/<name>.yaml``;
- the name of another file in ``configs/policies`` (a variant such as ``"static_peak"``);
- a path to a YAML file ``{policy: <name>, params: {...}}``: missing parameters take the policy's defaults;
- ``"<name>@tuned"``: the tuned setting of the scenario the policy runs on, ``configs/policies/tuned/<scenario>/
  <name>.yaml`` (pass ``scenario=``); ``"<name>@generalist"``: the one setting tuned over all evaluation scenarios,
  ``configs/policies/tuned/generalist/<name>.yaml``. Both are written by ``scaling-env tune``;
- ``"ppo:RUN_DIR"``: a trained agent, loaded by ``agents.learned.ppo.load_ppo_policy(RUN_DIR, env_config)`` (imported
  only when asked for, so that torch is not loaded for the rule policies). This is the extension point for
  learned policies: another prefix would dispatch the same way.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scaling_env import EnvConfig
from scaling_env.config import ConfigError, deep_merge, read_yaml_mapping
from scaling_env.resources import config_dir

from .base import Policy, PolicyBase, PolicyConfigError, validate_params
from .references.oracle import OraclePolicy
from .references.planner import PlannerPolicy
from .references.static import StaticPolicy
from .rules.hpa import HpaPolicy
from .rules.kpa import KpaPolicy
from .rules.predictive import PredictivePolicy
from .rules.provisioned import (
    FixedKeepAlivePolicy,
    HybridHistogramPolicy,
    ProvisionedTrackingPolicy,
    ScheduledPolicy,
)
from .rules.step_scaling import StepScalingPolicy
from .rules.target_tracking import TargetTrackingPolicy
from .rules.threshold import ThresholdPolicy
from .search_space import Dimension, parse_search_space

POLICIES: dict[str, type[PolicyBase]] = {
    cls.name: cls
    for cls in (
        StaticPolicy,
        ThresholdPolicy,
        StepScalingPolicy,
        TargetTrackingPolicy,
        HpaPolicy,
        KpaPolicy,
        PredictivePolicy,
        OraclePolicy,
        PlannerPolicy,
        # serverless platform mode (issue 17): the action sets the provisioned count or the keep-alive
        ProvisionedTrackingPolicy,
        ScheduledPolicy,
        FixedKeepAlivePolicy,
        HybridHistogramPolicy,
    )
}
# policies that need an env with platform.enabled (agents/rules/provisioned.py)
PLATFORM_POLICIES: frozenset[str] = frozenset(
    cls.name for cls in (ProvisionedTrackingPolicy, ScheduledPolicy, FixedKeepAlivePolicy, HybridHistogramPolicy)
)

CONFIG_DIR = config_dir("policies")  # configs/policies (package data)

# learned policies: spec prefix -> (module, loader function); the loader takes (path, env_config)
LOADERS: dict[str, tuple[str, str]] = {"ppo": ("agents.learned.ppo", "load_ppo_policy")}


def policy_names() -> list[str]:
    """The names ``make_policy`` accepts: the registered policies and the named variants in configs/policies."""
    variants = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml") if p.stem not in POLICIES)
    return [*POLICIES, *variants]


TUNED_DIR = CONFIG_DIR / "tuned"
# spec suffixes: "<name>@tuned" -> TUNED_DIR/<scenario>/<name>.yaml, "<name>@generalist" -> TUNED_DIR/generalist/...
TUNED_TAGS = ("tuned", "generalist")
GENERALIST = "generalist"

POLICY_FILE_KEYS = ("policy", "params", "search_space", "provenance")


@dataclass(frozen=True)
class PolicyFile:
    """A policy file: the policy's name, its params, its search space (``agents.search_space``; empty if the
    file declares none) and, for a file written by the tuner, its provenance (kept as written)."""

    path: Path
    name: str
    params: dict[str, Any]
    search_space: dict[str, Dimension] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)


def load_policy_file(path: str | Path) -> PolicyFile:
    """A policy file ``{policy: <name>, params: {...}, search_space: {...}, provenance: {...}}`` (only ``policy``
    is required), validated: errors name the file and the field. ``params`` are checked when the policy is
    built; the search space is checked here against the policy's parameter model."""
    path = Path(path)
    try:
        data = read_yaml_mapping(path, "policy")
    except ConfigError as exc:
        raise PolicyConfigError(str(exc)) from None
    unknown = sorted(set(data) - set(POLICY_FILE_KEYS))
    if unknown:
        raise PolicyConfigError(
            f"invalid {path}:\n  {unknown[0]}: unknown key (a policy file has {', '.join(POLICY_FILE_KEYS)})"
        )
    name = data.get("policy")
    if name not in POLICIES:
        raise PolicyConfigError(f"invalid {path}:\n  policy: unknown policy {name!r} (known: {', '.join(POLICIES)})")
    params = data.get("params") or {}
    if not isinstance(params, dict):
        raise PolicyConfigError(f"invalid {path}:\n  params: expected a mapping, got {type(params).__name__}")
    provenance = data.get("provenance") or {}
    if not isinstance(provenance, dict):
        raise PolicyConfigError(f"invalid {path}:\n  provenance: expected a mapping, got {type(provenance).__name__}")
    space = parse_search_space(data.get("search_space"), params, POLICIES[name].Params, str(path))
    return PolicyFile(path, name, params, space, provenance)


def read_policy_file(path: str | Path) -> tuple[str, dict[str, Any]]:
    """``(policy name, params)`` from a policy file (see :func:`load_policy_file`); errors name the file."""
    pf = load_policy_file(path)
    return pf.name, pf.params


def default_policy_file(name: str) -> Path:
    """``configs/policies/<name>.yaml``, the shipped defaults (and search space) of a policy or variant."""
    return CONFIG_DIR / f"{name}.yaml"


def tuned_policy_file(name: str, tag: str, scenario: str | None = None) -> Path:
    """Where ``<name>@<tag>`` is read from: ``tuned/<scenario>/<name>.yaml`` for ``tuned``,
    ``tuned/generalist/<name>.yaml`` for ``generalist``."""
    if tag == GENERALIST:
        return TUNED_DIR / GENERALIST / f"{name}.yaml"
    if tag != "tuned":
        raise PolicyConfigError(f"{name}@{tag}: unknown suffix @{tag} (expected one of {', '.join(TUNED_TAGS)})")
    if not scenario:
        raise PolicyConfigError(f"{name}@tuned: the tuned setting depends on the scenario; none was given")
    return TUNED_DIR / Path(scenario).stem / f"{name}.yaml"


def with_tuned(specs: list[str]) -> list[str]:
    """``specs`` with ``<name>@generalist`` and ``<name>@tuned`` after each registry name that has tuned files
    (in ``configs/policies/tuned``), for a benchmark of default against tuned settings."""
    out: list[str] = []
    for spec in specs:
        out.append(spec)
        if spec in POLICIES and TUNED_DIR.is_dir():
            if tuned_policy_file(spec, GENERALIST).is_file():
                out.append(f"{spec}@{GENERALIST}")
            if any(p.parent.name != GENERALIST for p in TUNED_DIR.glob(f"*/{spec}.yaml")):
                out.append(f"{spec}@tuned")
    return list(dict.fromkeys(out))


def resolve_policy_file(spec: str, scenario: str | None = None) -> Path | None:
    """The file a spec reads its parameters from, or None for a name without a file (its code defaults) or a
    learned policy. Errors (unknown spec, missing tuned file) say what was looked for."""
    prefix, sep, _ = spec.partition(":")
    if sep and prefix in LOADERS:
        return None
    base, at, tag = spec.partition("@")
    if at:
        path = tuned_policy_file(base, tag, scenario)
        if not path.is_file():
            where = f"scenario {Path(scenario).stem}" if tag == "tuned" else "the generalist setting"
            cmd = (
                f"scaling-env tune --policy {base} --scenarios {Path(scenario).stem}"
                if tag == "tuned"
                else f"scaling-env tune --policy {base} --generalist"
            )
            raise PolicyConfigError(f"{spec}: no tuned {base} for {where}: {path} does not exist (run `{cmd}`)")
        return path
    if spec in POLICIES:
        path = default_policy_file(spec)
        return path if path.exists() else None
    if default_policy_file(spec).is_file():  # a named variant, e.g. static_peak
        return default_policy_file(spec)
    if Path(spec).suffix in (".yaml", ".yml") or Path(spec).exists():
        return Path(spec)
    raise PolicyConfigError(
        f"unknown policy {spec!r}: expected one of {', '.join(policy_names())} (optionally with @tuned or "
        "@generalist), "
        f"a YAML file or one of the prefixes {', '.join(p + ':' for p in LOADERS)}"
    )


def make_policy(
    spec: str,
    env_config: EnvConfig | dict | str | None,
    overrides: dict[str, Any] | None = None,
    scenario: str | None = None,
) -> Policy:
    """A policy from a registry name, a YAML file, ``"<name>@tuned"`` / ``"<name>@generalist"`` or
    ``"ppo:RUN_DIR"``, with ``overrides`` merged into its parameters. ``scenario`` (a scenario name or YAML
    path) picks the file of a ``@tuned`` spec. Bad keys or values raise :class:`agents.base.PolicyConfigError`
    naming the file and field."""
    env_config = EnvConfig.coerce(env_config)
    prefix, sep, rest = spec.partition(":")
    if sep and prefix in LOADERS:
        if overrides:
            raise PolicyConfigError(f"{spec}: parameter overrides do not apply to a {prefix} policy")
        module, func = LOADERS[prefix]
        loader = getattr(importlib.import_module(module), func)
        return loader(rest, env_config, scenario=scenario)
    path = resolve_policy_file(spec, scenario)
    base = spec.partition("@")[0]
    if path is None:  # a registry name without a file
        name, params, source = spec, {}, f"{spec} policy defaults"
    else:
        name, params = read_policy_file(path)
        source = str(path)
        if (spec in POLICIES or "@" in spec) and base in POLICIES and name != base:
            raise PolicyConfigError(f"invalid {path}:\n  policy: {name!r}, expected {base!r}")
    if overrides:
        params = deep_merge(params, overrides)
        source += " with overrides"
    cls = POLICIES[name]
    checked = validate_params(cls.Params, params, f"{source} (policy {name}): params")
    if getattr(cls, "takes_scenario", False):  # the planner: its rule plans read the scenario's tuned settings
        return cls(env_config, checked, scenario=scenario)
    return cls(env_config, checked)
