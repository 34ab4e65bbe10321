"""perf/target_room.py's readings of the planner cache and of the scenarios, and perf/static_fleet.py's guard: the
sampled-futures planner's episodes come from its own cache entry (a missing one names the flag and the command),
and only a scenario whose schedule is drawn per seed is played by its rule in the "fixed schedules" reading."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from agents.experiments.benchmark import EVALUATION_SCENARIOS

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def perf_module(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))  # the perf scripts import each other as ``perf.<name>``
    import importlib

    return lambda name: importlib.import_module(f"perf.{name}")


def test_only_the_trace_replayed_from_a_random_start_has_a_drawn_schedule(perf_module):
    target_room = perf_module("target_room")
    drawn = {s for s in EVALUATION_SCENARIOS if target_room.drawn_schedule(s)}
    assert drawn == {"noisy_trace"}


def test_a_missing_sampled_planner_names_the_flag_and_its_command(perf_module, tmp_path):
    target_room = perf_module("target_room")
    with pytest.raises(SystemExit, match=r"--sampled .*cache\.json: no cached `planner`.*--bound planner"):
        target_room.planner_episodes("--sampled", str(tmp_path / "cache.json"), "planner")
    with pytest.raises(SystemExit, match=r"--cache .*: no cached bound .*or add -p hindsight"):
        target_room.planner_episodes("--cache", str(tmp_path / "cache.json"), "hindsight")


def test_the_static_fleet_is_not_chosen_on_benchmark_seeds(perf_module, monkeypatch):
    static_fleet = perf_module("static_fleet")
    argv = ["static_fleet.py", "steady", "--rule", "hpa@tuned", "--tuning", "990..1000"]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit, match="--tuning: the fleet is chosen below the benchmark seeds"):
        static_fleet.main()
