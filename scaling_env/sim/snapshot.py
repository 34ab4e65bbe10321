"""Snapshot, restore and fork of a :class:`~scaling_env.sim.simulator.BatchSimulator`'s clusters.

A snapshot holds everything a cluster's future depends on: the rows of every per-cluster array of the kernel's two
records (``state.State``: parameters, clocks and cooldowns, the instance tables with their queues and timers, the
SplitMix64 random state, the episode's expected arrivals and outages; ``state.Outputs``: the last observation,
metrics, reward and truncation flag), the per-episode workload objects (``sim.episodes``, immutable: shared by
reference) and, optionally, the state of each cluster's numpy ``Generator`` (drawn from at the next reset).
Restoring it and stepping with the same actions reproduces the original trajectory bit for bit.

The arrays to copy are read from the records' field names, so a column table added to ``State`` or ``Outputs`` is
copied without a change here; only fields that are the same for every cluster (``SHARED_FIELDS``) are left out.
Copies are whole-row numpy copies and fancy indexing (no Python loop over instances); the only loop per cluster
sets the Python objects (workload references and, if asked for, generator states).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..config import EnvConfig

# fields of State/Outputs with no cluster axis (derived from the config, equal in every cluster)
SHARED_FIELDS: frozenset[str] = frozenset({"scale_steps"})
# per-cluster Python objects of the simulator that a snapshot carries by reference (immutable within an episode)
PER_CLUSTER_OBJECTS: tuple[str, ...] = ("episodes",)


class SnapshotError(ValueError):
    """A snapshot cannot be restored into this simulator (other config, other shapes, bad cluster ids)."""


@dataclass(frozen=True, eq=False)
class SimSnapshot:
    """The state of ``n`` clusters of a :class:`BatchSimulator` (row ``i`` is cluster ``source_ids[i]``).

    ``arrays[name]`` holds the rows of the per-cluster array ``name`` of the ``State``/``Outputs`` records;
    ``objects[name]`` the per-cluster Python objects; ``generators`` the bit-generator states of the clusters'
    numpy generators, or None for a snapshot taken without them. Treat it as read-only: restoring copies out of it,
    so one snapshot can be restored any number of times.
    """

    config: EnvConfig
    source_ids: np.ndarray
    arrays: dict[str, np.ndarray]
    objects: dict[str, tuple[Any, ...]]
    generators: tuple[dict[str, Any], ...] | None
    shared: dict[str, np.ndarray] | None = None  # one-row tables every cluster of the source batch reads

    @property
    def num_clusters(self) -> int:
        return len(self.source_ids)

    def select(self, rows: np.ndarray | list[int]) -> SimSnapshot:
        """The snapshot of rows ``rows`` (indices into this snapshot, repeats allowed: ``select([0] * 8)`` is
        eight copies of the first cluster, to fork it)."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        if rows.size and (rows.min() < 0 or rows.max() >= self.num_clusters):
            raise SnapshotError(f"rows must lie in [0, {self.num_clusters - 1}], got {rows.tolist()}")
        picked = rows.tolist()
        return SimSnapshot(
            self.config,
            self.source_ids[rows],
            {name: a[rows] for name, a in self.arrays.items()},
            {name: tuple(objs[i] for i in picked) for name, objs in self.objects.items()},
            None if self.generators is None else tuple(self.generators[i] for i in picked),
            self.shared,
        )


def state_fields(sim: Any) -> dict[str, np.ndarray]:
    """Every per-cluster array of the simulator's ``state`` and ``outputs`` records, by field name (the names of
    the two records must not collide). Arrays with one row in a batch of several (a table every cluster shares,
    e.g. the arrival means of a workload that is the same in every episode) are in :func:`shared_fields`."""
    return _fields(sim)[0]


def shared_fields(sim: Any) -> dict[str, np.ndarray]:
    """The arrays of the records with one row that every cluster of the batch reads (not ``SHARED_FIELDS``)."""
    return _fields(sim)[1]


def _fields(sim: Any) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    per_cluster: dict[str, np.ndarray] = {}
    shared: dict[str, np.ndarray] = {}
    # State, Outputs, and the monitoring's record (delivered metrics and the observation's history: monitoring.py)
    for record in (sim.state, sim.outputs, sim.monitor):
        for name, array in zip(record._fields, record):
            if name in SHARED_FIELDS:
                continue
            if name in per_cluster or name in shared:
                raise RuntimeError(f"snapshot: field {name!r} is in both the State and the Outputs record")
            if not isinstance(array, np.ndarray) or array.ndim == 0 or array.shape[0] not in (sim.num_envs, 1):
                raise RuntimeError(
                    f"snapshot: field {name!r} of {type(record).__name__} has no leading cluster axis "
                    f"(shape {getattr(array, 'shape', None)}); add it to scaling_env.sim.snapshot.SHARED_FIELDS "
                    "if it is the same for every cluster"
                )
            (per_cluster if array.shape[0] == sim.num_envs else shared)[name] = array
    return per_cluster, shared


def _cluster_ids(sim: Any, ids: Any, what: str) -> np.ndarray:
    if ids is None:
        return np.arange(sim.num_envs, dtype=np.int64)
    arr = np.asarray(ids)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
        raise SnapshotError(f"{what} must be a list of integer cluster indices, got {ids!r}")
    arr = arr.astype(np.int64)
    if arr.size and (arr.min() < 0 or arr.max() >= sim.num_envs):
        raise SnapshotError(f"{what} must lie in [0, {sim.num_envs - 1}], got {arr.tolist()}")
    return arr


