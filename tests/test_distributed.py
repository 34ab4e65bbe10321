"""The Ray backend of the execution layer (agents/experiments/execution.py): the benchmark, the tuner and training
sweeps give on a local two-CPU Ray exactly what they give locally, and a worker killed mid-trial costs only that
trial. Skipped when Ray is not installed, except under CI (which installs the [ray] extra): then it fails."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

try:
    import ray
except ImportError:
    if os.environ.get("CI"):
        raise ImportError('CI is set but ray is not installed: pip install -e ".[dev,ray]"') from None
    pytest.skip('ray is not installed (pip install -e ".[ray]")', allow_module_level=True)

import optuna
from optuna.trial import TrialState

from agents.experiments import tune
from agents.experiments.benchmark import benchmark
from agents.experiments.execution import Executor, RayExecutor, run_all
from agents.experiments.sweep import sweep_command

runner = CliRunner()


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _app(command) -> typer.Typer:
    app = typer.Typer()
    app.command()(command)
    return app


def test_benchmark_on_ray_equals_local_row_for_row(local_ray, tmp_path: Path) -> None:
    app = _app(benchmark)
    args = ["-p", "static,hpa,kpa,oracle", "-s", "steady,flash_crowd", "--episodes", "3", "--no-progress"]
    local = runner.invoke(app, [*args, "--workers", "1", "--out", str(tmp_path / "local")])
    assert local.exit_code == 0, local.output
    on_ray = runner.invoke(app, [*args, "--workers", "2", "--backend", "ray", "--out", str(tmp_path / "ray")])
    assert on_ray.exit_code == 0, on_ray.output
    a = (tmp_path / "local" / "episodes.csv").read_text().splitlines()
    b = (tmp_path / "ray" / "episodes.csv").read_text().splitlines()
    assert len(a) == 1 + 4 * 2 * 3
    assert a == b  # every row, every digit, in the same order


def _trials(storage: str, name: str) -> list[tuple]:
    study = optuna.load_study(study_name=name, storage=storage)
    return [(t.number, t.state.name, t.params, t.value, t.user_attrs.get("slo_share")) for t in study.trials]


def test_tuning_on_ray_evaluates_the_same_trials_as_locally(local_ray, tmp_path: Path) -> None:
    """Same --batch -> the same trials (params, values, order) and so the same best trial, whatever the backend
    and the number of workers: the sampling happens in the driver in a fixed order."""
    target = tune.Target("kpa", ("steady",), False)
    found = {}
    for name, executor in (("local1", Executor(1)), ("ray2", RayExecutor(2))):
        storage = tune.default_storage(tmp_path / name)
        res = tune.run_study(target, [0, 1, 2], 10, storage, None, executor=executor, batch=3)
        found[name] = (res["best"]["number"], res["best"]["value"], _trials(storage, target.study_name))
    assert found["local1"] == found["ray2"]
    number, value, trials = found["ray2"]
    assert sum(t[1] == "COMPLETE" for t in trials) == 10
    assert len({str(t[2]) for t in trials}) == 10  # a batch of TPE proposals are distinct points (constant liar)


def test_tune_command_on_ray_writes_the_local_result(local_ray, tmp_path: Path) -> None:
    app = _app(tune.tune_command)
    args = ["--policy", "hpa", "--scenarios", "steady", "--seeds", "0-2", "--trials", "6", "--batch", "2"]
    docs = []
    for name, extra in (("local", ["--workers", "1"]), ("ray", ["--workers", "2", "--backend", "ray"])):
        res = runner.invoke(app, [*args, *extra, "--out", str(tmp_path / name), "--no-progress"])
        assert res.exit_code == 0, res.output
        text = (tmp_path / name / "steady" / "hpa.yaml").read_text()
        docs.append([line for line in text.splitlines() if "date:" not in line])
    assert docs[0] == docs[1]
    assert any("2 trials sampled per round" in line for line in docs[0])


def _killing_job(marker: Path):
    """A trial evaluation whose first call (across all workers) kills its own worker process."""

    def job(trial_job: tune.TrialJob):
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL)  # exactly one call creates the marker
        except FileExistsError:
            return tune.evaluate_trial(trial_job)
        os.close(fd)
        os._exit(1)  # the worker dies mid-trial, as when a node is lost or the OOM killer strikes

    return job  # a closure: Ray pickles it by value, so the workers need not import this test module


@pytest.mark.parametrize("retries", [2, 0])
def test_a_worker_killed_mid_trial_is_retried_or_reported(local_ray, tmp_path: Path, retries: int) -> None:
    target = tune.Target("hpa", ("steady",), False)
    reference = tmp_path / "reference"
    expected = tune.run_study(target, [0, 1], 6, tune.default_storage(reference), None, batch=2)
    storage = tune.default_storage(tmp_path / "killed")
    run = tune.StudyRun(target, [0, 1], 6, storage, None, None, batch=2)
    with RayExecutor(2, max_retries=retries) as ex:
        tune.run_studies([run], ex, batch=2, job_fn=_killing_job(tmp_path / "killed.marker"))
    assert (tmp_path / "killed.marker").exists()  # a worker did die
    study = optuna.load_study(study_name=target.study_name, storage=storage)
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    failed = study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
    assert len(complete) == 6 and not study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    if retries:  # Ray re-ran the task: the study is the undisturbed one
        assert not failed and run.failed == 0
        assert _trials(storage, target.study_name) == _trials(tune.default_storage(reference), target.study_name)
    else:  # reported: that trial is FAIL with the reason, its point was tried again, and the study went on
        assert len(failed) == 1 and run.failed == 1
        assert "worker died" in failed[0].user_attrs["error"]
        assert len(study.trials) == 7
        retry = [t for t in complete if t.user_attrs.get("retry_of") == failed[0].number]
        assert len(retry) == 1 and retry[0].params == failed[0].params
    res = run.result()
    assert res["best"]["value"] >= expected["default_value"]  # the default trial finished either way


def test_executor_results_keep_the_job_order_and_report_failures(local_ray) -> None:
    def inverse(x: int) -> float:  # local: pickled by value
        return 1 / x

    jobs = [3, 1, 0, 2]
    for ex in (Executor(1), RayExecutor(2)):
        with ex:
            got = run_all(ex, inverse, jobs, failures="return")
            assert got[:2] == [1 / 3, 1.0] and got[3] == 0.5
            assert "ZeroDivisionError" in got[2].message and not got[2].crashed
            with pytest.raises(ZeroDivisionError):
                run_all(ex, inverse, jobs)


GRID = """\
seeds: [0]
scenarios: [train_diurnal]
grid:
  ppo.learning_rate: [3.0e-4, 1.0e-3]
