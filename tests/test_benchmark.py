"""The benchmark command: its files, its columns, and worker-count independence."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from agents.experiments.benchmark import ci95, summarise
from agents.experiments.cli import app
from scaling_env.episode_stats import METRIC_NAMES

runner = CliRunner()
POLICIES = "static,threshold,oracle"
SCENARIOS = "steady,flash_crowd"
COLUMNS = ["policy", "scenario", "seed", *METRIC_NAMES, "cost_ratio_to_oracle"]


def run(tmp_path, name: str, workers: int) -> list[dict]:
    out = tmp_path / name
    result = runner.invoke(
        app,
        [
            "benchmark",
            "--policies",
            POLICIES,
            "--scenarios",
            SCENARIOS,
            "--seeds",
            "7,8",
            "--workers",
            str(workers),
            "--out",
            str(out),
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    for word in ("reward", "± CI", "/ oracle", "SLO", "viol. %", "flash_crowd", "oracle"):
        assert word in result.output
    with open(out / "episodes.csv") as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames == COLUMNS
        rows = list(reader)
    assert json.loads((out / "episodes.json").read_text())[0].keys() == set(COLUMNS)
    md = (out / "summary.md").read_text()
    assert md.count("\n| steady |") == 3 and md.count("\n| flash_crowd |") == 3
    for png in ("load_vs_capacity_steady.png", "load_vs_capacity_flash_crowd.png", "cost_vs_slo.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    return rows


def test_benchmark_writes_a_row_per_policy_scenario_seed_and_workers_do_not_change_numbers(tmp_path):
    one = run(tmp_path, "w1", workers=1)
    two = run(tmp_path, "w2", workers=2)
    keys = {(r["policy"], r["scenario"], r["seed"]) for r in one}
    assert keys == {(p, s, str(seed)) for p in POLICIES.split(",") for s in SCENARIOS.split(",") for seed in (7, 8)}
    assert len(one) == 12
    assert one == two  # the same seeds give the same numbers, to the last digit, whatever the worker count
    oracle = [r for r in one if r["policy"] == "oracle"]
    assert all(float(r["cost_ratio_to_oracle"]) == 1.0 for r in oracle)
    static = [r for r in one if r["policy"] == "static" and r["scenario"] == "flash_crowd"]
    assert all(float(r["slo_violation_share"]) > 0 for r in static)  # 3 instances cannot serve 3,000 requests/s


def test_benchmark_reports_an_unknown_policy_before_running(tmp_path):
    result = runner.invoke(
        app,
        [
            "benchmark",
            "--policies",
            "static,nonsense",
            "--scenarios",
            "steady",
            "--episodes",
            "1",
            "--out",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 2 and "nonsense" in result.output
    assert not (tmp_path / "episodes.csv").exists()


def test_benchmark_skips_a_trace_scenario_whose_file_is_missing(tmp_path, monkeypatch):
    monkeypatch.setattr("scaling_env.traces.trace_dirs", lambda traces_dir=None: [tmp_path / "empty"])
    result = runner.invoke(
        app,
        [
            "benchmark",
            "--policies",
            "static",
            "--scenarios",
            "steady,noisy_trace",
            "--episodes",
            "1",
            "--workers",
            "1",
            "--out",
            str(tmp_path / "o"),
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "skipped" in result.output and "aws_elb_request_count_5min.csv" in result.output
    assert "SCALING_ENV_TRACES" in result.output
    assert "skipped" in (tmp_path / "o" / "summary.md").read_text()


def test_python_dash_m_runs_the_benchmark(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "agents.experiments.benchmark",
            "--policies",
            "static",
            "--scenarios",
            "steady",
            "--episodes",
            "1",
            "--workers",
            "1",
            "--out",
            str(tmp_path),
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "episodes.csv").exists()


def test_ci95_matches_a_hand_computed_interval():
    # values 1..5: mean 3, sample std sqrt(2.5), t(0.975, 4) = 2.776 -> 2.776 * sqrt(2.5) / sqrt(5) = 1.9629
    assert ci95(np.arange(1.0, 6.0)) == pytest.approx(2.776 * math.sqrt(2.5) / math.sqrt(5.0))
    assert ci95(np.array([4.0])) == 0.0
    # 41 values, df = 40: t(0.975, 40) = 2.021 (table)
    assert ci95(np.arange(41.0)) == pytest.approx(2.021 * np.std(np.arange(41.0), ddof=1) / math.sqrt(41), rel=2e-4)


def test_summary_means_over_seeds():
    rows = [
        {"scenario": "s", "policy": "p", "seed": i, **{k: float(i) for k in METRIC_NAMES}, "cost_ratio_to_oracle": 1.0}
        for i in (1, 3)
    ]
    (s,) = summarise(rows)
    assert s["reward"] == 2.0 and s["episodes"] == 2 and s["reward_ci95"] == pytest.approx(12.706 * 1.0)
