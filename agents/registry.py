"""Policies by name, and ``make_policy``: build one from a name, a YAML file or a trained model.

Specs understood by :func:`make_policy`:

- a registry name (``"hpa"``): its parameters default to ``configs/policies/<name>.yaml``;
- the name of another file in ``configs/policies`` (a variant such as ``"static_peak"``);
- a path to a YAML file ``{policy: <name>, params: {...}}``: missing parameters take the policy's defaults;
- ``"ppo:RUN_DIR"``: a trained agent, loaded by ``agents.learned.ppo.load_ppo_policy(RUN_DIR, env_config)`` (imported
  only when asked for, so that torch is not loaded for the rule policies). This is the extension point for
  learned policies: another prefix would dispatch the same way.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from scaling_env import EnvConfig
from scaling_env.config import ConfigError, deep_merge, read_yaml_mapping

from .base import Policy, PolicyConfigError, validate_params
from .references.oracle import OraclePolicy
from .references.planner import PlannerPolicy
from .references.static import StaticPolicy
from .rules.hpa import HpaPolicy
from .rules.kpa import KpaPolicy
from .rules.predictive import PredictivePolicy
from .rules.step_scaling import StepScalingPolicy
from .rules.target_tracking import TargetTrackingPolicy
from .rules.threshold import ThresholdPolicy

POLICIES: dict[str, type[Policy]] = {
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
    )
}

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs" / "policies"

# learned policies: spec prefix -> (module, loader function); the loader takes (path, env_config)
LOADERS: dict[str, tuple[str, str]] = {"ppo": ("agents.learned.ppo", "load_ppo_policy")}


def read_policy_file(path: str | Path) -> tuple[str, dict[str, Any]]:
    """``(policy name, params)`` from a YAML file ``{policy: <name>, params: {...}}``; errors name the file."""
    path = Path(path)
    try:
        data = read_yaml_mapping(path, "policy")
    except ConfigError as exc:
        raise PolicyConfigError(str(exc)) from None
    unknown = sorted(set(data) - {"policy", "params"})
    if unknown:
        raise PolicyConfigError(
            f"invalid {path}:\n  {unknown[0]}: unknown key (a policy file has 'policy' and 'params')"
        )
    name = data.get("policy")
    if name not in POLICIES:
        raise PolicyConfigError(f"invalid {path}:\n  policy: unknown policy {name!r} (known: {', '.join(POLICIES)})")
    params = data.get("params") or {}
    if not isinstance(params, dict):
        raise PolicyConfigError(f"invalid {path}:\n  params: expected a mapping, got {type(params).__name__}")
    return name, params


def make_policy(
    spec: str, env_config: EnvConfig | dict | str | None, overrides: dict[str, Any] | None = None
) -> Policy:
    """A policy from a registry name, a YAML file or ``"ppo:RUN_DIR"``, with ``overrides`` merged into its
    parameters. Bad keys or values raise :class:`agents.base.PolicyConfigError` naming the file and field."""
    env_config = EnvConfig.coerce(env_config)
    prefix, sep, rest = spec.partition(":")
    if sep and prefix in LOADERS:
        if overrides:
            raise PolicyConfigError(f"{spec}: parameter overrides do not apply to a {prefix} policy")
        module, func = LOADERS[prefix]
        loader = getattr(importlib.import_module(module), func)
        return loader(rest, env_config)
    if spec in POLICIES:
        name = spec
        path = CONFIG_DIR / f"{name}.yaml"
        if path.exists():
            file_name, params = read_policy_file(path)
            if file_name != name:
                raise PolicyConfigError(f"invalid {path}:\n  policy: {file_name!r}, expected {name!r}")
        else:
            params = {}
        source = str(path) if path.exists() else f"{name} policy defaults"
    elif (CONFIG_DIR / f"{spec}.yaml").is_file():  # a named variant, e.g. static_peak
        path = CONFIG_DIR / f"{spec}.yaml"
        name, params = read_policy_file(path)
        source = str(path)
    elif Path(spec).suffix in (".yaml", ".yml") or Path(spec).exists():
        path = Path(spec)
        name, params = read_policy_file(path)
        source = str(path)
    else:
        raise PolicyConfigError(
            f"unknown policy {spec!r}: expected one of {', '.join(POLICIES)}, a YAML file "
            f"or one of the prefixes {', '.join(p + ':' for p in LOADERS)}"
        )
    if overrides:
        params = deep_merge(params, overrides)
        source += " with overrides"
    cls = POLICIES[name]
    return cls(env_config, validate_params(cls.Params, params, f"{source} (policy {name}): params"))