set:
  n_envs: 4
  total_timesteps: 512
  eval_scenarios: [steady]
  n_eval_episodes: 2
  eval_freq: 256
  checkpoint_freq: 256
  ppo.n_steps: 64
  ppo.batch_size: 64
  ppo.n_epochs: 1
"""


def test_sweep_on_ray_writes_two_complete_run_folders(local_ray, tmp_path: Path) -> None:
    grid = tmp_path / "grid.yaml"
    grid.write_text(GRID)
    out = tmp_path / "sweep"
    res = runner.invoke(_app(sweep_command), [str(grid), "--out", str(out), "--backend", "ray", "--workers", "2"])
    assert res.exit_code == 0, res.output
    runs = sorted(p for p in out.iterdir() if p.is_dir())
    assert [p.name for p in runs] == [
        "seed0_train_diurnal_ppo.learning_rate=0.0003",
        "seed0_train_diurnal_ppo.learning_rate=0.001",
    ]
    for run in runs:
        for name in ("config.yaml", "scenarios.yaml", "command.txt", "evaluations.csv", "final_model.zip"):
            assert (run / name).is_file(), f"{run}/{name}"
        assert list((run / "tb").rglob("events.out.tfevents.*"))
        assert (run / "checkpoints" / "rl_model_512_steps.zip").is_file()
    lr = {p.name: (p / "config.yaml").read_text() for p in runs}
    assert (
        "learning_rate: 0.001\n" in lr["seed0_train_diurnal_ppo.learning_rate=0.001"]
    )  # the grid value, not the schedule
    summary = (out / "sweep.csv").read_text().splitlines()
    assert len(summary) == 3 and all(",trained," in row for row in summary[1:])
