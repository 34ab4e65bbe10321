"""Bad files and values end in one message naming the file or value and exit code 2 (never a traceback or a
bare "Aborted."), and outputs are written whole: atomic files, complete result folders, one writer at a time."""

from __future__ import annotations

import csv
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from agents.experiments.cli import app
from scaling_env import EnvConfig
from scaling_env.config import ConfigError, read_yaml_mapping
from scaling_env.envs.single import ServerlessScalingEnv, check_action
from scaling_env.envs.vector import ServerlessScalingVectorEnv, check_actions
from scaling_env.files import (
    OutputBusyError,
    OutputExistsError,
    atomic_dir,
    atomic_write_text,
    output_lock,
)

runner = CliRunner()
STEPS = [-2, -1, 0, 1, 2]
TINY = {"episode_steps": 16, "scaling": {"max_instances": 16, "scale_steps": STEPS}}
SMOKE = {
    "n_envs": 4,
    "total_timesteps": 128,
    "eval_freq": 64,
    "checkpoint_freq": 64,
    "n_eval_episodes": 1,
    "ppo": {"n_steps": 16, "batch_size": 64, "n_epochs": 1, "policy_kwargs": {"net_arch": [8]}},
}


def scenario_file(path: Path, env: dict) -> Path:
    path.write_text(yaml.safe_dump({"description": "test", "env": env}))
    return path


