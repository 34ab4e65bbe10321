"""Kill training at random moments (SIGKILL and SIGINT) and resume, over and over: every resume must succeed,
from the newest complete checkpoint, with the step counter, the learning-rate schedule and the VecNormalize
statistics intact, and nothing of a lost segment left in TensorBoard or evaluations.csv.

The training runs in child processes forked from a multiprocessing fork server that has imported torch,
stable-baselines3 and the project once (and run nothing), so each child starts in a fraction of a second; a
checkpoint is written every third call, a rollout ends and an evaluation runs every second call, so kills land
in checkpoint writes and after points the resume has to cut.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import re
import signal
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from agents.experiments.train import RunPaths, read_evaluations
from agents.experiments.train_config import load_train_config
from scaling_env.files import check_manifest

N_ENVS = 4
N_STEPS = 2  # a rollout: 8 env steps (2 calls), logged to TensorBoard at its end
KILLS = 22
SCENARIO = {"episode_steps": 16, "scaling": {"max_instances": 16, "scale_steps": [-2, -1, 0, 1, 2]}}
CONFIG = {
    "n_envs": N_ENVS,
    "total_timesteps": 40_000,  # not reached (a few thousand steps are made): every segment ends by a kill
    # a checkpoint every third call, so kills land in checkpoint writes and also after TensorBoard points and
    # evaluation rows newer than the last checkpoint (which a resume must cut)
    "checkpoint_freq": 3 * N_ENVS,
    "eval_freq": 2 * N_ENVS,
    "n_eval_episodes": 1,
    "seed": 5,
    "ppo": {
        "n_steps": N_STEPS,
        "batch_size": 8,
        "n_epochs": 1,
        "learning_rate": {"schedule": "linear", "start": 1e-3, "end": 0.0},
        "policy_kwargs": {"net_arch": [8]},
    },
}


def _child(kind: str, arg: str, log_path: str) -> None:
    """A training process: a new run (``kind`` "train", ``arg`` the config file) or a resume (``arg`` the run
    folder). Writes what it says to ``log_path``; exit 130 after Ctrl-C (the checkpoint saved, as the CLI
    says), 3 if the resume failed."""
    log = open(log_path, "w", buffering=1)  # noqa: SIM115 - kept open until the process dies
    sys.stdout = sys.stderr = log
    from agents.experiments import train as tr
    from agents.experiments.train_config import load_train_config
    from scaling_env.config import ConfigError

    try:
        if kind == "train":
            cfg = load_train_config(arg)
            tr.train(cfg, Path(arg).parent / "run", progress_bar=False)
        else:
            tr.resume(arg, progress_bar=False, log=lambda m: print(m, flush=True))
    except KeyboardInterrupt:
        print("interrupted: checkpoint saved", flush=True)
        os._exit(130)
    except ConfigError as exc:
        print(f"FAILED: {exc}", flush=True)
        os._exit(3)
    os._exit(0)


def _complete_steps(paths: RunPaths) -> list[int]:
    out = []
    for steps in paths.checkpoint_steps():
        try:
            check_manifest(paths.manifest(steps))
        except Exception:
            continue
        out.append(steps)
    return sorted(out)


def _events(tb: Path) -> list[tuple[str, int, float, float]]:
    """(tag, step, wall time, value) of every scalar in the run's event files."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    out = []
    for path in sorted(tb.glob("events.out.tfevents.*")):
        for event in EventFileLoader(str(path)).Load():
            for v in event.summary.value:  # the loader turns simple values into scalar tensors
                value = v.simple_value if v.HasField("simple_value") else v.tensor.float_val[0]
                out.append((v.tag, int(event.step), float(event.wall_time), float(value)))
    return out


@pytest.fixture(scope="module")
def context() -> mp.context.BaseContext:
    if sys.platform == "win32":  # pragma: no cover
        pytest.skip("fork server and POSIX signals")
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["agents.experiments.train", "stable_baselines3", "sb3_contrib", "torch"])
    return ctx


def test_kill_at_random_moments_and_resume_every_time(tmp_path, context):
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump({"description": "tiny", "env": SCENARIO}))
    config = tmp_path / "train.yaml"
    tiny = [str(tmp_path / "tiny.yaml")]
    config.write_text(yaml.safe_dump({**CONFIG, "scenarios": tiny, "eval_scenarios": tiny}))
    run = tmp_path / "run"
    paths = RunPaths(run)

    children: list[mp.Process] = []

    def start(kind: str, arg: str, i: int) -> tuple[mp.Process, Path]:
        log = tmp_path / f"log_{i:02d}.txt"
        log.touch()
        proc = context.Process(target=_child, args=(kind, arg, str(log)), daemon=True)
        proc.start()
        children.append(proc)
        return proc, log

    try:
        check_kills_and_resumes(tmp_path, config, run, paths, start)
    finally:
        for proc in children:  # a failed check leaves no training behind
            if proc.is_alive():
                proc.kill()
                proc.join(10)


