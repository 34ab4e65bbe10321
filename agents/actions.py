"""From a wanted instance count to an action index: the count the env's actions change, the count each action
reaches within the bounds, and the rounding rule when no step gives the wanted change exactly.

Rounding rule of :func:`action_for_target` (``rounding="nearest"``): among the available steps, the one whose
*effective* change (after the env clips ``current + step`` into the bounds, :func:`counts_reached`) is nearest
to the wanted change; a tie goes to the larger step, i.e. to the count with more instances: a scale-out of +3
with steps ``{+2, +4}`` adds 4, a scale-in of -3 with steps ``{-2, -4}`` removes 2. Both AWS and Kubernetes round
a fractional capacity towards availability (AWS target tracking adds 2 for "1.5 instances" and removes 1 for
"-1.5"; the HPA takes ``ceil`` of its replica count), so a tie between two steps is broken the same way rather
than under-provisioning a scale-out. Because the effective change is what is compared, the bounds are never
overshot, and a step larger than the room left reaches the bound exactly. With ``rounding="up"`` (used by the
oracle, which must not under-provision) it is the smallest effective change at least as large as the wanted
one, or the largest available if none is.

``floor`` (a rule's minimum capacity, ``RulePolicy.min_count()``): a step that leaves fewer than ``floor``
instances is taken only where no step reaches ``floor`` (e.g. after a crash took the fleet below it, where no
available step does). Without it, rounding a scale-in to the nearest step could pass the minimum: a change of -7
with steps ``{-4, -8}`` is taken as -8, so 13 becomes 5 under a minimum of 6; with ``floor=6`` it is -4 (9).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from scaling_env import EnvConfig
from scaling_env.sim import bounded_changes

from .base import info_array

Rounding = Literal["nearest", "up"]


def controlled_count(info: dict[str, Any], config: EnvConfig) -> np.ndarray:
    """The instance count the env's actions change (docs/model.md section 2), as the step's info reports it
    (``instances_controlled``: booting + warm + crashed-but-undetected + unhealthy ones kept until replaced,
    counted by the kernel's own rule, ``scaling_env.sim.counted``). ``config`` is kept for the signature."""
    return np.rint(info_array(info, "instances_controlled")).astype(np.int64)


def counts_reached(current: np.ndarray, config: EnvConfig, actions: np.ndarray | None = None) -> np.ndarray:
    """The count each action leads to from ``current`` (B,): ``current + step`` clipped into the env's
    ``[min_instances, max_instances]``, as the env applies it. (B, K) for every action, or (B,) for the given
    ``actions`` (B,)."""
    sc = config.scaling
    steps = np.asarray(sc.scale_steps, dtype=np.int64)
    current = np.asarray(current, dtype=np.int64).reshape(-1)
    if actions is None:
        return current[:, None] + bounded_changes(current[:, None], steps[None, :], sc.min_instances, sc.max_instances)
    return current + bounded_changes(current, steps[actions], sc.min_instances, sc.max_instances)


def action_for_change(
    change: np.ndarray,
    current: np.ndarray,
    config: EnvConfig,
    rounding: Rounding = "nearest",
    floor: int | None = None,
) -> np.ndarray:
    """Index into ``config.scaling.scale_steps`` for each wanted change (rule and ``floor`` in the module
    docstring)."""
    steps = np.asarray(config.scaling.scale_steps, dtype=np.int64)
    hi = config.scaling.max_instances
    change = np.asarray(change, dtype=np.int64).reshape(-1)
    current = np.asarray(current, dtype=np.int64).reshape(-1)
    reached = counts_reached(current, config)  # (B, K)
    effective = reached - current[:, None]
    gap = effective - change[:, None]
    if rounding == "nearest":
        primary = np.abs(gap)
    elif rounding == "up":
        big = 4 * (hi + int(np.abs(steps).max()) + 1)
        primary = np.where(gap >= 0, gap, big - gap)  # any step reaching the change beats every one that falls short
    else:
        raise ValueError(f"rounding must be 'nearest' or 'up', got {rounding!r}")
    m = int(np.abs(steps).max())
    if floor is not None and floor > config.scaling.min_instances:
        below = reached < floor
        avoid = below & ~below.all(axis=1, keepdims=True)  # below the floor while another step is not
        primary = np.where(avoid, primary + 16 * (hi + m + 1), primary)  # beyond any primary of a kept step
    # ties: the larger effective change (more instances), then (same count reached) the smaller |step|
    key = (primary * (2 * m + 1) + (m - effective)) * (m + 1) + np.abs(steps)[None, :]
    return np.argmin(key, axis=1).astype(np.int64)


def action_for_target(
    target: np.ndarray,
    current: np.ndarray,
    config: EnvConfig,
    rounding: Rounding = "nearest",
    floor: int | None = None,
) -> np.ndarray:
    """Index of the action that brings ``current`` nearest to ``target`` (clipped into the bounds), leaving no
    fewer than ``floor`` instances where a step allows (module docstring)."""
    lo, hi = config.scaling.min_instances, config.scaling.max_instances
    target = np.clip(np.asarray(target, dtype=np.int64).reshape(-1), lo, hi)
    current = np.asarray(current, dtype=np.int64).reshape(-1)
    return action_for_change(target - current, current, config, rounding, floor)
