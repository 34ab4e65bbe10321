"""The planning oracle's cached bound: keyed by scenario, seed and code version, shown by the benchmark."""

from __future__ import annotations

import json
import math
from pathlib import Path

from typer.testing import CliRunner

from agents.experiments import bound
from agents.experiments.cli import app
from scaling_env.episode_stats import METRIC_NAMES
from scaling_env.scenarios import load_scenario

runner = CliRunner()


def episode(seed: int, reward: float, cost: float) -> dict:
    return {"seed": seed, **{m: 0.0 for m in METRIC_NAMES}, "reward": reward, "cost_usd": cost}


def steady_key(version: str | None = None) -> str:
    cfg = load_scenario("steady").config
    return bound.cache_key("steady", cfg, bound.planner_params(cfg), version or bound.code_version())


def test_the_key_holds_scenario_config_params_and_code_version_and_every_seed_must_be_cached(tmp_path):
    cfg = load_scenario("steady").config
    params = bound.planner_params(cfg)
    key = bound.cache_key("steady", cfg, params, "v1")
    assert key.startswith("steady|") and key.endswith("|v1") and params in key
    assert bound.cache_key("steady", cfg.with_updates({"episode_steps": 10}), params, "v1") != key
    path = tmp_path / "cache.json"
    bound.store(path, key, [episode(7, -30.0, 1.0)], 12.5)
    bound.store(path, key, [episode(8, -32.0, 1.2)], 11.0)
    cache = bound.load_cache(path)
    assert [e["seed"] for e in bound.cached_episodes(cache, key, [8, 7])] == [8, 7]
    assert bound.cached_episodes(cache, key, [7, 9]) is None  # seed 9 was never planned
    assert bound.cached_episodes(cache, key.replace("|v1", "|v2"), [7]) is None  # another code version
    assert cache[key]["seconds_per_episode"] == 11.0


def test_the_code_version_follows_the_contents_of_the_files_it_depends_on(tmp_path):
    (tmp_path / "scaling_env" / "sim").mkdir(parents=True)
    (tmp_path / "agents" / "references").mkdir(parents=True)
    kernel = tmp_path / "scaling_env" / "sim" / "kernel.py"
    kernel.write_text("a = 1\n")
    (tmp_path / "agents" / "references" / "planner.py").write_text("b = 1\n")
    before = bound.code_version(tmp_path)
    (tmp_path / "notes.txt").write_text("not code")
    assert bound.code_version(tmp_path) == before
    kernel.write_text("a = 2\n")
    assert bound.code_version(tmp_path) != before


def test_add_bounds_gives_each_policy_its_gap_and_says_where_no_bound_exists(tmp_path):
    path = tmp_path / "cache.json"
    bound.store(path, steady_key(), [episode(7, -30.0, 1.0), episode(8, -32.0, 1.2)], 10.0)
    rows = [
        {"scenario": sc, "policy": p, **episode(s, r, c)}
        for sc in ("steady", "flash_crowd")
        for p, r, c in (("static", -40.0, 1.5), ("oracle", -33.0, 1.05))
        for s in (7, 8)
    ]
    for r in rows:
        r["cost_ratio_to_oracle"] = r["cost_usd"] / 1.05
    from agents.experiments.tables import summarise

    summary = summarise(rows)
    configs = {sc: load_scenario(sc).config for sc in ("steady", "flash_crowd")}
    notes = bound.add_bounds(summary, rows, configs, [7, 8], path)
    by = {(s["scenario"], s["policy"]): s for s in summary}
    cached = by[("steady", bound.CACHED_LABEL)]
    assert cached["reward"] == -31.0 and math.isclose(cached["cost_usd"], 1.1)
    assert math.isclose(cached["cost_ratio_to_oracle"], 1.1 / 1.05)
    assert by[("steady", "static")]["reward_gap_to_bound"] == -9.0  # -40 - (-31)
    assert math.isclose(by[("steady", "oracle")]["cost_gap_to_bound"], 1.05 - 1.1)
    assert math.isnan(by[("flash_crowd", "static")]["reward_gap_to_bound"])
    assert [s["policy"] for s in summary if s["scenario"] == "steady"][-1] == bound.CACHED_LABEL
    assert any("cached" in n and "steady" in n for n in notes)
    assert any("no cached bound for flash_crowd" in n and "--seeds 7..8" in n for n in notes)
    assert not any("ABOVE" in n for n in notes)
    bound.store(path, steady_key(), [episode(7, -35.0, 1.0), episode(8, -35.0, 1.0)], 10.0)  # oracle: -33
    notes = bound.add_bounds(summarise(rows), rows, configs, [7, 8], path)
    assert "ABOVE the bound on steady: oracle (a higher mean reward than the bound's)" in notes
    # other seeds: no bound anywhere, and no gap columns
    summary = summarise(rows)
    notes = bound.add_bounds(summary, rows, configs, [7, 9], path)
    assert "reward_gap_to_bound" not in summary[0] and notes[0].startswith("no cached bound for steady, flash_crowd")


