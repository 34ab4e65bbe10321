"""The command line: the README's main job runs and prints its table."""

from __future__ import annotations

from importlib.metadata import version

import pytest
from typer.testing import CliRunner

from agents.experiments.cli import app
from scaling_env.resources import config_dir

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
    assert "time_since_scale" in result.output and "observed_cpu_utilization" in result.output  # v1, delivered


# ------------------------------------------------------------------------------- messages, not tracebacks


@pytest.mark.parametrize(
    "args",
    [
        ["benchmark", "--seeds", "-5", "-p", "static", "-s", "steady"],
        ["benchmark", "--seeds", "3,-5", "-p", "static", "-s", "steady"],
        ["benchmark", "--seed", "-5", "-p", "static", "-s", "steady"],
        ["simulate", "--seed", "-1"],
        ["train", "--seed", "-5"],
        ["evaluate", "--model", "nowhere", "--seed", "-5"],
    ],
)
def test_negative_seeds_are_a_message_and_exit_2(args, tmp_path):
    result = runner.invoke(app, [*args, *(["--out", str(tmp_path / "o")] if args[0] == "benchmark" else [])])
    assert result.exit_code == 2, result.output
    assert "--seed" in result.output and (
        "non-negative" in result.output or "greater than or equal to 0" in result.output
    )
    assert "Traceback" not in result.output and not isinstance(result.exception, ValueError)
    assert not (tmp_path / "o").exists()


def test_train_run_dir_that_is_a_file_is_a_message(tmp_path):
    file = tmp_path / "taken"
    file.write_text("mine")
    result = runner.invoke(app, ["train", "--run-dir", str(file), "--total-timesteps", "8"])
    assert result.exit_code == 2, result.output
    assert "is a file" in result.output and file.read_text() == "mine"


def test_user_text_is_printed_as_typed_not_as_markup():
    result = runner.invoke(app, ["simulate", "--scenario", "[/bold]"])
    assert result.exit_code == 2 and "unknown scenario '[/bold]'" in result.output
    # an error that echoes --set values keeps their brackets
    result = runner.invoke(
        app, ["train", "--set", "eval_scenarios=[steady]", "--set", "no_such_key=1", "--total-timesteps", "8"]
    )
    assert result.exit_code == 2, result.output
    assert "eval_scenarios=[steady]" in result.output and "no_such_key" in result.output


def test_the_unknown_policy_message_lists_the_named_variants():
    result = runner.invoke(app, ["simulate", "--scenario", "steady", "--policy", "nope"])
    assert result.exit_code == 2 and "static_peak" in result.output and "hpa" in result.output


# ------------------------------------------------------------------------------------ one app, versions


def test_version_option_and_attributes():
    import agents
    import scaling_env

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"scaling-env {scaling_env.__version__}"
    assert scaling_env.__version__ == version("scaling-env") == agents.__version__


def test_every_command_is_in_the_one_app():
    names = {c.name or c.callback.__name__ for c in app.registered_commands}
    assert {"simulate", "scenarios", "info", "benchmark", "train", "evaluate", "plot-training", "verdict"} <= names
    result = runner.invoke(app, ["--help"])
    for name in ("plot-training", "verdict", "train", "benchmark"):
        assert name in result.output


def test_verdict_and_plot_training_subcommands(tmp_path):
    result = runner.invoke(app, ["verdict", str(tmp_path / "missing.csv")])
    assert result.exit_code == 2 and "no such file" in result.output
    result = runner.invoke(app, ["plot-training", str(tmp_path)])
    assert result.exit_code == 2 and "evaluations.csv" in result.output
    # the verdict re-runs the rules on the tuning seeds (0-19), so a real scenario and benchmark seeds
    rows = [("ppo:r", "steady", 1000, -10.0, 0.1), ("hpa", "steady", 1000, -20.0, 0.0)]
    rows += [("oracle", "steady", 1000, -5.0, 0.0), ("ppo:r", "steady", 1001, -12.0, 0.1)]
    rows += [("hpa", "steady", 1001, -18.0, 0.0), ("oracle", "steady", 1001, -6.0, 0.0)]
    csv_file = tmp_path / "episodes.csv"
    csv_file.write_text(
        "policy,scenario,seed,reward,slo_violation_share\n"
        + "".join(f"{a},{b},{c},{d},{e}\n" for a, b, c, d, e in rows)
    )
    result = runner.invoke(app, ["verdict", str(csv_file)])
    assert result.exit_code == 0, result.output
    assert "| steady |" in result.output and "hpa" in result.output


def test_benchmark_help_shows_its_defaults_in_full():
    result = runner.invoke(app, ["benchmark", "--help"], env={"COLUMNS": "80"})
    text = " ".join(result.output.split())
    assert "static, static_peak, threshold, step_scaling, target_tracking, hpa, kpa, predictive, oracle" in text
    assert "steady, diurnal, flash_crowd, failure_storm, cold_start_heavy, memory_pressure, noisy_trace" in text


def test_info_prints_titled_tables_with_actions_and_reward():
    result = runner.invoke(app, ["info"])
    assert result.exit_code == 0
    for title in ("Observation:", "Actions:", "Reward:", "Info:"):
        assert title in result.output
    text = " ".join(result.output.split())
    assert "cpu_mean" in text and "slo_violation" in text and "arrivals" in text
    # the two action sets side by side, and the difference spelled out
    assert "default env [-2, -1, 0, 1, 2]" in text and "shipped scenarios [-8, -4, -2, -1, 0, 1, 2, 4, 8]" in text
    assert "action 0 is -2 in the default env and -8 in the shipped scenarios" in text


def test_training_progress_counts_env_steps_up_to_whole_rollouts(tmp_path):
    from agents.experiments.progress import steps_to_run

    assert steps_to_run(20_000, 0, 16_384) == 32_768 and steps_to_run(32_768, 0, 16_384) == 32_768
    assert steps_to_run(40_000, 32_768, 16_384) == 16_384 and steps_to_run(10, 20, 8) == 0
    config = tmp_path / "tiny.yaml"
    config.write_text(
        "scenarios: [steady]\neval_scenarios: [steady]\nn_envs: 4\ntotal_timesteps: 200\neval_freq: 0\n"
        "checkpoint_freq: 0\nppo: {n_steps: 32, batch_size: 64, n_epochs: 1, policy_kwargs: {net_arch: [8]}}\n"
    )
    result = runner.invoke(app, ["train", "--config", str(config), "--run-dir", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "256/256" in text and "200 asked, whole rollouts of 128" in text  # not 256/200
    assert "trained 256 steps" in text


def test_training_on_a_missing_trace_says_how_to_get_past_it(tmp_path):
    scenario = tmp_path / "mine.yaml"
    text = (config_dir("scenarios") / "noisy_trace.yaml").read_text()
    scenario.write_text(text.replace("aws_elb_request_count_5min.csv", "my_own_trace.csv"))
    result = runner.invoke(
        app, ["train", "--scenario", str(scenario), "--run-dir", str(tmp_path / "run"), "--total-timesteps", "8"]
    )
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert "my_own_trace.csv" in text and "--traces-dir" in text
    assert "--scenario" in text and "--set 'eval_scenarios=[steady, diurnal]'" in text
    assert not (tmp_path / "run").exists()
