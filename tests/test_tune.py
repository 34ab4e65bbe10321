"""The tuner (agents/experiments/tune.py) and policy search spaces (agents/search_space.py)."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import optuna
import pytest
import typer
import yaml
from optuna.trial import TrialState
from typer.testing import CliRunner

from agents.base import PolicyConfigError
from agents.experiments import tune
from agents.registry import load_policy_file, make_policy
from scaling_env.scenarios import load_scenario

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()
app = typer.Typer()
app.command()(tune.tune_command)


def _complete_read_only(db: Path, name: str) -> int:
    """Complete trials of study ``name``, read from the SQLite file without optuna: optuna's storage creates its
    tables when it opens a file, which raced the tuner's own creation of them ("table ... already exists")."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=60)
    try:
        row = con.execute(
            "SELECT COUNT(*) FROM trials JOIN studies ON trials.study_id = studies.study_id "
            "WHERE studies.study_name = ? AND trials.state = 'COMPLETE'",
            (name,),
        ).fetchone()
    finally:
        con.close()
    return int(row[0])


def _trials(storage: str, name: str, state: TrialState) -> list:
    study = optuna.load_study(study_name=name, storage=storage)
    return study.get_trials(deepcopy=False, states=(state,))


def test_tune_kill_resume_and_load(tmp_path: Path) -> None:
    """Tune hpa on steady in a subprocess, kill it after a few trials, resume: the trial count continues, the
    default is run once, the killed run's trial is marked failed, and the result YAML loads with make_policy."""
    out = tmp_path / "tune"
    storage = f"sqlite:///{(out / 'studies.db').resolve()}"
    name = "tune:hpa:steady"
    cmd = [sys.executable, "-m", "agents.experiments.tune", "--policy", "hpa", "--scenarios", "steady"]
    cmd += ["--seeds", "0-3", "--trials", "100000", "--out", str(out), "--no-progress"]
    log = tmp_path / "tune.log"  # the command's messages (its errors go to stdout too), for a failure's message
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log.open("w"), stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
            if (out / "studies.db").exists():
                try:
                    done = _complete_read_only(out / "studies.db", name)
                except sqlite3.Error:  # tables or study not created yet, or a write in progress
                    continue
                if done >= 3:
                    break
        assert proc.poll() is None, log.read_text()
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    killed_at = len(_trials(storage, name, TrialState.COMPLETE))
    assert killed_at >= 3
    assert not (out / "steady" / "hpa.yaml").exists()  # killed before writing
    # a trial the killed process had started (made explicit: the kill may have fallen between two trials)
    abandoned = optuna.load_study(study_name=name, storage=storage).ask()
    abandoned.set_user_attr("host", socket.gethostname())
    abandoned.set_user_attr("pid", proc.pid)

    target = killed_at + 4
    res = runner.invoke(
        app,
        ["--policy", "hpa", "--scenarios", "steady", "--seeds", "0-3", "--trials", str(target), "--out", str(out)],
    )
    assert res.exit_code == 0, res.output
    study = optuna.load_study(study_name=name, storage=storage)
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    assert len(complete) == target  # continued: the first run's trials count
    assert not study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))  # the killed trial is failed, not left
    assert study.trials[abandoned.number].state == TrialState.FAIL
    assert "trial(s) left running by a killed run marked failed" in res.output
    assert sum(1 for t in complete if t.user_attrs.get("default")) == 1  # the default ran once, as trial 0
    assert complete[0].number == 0 and complete[0].user_attrs.get("default")

    path = out / "steady" / "hpa.yaml"
    doc = yaml.safe_load(path.read_text())
    prov = doc["provenance"]
    assert prov["trials"] == target and prov["seeds"] == "0-3" and prov["scenarios"] == ["steady"]
    assert prov["value"] == pytest.approx(max(t.value for t in complete), abs=1e-3)
    assert prov["value"] >= prov["default_value"]
    assert prov["code_version"] and prov["date"]
    config = load_scenario("steady").config
    policy = make_policy(str(path), config)
    assert policy.params.model_dump() == make_policy("hpa", config, overrides=doc["params"]).params.model_dump()
    # the stored value is the policy's real mean reward on those seeds
    reward, _, _ = tune.evaluate("hpa", doc["params"], [load_scenario("steady")], [0, 1, 2, 3])
    assert reward == pytest.approx(prov["value"], abs=1e-3)


