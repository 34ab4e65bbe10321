"""agents/experiments/pick_seed.py: choosing among a recipe's training seeds by the selection score, with the
benchmark's verdict of the choice, on hand-made arms whose outcomes can be read off the numbers."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from agents.experiments import pick_seed
from scaling_env.config import ConfigError

SEEDS = [1000, 1001, 1002, 1003, 1004]
NOISE = [0.0, 0.1, -0.1, 0.2, -0.2]  # per-seed wobble of a difference: mean 0, so a t-test has a spread


def make_arm(root: Path, name: str, score: float, diffs: dict[str, tuple[float, float]]) -> Path:
    """An ablation folder with one run whose best model scored ``score`` on the selection seeds; on scenario s its
    episodes earn the generalist's reward + diffs[s][0] (+ noise) at SLO share diffs[s][1] (the rule's: 0.01)."""
    arm = root / name
    run = arm / "runs" / f"gate_{name}"
    run.mkdir(parents=True)
    (run / "best_model.json").write_text(json.dumps({"timesteps": 10, "mean_reward": score, "files": {}}))
    tuning = {f"{s}|{p}": v for s in diffs for p, v in (("kpa@generalist", -10.0), ("hpa@generalist", -20.0))}
    (arm / "tuning_rewards.json").write_text(json.dumps(tuning))
    with (arm / "episodes.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["policy", "scenario", "seed", "reward", "slo_violation_share"])
        for s, (diff, slo) in diffs.items():
            for i, seed in enumerate(SEEDS):
                w.writerow(["kpa@generalist", s, seed, float(i), 0.01])
                w.writerow(["hpa@generalist", s, seed, float(i) - 50.0, 0.0])
                w.writerow([f"ppo:{arm}/runs/gate_{name}", s, seed, float(i) + diff + (NOISE[i] if diff else 0), slo])
    return arm


@pytest.fixture
def arms(tmp_path: Path) -> list[Path]:
    return [
        make_arm(tmp_path, "one", -10.0, {"a": (5.0, 0.005), "b": (0.0, 0.01)}),  # W (lower share), T: 1/1/0
        make_arm(tmp_path, "two", -5.0, {"a": (5.0, 0.02), "b": (-3.0, 0.01)}),  # more reward at a higher share: T; L
        make_arm(tmp_path, "three", -20.0, {"a": (5.0, 0.01), "b": (4.0, 0.0)}),  # W (equal share counts), W: 2/0/0
    ]


def test_each_arm_is_judged_against_the_best_generalist_on_the_benchmark(arms):
    got = {a.name: pick_seed.wtl(pick_seed.verdict_vs_generalist(a, pick_seed.arm_run(a), ["a", "b"])) for a in arms}
    assert got == {"one": "1/1/0", "two": "0/1/1", "three": "2/0/0"}
    v = pick_seed.verdict_vs_generalist(arms[1], pick_seed.arm_run(arms[1]), ["a", "b"])
    assert v["generalist"] == "kpa@generalist"  # the better tuning mean of the two one-setting rules
    assert v["scenarios"]["b"]["diff"] == pytest.approx(-3.0)


def test_best_of_k_picks_by_selection_score_never_by_the_benchmark(arms):
    """Sets of 2 of the 3 arms: {one, two} -> two (-5 > -10), {one, three} -> one, {two, three} -> two; the best
    benchmark arm (three) has the worst selection score and is never chosen."""
    text = pick_seed.report(arms, 2, ["a", "b"])
    assert "over all 3 sets of 2 of these 3 runs: 0/1/1 in 2, 1/1/0 in 1" in text
    assert f"best of all 3): {arms[1]} (0/1/1)" in text
    rows = [line for line in text.splitlines() if line.startswith(f"| {arms[0].parent}")]
    assert [r.split(" | ")[1] for r in rows] == ["gate_two", "gate_one", "gate_three"]  # by selection score
    assert "**+5.0 (0.50%)**" in rows[1] and "*-3.0 (1.00%)*" in rows[0]
    assert pick_seed.best_of({"x": 1.0, "y": 1.0}, ("y", "x")) == "y"  # the first listed on a tie


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda a: (a / "runs" / "gate_one" / "best_model.json").unlink(), "best_model.json: missing"),
        (lambda a: (a / "runs" / "gate_one" / "best_model.json").write_text("{}"), "no mean_reward"),
        (lambda a: (a / "runs" / "extra").mkdir(), "expected one run"),
        (lambda a: (a / "tuning_rewards.json").unlink(), "tuning_rewards.json: missing"),
        (lambda a: (a / "tuning_rewards.json").write_text("{not json"), "tuning_rewards.json: not the rules'"),
        (lambda a: (a / "episodes.csv").unlink(), "episodes.csv: cannot read"),
        (lambda a: (a / "episodes.csv").write_text("policy,scenario\nx,a\n"), "episodes.csv, line 2"),
    ],
)
def test_a_damaged_arm_is_named(arms, damage, message):
    damage(arms[0])
    with pytest.raises(ConfigError, match=message):
        pick_seed.report(arms, 2, ["a", "b"])


def test_bad_k_and_an_unjudged_run_are_errors_from_the_command_line(arms, monkeypatch, capsys):
    with pytest.raises(ConfigError, match="--k 4"):
        pick_seed.report(arms, 4, ["a", "b"])
    (arms[2] / "runs" / "gate_three").rename(arms[2] / "runs" / "gate_renamed")
    monkeypatch.setattr("sys.argv", ["pick_seed", *map(str, arms), "--scenarios", "a,b"])
    with pytest.raises(SystemExit, match="no episodes of ppo:.*gate_renamed"):
        pick_seed.main()


def test_an_arm_spelled_another_way_is_found_and_a_repeated_arm_refused(arms, monkeypatch):
    """The episodes name the run by the ablation's --out as typed (absolute here); a relative spelling of the same
    folder finds it; the same arm twice is an error, not a silent set of one."""
    monkeypatch.chdir(arms[0].parent)
    relative = [Path(a.name) for a in arms]
    assert pick_seed.report(relative, 2, ["a", "b"]) == pick_seed.report(arms, 2, ["a", "b"]).replace(
        f"{arms[0].parent}/", ""
    )
    with pytest.raises(ConfigError, match="listed twice"):
        pick_seed.report([arms[0], relative[0]], 1, ["a", "b"])


def with_wins(arm: Path, wins: int | None) -> Path:
    """The arm's best model as a ``select_by: wins_vs_base`` run records it (``wins_vs_base`` beside the mean)."""
    path = pick_seed.arm_run(arm) / "best_model.json"
    values = json.loads(path.read_text())
    if wins is not None:
        values["wins_vs_base"] = wins
    path.write_text(json.dumps(values))
    return arm


