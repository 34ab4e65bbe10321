"""The training's periodic evaluation shared between processes (agents/experiments/eval_split.py): the same
evaluation rows, best model and training for any number of workers; a lost worker's scenarios are evaluated in
the training process, with the same rows.

Trainings here are a residual gate (a rule and two experts) on tiny scenarios, a few seconds each plus a worker's
start-up (a spawned interpreter importing torch and SB3).
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from agents.experiments.eval_split import EvalSplit
from agents.experiments.train import read_evaluations, read_scenarios, train
from agents.experiments.train_config import load_train_config

STEPS = [-2, -1, 0, 1, 2]
SCENARIOS = {
    "tiny": {"episode_steps": 16, "scaling": {"max_instances": 16, "scale_steps": STEPS}},
    "tiny_small": {"episode_steps": 16, "scaling": {"max_instances": 6, "scale_steps": STEPS}},
    "tiny_spike": {
        "episode_steps": 12,
        "step_seconds": 10.0,
        "workload": {
            "shape": {
                "kind": "spike",
                "base_rps": 100.0,
                "peak_rps": 900.0,
                "start_seconds": 40.0,
                "duration_seconds": 30.0,
            },
        },
        "scaling": {"max_instances": 8, "scale_steps": STEPS},
    },
}
CONFIG = {
    "n_envs": 4,
    "total_timesteps": 256,
    "eval_freq": 64,
    "checkpoint_freq": 128,
    "n_eval_episodes": 3,
    "residual": {"policy": "step_scaling", "experts": ["hpa", "predictive"], "max_offset": 0},
    "ppo": {"n_steps": 16, "batch_size": 32, "n_epochs": 2, "policy_kwargs": {"net_arch": [16]}},
}


@pytest.fixture(scope="module")
def config_file(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("eval_split")
    files = []
    for name, env in SCENARIOS.items():
        files.append(str(root / f"{name}.yaml"))
        Path(files[-1]).write_text(yaml.safe_dump({"description": f"test scenario {name}", "env": env}))
    path = root / "train.yaml"
    path.write_text(yaml.safe_dump({**CONFIG, "scenarios": files[:2], "eval_scenarios": files}))
    return path


@pytest.fixture(scope="module")
def runs(config_file, tmp_path_factory) -> dict[int, tuple]:
    out = {}
    lost: list[str] = []
    keep = EvalSplit._lost
    with pytest.MonkeyPatch.context() as mp:  # a worker that fell back to this process would pass unseen
        mp.setattr(EvalSplit, "_lost", lambda self, what: (lost.append(what), keep(self, what)))
        for workers in (1, 3):  # 3: two workers beside this process (2, the default: the lost-worker test)
            cfg = load_train_config(config_file, overrides={"eval_workers": workers})
            model, root = train(cfg, tmp_path_factory.mktemp(f"w{workers}") / "run", progress_bar=False)
            out[workers] = (cfg, model, root)
    assert not lost, lost
    return out


def test_the_evaluation_rows_best_model_and_training_do_not_depend_on_the_workers(runs):
    _, model_1, root_1 = runs[1]
    rows_1 = read_evaluations(root_1 / "evaluations.csv")
    assert len(rows_1) == 4 * 3  # evaluations at 64, 128, 192, 256 steps, three scenarios each
    assert {r["scenario"] for r in rows_1} == set(SCENARIOS)
    for workers in (3,):
        _, model, root = runs[workers]
        assert read_evaluations(root / "evaluations.csv") == rows_1, f"{workers} workers"
        best, best_1 = (json.loads((r / "best_model.json").read_text()) for r in (root, root_1))
        assert (best["timesteps"], best["mean_reward"]) == (best_1["timesteps"], best_1["mean_reward"])
        for x, y in zip(model.policy.parameters(), model_1.policy.parameters()):
            np.testing.assert_array_equal(x.detach().numpy(), y.detach().numpy())


def evaluation_inputs(runs: dict[int, tuple]) -> tuple:
    """The one-worker run's config, model, evaluation scenarios, observation width and statistics, and its
    evaluation all in this process (the rows every split must give)."""
    cfg, model, root = runs[1]
    _, scenarios = read_scenarios(root / "scenarios.yaml")
    n_obs = int(model.observation_space.shape[0])
    vec_normalize = model.get_vec_normalize_env()
    alone = EvalSplit(scenarios, cfg, n_obs).evaluate(model, vec_normalize)
    return cfg, model, scenarios, n_obs, vec_normalize, alone


def test_a_lost_worker_leaves_its_scenarios_to_the_training_process(runs):
    cfg, model, scenarios, n_obs, vec_normalize, alone = evaluation_inputs(runs)
    said: list[str] = []
    split = EvalSplit(scenarios, cfg.model_copy(update={"eval_workers": 2}), n_obs, log=said.append)
    try:
        assert split.evaluate(model, vec_normalize) == alone
        assert split.pool is not None and not said
        for pid in list(split.pool._processes):  # the worker dies between two evaluations
            os.kill(pid, signal.SIGKILL)
        time.sleep(0.5)
        assert split.evaluate(model, vec_normalize) == alone
        assert split.pool is None and len(said) == 1 and "evaluates all the scenarios" in said[0]
        assert split.evaluate(model, vec_normalize) == alone  # from now on all of them here
    finally:
        split.close()


def test_a_hung_worker_is_given_up_and_its_scenarios_evaluated_here(runs, monkeypatch):
    import agents.experiments.eval_split as eval_split

    cfg, model, scenarios, n_obs, vec_normalize, alone = evaluation_inputs(runs)
    said: list[str] = []
    split = EvalSplit(scenarios, cfg.model_copy(update={"eval_workers": 3}), n_obs, log=said.append)
    try:
        assert split.evaluate(model, vec_normalize) == alone  # the workers have started
        monkeypatch.setattr(eval_split, "WORKER_PATIENCE_S", 2.0)
        pids = list(split.pool._processes)
        # the workers stop answering: all of them, since with one stopped the other may take both shares (idle
        # workers wait on one shared queue, and whether the stopped one held its read lock is a race)
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        assert split.evaluate(model, vec_normalize) == alone
        assert split.pool is None and len(said) == 1 and "did not answer" in said[0]
        deadline = time.monotonic() + 10
        while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_alive(pid) for pid in pids)  # the workers ended, stopped as they were
    finally:
        split.close()


KILLED_TRAINER = """
import sys, time
from agents.experiments.eval_split import EvalSplit
from agents.experiments.train import read_run_config, read_scenarios
from pathlib import Path

