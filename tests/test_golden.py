"""Bit-for-bit golden trajectories (tests/golden_trajectories.py): a refactor changes no behaviour."""

from __future__ import annotations

import json
import os

import pytest
from golden_trajectories import DIGESTS, cases, key, run_case

from scaling_env import load_scenario
from scaling_env.traces import TraceNotFoundError

RECORDED: dict[str, str] = json.loads(DIGESTS.read_text())
CASES = cases()


def test_every_case_is_recorded():
    assert sorted(key(c) for c in CASES) == sorted(RECORDED)


@pytest.mark.parametrize("case", CASES, ids=key)
def test_trajectory_is_bit_identical(case):
    try:
        load_scenario(case[1])
    except TraceNotFoundError as exc:
        (pytest.fail if os.environ.get("CI") else pytest.skip)(str(exc))
    digest, _ = run_case(case)
    assert digest == RECORDED[key(case)], f"{key(case)} changed (python tests/golden_trajectories.py --dump DIR)"
