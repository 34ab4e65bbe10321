"""Named, shareable scenarios: ``configs/scenarios/<name>.yaml``.

A scenario file holds a one-line ``description`` and ``env``, a complete environment config (every field spelled
out, so a change of a default never changes a published scenario; a test checks this)::

    description: Constant load of 800 requests/s.
    env:
      step_seconds: 15.0
      ...

A scenario is named by its file name (``steady``) or given as a path to any such YAML file. A trace scenario
names its CSV by a path relative to the traces folder (see ``scaling_env.traces``: ``--traces-dir`` or the
``SCALING_ENV_TRACES`` environment variable); loading resolves it to the file found, or raises
:class:`~scaling_env.traces.TraceNotFoundError` saying which file and which folders were searched.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import ConfigError, EnvConfig, TraceWorkload, read_yaml_mapping
from .resources import config_dir
from .traces import TraceError, TraceNotFoundError, find_trace
from .workload import Workload

SCENARIO_DIR = config_dir("scenarios")  # configs/scenarios of the checkout, or its installed copy

__all__ = [
    "SCENARIO_DIR",
    "Scenario",
    "TraceNotFoundError",
    "load_scenario",
    "list_scenarios",
    "scenario_names",
    "load_scenarios",
]


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    config: EnvConfig
    path: Path


def scenario_names() -> list[str]:
    """Names of the scenarios shipped in ``configs/scenarios``."""
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml"))


def scenario_path(spec: str | Path) -> Path:
    """The YAML file of a scenario name or path."""
    p = Path(spec)
    if p.suffix in (".yaml", ".yml") or p.exists():
        if not p.is_file():
            raise ConfigError(f"scenario file {p} does not exist")
        return p
    candidate = SCENARIO_DIR / f"{spec}.yaml"
    if not candidate.is_file():
        raise ConfigError(
            f"unknown scenario {str(spec)!r}: not a YAML file, and not one of "
            f"{', '.join(scenario_names())} (in {SCENARIO_DIR})"
        )
    return candidate


def read_scenario_file(path: Path) -> tuple[str, dict[str, Any]]:
    """(description, env mapping) of a scenario file, with clear errors for a malformed one."""
    data = read_yaml_mapping(path, "scenario")
    unknown = sorted(set(data) - {"description", "env"})
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(unknown)} (a scenario has 'description' and 'env')")
    description = data.get("description")
    if not isinstance(description, str) or not description.strip() or "\n" in description.strip():
        raise ConfigError(f"{path}: 'description' must be a one-line string")
    env = data.get("env")
    if not isinstance(env, dict):
        raise ConfigError(f"{path}: 'env' must be a mapping of environment config fields")
    return description.strip(), env


def load_scenario(spec: str | Path, traces_dir: str | Path | None = None) -> Scenario:
    """Load and validate a scenario by name or path; a trace path is resolved against the traces folders and
    the trace file is read and checked (a missing file raises TraceNotFoundError)."""
    path = scenario_path(spec)
    description, env = read_scenario_file(path)
    config = EnvConfig.from_dict(env, source=str(path))
    shape = config.workload.shape
    if isinstance(shape, TraceWorkload) and shape.path is not None:
        try:
            found = find_trace(shape.path, traces_dir)
        except TraceNotFoundError as exc:
            raise TraceNotFoundError(f"scenario {path.stem} ({path}): {exc}") from None
        config = config.with_updates({"workload": {"shape": {"path": str(found)}}})
    try:
        Workload(config)  # reads and checks the trace and its window now, not at the first reset
    except ConfigError as exc:
        raise ConfigError(f"scenario {path.stem} ({path}): {exc}") from None
    return Scenario(path.stem, description, config, path)


def load_scenarios(
    specs: list[str] | tuple[str, ...],
    traces_dir: str | Path | None = None,
) -> tuple[list[Scenario], list[str]]:
    """Load several scenarios; those whose trace file is missing are left out and reported, not raised:
    returns (scenarios, messages of the skipped ones). Any other fault raises."""
    loaded: list[Scenario] = []
    skipped: list[str] = []
    for spec in specs:
        try:
            loaded.append(load_scenario(spec, traces_dir))
        except TraceNotFoundError as exc:
            skipped.append(f"skipped: {exc}")
    return loaded, skipped


def list_scenarios(traces_dir: str | Path | None = None) -> list[tuple[str, str, str]]:
    """(name, description, trace status) of every shipped scenario, without loading traces."""
    rows = []
    for name in scenario_names():
        path = SCENARIO_DIR / f"{name}.yaml"
        description, env = read_scenario_file(path)
        config = EnvConfig.from_dict(env, source=str(path))
        shape = config.workload.shape
        note = ""
        if isinstance(shape, TraceWorkload) and shape.path is not None:
            try:
                note = f"trace {find_trace(shape.path, traces_dir)}"
            except TraceError:
                note = f"trace {shape.path} NOT FOUND (set --traces-dir or SCALING_ENV_TRACES)"
        rows.append((name, description, note))
    return rows
