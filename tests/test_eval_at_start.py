"""``eval_at_start``: the untrained model is evaluated before the first update (a row at step 0), competes for the
best model, and (a residual gate with zero_bias) plays its rule there; the training itself is unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from agents.experiments.cli import app
from agents.experiments.train_config import TrainConfig

runner = CliRunner()
TINY = {"episode_steps": 16, "scaling": {"max_instances": 16, "scale_steps": [-2, -1, 0, 1, 2]}}
SMOKE = {
    "n_envs": 4,
    "total_timesteps": 160,
    "eval_freq": 32,
    "checkpoint_freq": 64,
    "n_eval_episodes": 2,
    "eval_workers": 1,
    # a fresh gate over a fleet fixed at one instance (expert 0, which misses the SLO on every step) and kpa,
    # corrections of up to one step; zero_bias 1 (well above the untrained head's logits, at most about 0.08)
    # makes the untrained gate follow expert 0 unchanged, and the gate leaves it by step 128 of this run
    "residual": {"max_offset": 1, "zero_bias": 1.0, "experts": ["kpa"]},
    # two minibatches per epoch: the training draws their order, so an evaluation that drew from the same
    # stream would change the weights
    "ppo": {
        "n_steps": 8,
        "batch_size": 16,
        "n_epochs": 4,
        "learning_rate": 0.01,
        "policy_kwargs": {"net_arch": [8]},
    },
}


def train(root: Path, name: str, **extra) -> Path:
    tiny = root / "tiny.yaml"
    tiny.write_text(yaml.safe_dump({"description": "test scenario", "env": TINY}))
    fixed = root / "fixed.yaml"
    fixed.write_text(yaml.safe_dump({"policy": "static", "params": {"instances": 1}}))
    residual = {**SMOKE["residual"], "policy": str(fixed)}
    config = root / f"{name}.yaml"
    body = {**SMOKE, **extra, "residual": residual, "scenarios": [str(tiny)], "eval_scenarios": [str(tiny)]}
    config.write_text(yaml.safe_dump(body))
    run = root / name
    result = runner.invoke(
        app, ["train", "--config", str(config), "--run-dir", str(run), "--no-progress", "--seed", "5"]
    )
    assert result.exit_code == 0, result.output
    return run


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("eval_at_start")
    return train(root, "plain"), train(root, "early", eval_at_start=True)


def evaluations(run: Path) -> list[dict]:
    from agents.experiments.train import read_evaluations

    return read_evaluations(run / "evaluations.csv")


def test_the_untrained_model_is_evaluated_first_and_the_training_is_unchanged(runs):
    plain, early = runs
    rows = evaluations(early)
    assert [r["timesteps"] for r in rows] == [0, 32, 64, 96, 128, 160]
    assert rows[1:] == evaluations(plain)  # the same later evaluations, to the last digit
    assert rows[-1]["reward"] > rows[0]["reward"]  # the gate left its rule: the training did something
    from stable_baselines3 import PPO

    wa = PPO.load(plain / "final_model.zip", device="cpu").policy.state_dict()
    wb = PPO.load(early / "final_model.zip", device="cpu").policy.state_dict()
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    # the step-0 model is among the best-model candidates: the first improvement is at step 0
    from agents.experiments.train import RunPaths

    assert RunPaths(early).best_history_steps()[0] == 0
    assert 0 not in RunPaths(plain).best_history_steps()
    assert RunPaths(early).best_history_steps()[1:] == RunPaths(plain).best_history_steps()[1:]


def test_the_untrained_gate_plays_its_rule(runs):
    """The step-0 row is the rule alone on the evaluation episodes, and so is the saved step-0 model."""
    from agents.experiments.evaluate import run_policy_episodes
    from agents.experiments.tables import summarise_episodes
    from agents.experiments.train import RunPaths, make_rule, read_scenarios
    from agents.learned.ppo import load_ppo_policy

    _, early = runs
    [(name, config)] = read_scenarios(early / "scenarios.yaml")[1]
    fixed = make_rule(str(early.parent / "fixed.yaml"), config, scenario=name)
    rule = summarise_episodes(run_policy_episodes(fixed, config, 2, 1_000_000))
    first = evaluations(early)[0]
    assert first["reward"] == pytest.approx(rule["reward"], rel=1e-12)
    assert first["slo_violation_share"] == pytest.approx(rule["slo_violation_share"], abs=1e-15)
    model = RunPaths(early).best_at(0)[0]
    gate = load_ppo_policy(model, config, scenario=name)
    played = summarise_episodes(run_policy_episodes(gate, config, 2, 1_000_000))
    assert played["reward"] == pytest.approx(rule["reward"], rel=1e-12)
    assert played["mean_instances"] == rule["mean_instances"] < 1.01
    last = load_ppo_policy(RunPaths(early).best_at(128)[0], config, scenario=name)  # a model that left the rule
    assert summarise_episodes(run_policy_episodes(last, config, 2, 1_000_000))["mean_instances"] > 1.5


def test_the_best_model_is_the_best_of_every_evaluation_step_0_included(runs):
    from agents.experiments.train import RunPaths, score_by_step

    _, early = runs
    scores = score_by_step(evaluations(early))
    best = max(scores, key=lambda step: scores[step])  # the first of equals, as the training keeps it
    assert best == 128
    assert json.loads(RunPaths(early).best_manifest.read_text())["timesteps"] == best


def test_a_resume_puts_back_the_untrained_model_where_it_was_the_best(runs, tmp_path):
    """A cut (a resume from the checkpoint at 64) keeps the rows up to 64 and puts back their best model: the
    step-0 one when the rows say so."""
    import shutil

    from agents.experiments.train import RunPaths, cut_evaluations, write_evaluations

    run = tmp_path / "early"
    shutil.copytree(runs[1], run)
    paths = RunPaths(run)
    rows = evaluations(run)
    for row in rows:
        row["reward"] = -1.0 if row["timesteps"] == 0 else -2.0
    write_evaluations(paths.evaluations, rows)
    assert cut_evaluations(paths, 64) == 3  # 96, 128, 160
    assert json.loads(paths.best_manifest.read_text())["timesteps"] == 0
    assert paths.best_history_steps() == [0]


def test_eval_at_start_needs_an_evaluation():
    with pytest.raises(ValueError, match="eval_at_start with eval_freq 0"):
        TrainConfig.model_validate({"eval_at_start": True, "eval_freq": 0})


def test_a_resumed_run_does_not_evaluate_step_0_again(runs, tmp_path):
    import shutil

    from agents.experiments.train import resume

    run = tmp_path / "early"
    shutil.copytree(runs[1], run)
    resume(run, total_timesteps=192, progress_bar=False, log=lambda _: None)
    assert [r["timesteps"] for r in evaluations(run)] == [0, 32, 64, 96, 128, 160, 192]
