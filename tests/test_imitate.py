"""agents/experiments/imitate.py: DAgger's seeds stay apart from the benchmark's, the tuner's and each other;
a blocked teacher action becomes the allowed one with its effect (hand-computed); a run is seeded (two runs give
the same rounds), its best model deploys as ``ppo:RUN`` and earns the reward its round recorded; the fit learns a
teacher it can see (a fixed fleet)."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from agents.experiments import imitate
from agents.experiments.imitate import ImitationConfig, choice_steps
from agents.learned.ppo import apply_env_overrides
from agents.registry import make_policy
from scaling_env.config import ConfigError
from scaling_env.rollout import rollout
from scaling_env.scenarios import load_scenario

ROOT = Path(__file__).resolve().parents[1]
OBS = {"observation": {"history": ["ema", "trend", "errors", "fleet", "control"], "reset": "steady_state"}}
SMALL = {
    "set": {"algo": "maskable_ppo", "seed": 0, "env_overrides": OBS},
    "rounds": 2,
    "episodes_per_round": 2,
    "first_seed": 300,
    "selection_seeds": (500, 2),
    "epochs": 2,
}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"first_seed": 998}, r"collection's seeds reach 1001: they must stay below the benchmark's 1000"),
        ({"first_seed": 10}, r"collection's seeds \(10\.\.13\) overlap the tuner's seeds 0\.\.19"),
        ({"selection_seeds": (0, 5)}, r"selection_seeds \(0\.\.4\) overlap the tuner's"),
        ({"selection_seeds": (302, 5)}, r"collection's seeds \(300\.\.303\) overlap selection_seeds \(302\.\.306\)"),
    ],
)
def test_seeds_stay_apart(change, message):
    with pytest.raises(ValueError, match=message):
        ImitationConfig.model_validate({**SMALL, **change})


def test_a_bad_file_names_itself_and_the_field(tmp_path):
    path = tmp_path / "imitate.yaml"
    path.write_text("rounds: 0\nepisodes: 3\n")
    with pytest.raises(ConfigError) as err:
        imitate.load_imitation_config(path)
    assert str(path) in str(err.value) and "rounds" in str(err.value) and "episodes" in str(err.value)
    path.write_text("seeds_per_job: 0\n")
    with pytest.raises(ConfigError, match="seeds_per_job"):
        imitate.load_imitation_config(path)


def test_blocked_teacher_actions_become_allowed_ones_with_their_effect():
    # steps (-8 -4 -2 -1 0 1 2 4 8), fleet 5 of 1..10: changes -4 -4 -2 -1 0 1 2 4 5 (bounds clip)
    config = apply_env_overrides(load_scenario("steady").config, {"scaling": {"min_instances": 1, "max_instances": 10}})
    sim = SimpleNamespace(controlled_counts=lambda: np.array([5, 5, 5]), step_index=lambda: 7)
    out_blocked = np.array([1, 1, 1, 1, 1, 0, 0, 0, 0], bool)  # the scale-out cooldown runs
    masks = np.stack([out_blocked, np.ones(9, bool), np.eye(9, dtype=bool)[4]])
    taught = np.array([8, 0, 4])
    where, labels = choice_steps(sim, config, masks, taught)
    # cluster 0: +8 is blocked (no change): hold (index 4); cluster 1: -8 and -4 both remove 4, -8 allowed: kept;
    # cluster 2: only hold is allowed: no choice
    assert where.tolist() == [True, True, False]
    assert labels.tolist() == [4, 0, 4]


def test_a_run_is_seeded_and_its_best_model_deploys(tmp_path):
    icfg = ImitationConfig.model_validate({**SMALL, "teacher": "predictive@tuned"})
    logs: list[str] = []
    best = imitate.imitate(icfg, "steady", tmp_path / "a", log=logs.append)
    imitate.imitate(icfg, "steady", tmp_path / "b", log=logs.append)
    rows = [list(csv.DictReader(open(tmp_path / r / "rounds.csv"))) for r in "ab"]
    keys = ("records", "collected_reward", "loss", "accuracy", "selection_reward")
    assert [[r[k] for k in keys] for r in rows[0]] == [[r[k] for k in keys] for r in rows[1]]
    assert [r["collected_by"] for r in rows[0]] == ["teacher", "student"]
    assert int(rows[0][1]["records"]) > int(rows[0][0]["records"]) > 0
    assert best == tmp_path / "a" / "best_model.zip" and best.is_file()
    records = np.load(tmp_path / "a" / "records.npz")
    assert (
        records["round"].tolist().count(0)
        == int(rows[0][0]["records"])
        == len(records["labels"]) - records["round"].sum()
    )
    picked = max(rows[0], key=lambda r: float(r["selection_reward"]))
    policy = make_policy(f"ppo:{tmp_path / 'a'}", load_scenario("steady").config, scenario="steady")
    got = rollout(policy.env_config, policy, [500, 501], parallel=False).metrics
    assert np.mean([m["reward"] for m in got]) == pytest.approx(float(picked["selection_reward"]), abs=1e-9)
    with pytest.raises(ConfigError, match="already exists and is not an empty folder"):
        imitate.imitate(icfg, "steady", tmp_path / "a", log=logs.append)


def test_the_student_learns_a_teacher_it_can_see(tmp_path):
    # the static policy holds its fleet: the student sees the fleet and should hold too (scale steps are choices)
    icfg = ImitationConfig.model_validate({**SMALL, "teacher": "static", "rounds": 1, "epochs": 300})
    imitate.imitate(icfg, "steady", tmp_path / "run", log=lambda _: None)
    row = next(csv.DictReader(open(tmp_path / "run" / "rounds.csv")))
    assert float(row["accuracy"]) > 0.99
    static = rollout(load_scenario("steady").config, make_policy("static", load_scenario("steady").config), [500, 501])
    assert float(row["selection_reward"]) == pytest.approx(np.mean([m["reward"] for m in static.metrics]), abs=1e-9)


def test_the_cli_reports_a_bad_config_without_a_traceback(tmp_path):
    path = tmp_path / "imitate.yaml"
    path.write_text("first_seed: 995\n")
    res = CliRunner().invoke(
        imitate.app, ["--scenario", "steady", "--out", str(tmp_path / "run"), "--config", str(path)]
    )
    assert res.exit_code == 2
    assert "below the benchmark's 1000" in res.output and "Traceback" not in res.output


def test_record_weights_by_hand():
    # shares: action 4 three quarters, action 0 one quarter -> 1/sqrt(0.75) = 1.1547, 1/sqrt(0.25) = 2; mean 1.3660
    w = imitate.record_weights(np.array([4, 4, 4, 0]), 9, "inverse_sqrt")
    assert w.tolist() == pytest.approx([1.1547 / 1.3660] * 3 + [2 / 1.3660], abs=1e-4)
    assert imitate.record_weights(np.array([4, 0]), 9, "none").tolist() == [1.0, 1.0]


def test_policy_episodes_writes_the_rows_once(tmp_path, monkeypatch):
    """perf/policy_episodes.py: one row per seed with the episode's metrics; the same label and scenario again is
    refused (nothing appended)."""
    import importlib
    import sys
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1]))
    script = importlib.import_module("perf.policy_episodes")
    out = tmp_path / "episodes.csv"
    argv = ["policy_episodes.py", "--label", "r", "--seeds", "500..501", "--out", str(out), "steady=kpa@tuned"]
    monkeypatch.setattr(sys, "argv", argv)
    script.main()
    rows = list(csv.DictReader(open(out)))
    config = load_scenario("steady").config
    want = rollout(config, make_policy("kpa@tuned", config, scenario="steady"), [500, 501]).metrics
    assert [(r["policy"], r["scenario"], int(r["seed"])) for r in rows] == [("r", "steady", 500), ("r", "steady", 501)]
    assert [float(r["reward"]) for r in rows] == [m["reward"] for m in want]
    with pytest.raises(SystemExit, match=r"already holds rows of 'r' on \['steady'\]"):
        script.main()
    assert len(list(csv.DictReader(open(out)))) == 2


def test_the_planner_labels_while_a_student_acts(tmp_path):
    """The teacher is the planner (a small one): round 1 acts with round 0's student and the planner labels the
    states it reaches; two runs give the same records."""
    teacher = tmp_path / "small_planner.yaml"
    teacher.write_text(
        "policy: planner\nparams: {horizon_steps: 4, futures: 1, max_plans: 2, calibration_seeds: [100, 1], "
        "rule_plans: [kpa@tuned]}\n"
    )
    icfg = ImitationConfig.model_validate({**SMALL, "teacher": str(teacher), "episodes_per_round": 1})
    for run in ("a", "b"):
        imitate.imitate(icfg, "steady", tmp_path / run, log=lambda _: None)
    a, b = (np.load(tmp_path / run / "records.npz") for run in ("a", "b"))
    assert sorted(set(a["round"].tolist())) == [0, 1]
    for key in ("obs", "masks", "labels", "round"):
        assert np.array_equal(a[key], b[key]), key
    assert a["masks"][np.arange(len(a["labels"])), a["labels"]].all()  # every label is an allowed action


def test_a_bad_teacher_is_named_before_anything_is_written(tmp_path):
    icfg = ImitationConfig.model_validate({**SMALL, "teacher": "no_such_policy"})
    with pytest.raises(Exception, match="no_such_policy"):
        imitate.imitate(icfg, "steady", tmp_path / "run", log=lambda _: None)
    assert not (tmp_path / "run").exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="not an empty folder"):
        imitate.imitate(ImitationConfig.model_validate(SMALL | {"teacher": "static"}), "steady", tmp_path / "file")


TWO = {
    **SMALL,
    "set": {**SMALL["set"], "torch_threads": 2},  # the fits use 2 threads whether or not collection ran here
    "scenarios": ["steady", "diurnal"],
    "teacher": "kpa@tuned",
    "teachers": {"diurnal": "static"},
    "references": {"steady": "predictive@tuned", "diurnal": "kpa@tuned"},
    "episodes_per_round": 1,
}


def test_selection_score_by_hand():
    # one scenario: its mean reward; two: mean of (-30 - -40)/40 = +0.25 and (-60 - -50)/50 = -0.2 -> +0.025
    assert imitate.selection_score({"steady": -33.5}, {}) == -33.5
    got = imitate.selection_score({"a": -30.0, "b": -60.0}, {"a": -40.0, "b": -50.0})
    assert got == pytest.approx(0.025, abs=1e-12)


def test_a_generalist_student_is_the_same_for_any_number_of_workers(tmp_path):
    """Two scenarios, each with its own teacher, collected in this process or two workers: the same records and
    rounds; the best round is the one with the highest selection score, and it deploys on both scenarios."""
    icfg = ImitationConfig.model_validate(TWO)
    for run, workers in (("one", 1), ("two", 2)):
        imitate.imitate(icfg, icfg.scenarios, tmp_path / run, log=lambda _: None, workers=workers)
    a, b = (np.load(tmp_path / run / "records.npz") for run in ("one", "two"))
    for key in ("obs", "masks", "labels", "round", "scenario"):
        assert np.array_equal(a[key], b[key]), key
    assert a["scenarios"].tolist() == ["steady", "diurnal"] and set(a["scenario"].tolist()) == {0, 1}
    rows = [list(csv.DictReader(open(tmp_path / run / "rounds_by_scenario.csv"))) for run in ("one", "two")]
    assert rows[0] == rows[1]
    assert [(r["round"], r["scenario"], r["teacher"]) for r in rows[0]] == [
        ("0", "steady", "kpa@tuned"),
        ("0", "diurnal", "static"),
        ("1", "steady", "kpa@tuned"),
        ("1", "diurnal", "static"),
    ]
    # round 0 acts with the teachers: the static one holds its starting fleet (every diurnal label is the hold,
    # index 4 of the nine steps), kpa on steady does not
    first = a["round"] == 0
    assert set(a["labels"][first & (a["scenario"] == 1)].tolist()) == {4}
    assert len(set(a["labels"][first & (a["scenario"] == 0)].tolist())) > 1
    rounds = list(csv.DictReader(open(tmp_path / "one" / "rounds.csv")))
    for k, row in enumerate(rounds):
        mine = {r["scenario"]: r for r in rows[0] if r["round"] == str(k)}
        rewards = {s: float(r["selection_reward"]) for s, r in mine.items()}
        refs = {s: float(r["reference_reward"]) for s, r in mine.items()}
        assert float(row["selection_score"]) == pytest.approx(imitate.selection_score(rewards, refs), abs=1e-12)
    best = max(range(len(rounds)), key=lambda k: float(rounds[k]["selection_score"]))
    for name in ("steady", "diurnal"):
        policy = make_policy(f"ppo:{tmp_path / 'one'}", load_scenario(name).config, scenario=name)
        got = rollout(policy.env_config, policy, [500, 501], parallel=False).metrics
        want = next(r for r in rows[0] if r["round"] == str(best) and r["scenario"] == name)
        assert np.mean([m["reward"] for m in got]) == pytest.approx(float(want["selection_reward"]), abs=1e-9)


@pytest.mark.parametrize(
    ("change", "scenarios", "message"),
    [
        ({"references": {"steady": "predictive@tuned"}}, ["steady", "diurnal"], r"missing \['diurnal'\]"),
        (
            {"scenarios": [], "teachers": {"flash_crowd": "static"}},
            ["steady", "diurnal"],
            r"teachers names \[.flash_crowd",
        ),
        ({}, ["steady", "steady"], "named once each"),
    ],
)
def test_a_generalist_run_names_what_is_missing_before_writing(tmp_path, change, scenarios, message):
    icfg = ImitationConfig.model_validate({**TWO, **change})
    with pytest.raises(ConfigError, match=message):
        imitate.imitate(icfg, scenarios, tmp_path / "run", log=lambda _: None)
    assert not (tmp_path / "run").exists()


def test_teachers_and_references_must_name_the_configs_scenarios(tmp_path):
    path = tmp_path / "generalist.yaml"
    path.write_text(yaml.safe_dump({**TWO, "references": {"flash_crowd": "kpa@tuned"}}))
    with pytest.raises(
        ConfigError, match=r"(?s)generalist.yaml.*references names \['flash_crowd'\], which are not among"
    ):
        imitate.load_imitation_config(path)


def test_the_round_kept_is_the_best_by_score_not_by_reward(tmp_path, monkeypatch):
    # a score that prefers the lower mean reward: the kept round must follow it
    monkeypatch.setattr(imitate, "selection_score", lambda rewards, refs: -float(np.mean(list(rewards.values()))))
    icfg = ImitationConfig.model_validate(TWO)
    imitate.imitate(icfg, icfg.scenarios, tmp_path / "run", log=lambda _: None)
    rounds = list(csv.DictReader(open(tmp_path / "run" / "rounds.csv")))
    rewards = [float(r["selection_reward"]) for r in rounds]
    assert rewards[0] != rewards[1]
    kept = json.loads((tmp_path / "run" / "best_model.json").read_text())["round"]
    assert kept == int(np.argmin(rewards))


def test_the_cli_takes_a_subset_of_a_generalist_config(tmp_path):
    """--scenario picks scenarios of the config (their teachers and references kept, the others dropped and the
    run's own recorded); a bad list or --workers 0 exits 2 with a message."""
    path = tmp_path / "generalist.yaml"
    path.write_text(yaml.safe_dump({**TWO, "rounds": 1}))
    args = ["--config", str(path), "--scenario", "diurnal", "--out", str(tmp_path / "a")]
    run = CliRunner().invoke(imitate.app, args)
    assert run.exit_code == 0, run.output
    recorded = yaml.safe_load((tmp_path / "a" / "imitation.yaml").read_text())
    assert recorded["scenarios"] == ["diurnal"] and recorded["teachers"] == {"diurnal": "static"}
    assert recorded["references"] == {"diurnal": "kpa@tuned"}
    for args, message in (
        (["--scenario", "steady,"], "--scenario: name one or more scenarios"),
        (["--workers", "0"], "--workers must be at least 1"),
        (["--scenario", "steady,flash_crowd"], r"missing \['flash_crowd'\]"),
    ):
        res = CliRunner().invoke(imitate.app, ["--config", str(path), "--out", str(tmp_path / "b"), *args])
        assert res.exit_code == 2 and re.search(message, " ".join(res.output.split())), res.output
        assert "Traceback" not in res.output and not (tmp_path / "b").exists()


def test_scenarios_with_other_actions_are_refused(tmp_path):
    other = tmp_path / "steady_fine.yaml"
    text = (ROOT / "configs" / "scenarios" / "steady.yaml").read_text()
    other.write_text(text.replace("scale_steps: [-8, -4, -2, -1, 0, 1, 2, 4, 8]", "scale_steps: [-1, 0, 1]"))
    icfg = ImitationConfig.model_validate({**SMALL, "teacher": "static"})
    icfg = icfg.model_copy(update={"references": {"steady": "kpa", str(other): "kpa"}})
    with pytest.raises(ConfigError, match=r"scale_steps \[-1, 0, 1\] differ from steady's"):
        imitate.prepare(icfg, ["steady", str(other)])


def test_seeds_per_job_splits_a_round_without_changing_its_episodes():
    """A scenario's round split into jobs of ``seeds_per_job`` seeds (the last one shorter): every episode and
    every record is the one the whole round gives (a cluster's episode does not depend on its batch); only the
    records' order follows the jobs."""
    icfg = ImitationConfig.model_validate({**SMALL, "episodes_per_round": 3, "seeds_per_job": 2})
    assert icfg.collection_jobs(0) == [(300, 301), (302,)] and icfg.collection_jobs(1) == [(303, 304), (305,)]
    assert ImitationConfig.model_validate(SMALL).collection_jobs(1) == [(302, 303)]
    _, _, envs = imitate.prepare(icfg, ["steady"])
    (name, config), teacher = envs[0], "kpa@tuned"
    whole = imitate.collect(imitate.CollectJob(name, config, teacher, None, tuple(icfg.collection_seeds(0))))
    jobs = [imitate.CollectJob(name, config, teacher, None, seeds) for seeds in icfg.collection_jobs(0)]
    split = imitate.merge_jobs([imitate.collect(job) for job in jobs])
    assert split["metrics"] == whole["metrics"]

    def rows(r):
        return sorted(zip(map(bytes, r["obs"]), map(bytes, r["masks"]), r["labels"].tolist()))

    assert len(split["labels"]) == len(whole["labels"]) > 0 and rows(split) == rows(whole)
    assert not np.array_equal(split["labels"], whole["labels"]) or not np.array_equal(split["obs"], whole["obs"])


def test_the_quick_planner_differs_from_the_planner_only_in_its_futures():
    """configs/policies/planner_quick.yaml (the generalist's cheaper teacher) is planner.yaml with 4 futures."""
    config = load_scenario("steady").config
    quick, full = (make_policy(name, config, scenario="steady").params for name in ("planner_quick", "planner"))
    assert quick.futures == 4 and full.futures == 8
    assert quick.model_copy(update={"futures": full.futures}) == full