def test_the_benchmark_shows_the_cached_bound_and_the_gaps_without_planning(tmp_path):
    path = tmp_path / "bounds" / "cache.json"
    bound.store(path, steady_key(), [episode(7, -1.0, 0.5), episode(8, -3.0, 0.7)], 10.0)
    args = ["benchmark", "-p", "static,oracle", "-s", "steady,flash_crowd", "--seeds", "7,8", "--workers", "1"]
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "o"), "--no-progress", "--bound-cache", str(path)])
    assert result.exit_code == 0, result.output
    assert "  bound " in result.output and "--wide adds" in result.output  # the gaps: --wide, summary.md
    assert "no cached bound for flash_crowd" in result.output
    md = (tmp_path / "o" / "summary.md").read_text()
    assert "| reward - bound | cost - bound $ |" in md
    line = next(ln for ln in md.splitlines() if ln.startswith("| steady | bound |"))
    assert "-2.0 ± 12.7" in line and "+0.0 | +0.000 |" in line  # the bound's own gap is 0; t(1) = 12.706
    assert all(" - | - |" in ln for ln in md.splitlines() if ln.startswith("| flash_crowd |"))
    episodes = json.loads((tmp_path / "o" / "episodes.json").read_text())
    assert {r["policy"] for r in episodes} == {"static", "oracle"}  # the cached bound is not an episode of this run


def test_platform_scenarios_have_no_bound_and_no_command_to_compute_one(tmp_path):
    rows = [
        {"scenario": sc, "policy": "static", **episode(s, -40.0, 1.5)}
        for sc in ("steady", "daily_provisioned")
        for s in (7, 8)
    ]
    from agents.experiments.tables import summarise

    configs = {sc: load_scenario(sc).config for sc in ("steady", "daily_provisioned")}
    notes = bound.add_bounds(summarise(rows), rows, configs, [7, 8], tmp_path / "cache.json")
    assert notes[0].startswith("no cached bound for steady on") and "daily_provisioned" not in notes[0]
    assert notes[1] == "no bound for the platform-mode scenarios (daily_provisioned): the planner scales a pool"


def test_a_replayed_trace_is_keyed_by_its_contents_not_its_path(tmp_path):
    cfg = load_scenario("noisy_trace").config
    source = Path(cfg.workload.shape.path)
    copy = tmp_path / "elsewhere" / source.name
    copy.parent.mkdir()
    copy.write_bytes(source.read_bytes())
    moved = cfg.with_updates({"workload": {"shape": {"path": str(copy)}}})
    params = bound.planner_params(cfg)
    assert bound.cache_key("noisy_trace", moved, params, "v1") == bound.cache_key("noisy_trace", cfg, params, "v1")
    copy.write_bytes(source.read_bytes() + b"\n")  # other contents: another key
    assert bound.cache_key("noisy_trace", moved, params, "v1") != bound.cache_key("noisy_trace", cfg, params, "v1")