def check_kills_and_resumes(tmp_path, config, run, paths, start) -> None:
    rng = np.random.default_rng(20261204)

    # the first segment: a new run, stopped by Ctrl-C once it has checkpoints
    proc, log = start("train", str(config), 0)
    deadline = time.monotonic() + 60
    while len(_complete_steps(paths)) < 3 and proc.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGINT)
    proc.join(30)
    assert proc.exitcode == 130, log.read_text()

    logs: list[Path] = []
    resumes: list[tuple[int, float]] = []  # (step resumed from, time the resume started)
    kills = {"SIGKILL": 0, "SIGINT": 0}
    previous = signal.SIGINT
    for i in range(1, KILLS + 2):
        newest = _complete_steps(paths)[-1]
        started = time.time()
        proc, log = start("resume", str(run), i)
        logs.append(log)
        if i == KILLS + 1:  # the last segment: let it run, then stop it cleanly
            wait, sig = 1.5, signal.SIGINT
        else:
            wait = float(rng.uniform(0.3, 1.5))
            sig = signal.SIGKILL if i % 2 else signal.SIGINT
        # wait until the resume has chosen its checkpoint, then a random time
        deadline = time.monotonic() + 60
        while "resuming from" not in log.read_text() and proc.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        text = log.read_text()
        assert "FAILED" not in text and "resuming from" in text, text
        m = re.search(r"resuming from \S+rl_model_(\d+)_steps\.zip \(([\d,]+) steps\)", text)
        assert m and int(m.group(1)) == newest, (newest, text)  # the newest complete checkpoint
        if previous == signal.SIGINT:  # after Ctrl-C nothing is damaged
            assert "skipping" not in text, text
        previous = sig
        resumes.append((newest, started))
        time.sleep(wait)
        os.kill(proc.pid, sig)
        kills[signal.Signals(sig).name] += 1
        proc.join(30)
        text = log.read_text()
        if sig == signal.SIGINT:
            assert proc.exitcode == 130, text
            # "checkpoint saved" was true: a complete checkpoint is the newest of all
            assert _complete_steps(paths)[-1] == paths.checkpoint_steps()[0], text
        else:
            assert proc.exitcode == -signal.SIGKILL, text
    assert kills["SIGKILL"] >= 10 and kills["SIGINT"] >= 10
    # the check below is not vacuous: some resumes found points of a lost segment and cut them
    cuts = [re.search(r"(\d+) evaluation rows, (\d+) TensorBoard events", log.read_text()) for log in logs]
    assert sum(int(m.group(2)) for m in cuts if m) > 0 and sum(int(m.group(1)) for m in cuts if m) > 0

    cfg = load_train_config(paths.config)
    final = _complete_steps(paths)[-1]
    assert final > resumes[0][0]  # the runs made progress
    # the step counter: every complete checkpoint holds the steps its name says, a multiple of the batch
    for steps in _complete_steps(paths):
        assert steps % N_ENVS == 0

    # VecNormalize statistics carried over: between consecutive checkpoints the observation count grows by the
    # steps in between, plus one reset batch when a resume started from the first of them; the return count
    # by the steps only
    import pickle

    starts = {s for s, _ in resumes}
    counts = {}
    for steps in _complete_steps(paths):
        with open(paths.checkpoint(steps)[1], "rb") as fh:
            stats = pickle.load(fh)
        counts[steps] = (stats.obs_rms.count, stats.ret_rms.count)
    ordered = sorted(counts)
    for a, b in zip(ordered, ordered[1:]):
        expected_obs = (b - a) + (N_ENVS if a in starts else 0)
        assert counts[b][0] - counts[a][0] == pytest.approx(expected_obs), (a, b, starts)
        assert counts[b][1] - counts[a][1] == pytest.approx(b - a), (a, b)

    # TensorBoard: no point a lost segment wrote (a step after the checkpoint a later resume started from,
    # written before that resume), no step twice for a tag, nothing after the last checkpoint
    events = _events(paths.tb)
    assert events
    for tag, step, wall, _ in events:
        assert step <= final, (tag, step, final)
        for resumed_from, started in resumes:
            assert not (wall < started and step > resumed_from), (tag, step, resumed_from)
    seen: dict[str, list[int]] = {}
    for tag, step, _, _ in events:
        seen.setdefault(tag, []).append(step)
    for tag, steps in seen.items():
        assert len(steps) == len(set(steps)), (tag, sorted(steps))

    # the schedule: a learning rate logged at step S was set at the end of the last rollout before S (at
    # most a rollout earlier), with the progress counted from the run's start over its total_timesteps; a
    # schedule restarted at a resume would be set hundreds of steps earlier
    schedule = cfg.algo_kwargs()["learning_rate"]
    assert schedule(1.0) == pytest.approx(1e-3) and schedule(0.0) == pytest.approx(0.0)  # linear, 1e-3 to 0
    rates = [(s, v) for tag, s, _, v in events if tag == "train/learning_rate"]
    assert len(rates) > 10
    for step, value in rates:
        set_at = (1.0 - value / 1e-3) * cfg.total_timesteps  # the step whose progress gives this rate
        assert step - N_STEPS * N_ENVS - 0.5 <= set_at <= step + 0.5, (step, set_at)

    # evaluations.csv: one row per evaluation step, none after the last checkpoint, each matching the
    # TensorBoard point kept at its step; best_model.json is the best of these rows
    rows = read_evaluations(paths.evaluations)
    steps = [r["timesteps"] for r in rows]
    assert steps and len(steps) == len(set(steps)) and max(steps) <= final
    tb_eval = {s: v for tag, s, _, v in events if tag == "eval/mean_reward"}
    for r in rows:
        assert r["timesteps"] in tb_eval and tb_eval[r["timesteps"]] == pytest.approx(r["reward"], rel=1e-5)
    best = check_manifest(paths.best_manifest)
    best_row = max(rows, key=lambda r: r["reward"])
    assert best["timesteps"] == best_row["timesteps"] and best["mean_reward"] == pytest.approx(best_row["reward"])