def test_benchmark_seeds_are_refused(tmp_path: Path) -> None:
    res = runner.invoke(
        app, ["--policy", "hpa", "--scenarios", "steady", "--seeds", "990-1005", "--out", str(tmp_path)]
    )
    assert res.exit_code == 2
    assert "overlap the seeds kept for the benchmark" in res.output and "1000" in res.output
    assert not (tmp_path / "studies.db").exists()
    with pytest.raises(tune.TuneError, match="1000"):
        tune.check_tuning_seeds([5, 1000])
    tune.check_tuning_seeds(list(range(20)))


def test_parse_seeds() -> None:
    assert tune.parse_seeds("0-3,7, 9-10") == [0, 1, 2, 3, 7, 9, 10]
    assert tune.format_seeds([0, 1, 2, 3, 7, 9, 10]) == "0-3,7,9-10"
    for bad in ("5-2", "a", "-3", ""):
        with pytest.raises(tune.TuneError, match="--seeds"):
            tune.parse_seeds(bad)


def test_policy_without_search_space_is_refused(tmp_path: Path) -> None:
    res = runner.invoke(app, ["--policy", "static", "--scenarios", "steady", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "declares no search_space" in res.output


def test_every_rule_policy_declares_a_valid_search_space() -> None:
    assert tune.tunable_policies() == ["threshold", "step_scaling", "target_tracking", "hpa", "kpa", "predictive"]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ("target: {low: 0.9, high: 0.5}", "search_space.target: low (0.9) must be below high (0.5)"),
        ("target: {low: 0.5, high: 1.5}", "search_space.target = 1.5"),  # HPA cpu target must be <= 1
        ("nonsense: {low: 0, high: 1}", "nonsense: unknown key"),
        ("target: {low: 0.1, high: 0.9, log: true, step: 0.1}", "log and step cannot be combined"),
        ("target: {low: 0.1, high: 0.9, scale: 2}", "scale: unknown key"),
        ("target: [0.1, 0.9]", "search_space.target: expected a mapping"),
        ("scale_up_pods: {low: 1.5, high: 4, int: true}", "is not an integer"),
        ("scale_out.threshold: {low: 0.1, high: 0.9}", "params has no 'scale_out'"),
    ],
)
def test_bad_search_space_names_file_and_field(tmp_path: Path, space: str, message: str) -> None:
    path = _write(tmp_path, f"policy: hpa\nparams: {{target: 0.8}}\nsearch_space:\n  {space}\n")
    with pytest.raises(PolicyConfigError) as err:
        load_policy_file(path)
    assert str(path) in str(err.value) and message in str(err.value)


def test_nested_search_space_and_provenance_are_accepted(tmp_path: Path) -> None:
    src = (ROOT / "configs/policies/step_scaling.yaml").read_text()
    path = _write(tmp_path, src + "provenance: {tool: someone, value: -3.0}\n")
    pf = load_policy_file(path)
    assert "scale_out.steps.1.adjustment" in pf.search_space and pf.provenance["value"] == -3.0
    make_policy(str(path), load_scenario("steady").config)  # provenance and search_space do not disturb make_policy
    with pytest.raises(PolicyConfigError, match="provenance: expected a mapping"):
        load_policy_file(_write(tmp_path, "policy: hpa\nprovenance: 3\n"))


def test_a_tuned_parameter_the_params_omit_starts_at_its_default(tmp_path: Path) -> None:
    # the first (default) trial plays the file as shipped: a parameter it leaves out is the policy's default
    pf = load_policy_file(
        _write(
            tmp_path,
            "policy: hpa\nparams: {target: 0.6}\nsearch_space:\n"
            "  target: {low: 0.3, high: 0.9}\n  min_capacity: {low: 0, high: 30, int: true}\n",
        )
    )
    assert tune.default_value(pf, "target") == 0.6 and tune.default_value(pf, "min_capacity") == 0
    pf = load_policy_file(_write(tmp_path, "policy: hpa\nsearch_space:\n  tolerance: {low: 0.0, high: 0.5}\n"))
    assert tune.default_value(pf, "tolerance") == 0.1  # the HPA's default tolerance


def test_result_file_made_by_a_user_is_not_replaced(tmp_path: Path) -> None:
    user_file = tmp_path / "steady" / "hpa.yaml"
    user_file.parent.mkdir()
    user_file.write_text("policy: hpa\nparams: {target: 0.5}\n")
    res = runner.invoke(
        app, ["--policy", "hpa", "--scenarios", "steady", "--seeds", "0-1", "--trials", "2", "--out", str(tmp_path)]
    )
    assert res.exit_code == 2 and "not written by scaling-env tune" in res.output
    assert user_file.read_text() == "policy: hpa\nparams: {target: 0.5}\n"


