"""The command line: the README's main job runs and prints its table."""

from __future__ import annotations

from typer.testing import CliRunner

from scaling_env.cli import app

runner = CliRunner()


def test_simulate_prints_the_summary_table(tmp_path):
    cfg = tmp_path / "short.yaml"
    cfg.write_text("episode_steps: 20\n")
    result = runner.invoke(app, ["simulate", "--episodes", "2", "--config", str(cfg)])
    assert result.exit_code == 0, result.output
    for word in ("static", "threshold", "cost USD", "SLO viol.", "2 episodes x 20 steps"):
        assert word in result.output


def test_simulate_reports_a_bad_config_and_exits_2(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("scaling:\n  max_instances: 0\n")
    result = runner.invoke(app, ["simulate", "--config", str(cfg)])
    assert result.exit_code == 2
    assert "scaling.max_instances" in result.output


def test_info_lists_the_observation_fields():
    result = runner.invoke(app, ["info"])
    assert result.exit_code == 0 and "cpu_mean" in result.output and "reward_components" in result.output
