"""A rate change inside a step (docs/model.md 5): the workload's split of each step's arrivals around its rate
change (``EpisodeWorkload.rate_splits``) and the fast model's two-rate fluid queue, with numbers that follow on
paper. Deterministic arrivals, concurrency 10, 0.1 s service: one instance completes 100 req/s (conftest.QUIET)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import action_for, quiet_config, started

from scaling_env.config import EnvConfig
from scaling_env.workload import SPLIT_SLICES, Workload


def _episode(shape: dict, **over):
    cfg = EnvConfig.from_dict({"episode_steps": 4, "workload": {"shape": shape}, **over})
    return Workload(cfg).sample_episode(np.random.default_rng(0))


def test_rate_split_of_a_jump_inside_a_step_is_exact_on_a_slice_boundary():
    # 100 -> 300 req/s at t = 22.5 s: the middle of step 1 ([15, 30)). Its 3000 requests: 750 in the first half.
    split, early = _episode({"kind": "spike", "base_rps": 100.0, "peak_rps": 300.0, "start_seconds": 22.5,
                             "duration_seconds": 1e5}).rate_splits()  # fmt: skip
    assert split.tolist() == [0.0, 7.5, 0.0, 0.0]
    assert early[1] == pytest.approx(0.25, rel=1e-12)


def test_rate_split_off_the_slices_is_within_one_slice_and_its_count_exact():
    # the jump at t = 20 s (5 s into step 1) falls inside a slice of 15 / 32 s: the split is a boundary next to
    # it, and the part before it is the exact integral up to that boundary
    ep = _episode({"kind": "spike", "base_rps": 100.0, "peak_rps": 300.0, "start_seconds": 20.0,
                   "duration_seconds": 1e5})  # fmt: skip
    split, early = ep.rate_splits()
    assert abs(split[1] - 5.0) <= 15.0 / SPLIT_SLICES
    before = 100.0 * min(split[1], 5.0) + 300.0 * max(split[1] - 5.0, 0.0)
    assert early[1] == pytest.approx(before / ep.expected_arrivals()[1], rel=1e-12)


@pytest.mark.parametrize(
    "shape",
    [
        {"kind": "constant", "rate_rps": 50.0},
        # a day over 15 s steps: the rate moves far less than SPLIT_MIN_CHANGE within a step
        {"kind": "diurnal", "peak_rps": 300.0, "trough_rps": 20.0, "peak_time_seconds": 3600.0},
        {"kind": "trace", "counts": [10, 40, 5, 80], "interval_seconds": 15.0},  # on the step grid
    ],
)
def test_no_split_where_the_rate_is_about_constant_within_each_step(shape):
    split, early = _episode(shape).rate_splits()
    assert not split.any() and not early.any()


def _mid_step_jump(max_queue: int, steps: int) -> list[dict]:
    """One instance (100 req/s) held for ``steps`` steps while the rate jumps 50 -> 150 req/s at t = 22.5 s, the
    middle of step 1; the infos of the steps."""
    cfg = quiet_config(
        workload={"shape": {"kind": "spike", "base_rps": 50.0, "peak_rps": 150.0, "start_seconds": 22.5,
                            "duration_seconds": 1e5}},
        instances={"max_queue": max_queue},
        scaling={"min_instances": 1, "max_instances": 1, "initial_instances": 1},
    )  # fmt: skip
    env = started(cfg)
    hold = action_for(cfg, 0)
    return [env.step(hold)[4] for _ in range(steps)]


def test_a_rate_change_inside_a_step_builds_the_backlog_of_its_second_half():
    # one instance (100 req/s), 50 -> 150 req/s at t = 22.5 s (mid step 1): 1500 arrivals in step 1, a mean of
    # 100 req/s. Spread evenly they look like exactly capacity: no backlog. In fact the first half (375 at
    # 50 req/s) queues nothing and the second (1125 at 150 req/s) builds 50 req/s x 7.5 s = 375.
    infos = _mid_step_jump(max_queue=1000, steps=3)
    assert [i["arrivals"] for i in infos] == [750, 1500, 2250]
    assert infos[0]["backlog"] == 0 and infos[0]["dropped"] == 0
    assert infos[1]["backlog"] == 375 and infos[1]["served"] == 1125 and infos[1]["dropped"] == 0
    # step 2: 150 req/s all step, the queue grows 50 req/s more: 375 + 750
    assert infos[2]["backlog"] == 1000 and infos[2]["dropped"] == 125


def test_a_rate_change_inside_a_step_fills_the_waiting_room_and_drops_the_rest():
    # as above with a waiting room of 100: the second half's queue is full after 2 s, then 50 req/s are turned
    # away for 5.5 s: 275 dropped (none when the step's arrivals are spread evenly)
    infos = _mid_step_jump(max_queue=100, steps=2)
    # (the stationary queue's blocking at the capped utilisation turns a few more away at random)
    assert infos[1]["backlog"] == 100
    assert 275 <= infos[1]["dropped"] <= 275 + 15
    assert infos[1]["served"] == 1500 - 100 - infos[1]["dropped"]
