"""Where the shipped files are: the configs (scenarios, policies, training, env) and the packaged traces.

Both are package data, found through :mod:`importlib.resources`, so that a wheel install works like a checkout:

- ``configs/`` at the top of the repository is the source of the configs; ``pyproject.toml`` maps it to the
  package ``scaling_env.configs`` (an editable install reads the folder itself, a wheel carries a copy);
- ``scaling_env/data/traces/`` holds the MIT-licensed NAB traces the shipped scenarios replay (their source and
  licence in the README.md beside them).

The wheel is installed as a folder (not a zip), so these are real paths.
"""

from __future__ import annotations

from importlib import resources
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

CONFIG_KINDS = ("scenarios", "policies", "train", "env")


def configs_root() -> Path:
    """The folder of the shipped configs (``configs/`` of the checkout, or its installed copy)."""
    return Path(str(resources.files("scaling_env.configs")))


def config_dir(kind: str) -> Path:
    """The folder of one kind of shipped config: ``scenarios``, ``policies``, ``train`` or ``env``."""
    if kind not in CONFIG_KINDS:
        raise ValueError(f"unknown config kind {kind!r} (one of {', '.join(CONFIG_KINDS)})")
    return configs_root() / kind


def packaged_traces_dir() -> Path:
    """The folder of the traces shipped with the package."""
    return Path(str(resources.files("scaling_env") / "data" / "traces"))


def package_version() -> str:
    """The installed distribution's version (pyproject.toml is its single source)."""
    try:
        return version("scaling-env")
    except PackageNotFoundError:  # imported from a source tree that was never installed
        return "0+unknown"
