"""``select_by: wins_vs_base``: the best model is the evaluation that beats the residual's rule on the most
evaluation scenarios at no higher SLO share (ties by mean reward), during training and when a resume cuts a lost
segment; ``select_by: reward`` keeps the highest mean reward."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from agents.experiments.cli import app
from agents.experiments.train_config import TrainConfig
from scaling_env.config import ConfigError

runner = CliRunner()
INSTANCES = 4
TINY = {"episode_steps": 16, "scaling": {"max_instances": 16, "scale_steps": [-2, -1, 0, 1, 2]}}
SMOKE = {
    "n_envs": 4,
    "total_timesteps": 128,
    "eval_freq": 32,
    "checkpoint_freq": 64,
    "n_eval_episodes": 2,
    # a fresh gate between a fixed fleet of INSTANCES (the base policy file) and kpa
    "residual": {"max_offset": 0, "zero_bias": 0.0, "experts": ["kpa"]},
    "select_by": "wins_vs_base",
    "ppo": {"n_steps": 8, "batch_size": 32, "n_epochs": 1, "policy_kwargs": {"net_arch": [8]}},
}


def rows(step: int, values: dict[str, tuple[float, float]]) -> list[dict]:
    return [{"timesteps": step, "scenario": s, "reward": r, "slo_violation_share": v} for s, (r, v) in values.items()]


def test_a_win_needs_a_higher_mean_reward_at_no_higher_slo_share():
    from agents.experiments.train import score_by_step, selection_score

    base = {"a": (-12.0, 0.01), "b": (-30.0, 0.0)}
    # a: higher reward at the same SLO share (win); b: lower reward
    assert selection_score(rows(1, {"a": (-10.0, 0.01), "b": (-50.0, 0.0)}), base) == (1, -30.0)
    # a: higher reward at a higher SLO share (no win); b: higher reward at the same share (win)
    assert selection_score(rows(2, {"a": (-5.0, 0.02), "b": (-20.0, 0.0)}), base) == (1, -12.5)
    # both win; an equal reward is no win
    assert selection_score(rows(3, {"a": (-11.0, 0.01), "b": (-29.0, 0.0)}), base) == (2, -20.0)
    assert selection_score(rows(4, {"a": (-12.0, 0.0), "b": (-30.0, 0.0)}), base) == (0, -21.0)
    every = sum((rows(s, v) for s, v in [(1, {"a": (-10.0, 0.01)}), (2, {"a": (-5.0, 0.02)})]), [])
    # without a base, the mean reward alone decides: step 2; with it, the win at step 1 does
    assert max(score_by_step(every).items(), key=lambda x: x[1])[0] == 2
    assert max(score_by_step(every, base).items(), key=lambda x: x[1])[0] == 1
    with pytest.raises(ConfigError, match="'c': the base rule was not evaluated"):
        selection_score(rows(1, {"c": (0.0, 0.0)}), base)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"select_by": "wins_vs_base"}, "needs residual"),
        (
            {"select_by": "wins_vs_base", "residual": {"policy": "step_scaling"}, "eval_freq": 0},
            "no evaluation to select by",
        ),
        ({"select_by": "wins"}, "select_by"),
    ],
)
def test_bad_selection_settings_are_named(values, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig.model_validate(values)


@pytest.fixture(scope="module")
def selected(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("selection")
    tiny = root / "tiny.yaml"
    tiny.write_text(yaml.safe_dump({"description": "test scenario", "env": TINY}))
    # the same with a p95 objective of 0.3 s, which the fixed fleet misses on some steps
    tight = root / "tight.yaml"
    tight.write_text(yaml.safe_dump({"description": "tight SLO", "env": {**TINY, "reward": {"slo_p95_seconds": 0.3}}}))
    fixed = root / "fixed.yaml"
    fixed.write_text(yaml.safe_dump({"policy": "static", "params": {"instances": INSTANCES}}))
    residual = {**SMOKE["residual"], "policy": str(fixed)}
    config = root / "smoke.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                **SMOKE,
                "residual": residual,
                "scenarios": [str(tiny), str(tight)],
                "eval_scenarios": [str(tiny), str(tight)],
            }
        )
    )
    run = root / "run"
    result = runner.invoke(
        app, ["train", "--config", str(config), "--run-dir", str(run), "--no-progress", "--seed", "3"]
    )
    assert result.exit_code == 0, result.output
    return run


def base_of(run: Path) -> dict[str, tuple[float, float]]:
    from agents.experiments.train import base_evaluation, read_run_config, read_scenarios

    return base_evaluation(read_run_config(run / "config.yaml"), read_scenarios(run / "scenarios.yaml")[1])


def test_the_base_is_the_rule_alone_on_the_evaluation_episodes(selected):
    from agents.experiments.evaluate import run_policy_episodes
    from agents.experiments.train import make_rule, read_scenarios

    expected = {}
    for name, config in read_scenarios(selected / "scenarios.yaml")[1]:
        rule = make_rule(str(selected.parent / "fixed.yaml"), config, scenario=name)
        episodes = run_policy_episodes(rule, config, 2, 1_000_000)
        reward = sum(e["reward"] for e in episodes) / 2
        slo = sum(e["slo_violation_share"] for e in episodes) / 2
        expected[name] = pytest.approx((reward, slo), rel=1e-12)
    assert base_of(selected) == expected
    assert 0 < base_of(selected)["tight"][1] < 1  # the SLO share can be beaten and matched


def test_every_improvement_by_wins_then_reward_is_kept_and_the_last_is_the_best_model(selected):
    from agents.experiments.train import RunPaths, read_evaluations, score_by_step

    paths = RunPaths(selected)
    scores = score_by_step(read_evaluations(paths.evaluations), base_of(selected))
    assert list(scores) == [32, 64, 96, 128]
    improvements, best = [], None
    for step, score in scores.items():
        if best is None or score > best:
            best, improvements = score, [*improvements, step]
    assert paths.best_history_steps() == improvements
    # this run's evaluations differ in wins, and the highest mean reward is at another step than the most wins
    assert len({wins for wins, _ in scores.values()}) > 1
    assert max(scores, key=lambda step: scores[step][1]) != improvements[-1]
    manifest = json.loads(paths.best_manifest.read_text())
    assert manifest["timesteps"] == improvements[-1]
    assert manifest["wins_vs_base"] == scores[improvements[-1]][0]


def copy_with_every_snapshot(selected: Path, tmp_path: Path):
    """A copy of the run with a saved best model at every evaluation (copies of the first, renamed), so that no row
    is dropped as an unsaved improvement whatever the rows are made to say."""
    import shutil

    from agents.experiments.train import RunPaths, copy_snapshot

    run = tmp_path / "run"
    shutil.copytree(selected, run)
    paths = RunPaths(run)
    first = paths.best_history_steps()[0]
    for step in (32, 64, 96, 128):
        if step not in paths.best_history_steps():
            copy_snapshot(paths.best_at(first), paths.best_at(step), timesteps=step)
    return run, paths


def test_a_resume_puts_back_the_best_model_by_wins_not_by_mean_reward(selected, tmp_path):
    from agents.experiments.train import (
        cut_evaluations,
        read_evaluations,
        write_evaluations,
    )

    run, paths = copy_with_every_snapshot(selected, tmp_path)
    base = base_of(run)
    reward, slo = base["tight"]
    made = {32: (reward - 5, slo), 64: (reward + 1, slo), 96: (reward + 10, slo + 0.1), 128: (reward - 5, slo)}
    evaluations = read_evaluations(paths.evaluations)
    for row in evaluations:  # "tiny" below the base everywhere, at the same reward
        tiny = (base["tiny"][0] - 1, 0.0)
        row["reward"], row["slo_violation_share"] = made[row["timesteps"]] if row["scenario"] == "tight" else tiny
    write_evaluations(paths.evaluations, evaluations)
    # step 64 beats the base at its SLO share; step 96 has the higher mean reward at a higher share
    assert cut_evaluations(paths, 128, base) == 0
    assert json.loads(paths.best_manifest.read_text())["timesteps"] == 64
    assert cut_evaluations(paths, 128) == 0
    assert json.loads(paths.best_manifest.read_text())["timesteps"] == 96


def test_a_resumed_run_keeps_selecting_by_wins(selected, tmp_path):
    """resume(): the cut puts back the evaluation with the most wins (64), not the one with the highest mean reward
    (96, at a higher SLO share), and the resumed evaluations compare with that score: no later evaluation can beat
    64's two wins at +100, so it stays the best model."""
    from agents.experiments.train import (
        PeriodicEval,
        read_evaluations,
        read_run_config,
        read_scenarios,
        resume,
        score_by_step,
        write_evaluations,
    )

    run, paths = copy_with_every_snapshot(selected, tmp_path)
    base = base_of(run)
    made = {32: (-5.0, 0.0), 64: (100.0, 0.0), 96: (1000.0, 0.1), 128: (-5.0, 0.0)}  # over the base's
    evaluations = read_evaluations(paths.evaluations)
    for row in evaluations:
        reward, slo = base[row["scenario"]]
        row["reward"], row["slo_violation_share"] = reward + made[row["timesteps"]][0], slo + made[row["timesteps"]][1]
    write_evaluations(paths.evaluations, evaluations)
    # a resumed evaluation starts from the best score of the rows kept: 64's two wins, not 96's mean reward
    evals = read_scenarios(run / "scenarios.yaml")[1]
    assert PeriodicEval(evals, read_run_config(run / "config.yaml"), paths).best[0] == 2
    resume(run, total_timesteps=192, progress_bar=False, log=lambda _: None)
    scores = score_by_step(read_evaluations(paths.evaluations), base)
    assert list(scores) == [32, 64, 96, 128, 160, 192]
    manifest = json.loads(paths.best_manifest.read_text())
    assert manifest["timesteps"] == 64
    assert max(scores, key=lambda step: scores[step]) == 64
