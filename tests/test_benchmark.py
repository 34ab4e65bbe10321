"""The benchmark command: its files, its columns, and worker-count independence."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

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


# ------------------------------------------------------------------------------------------ tables, plots

LONG = "ppo:runs/a_long_folder_name/of_many_runs/ppo_train_diurnal_train_flash_crowd_0_20260101T000000"


def summary_row(scenario: str, policy: str, cost: float, slo: float, ratio: float = float("nan")) -> dict:
    row = {k: 1.0 for k in METRIC_NAMES}
    row.update(scenario=scenario, policy=policy, episodes=20, cost_usd=cost, slo_violation_share=slo, reward=-1234.5)
    row.update(reward_ci95=123.4, cost_ratio_to_oracle=ratio)
    return row


def texts_inside(fig) -> list[str]:
    """The title, axis labels and legend texts of a drawn figure that reach outside it."""
    fig.canvas.draw()
    box = fig.bbox
    out = []
    for ax in fig.axes:
        for t in (ax.title, ax.xaxis.label, ax.yaxis.label, *ax.get_legend().get_texts()):
            e = t.get_window_extent()
            if e.x0 < box.x0 - 1 or e.x1 > box.x1 + 1 or e.y0 < box.y0 - 1 or e.y1 > box.y1 + 1:
                out.append(t.get_text())
    return out


def test_cost_vs_slo_keeps_every_text_inside_with_a_long_policy_name():
    from agents.experiments.benchmark import cost_slo_figure

    summary = [
        summary_row(sc, p, 1.0 + i, 0.1 * i) for i, p in enumerate(("hpa", LONG)) for sc in ("steady", "diurnal")
    ]
    fig = cost_slo_figure(summary)
    assert texts_inside(fig) == []
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "policy: ppo:…/ppo_train_diurnal_train_flash_crowd_0_20260101T000000" not in labels  # shortened
    assert any(label.startswith("policy: ppo:…/") for label in labels)


def test_load_vs_capacity_merges_identical_curves_and_names_the_seed():
    from agents.experiments.benchmark import load_capacity_figure

    same, other = [100.0, 200.0, 200.0], [100.0, 100.0, 300.0]
    data = {"rate_rps": [90.0, 150.0, 250.0], "seed": 1000, "episodes": 20}
    data["capacity"] = {"static": same, "threshold": same, "kpa": same, "hpa": other}
    fig = load_capacity_figure("failure_storm", data, 15.0)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["workload rate (lambda)", "warm capacity: static = threshold = kpa", "warm capacity: hpa"]
    assert len(ax.get_lines()) == 3  # one line per distinct curve: none hidden under another
    assert len({line.get_linestyle() for line in ax.get_lines()[1:]}) == 2
    title = ax.get_title()
    assert "seed 1000" in title and "first of 20 seeds" in title and "identical curves share a line" in title
    assert texts_inside(fig) == []


def test_the_default_table_fits_80_columns_with_units_a_legend_and_no_cut_number():
    from rich.console import Console

    from agents.experiments.tables import legend, rich_table

    summary = [
        summary_row(sc, p, 12.345, 0.5)
        for sc in ("cold_start_heavy", "memory_pressure")
        for p in ("static_peak", "target_tracking", "predictive", LONG)
    ]
    console = Console(width=80, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(rich_table(summary, "title"))
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "…" not in text.replace("ppo:…/", "")  # no number or name cut (the shortened run label aside)
    assert "-1234.5 ± 123.4" in text and "12.345" in text and "50.0" in text
    for unit in ("$", "%", "± CI", "/ oracle"):
        assert unit in text
    note = legend(summary, wide=False)
    assert "oracle was not run" in note and "--wide adds" in note and "USD" in note
    wide = Console(width=300, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    wide.print(rich_table(summary, "t", wide=True))
    text = wide.export_text()
    assert "starts /ep" in text and "p95" in text and "dropped" in text


def test_benchmark_ends_with_a_line_that_names_the_skipped_scenario(tmp_path, monkeypatch):
    monkeypatch.setattr("scaling_env.traces.trace_dirs", lambda traces_dir=None: [tmp_path / "empty"])
    args = ["benchmark", "-p", "static", "-s", "steady,noisy_trace", "--episodes", "1", "--workers", "1"]
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "o"), "--no-progress"])
    assert result.exit_code == 0, result.output
    last = result.output.strip().splitlines()[-1]
    assert "SKIPPED 1: noisy_trace" in last
    result = runner.invoke(app, [*args[:4], "steady", *args[5:], "--out", str(tmp_path / "p"), "--no-progress"])
    assert result.output.strip().splitlines()[-1].endswith("nothing skipped")


def test_evaluate_and_benchmark_share_one_table():
    import agents.experiments.evaluate as evaluate_module
    from agents.experiments import tables

    assert not hasattr(evaluate_module, "COLUMNS") and not hasattr(evaluate_module, "results_table")
    assert not hasattr(evaluate_module, "summarize")
    bench = tables.rich_table([summary_row("s", "hpa", 1.0, 0.1, 1.2)])
    evaluated = tables.rich_table(
        [{k: v for k, v in summary_row("s", "ppo:r", 1.0, 0.1).items() if k != "cost_ratio_to_oracle"}]
    )
    headers = [c.header for c in bench.columns]
    assert [c.header for c in evaluated.columns] == [h for h in headers if "oracle" not in h]


def test_tuning_uses_the_pool_scenarios_and_the_benchmark_adds_the_others():
    """Rule baselines are tuned (and the learned targets measured) on the pool scenarios; the default benchmark
    also runs the late-metrics and platform-mode scenarios, which the tuned settings were not made for."""
    from agents.experiments.benchmark import DEFAULT_SCENARIOS, EVALUATION_SCENARIOS
    from scaling_env.scenarios import load_scenarios

    assert DEFAULT_SCENARIOS[: len(EVALUATION_SCENARIOS)] == EVALUATION_SCENARIOS
    assert {"diurnal_delayed_metrics", "sparse_bursts", "daily_provisioned", "scaling_rate_burst"} <= set(
        DEFAULT_SCENARIOS
    )
    loaded = {sc.name: sc for sc in load_scenarios(list(DEFAULT_SCENARIOS), None)[0]}
    assert not any(loaded[name].config.platform.enabled for name in EVALUATION_SCENARIOS)
    tuned = Path(__file__).parents[1] / "configs" / "policies" / "tuned"
    assert {p.name for p in tuned.iterdir() if p.is_dir()} - {"generalist"} == set(EVALUATION_SCENARIOS)


def test_a_scenario_no_given_policy_runs_on_is_named_not_left_empty(tmp_path):
    """An instance-count policy on a platform-mode scenario cannot run: asked for alone the benchmark fails naming
    the scenario (no folder written); beside a scenario it runs on, the last line names it as skipped."""
    args = ["benchmark", "-p", "kpa", "--episodes", "1", "--workers", "1", "--no-progress"]
    result = runner.invoke(app, [*args, "-s", "sparse_bursts", "--out", str(tmp_path / "a")])
    assert result.exit_code != 0 and "runs on sparse_bursts" in " ".join(result.output.split())
    assert "Traceback" not in result.output and not (tmp_path / "a").exists()
    result = runner.invoke(app, [*args, "-s", "steady,sparse_bursts", "--out", str(tmp_path / "b")])
    assert result.exit_code == 0, result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("done: 1 scenario(s)") and "SKIPPED 1: sparse_bursts" in last