def assert_refused(result, *words: str) -> None:
    """Exit 2 with a message naming what is wrong; no traceback, no bare "Aborted"."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    out = " ".join(result.output.split())  # rich wraps long lines
    assert "Traceback" not in out and "Aborted" not in out, out
    for w in words:
        assert w in out, (w, out)


# ------------------------------------------------------------------------------------------------ YAML, workloads
def test_a_yaml_file_that_is_not_utf8_is_named_with_its_line(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("description: ok\nenv:\n  step_seconds: 15.0  # caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"latin1\.yaml: line 3: not UTF-8"):
        read_yaml_mapping(path)
    assert_refused(runner.invoke(app, ["simulate", "--scenario", str(path)]), "latin1.yaml", "line 3", "UTF-8")


TRACE = {"kind": "trace", "counts": [0.0, 0.0, 0.0], "interval_seconds": 60.0, "rescale": "mean", "target_rps": 50.0}
PAST_END = {"kind": "trace", "counts": [5.0, 6.0], "interval_seconds": 60.0, "loop": False, "start_offset_seconds": 500}


@pytest.mark.parametrize(
    "shape, words",
    [(TRACE, ["rescale: mean", "no requests"]), (PAST_END, ["start_offset_seconds", "past the trace's end"])],
    ids=["rescale_all_zero_trace", "offset_past_the_end"],
)
def test_a_trace_that_cannot_give_the_configured_load_is_refused(tmp_path, shape, words):
    env = {**TINY, "workload": {"shape": shape}}
    path = scenario_file(tmp_path / "bad_trace.yaml", env)
    assert_refused(runner.invoke(app, ["simulate", "--scenario", str(path)]), "bad_trace.yaml", *words)
    cfg = tmp_path / "env.yaml"
    cfg.write_text(yaml.safe_dump(env))  # an env config given directly: the check runs when the env is made
    assert_refused(runner.invoke(app, ["simulate", "--config", str(cfg), "--out", str(tmp_path / "d.png")]), *words)
    result = runner.invoke(
        app, ["benchmark", "-p", "static", "-s", str(path), "--episodes", "1", "--out", str(tmp_path / "x")]
    )
    assert_refused(result, "bad_trace.yaml", *words)
    with pytest.raises(ValueError, match=words[0]):  # ConfigError is a ValueError, as before
        ServerlessScalingEnv(EnvConfig.from_dict(env))


# ------------------------------------------------------------------------------------------------ actions
def test_actions_inf_nan_and_booleans_are_refused_alike_by_the_single_and_vector_envs():
    for bad in (float("inf"), float("-inf"), float("nan"), True, False, np.True_, np.array(True)):
        with pytest.raises(ValueError, match=r"action must be an integer index in \[0, 4\]"):
            check_action(bad, 5)  # no OverflowError for inf; True is not the index 1
    for bad in ([np.inf, 1.0], [1.0, np.nan], [True, False], np.array([False, False])):
        with pytest.raises(ValueError, match=r"actions must be integer indices in \[0, 4\]"):
            check_actions(bad, 2, 5)
    assert check_action(np.int64(3), 5) == 3 and check_action(2.0, 5) == 2
    assert check_actions([1.0, 4], 2, 5).tolist() == [1, 4]
    env = ServerlessScalingEnv(EnvConfig.from_dict(TINY))
    env.reset(seed=0)
    with pytest.raises(ValueError, match="boolean"):
        env.step(True)
    with pytest.raises(ValueError, match="inf"):
        env.step(float("inf"))
    venv = ServerlessScalingVectorEnv(2, EnvConfig.from_dict(TINY))
    venv.reset(seed=0)
    with pytest.raises(ValueError, match="booleans"):
        venv.step(np.array([True, False]))


# ------------------------------------------------------------------------------------------------ model files
@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    from agents.experiments.train import train
    from agents.experiments.train_config import load_train_config

    root = tmp_path_factory.mktemp("bad_files")
    tiny = scenario_file(root / "tiny.yaml", TINY)
    config = root / "smoke.yaml"
    config.write_text(yaml.safe_dump({**SMOKE, "scenarios": [str(tiny)], "eval_scenarios": [str(tiny)]}))
    _, run = train(load_train_config(config), root / "run", progress_bar=False)
    return {"root": root, "run": run, "tiny": tiny}


def loose_model(trained, tmp_path) -> tuple[Path, Path]:
    """A copy of the final model and its statistics outside the run folder."""
    model, stats = tmp_path / "m.zip", tmp_path / "m_vecnormalize.pkl"
    model.write_bytes((trained["run"] / "final_model.zip").read_bytes())
    stats.write_bytes((trained["run"] / "final_vecnormalize.pkl").read_bytes())
    return model, stats


def evaluate(model: Path, tiny: Path):
    return runner.invoke(app, ["evaluate", "--model", str(model), "--scenario", str(tiny), "--episodes", "1"])


def test_the_intact_copy_evaluates(trained, tmp_path):
    model, _ = loose_model(trained, tmp_path)
    result = evaluate(model, trained["tiny"])
    assert result.exit_code == 0, result.output


def rewrite_zip(path: Path, change) -> None:
    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist()}
    members = change(members)
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)


@pytest.mark.parametrize("damage", ["flipped_bytes", "no_policy", "corrupt_policy", "truncated", "empty"])
def test_a_damaged_model_zip_is_named(trained, tmp_path, damage):
    model, _ = loose_model(trained, tmp_path)
    if damage == "flipped_bytes":  # bytes changed inside policy.pth (read only by the load): its CRC fails
        with zipfile.ZipFile(model) as z:
            info = z.getinfo("policy.pth")
        data = bytearray(model.read_bytes())
        start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra) + 40
        for i in range(start, start + 40):
            data[i] ^= 0x5A
        model.write_bytes(bytes(data))
    elif damage == "no_policy":
        rewrite_zip(model, lambda m: {k: v for k, v in m.items() if k != "policy.pth"})
    elif damage == "corrupt_policy":  # a well-formed zip whose policy.pth is not a torch file
        rewrite_zip(model, lambda m: {k: (b"not torch" * 50 if k == "policy.pth" else v) for k, v in m.items()})
    elif damage == "truncated":
        model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    else:
        model.write_bytes(b"")
    assert_refused(evaluate(model, trained["tiny"]), str(model))


@pytest.mark.parametrize("damage", ["garbage", "truncated", "text", "wrong_object", "empty"])
def test_damaged_normalisation_statistics_are_named(trained, tmp_path, damage):
    model, stats = loose_model(trained, tmp_path)
    good = stats.read_bytes()
    stats.write_bytes(
        {
            "garbage": bytes(np.random.default_rng(0).integers(0, 256, 400, dtype=np.uint8)),
            "truncated": good[: len(good) // 2],
            "text": b"obs_rms: mean 0\n",
            "wrong_object": pickle.dumps({"obs_rms": [0.0] * 19}),
            "empty": b"",
        }[damage]
    )
    assert_refused(evaluate(model, trained["tiny"]), str(stats))


def test_a_best_model_whose_files_do_not_match_their_manifest_is_named(trained, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained["run"], run)
    (run / "best_vecnormalize.pkl").write_bytes((run / "final_vecnormalize.pkl").read_bytes() + b"\0")
    assert_refused(evaluate(run, trained["tiny"]), "best_model.zip", "best_vecnormalize.pkl")


# ------------------------------------------------------------------------------------------------ run files
def copy_run(trained, tmp_path) -> Path:
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained["run"], run)
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["total_timesteps"] = 192
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    return run


@pytest.mark.parametrize("damage", ["empty", "cut_last_row", "bad_header", "not_a_number"])
def test_a_damaged_evaluations_csv_stops_the_resume_and_is_named(trained, tmp_path, damage):
    run = copy_run(trained, tmp_path)
    path = run / "evaluations.csv"
    text = path.read_text()
    path.write_text(
        {
            "empty": "",
            "cut_last_row": text[: text.rindex(",") + 2],  # a row cut inside its last number: "-1" of "-12.3"
            "bad_header": "a,b\n1,2\n",
            "not_a_number": text.replace(text.splitlines()[1].split(",")[2], "oops", 1),
        }[damage]
    )
    before = path.read_bytes()
    result = runner.invoke(app, ["train", "--resume", str(run), "--no-progress"])
    assert_refused(result, "evaluations.csv")
    assert path.read_bytes() == before  # nothing changed


def test_an_empty_run_config_stops_the_resume_and_is_named(trained, tmp_path):
    run = copy_run(trained, tmp_path)
    (run / "config.yaml").write_text("")
    assert_refused(runner.invoke(app, ["train", "--resume", str(run), "--no-progress"]), "config.yaml", "empty")
    assert_refused(evaluate(run, trained["tiny"]), "config.yaml", "empty")


def test_resume_falls_back_past_damaged_checkpoints_and_cuts_the_lost_segment(trained, tmp_path):
    from agents.experiments.train import RunPaths, read_evaluations

    run = copy_run(trained, tmp_path)
    paths = RunPaths(run)
    _, stats = paths.checkpoint(128)
    stats.write_bytes(stats.read_bytes()[:100])  # the newest checkpoint's statistics cut short
    result = runner.invoke(app, ["train", "--resume", str(run), "--no-progress"])
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    assert "skipping the checkpoint at 128 steps" in out and "rl_model_vecnormalize_128_steps.pkl" in out
    assert "resuming from" in out and "rl_model_64_steps.zip (64 steps)" in out
    assert (paths.damaged / stats.name).stat().st_size == 100  # set aside, not deleted
    rows = read_evaluations(paths.evaluations)
    assert [r["timesteps"] for r in rows] == [64, 128, 192]  # the lost 128 row was cut and made again
    assert paths.latest_checkpoint() == (paths.checkpoint(192)[0], 192)
    best = max(rows, key=lambda r: r["reward"])  # the best model is the best kept row's, not the lost one's
    manifest = yaml.safe_load(paths.best_manifest.read_text())
    assert (manifest["timesteps"], manifest["mean_reward"]) == (best["timesteps"], pytest.approx(best["reward"]))


def test_a_run_from_before_manifests_resumes_by_loading_its_checkpoints(trained, tmp_path):
    from agents.experiments.train import resume

    run = copy_run(trained, tmp_path)
    for manifest in run.glob("checkpoints/*.json"):
        manifest.unlink()
    (run / "checkpoints" / "rl_model_128_steps.zip").write_bytes(b"PK\x03\x04 cut")  # a half-written zip
    messages: list[str] = []
    model, _ = resume(run, progress_bar=False, log=messages.append)
    assert model.num_timesteps == 192
    assert any("skipping the checkpoint at 128 steps" in m for m in messages)
    assert any("rl_model_64_steps.zip (64 steps)" in m for m in messages)


def test_a_second_writer_of_a_run_folder_is_refused(trained, tmp_path):
    run = copy_run(trained, tmp_path)
    with output_lock(run):
        result = runner.invoke(app, ["train", "--resume", str(run), "--no-progress"])
    assert_refused(result, str(run), "another process is writing")


def test_ctrl_c_before_the_first_checkpoint_does_not_claim_one_was_saved(trained, tmp_path, monkeypatch):
    from agents.experiments import train as tr
    from agents.experiments.train_config import load_train_config

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(tr, "make_training_env", interrupted)
    cfg = load_train_config(trained["root"] / "smoke.yaml")
    with pytest.raises(ConfigError, match="interrupted before the first checkpoint was saved"):
        tr.train(cfg, tmp_path / "new", progress_bar=False)


def test_resume_works_with_normalisation_off(tmp_path, trained):
    from agents.experiments.train import resume, train
    from agents.experiments.train_config import load_train_config

    config = tmp_path / "raw.yaml"
    tiny = str(trained["tiny"])
    config.write_text(
        yaml.safe_dump(
            {**SMOKE, "scenarios": [tiny], "eval_scenarios": [tiny], "normalize": {"obs": False, "reward": False}}
        )
    )
    _, run = train(load_train_config(config), tmp_path / "raw", progress_bar=False)
    assert not list(run.glob("**/*.pkl"))
    (run / "checkpoints" / "rl_model_128_steps.json").unlink()  # the last checkpoint incomplete
    model, _ = resume(run, total_timesteps=192, progress_bar=False, log=lambda m: None)
    assert model.num_timesteps == 192


# ------------------------------------------------------------------------------------------------ outputs
def test_atomic_writes_leave_the_old_file_or_the_new_one(tmp_path):
    path = tmp_path / "f.txt"
    atomic_write_text(path, "old")
    with pytest.raises(RuntimeError), atomic_dir(tmp_path / "d") as d:
        (d / "x").write_text("partial")
        raise RuntimeError
    assert not (tmp_path / "d").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["f.txt"]
    from scaling_env.files import atomic_file

    with pytest.raises(RuntimeError), atomic_file(path) as fh:
        fh.write("new but interrupted")
        raise RuntimeError
    assert path.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["f.txt"]


def test_a_held_output_lock_refuses_a_second_writer(tmp_path):
    with output_lock(tmp_path / "out"):
        with pytest.raises(OutputBusyError, match="another process is writing"):
            output_lock(tmp_path / "out").acquire()
    with output_lock(tmp_path / "out"):  # released: taken again
        pass


BENCH = ["benchmark", "--policies", "static,threshold", "--scenarios", "steady", "--episodes", "2", "--workers", "1"]


def test_benchmark_refuses_an_existing_folder_unless_overwrite_replaces_it_whole(tmp_path):
    out = tmp_path / "res"
    out.mkdir()
    (out / "stale_plot.png").write_bytes(b"old")
    assert_refused(runner.invoke(app, [*BENCH, "--out", str(out), "--no-progress"]), str(out), "--overwrite")
    assert sorted(p.name for p in out.iterdir()) == ["stale_plot.png"]  # untouched
    result = runner.invoke(app, [*BENCH, "--out", str(out), "--overwrite", "--no-progress"])
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in out.iterdir())
    assert "stale_plot.png" not in names and "episodes.csv" in names and "cost_vs_slo.png" in names
    assert sorted(p.name for p in tmp_path.iterdir()) == [".res.lock", "res"]  # no temporary folder left


def test_benchmark_without_out_writes_a_new_timestamped_folder_each_time(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for _ in range(2):
        result = runner.invoke(app, [*BENCH, "--no-progress"])
        assert result.exit_code == 0, result.output
    folders = sorted(p for p in (tmp_path / "results" / "benchmark").iterdir() if p.is_dir())
    assert len(folders) == 2 and all((f / "summary.md").is_file() for f in folders)


def test_benchmark_refuses_an_out_folder_another_benchmark_is_writing(tmp_path):
    out = tmp_path / "res"
    with output_lock(out):
        assert_refused(runner.invoke(app, [*BENCH, "--out", str(out), "--no-progress"]), "another process")
    assert not out.exists()


def test_two_concurrent_benchmarks_into_one_folder_give_one_result_and_one_refusal(tmp_path):
    out = tmp_path / "res"
    args = [sys.executable, "-m", "agents.experiments.benchmark", *BENCH[1:], "--out", str(out), "--no-progress"]
    procs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 2], outputs
    refusal = " ".join(outputs[[p.returncode for p in procs].index(2)].split())
    assert str(out) in refusal and ("another process is writing" in refusal or "already exists" in refusal)
    assert "Traceback" not in refusal
    with open(out / "episodes.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 4 and {r["policy"] for r in rows} == {"static", "threshold"}
    assert sorted(p.name for p in out.iterdir()) == [
        "cost_vs_slo.png",
        "episodes.csv",
        "episodes.json",
        "load_vs_capacity_steady.png",
        "summary.md",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".res.lock", "res"]


def test_output_errors_are_config_errors():
    assert issubclass(OutputBusyError, ConfigError) and issubclass(OutputExistsError, ConfigError)


def test_rows_of_an_improvement_whose_best_model_was_not_saved_are_dropped_at_resume(trained, tmp_path):
    """A kill between writing an evaluation's rows and saving the best model it found: the resume drops those
    rows, so the best row and best_model.zip agree."""
    from agents.experiments.train import RunPaths, read_evaluations, resume, write_evaluations

    run = copy_run(trained, tmp_path)
    paths = RunPaths(run)
    rows = read_evaluations(paths.evaluations)
    assert [r["timesteps"] for r in rows] == [64, 128]
    rows[1]["reward"] = 1000.0  # the evaluation at 128 found a new best...
    write_evaluations(paths.evaluations, rows)
    for f in paths.best_at(128):  # ...and was killed before saving it
        f.unlink(missing_ok=True)
    messages: list[str] = []
    resume(run, progress_bar=False, log=messages.append)
    rows = read_evaluations(paths.evaluations)
    assert [r["timesteps"] for r in rows] == [64, 192] and all(r["reward"] < 1000 for r in rows)
    assert any("1 evaluation rows" in m for m in messages)
    best = max(rows, key=lambda r: r["reward"])
    manifest = yaml.safe_load(paths.best_manifest.read_text())
    assert manifest["timesteps"] == best["timesteps"]
