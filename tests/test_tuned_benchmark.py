"""The benchmark with tuned settings: ``<name>@tuned`` reads the file of each scenario it runs on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from agents import registry
from agents.base import PolicyConfigError
from agents.experiments.benchmark import run_benchmark
from agents.registry import make_policy
from scaling_env.rollout import rollout
from scaling_env.scenarios import load_scenario

SEEDS = [1000, 1001]


def _tuned(root: Path, folder: str, target: float) -> Path:
    path = root / folder / "hpa.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"policy: hpa\nparams: {{target: {target}, scale_down_stabilization_seconds: 0}}\n")
    return path


@pytest.fixture
def tuned_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(registry, "TUNED_DIR", tmp_path)
    _tuned(tmp_path, "steady", 0.35)
    _tuned(tmp_path, "diurnal", 0.95)
    _tuned(tmp_path, "generalist", 0.6)
    return tmp_path


def _mean_reward(path: Path, scenario: str) -> float:
    config = load_scenario(scenario).config
    run = rollout(config, make_policy(str(path), config), SEEDS, parallel=False)
    return float(np.mean([m["reward"] for m in run.metrics]))


def test_benchmark_uses_each_scenarios_tuned_file(tuned_dir: Path) -> None:
    scenarios = [load_scenario("steady"), load_scenario("diurnal")]
    rows, _ = run_benchmark(["hpa", "hpa@tuned", "hpa@generalist"], scenarios, SEEDS, workers=1, progress=False)
    got = {
        (sc, p): float(np.mean([r["reward"] for r in rows if r["scenario"] == sc and r["policy"] == p]))
        for sc in ("steady", "diurnal")
        for p in ("hpa", "hpa@tuned", "hpa@generalist")
    }
    for sc in ("steady", "diurnal"):
        assert got[(sc, "hpa@tuned")] == pytest.approx(_mean_reward(tuned_dir / sc / "hpa.yaml", sc), abs=1e-9)
        assert got[(sc, "hpa@generalist")] == pytest.approx(
            _mean_reward(tuned_dir / "generalist" / "hpa.yaml", sc), abs=1e-9
        )
    # the files differ enough that using the other scenario's file would show
    assert _mean_reward(tuned_dir / "diurnal" / "hpa.yaml", "steady") != pytest.approx(got[("steady", "hpa@tuned")])
    assert got[("steady", "hpa@tuned")] != pytest.approx(got[("steady", "hpa")])


def test_missing_tuned_file_is_a_clear_error(tuned_dir: Path) -> None:
    config = load_scenario("flash_crowd").config
    with pytest.raises(PolicyConfigError, match=r"no tuned hpa for scenario flash_crowd: .*flash_crowd/hpa.yaml"):
        make_policy("hpa@tuned", config, scenario="flash_crowd")
    with pytest.raises(PolicyConfigError, match="depends on the scenario"):
        make_policy("hpa@tuned", config)
    with pytest.raises(PolicyConfigError, match="unknown suffix @best"):
        make_policy("hpa@best", config, scenario="steady")
    with pytest.raises(PolicyConfigError, match="no tuned kpa for the generalist setting"):
        make_policy("kpa@generalist", config)


def test_with_tuned_lists_the_tuned_rows(tuned_dir: Path) -> None:
    want = ["static", "hpa", "hpa@generalist", "hpa@tuned", "oracle"]
    assert registry.with_tuned(["static", "hpa", "oracle"]) == want


def test_tuned_file_of_another_policy_is_refused(tuned_dir: Path) -> None:
    (tuned_dir / "steady" / "kpa.yaml").write_text("policy: hpa\n")
    with pytest.raises(PolicyConfigError, match="policy: 'hpa', expected 'kpa'"):
        make_policy("kpa@tuned", load_scenario("steady").config, scenario="steady")


def test_benchmark_tuned_flag_adds_the_tuned_rows(tuned_dir: Path, tmp_path: Path) -> None:
    import typer
    from typer.testing import CliRunner

    from agents.experiments.benchmark import benchmark

    app = typer.Typer()
    app.command()(benchmark)
    out = tmp_path / "bench"
    args = ["--policies", "static,hpa", "--scenarios", "steady", "--episodes", "2", "--workers", "1", "--tuned"]
    res = CliRunner().invoke(app, [*args, "--out", str(out), "--no-progress"])
    assert res.exit_code == 0, res.output
    summary = (out / "summary.md").read_text()
    for label in ("| static |", "| hpa |", "| hpa@generalist |", "| hpa@tuned |"):
        assert label in summary
    assert "static@" not in summary  # static has no tuned files