def test_runs_selected_by_wins_are_chosen_by_wins_then_mean_reward(arms):
    """one: 2 wins at -10; two: 1 win at -5; three: 2 wins at -20. By wins: {one, two} -> one, {one, three} -> one
    (the mean reward breaks the tie), {two, three} -> three."""
    for arm, wins in zip(arms, [2, 1, 2]):
        with_wins(arm, wins)
    text = pick_seed.report(arms, 2, ["a", "b"])
    assert "the number of scenarios where the run's best model beat its base rule" in text
    assert "over all 3 sets of 2 of these 3 runs: 1/1/0 in 2, 2/0/0 in 1" in text
    rows = [line for line in text.splitlines() if line.startswith(f"| {arms[0].parent}")]
    assert [r.split(" | ")[1] for r in rows] == ["gate_one", "gate_three", "gate_two"]
    assert "| 2 wins, -10.00 |" in rows[0]


def test_arms_selected_by_different_scores_are_refused(arms):
    with_wins(arms[0], 2)
    with pytest.raises(ConfigError, match="different scores"):
        pick_seed.report(arms, 2, ["a", "b"])


@pytest.mark.parametrize("wins", [None, "3", 2.5, -1, True])
def test_a_damaged_wins_count_is_named(arms, wins):
    path = pick_seed.arm_run(arms[0]) / "best_model.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "wins_vs_base": wins}))
    with pytest.raises(ConfigError, match="wins_vs_base is"):
        pick_seed.report(arms, 2, ["a", "b"])
