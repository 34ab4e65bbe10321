"""``get_state()``/``set_state()`` of the envs: the simulator's snapshot plus the adapter's own bookkeeping.

The simulator part is :mod:`scaling_env.sim.snapshot` (every per-cluster array, the episodes' workloads, the
numpy generators); the adapter adds what it keeps outside the simulator (step counters, the episode-ended flag,
the dashboard history, the clusters waiting for a next-step autoreset), listed by attribute name per env class.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..sim.snapshot import SimSnapshot, SnapshotError


@dataclass(frozen=True, eq=False)
class EnvSnapshot:
    """The state of an env (:meth:`ServerlessScalingEnv.get_state` or :meth:`ServerlessScalingVectorEnv.get_state`):
    ``sim`` the simulator's snapshot, ``adapter`` the env's own attributes (copies), ``env_type`` the class name."""

    env_type: str
    sim: SimSnapshot
    adapter: dict[str, Any]


def get_env_state(env: Any, sim_ids: Any, attrs: tuple[str, ...]) -> EnvSnapshot:
    """Snapshot of ``env.sim``'s clusters ``sim_ids`` and deep copies of the env attributes ``attrs``."""
    return EnvSnapshot(
        type(env).__name__,
        env.sim.get_state(sim_ids),
        {name: copy.deepcopy(getattr(env, name)) for name in attrs},
    )


def check_env_snapshot(env: Any, snapshot: Any) -> EnvSnapshot:
    """``snapshot`` if it was taken from an env of ``env``'s class, else a :class:`SnapshotError`."""
    if not isinstance(snapshot, EnvSnapshot):
        raise SnapshotError(
            f"set_state expects what {type(env).__name__}.get_state() returned, got {type(snapshot).__name__}"
        )
    if snapshot.env_type != type(env).__name__:
        raise SnapshotError(f"the snapshot was taken from a {snapshot.env_type}, not a {type(env).__name__}")
    return snapshot


def copy_value(value: Any) -> Any:
    """A copy of an adapter attribute, so the snapshot can be restored again after the env moved on."""
    return value.copy() if isinstance(value, np.ndarray) else copy.deepcopy(value)