if __name__ == "__main__":
    root = Path(sys.argv[1])
    cfg = read_run_config(root / "config.yaml").model_copy(update={"eval_workers": 3})
    split = EvalSplit(read_scenarios(root / "scenarios.yaml")[1], cfg, int(sys.argv[2]))
    while len(split.pool._processes) < 2:
        time.sleep(0.1)
    print(" ".join(str(pid) for pid in split.pool._processes), flush=True)
    time.sleep(600)
"""


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from /proc")
def test_a_killed_training_process_leaves_no_evaluation_worker(runs, tmp_path):
    import subprocess
    import sys

    cfg, model, root = runs[1]
    script = tmp_path / "trainer.py"
    script.write_text(KILLED_TRAINER)
    n_obs = str(int(model.observation_space.shape[0]))
    proc = subprocess.Popen([sys.executable, str(script), str(root), n_obs], stdout=subprocess.PIPE, text=True)
    try:
        pids = [int(p) for p in proc.stdout.readline().split()]
        assert len(pids) == 2
        proc.kill()
        proc.wait(10)
        deadline = time.monotonic() + 30
        alive = pids
        while alive and time.monotonic() < deadline:
            time.sleep(0.2)
            alive = [pid for pid in pids if _alive(pid)]
        assert not alive, f"workers {alive} outlived the killed training process"
    finally:
        if proc.poll() is None:
            proc.kill()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped by init) is gone
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_eval_workers_is_not_part_of_a_runs_identity(tmp_path):
    from agents.experiments.train_config import TrainConfig

    # a run folder's config.yaml written before the option existed equals a new run's at the default
    assert "eval_workers" not in TrainConfig().to_yaml()
    assert yaml.safe_load(TrainConfig().to_yaml()) == yaml.safe_load(TrainConfig(eval_workers=2).to_yaml())
    one = TrainConfig(eval_workers=1)
    assert yaml.safe_load(one.to_yaml())["eval_workers"] == 1
    (tmp_path / "c.yaml").write_text(one.to_yaml())
    assert load_train_config(tmp_path / "c.yaml") == one
