"""The compiled action choice (agents/actions.py) against the module docstring's rule written with numpy arrays
(the key over every step at once, ``np.argmin``), on random counts, bounds, step sets, floors and roundings."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.actions import action_for_change, action_for_target, settle_desired
from scaling_env import EnvConfig


def reference(change: np.ndarray, current: np.ndarray, steps: np.ndarray, lo: int, hi: int, up: bool, floor):
    reached = np.minimum(np.maximum(current[:, None] + steps[None, :], lo), hi)
    effective = reached - current[:, None]
    gap = effective - change[:, None]
    m = int(np.abs(steps).max())
    primary = np.where(gap >= 0, gap, 4 * (hi + m + 1) - gap) if up else np.abs(gap)
    if floor is not None and floor > lo:
        below = reached < floor
        avoid = below & ~below.all(axis=1, keepdims=True)
        primary = np.where(avoid, primary + 16 * (hi + m + 1), primary)
    key = (primary * (2 * m + 1) + (m - effective)) * (m + 1) + np.abs(steps)[None, :]
    return np.argmin(key, axis=1)


@settings(max_examples=300, deadline=None)
@given(
    lo=st.integers(0, 4),
    room=st.integers(1, 30),
    steps=st.lists(st.integers(-9, 9), min_size=1, max_size=7, unique=True),
    data=st.data(),
    up=st.booleans(),
    floor=st.one_of(st.none(), st.integers(0, 12)),
)
def test_the_compiled_choice_is_the_numpy_rule(lo, room, steps, data, up, floor):
    hi = lo + room
    config = EnvConfig.model_validate(
        {"scaling": {"min_instances": lo, "max_instances": hi, "initial_instances": lo, "scale_steps": steps}}
    )
    n = data.draw(st.integers(1, 12))
    current = np.array(data.draw(st.lists(st.integers(0, hi), min_size=n, max_size=n)), dtype=np.int64)
    change = np.array(data.draw(st.lists(st.integers(-40, 40), min_size=n, max_size=n)), dtype=np.int64)
    rounding = "up" if up else "nearest"
    got = action_for_change(change, current, config, rounding, floor)
    want = reference(change, current, np.array(steps, dtype=np.int64), lo, hi, up, floor)
    np.testing.assert_array_equal(got, want)
    # one count for many changes, as numpy broadcasts
    np.testing.assert_array_equal(
        action_for_change(change, current[:1], config, rounding, floor),
        reference(change, np.repeat(current[:1], n), np.array(steps, dtype=np.int64), lo, hi, up, floor),
    )
    target = current + change
    np.testing.assert_array_equal(
        action_for_target(target, current, config, rounding, floor),
        reference(np.clip(target, lo, hi) - current, current, np.array(steps, dtype=np.int64), lo, hi, up, floor),
    )


def reference_tail(desired, rounded_from, rounded_to, fresh, stranded, current, steps, lo, hi, floor, nearest):
    """RulePolicy.act_batch's steps after ``_decide`` as numpy calls (before they were compiled)."""
    desired, rounded_from, rounded_to = desired.copy(), rounded_from.copy(), rounded_to.copy()
    desired[stranded] = np.maximum(desired[stranded], 1)
    np.clip(desired, floor, hi, out=desired)
    asked = desired.copy()
    if nearest:
        held = (rounded_from >= 0) & ~fresh
        repeat = held & (asked == rounded_from)
        desired[repeat] = rounded_to[repeat]
        rounded_from[(held & ~repeat) | fresh] = -1
    target = np.clip(desired, lo, hi)
    actions = reference(target - current, current, steps, lo, hi, not nearest, floor)
    reached = np.minimum(np.maximum(current + steps[actions], lo), hi)
    over = ((desired > current) & (reached > desired)) | ((desired < current) & (reached < desired))
    delta = np.where(over, reached - desired, 0)
    more = over & (delta > 0)
    rounded_from[more] = asked[more]
    rounded_to[more] = reached[more]
    desired[over] = reached[over]
    return actions, delta, bool(over.any()), desired, rounded_from, rounded_to


@settings(max_examples=300, deadline=None)
@given(
    lo=st.integers(0, 4),
    room=st.integers(1, 30),
    steps=st.lists(st.integers(-9, 9), min_size=1, max_size=7, unique=True),
    extra=st.integers(0, 8),
    nearest=st.booleans(),
    data=st.data(),
)
def test_the_compiled_decision_tail_is_the_numpy_one(lo, room, steps, extra, nearest, data):
    hi = lo + room
    floor = lo + min(extra, room + 2)  # a rule's minimum capacity, at times above the maximum
    n = data.draw(st.integers(1, 12))
    ints = lambda a, b: np.array(data.draw(st.lists(st.integers(a, b), min_size=n, max_size=n)), dtype=np.int64)  # noqa: E731
    bools = lambda: np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=np.bool_)  # noqa: E731
    current, desired = ints(0, hi + 3), ints(-3, hi + 5)
    rounded_from, rounded_to = ints(-1, hi + 2), ints(0, hi + 2)
    fresh, stranded = bools(), bools()
    steps = np.array(steps, dtype=np.int64)
    want = reference_tail(desired, rounded_from, rounded_to, fresh, stranded, current, steps, lo, hi, floor, nearest)
    got_state = [desired.copy(), rounded_from.copy(), rounded_to.copy()]
    actions, delta, overshot = settle_desired(*got_state, fresh, stranded, current, steps, lo, hi, floor, nearest)
    np.testing.assert_array_equal(actions, want[0])
    np.testing.assert_array_equal(delta, want[1])
    assert overshot == want[2]
    for got, expected in zip(got_state, want[3:]):
        np.testing.assert_array_equal(got, expected)
