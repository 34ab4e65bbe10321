"""The command line: the README's main job runs and prints its table."""

from __future__ import annotations

from typer.testing import CliRunner

from agents.experiments.cli import app

runner = CliRunner()


def test_simulate_runs_a_scenario_and_saves_its_dashboard(tmp_path):
    out = tmp_path / "dash.png"
    result = runner.invoke(app, ["simulate", "--scenario", "flash_crowd", "--policy", "threshold", "--out", str(out)])
    assert result.exit_code == 0, result.output
    for word in ("flash_crowd under threshold", "cost $", "SLO viol. %", "240 steps"):
        assert word in result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 20_000


def test_simulate_takes_an_env_config_file(tmp_path):
    cfg = tmp_path / "short.yaml"
    cfg.write_text("episode_steps: 20\n")
    result = runner.invoke(
        app, ["simulate", "--config", str(cfg), "--policy", "static", "--out", str(tmp_path / "d.png")]
    )
    assert result.exit_code == 0, result.output
    assert "20 steps" in result.output and (tmp_path / "d.png").exists()


def test_simulate_reports_a_bad_config_and_exits_2(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("scaling:\n  max_instances: 0\n")
    result = runner.invoke(app, ["simulate", "--config", str(cfg)])
    assert result.exit_code == 2
    assert "scaling.max_instances" in result.output


def test_simulate_names_an_unknown_scenario_and_policy(tmp_path):
    result = runner.invoke(app, ["simulate", "--scenario", "no_such_scenario"])
    assert result.exit_code == 2 and "no_such_scenario" in result.output and "steady" in result.output
    result = runner.invoke(app, ["simulate", "--scenario", "steady", "--policy", "no_such_policy"])
    assert result.exit_code == 2 and "no_such_policy" in result.output


def test_scenarios_lists_every_scenario_with_its_description():
    result = runner.invoke(app, ["scenarios"])
    assert result.exit_code == 0, result.output
    for name in (
        "steady",
        "diurnal",
        "flash_crowd",
        "failure_storm",
        "cold_start_heavy",
        "memory_pressure",
        "noisy_trace",
    ):
        assert name in result.output
    assert "10x flash crowd" in result.output


def test_info_lists_the_observation_fields():
    result = runner.invoke(app, ["info"])
    assert result.exit_code == 0 and "cpu_mean" in result.output and "reward_components" in result.output