def _tune(out: Path, *extra: str) -> object:
    return runner.invoke(app, ["--policy", "predictive", "--seeds", "0-1", "--out", str(out), "--no-progress", *extra])


def test_generalist_study_is_one_setting_over_the_scenarios(tmp_path: Path) -> None:
    res = _tune(tmp_path, "--scenarios", "steady,diurnal", "--generalist", "--trials", "4")
    assert res.exit_code == 0, res.output
    assert not (tmp_path / "steady").exists()  # no per-scenario study in generalist mode
    prov = yaml.safe_load((tmp_path / "generalist" / "predictive.yaml").read_text())["provenance"]
    assert prov["mode"] == "generalist" and prov["scenarios"] == ["steady", "diurnal"] and prov["trials"] == 4
    assert set(prov["per_scenario"]) == {"steady", "diurnal"}
    assert prov["value"] == pytest.approx(np.mean(list(prov["per_scenario"].values())), abs=1e-3)
    # the same study name with other scenarios is refused, not mixed
    res = _tune(tmp_path, "--scenarios", "steady,flash_crowd", "--generalist", "--trials", "5")
    assert res.exit_code == 2 and "was made with scenarios" in res.output


def test_same_command_same_result(tmp_path: Path) -> None:
    docs = []
    for run in ("a", "b"):
        assert _tune(tmp_path / run, "--scenarios", "steady", "--trials", "12").exit_code == 0
        docs.append(yaml.safe_load((tmp_path / run / "steady" / "predictive.yaml").read_text()))
    assert docs[0]["params"] == docs[1]["params"]
    assert docs[0]["provenance"]["value"] == docs[1]["provenance"]["value"]


def test_slo_limit_is_a_constraint(tmp_path: Path) -> None:
    res = _tune(tmp_path / "loose", "--scenarios", "flash_crowd", "--trials", "6", "--slo-limit", "0.5")
    assert res.exit_code == 0, res.output
    prov = yaml.safe_load((tmp_path / "loose" / "flash_crowd" / "predictive.yaml").read_text())["provenance"]
    assert "subject to mean SLO-violation share <= 0.5" in prov["objective"] and prov["slo_share"] <= 0.5
    # flash_crowd's 10x burst violates the SLO in some steps whatever the setting: no trial meets 0, none written
    res = _tune(tmp_path / "strict", "--scenarios", "flash_crowd", "--trials", "3", "--slo-limit", "0")
    assert res.exit_code == 1 and "no trial met --slo-limit 0; nothing written" in res.output
    assert not (tmp_path / "strict" / "flash_crowd" / "predictive.yaml").exists()


def test_parallel_trials_do_not_depend_on_the_number_of_workers(tmp_path: Path) -> None:
    """--batch 2: the same trials (params, values, order) on 1 worker and on 2 worker processes."""
    from agents.experiments.execution import Executor

    target = tune.Target("kpa", ("steady",), False)
    found = []
    for workers in (1, 2):
        storage = tune.default_storage(tmp_path / f"w{workers}")
        tune.run_study(target, [0, 1], 8, storage, None, executor=Executor(workers), batch=2)
        study = optuna.load_study(study_name=target.study_name, storage=storage)
        found.append([(t.number, t.state.name, t.params, t.value) for t in study.trials])
    assert found[0] == found[1] and len(found[0]) == 8
    assert len({str(t[2]) for t in found[0]}) == 8


def test_a_new_trial_is_tagged_with_its_process_in_the_commit_that_creates_it(tmp_path: Path) -> None:
    # a process killed right after a trial's creation must leave a trial the next run recognises as abandoned:
    # the tags come with the creation, not in a later commit (here no sampler hook tags it)
    url = f"sqlite:///{(tmp_path / 'studies.db').resolve()}"
    study = optuna.create_study(
        study_name="s", storage=tune.open_storage(url), sampler=optuna.samplers.RandomSampler(seed=0)
    )
    study.ask()
    trial = optuna.load_study(study_name="s", storage=url).trials[0]
    assert trial.state == TrialState.RUNNING
    assert trial.user_attrs == {"host": socket.gethostname(), "pid": os.getpid()}
