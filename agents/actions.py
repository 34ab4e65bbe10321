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
from numba import njit

from scaling_env import EnvConfig
from scaling_env.sim import bounded_changes

from .base import clip_counts, info_array

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
    if rounding not in ("nearest", "up"):
        raise ValueError(f"rounding must be 'nearest' or 'up', got {rounding!r}")
    sc = config.scaling
    change = np.ascontiguousarray(change, dtype=np.int64).reshape(-1)
    current = np.ascontiguousarray(current, dtype=np.int64).reshape(-1)
    if change.shape != current.shape:  # one count for many changes or the reverse, as numpy broadcasts
        change, current = (np.ascontiguousarray(a) for a in np.broadcast_arrays(change, current))
    steps = np.asarray(sc.scale_steps, dtype=np.int64)
    use_floor = floor is not None and floor > sc.min_instances
    return _choose_steps(
        change,
        current,
        steps,
        sc.min_instances,
        sc.max_instances,
        floor if use_floor else 0,
        use_floor,
        rounding == "up",
    )


@njit(cache=True, inline="always")
def _choose_one(c, change, steps, lo, hi, floor, use_floor, up):  # pragma: no cover - compiled
    """The module docstring's rule for one cluster at count ``c``: the step with the smallest key, the first on
    equal keys (as ``np.argmin``).

    key = (primary * (2m + 1) + (m - effective)) * (m + 1) + |step|, with m the largest |step|, effective the
    change the step makes within [lo, hi], primary its distance from the wanted change (``up``: any step that
    reaches it before every one that falls short) plus a penalty beyond any other primary for a step that
    leaves fewer than ``floor`` instances while another step does not. Integer arithmetic throughout."""
    k = steps.shape[0]
    m = 0
    for j in range(k):
        m = max(m, abs(steps[j]))
    big = 4 * (hi + m + 1)
    penalty = 16 * (hi + m + 1)
    all_below = use_floor
    if use_floor:
        for j in range(k):
            if min(max(c + steps[j], lo), hi) >= floor:
                all_below = False
                break
    best_j = 0
    best_key = 0
    for j in range(k):
        reached = min(max(c + steps[j], lo), hi)
        effective = reached - c
        gap = effective - change
        if up:
            primary = gap if gap >= 0 else big - gap
        else:
            primary = abs(gap)
        if use_floor and reached < floor and not all_below:
            primary += penalty
        key = (primary * (2 * m + 1) + (m - effective)) * (m + 1) + abs(steps[j])
        if j == 0 or key < best_key:
            best_j, best_key = j, key
    return best_j


@njit(cache=True)
def _choose_steps(change, current, steps, lo, hi, floor, use_floor, up):  # pragma: no cover - compiled
    out = np.empty(current.shape[0], dtype=np.int64)
    for b in range(current.shape[0]):
        out[b] = _choose_one(current[b], change[b], steps, lo, hi, floor, use_floor, up)
    return out


@njit(cache=True)
def settle_desired(
    desired, rounded_from, rounded_to, fresh, stranded, current, steps, lo, hi, floor, nearest
):  # pragma: no cover - compiled
    """A rule's decision from its desired counts to actions (``agents.rules.base`` docstring, "How a decision
    becomes an action"), per cluster, updating ``desired``, ``rounded_from`` and ``rounded_to`` in place:

    1. a ``stranded`` cluster asks for at least one instance; ``desired`` is clipped into [``floor``, ``hi``];
    2. ``nearest``: a count accepted earlier stands while the rule asks for what it asked for then
       (``rounded_from`` -> ``rounded_to``; -1: none), and is forgotten otherwise or at a ``fresh`` cluster;
    3. the action nearest to the desired count within [``lo``, ``hi``] (``action_for_target``, not leaving
       fewer than ``floor`` where a step allows; rounding up where not ``nearest``);
    4. a step that overshoots the desired count is accepted: ``desired`` becomes the count it reaches,
       remembered (2) when that is more than asked for.

    Returns (actions, delta, overshot): ``delta`` the overshoot (the reached count minus the desired one, 0
    where none), ``overshot`` whether any cluster overshot."""
    n = current.shape[0]
    actions = np.empty(n, dtype=np.int64)
    delta = np.zeros(n, dtype=np.int64)
    use_floor = floor > lo
    overshot = False
    for b in range(n):
        d = desired[b]
        if stranded[b]:
            d = max(d, 1)
        d = min(max(d, floor), hi)
        asked = d
        if nearest:
            held = rounded_from[b] >= 0 and not fresh[b]
            if held and asked == rounded_from[b]:
                d = rounded_to[b]
            elif held or fresh[b]:
                rounded_from[b] = -1
        c = current[b]
        target = min(max(d, lo), hi)
        a = _choose_one(c, target - c, steps, lo, hi, floor, use_floor, not nearest)
        actions[b] = a
        reached = min(max(c + steps[a], lo), hi)
        if (d > c and reached > d) or (d < c and reached < d):
            overshot = True
            delta[b] = reached - d
            if reached > d:
                rounded_from[b] = asked
                rounded_to[b] = reached
            d = reached
        desired[b] = d
    return actions, delta, overshot


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
    target = clip_counts(np.asarray(target, dtype=np.int64).reshape(-1), lo, hi)
    current = np.asarray(current, dtype=np.int64).reshape(-1)
    return action_for_change(target - current, current, config, rounding, floor)