def get_state(sim: Any, ids: Any = None, generators: bool = True) -> SimSnapshot:
    """A snapshot (copies) of clusters ``ids`` (all if None). ``generators=False`` leaves out the numpy generators'
    states (a Python object per cluster): enough to step on, but a restored cluster's next reset then draws from
    the target's own generator."""
    ids = _cluster_ids(sim, ids, "ids")
    per_cluster, shared = _fields(sim)
    arrays = {name: array[ids] for name, array in per_cluster.items()}  # fancy indexing copies
    picked = ids.tolist()
    objects = {name: tuple(getattr(sim, name)[b] for b in picked) for name in PER_CLUSTER_OBJECTS}
    gens = tuple(sim.generators[b].bit_generator.state for b in picked) if generators else None
    return SimSnapshot(sim.config, ids, arrays, objects, gens, {n: a.copy() for n, a in shared.items()})


def _rows(snapshot: SimSnapshot, name: str) -> np.ndarray:
    """The snapshot's rows of ``name``: its own rows, or the one row its source batch shared."""
    if name in snapshot.arrays:
        return snapshot.arrays[name]
    if snapshot.shared is not None and name in snapshot.shared:
        return snapshot.shared[name]
    raise SnapshotError(f"the snapshot has no field {name!r} (taken with another version of scaling_env?)")


def check_compatible(sim: Any, snapshot: SimSnapshot) -> None:
    """A :class:`SnapshotError` unless ``snapshot`` can be restored into ``sim`` (same config, same shapes)."""
    if not isinstance(snapshot, SimSnapshot):
        raise SnapshotError(f"expected a SimSnapshot (from get_state), got {type(snapshot).__name__}")
    if snapshot.config is not sim.config and snapshot.config != sim.config:
        a, b = snapshot.config.model_dump(), sim.config.model_dump()
        differ = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        raise SnapshotError(
            "the snapshot was taken from a simulator with a different config "
            f"(differs in: {', '.join(differ) or 'model'}); restore it into an env made with the same config"
        )
    per_cluster, shared = _fields(sim)
    for name, array in {**per_cluster, **shared}.items():
        rows = _rows(snapshot, name)
        if rows.shape[1:] != array.shape[1:] or rows.dtype != array.dtype:
            raise SnapshotError(
                f"snapshot field {name!r} has rows of shape {rows.shape[1:]} {rows.dtype}, "
                f"this simulator {array.shape[1:]} {array.dtype}"
            )


def set_state(sim: Any, snapshot: SimSnapshot, ids: Any = None) -> None:
    """Restore ``snapshot`` into clusters ``ids``: by default the clusters it was taken from; a snapshot of one
    cluster is copied into every cluster of ``ids`` (a fork); otherwise ``ids`` needs one cluster per row.

    The simulator may be another one than the snapshot's source, of the same config. A snapshot taken with
    ``generators=False`` leaves the targets' generators as they are."""
    check_compatible(sim, snapshot)
    ids = snapshot.source_ids if ids is None else _cluster_ids(sim, ids, "ids")
    if ids.size and ids.max() >= sim.num_envs:
        raise SnapshotError(f"the snapshot's clusters {ids.tolist()} do not exist in a batch of {sim.num_envs}")
    n = snapshot.num_clusters
    if n != len(ids) and n != 1:
        raise SnapshotError(f"the snapshot holds {n} clusters but {len(ids)} target ids were given")
    if len(np.unique(ids)) != len(ids):
        raise SnapshotError(f"target ids must be distinct, got {ids.tolist()}")
    per_cluster, shared = _fields(sim)
    for name, array in shared.items():
        # a table every cluster reads: written when every cluster is restored, else it must be the snapshot's
        rows = _rows(snapshot, name)
        if len(np.unique(ids)) == sim.num_envs and (rows == rows[:1]).all():
            array[:] = rows[:1]
        elif not np.array_equal(rows, np.broadcast_to(array, rows.shape)):
            raise SnapshotError(
                f"field {name!r} is one table shared by every cluster of this simulator and the snapshot's "
                "differs from it: restore into all of its clusters at once, or into a simulator of its own"
            )
    for name, array in per_cluster.items():
        array[ids] = _rows(snapshot, name)  # one row broadcasts into every target (a fork, or a shared table)
    picked = ids.tolist()
    for name, objs in snapshot.objects.items():
        target = getattr(sim, name)
        for i, b in enumerate(picked):
            target[b] = objs[i if n > 1 else 0]
    if snapshot.generators is not None:
        for i, b in enumerate(picked):
            st = snapshot.generators[i if n > 1 else 0]
            gen = np.random.Generator(getattr(np.random, st["bit_generator"])())
            gen.bit_generator.state = st  # a new generator per cluster: forks do not share one stream
            sim.generators[b] = gen


def fork(sim: Any, src_id: int, dst_ids: Any, generators: bool = True) -> None:
    """Copy cluster ``src_id``'s state into clusters ``dst_ids`` of the same simulator."""
    set_state(sim, get_state(sim, [src_id], generators=generators), dst_ids)
