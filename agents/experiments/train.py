"""Train PPO (or sb3-contrib's MaskablePPO or RecurrentPPO) on the native batched env; one folder per run.

Read top to bottom: the run folder, the envs, our TensorBoard metrics, the periodic evaluation, then
:func:`train` (a new run) and :func:`resume` (continue a run from its last checkpoint), which share
:func:`learn`.

Run folder (``runs/<algo>_<scenarios>_<seed>_<timestamp>/`` unless ``--run-dir`` names it)::

    config.yaml            the resolved training config (a resume reloads it)
    scenarios.yaml         the env config of every training and evaluation scenario, as resolved at the start
    command.txt            the command of each invocation (a resume appends its own)
    platform.json          each invocation's package versions, CPU and torch's CPU kernel set (a resume appends its
                           own): the same config and seed train other weights on another CPU capability
    rules.json             with ``residual``: the parameters each of its rules plays on each training, evaluation
                           and benchmark scenario; loading the run after a re-tune changed them is refused
    tb/                    TensorBoard: SB3's rollout/, train/, time/ and ours: episode/ (training episodes that
                           ended in the rollout), eval/ (periodic evaluation)
    checkpoints/           rl_model_<t>_steps.zip + rl_model_vecnormalize_<t>_steps.pkl + rl_model_<t>_steps.json
                           (the manifest, written last: a checkpoint counts only when it exists and matches),
                           also at the end and at Ctrl-C; damaged/ holds those a resume found incomplete
    best_model.zip         + best_vecnormalize.pkl + best_model.json: the model with the best mean evaluation
                           reward so far; best/ keeps each improvement, so a resume can go back to the best of
                           the steps it keeps
    evaluations.csv        every periodic evaluation: one row per scenario
    final_model.zip        + final_vecnormalize.pkl + final_model.json: the model at the end of training

Every file is written atomically (a temporary file, fsync, rename: ``scaling_env.files``), and one process at a
time writes a run folder (a lock; a second is refused). A kill at any moment leaves a run that resumes:
``--resume`` takes the newest complete checkpoint (moving damaged newer ones to ``checkpoints/damaged/``), and
cuts what the lost segment after it wrote: its TensorBoard points and evaluation rows (steps after the
checkpoint's), and its best models.

Seeds: training cluster i starts from seed ``seed + i`` (its generator then draws every later episode); the
periodic evaluation runs episodes seeded ``eval_seed + j``, a range the config checks is disjoint from the
training seeds. Training seeds stay below the benchmark's
(``FIRST_BENCHMARK_SEED``). A resumed run seeds its clusters from (seed + i, step count), streams no integer seed
gives, so it neither replays its first episodes nor meets evaluation ones.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import shutil
import signal
import struct
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.logger import configure
from stable_baselines3.common.vec_env import VecFrameStack, VecMonitor, VecNormalize
from tqdm import TqdmExperimentalWarning

from scaling_env.config import ConfigError, EnvConfig, read_yaml_mapping
from scaling_env.envs.sb3 import ServerlessScalingVecEnv
from scaling_env.episode_stats import METRIC_NAMES, EpisodeStats
from scaling_env.files import (
    ManifestError,
    atomic_path,
    atomic_write_bytes,
    atomic_write_text,
    check_manifest,
    output_lock,
    write_manifest,
)
from scaling_env.scenarios import load_scenario

from ..learned.family_normalize import FamilyVecNormalize
from ..learned.ppo import (
    algo_class,
    apply_env_overrides,
    load_sb3_model,
    load_vecnormalize,
    manifest_path,
    vecnormalize_path,
)
from ..learned.residual import (
    RULES_RECORD,
    PairedBase,
    ResidualVecEnv,
    make_rule,
    prefer_zero_correction,
    rule_settings,
)
from ..learned.shaping import FlapPenalty, lagrange_step
from ..learned.torch_kernels import check_training_kernels, cpu_name, pin_training_kernels
from .benchmark import EVALUATION_SCENARIOS
from .eval_split import EvalSplit
from .evaluate import load_scenario_configs, run_policy_episodes
from .progress import StepProgress
from .tables import summarise_episodes
from .train_config import TrainConfig, load_train_config
from .verdict import beats_at_slo

Scenarios = list[tuple[str, EnvConfig]]
Log = Callable[[str], None]


# ------------------------------------------------------------------------------------------------ run folder
class RunPaths:
    """The files of a run folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.config = root / "config.yaml"
        self.scenarios = root / "scenarios.yaml"
        self.command = root / "command.txt"
        self.tb = root / "tb"
        self.checkpoints = root / "checkpoints"
        self.damaged = self.checkpoints / "damaged"
        self.best_history = root / "best"
        self.best_model = root / "best_model.zip"
        self.best_stats = root / "best_vecnormalize.pkl"
        self.best_manifest = root / "best_model.json"
        self.final_model = root / "final_model.zip"
        self.final_stats = root / "final_vecnormalize.pkl"
        self.final_manifest = root / "final_model.json"
        self.evaluations = root / "evaluations.csv"
        self.timing = root / "timing.json"
        self.platform = root / "platform.json"

    def checkpoint(self, steps: int) -> tuple[Path, Path]:
        """(model, VecNormalize stats) of the checkpoint at ``steps``, named as SB3's CheckpointCallback does."""
        return (
            self.checkpoints / f"rl_model_{steps}_steps.zip",
            self.checkpoints / f"rl_model_vecnormalize_{steps}_steps.pkl",
        )

    def manifest(self, steps: int) -> Path:
        """The checkpoint's manifest, written after its model and statistics."""
        return self.checkpoints / f"rl_model_{steps}_steps.json"

    def best_at(self, steps: int) -> tuple[Path, Path, Path]:
        """(model, stats, manifest) of the best model found by the evaluation at ``steps`` (in best/)."""
        model = self.best_history / f"best_model_{steps}_steps.zip"
        return model, vecnormalize_path(model), manifest_path(model)

    def checkpoint_steps(self) -> list[int]:
        """Steps of every checkpoint with a model file or a manifest, newest first (complete or not)."""
        found = set()
        for p in self.checkpoints.glob("rl_model_*_steps.*"):
            if m := re.fullmatch(r"rl_model_(\d+)_steps\.(zip|json)", p.name):
                found.add(int(m.group(1)))
        return sorted(found, reverse=True)

    def best_history_steps(self) -> list[int]:
        """Steps of the evaluations that improved the best model (each kept in best/), in order."""
        pattern = r"best_model_(\d+)_steps\.json"
        return sorted(int(m.group(1)) for p in self.best_history.glob("*.json") if (m := re.fullmatch(pattern, p.name)))

    def legacy_checkpoints(self) -> bool:
        """Whether the checkpoints were written before manifests were (there is none): then a checkpoint is
        checked by loading it."""
        return not any(self.checkpoints.glob("rl_model_*_steps.json"))

    def latest_checkpoint(self) -> tuple[Path, int] | None:
        """The newest complete checkpoint (its manifest matches its files), or None."""
        for steps in self.checkpoint_steps():
            try:
                check_manifest(self.manifest(steps))
            except ManifestError:
                continue
            return self.checkpoint(steps)[0], steps
        return None


def default_run_dir(cfg: TrainConfig, names: list[str], base: str | Path = "runs") -> Path:
    label = "+".join(names) if len(names) <= 3 else f"{names[0]}+{len(names) - 1}more"
    return Path(base) / f"{cfg.algo}_{label}_{cfg.seed}_{time.strftime('%Y%m%d-%H%M%S')}"


def write_scenarios(path: Path, train: Scenarios, evals: Scenarios) -> None:
    data = {
        group: {name: config.model_dump(mode="json") for name, config in scen}
        for group, scen in (("train", train), ("eval", evals))
    }
    atomic_write_text(path, yaml.safe_dump(data, sort_keys=False))


def read_scenarios(path: Path) -> tuple[Scenarios, Scenarios]:
    data = read_yaml_mapping(path, "run scenarios")
    if not data.get("train"):
        raise ConfigError(f"{path}: empty or damaged (no training scenarios); the run cannot be resumed without it")
    groups = []
    for group in ("train", "eval"):
        entries = data.get(group) or {}
        if not isinstance(entries, dict):
            raise ConfigError(f"{path}: '{group}' must be a mapping of scenario names to env configs (damaged file?)")
        groups.append(
            [(name, EnvConfig.from_dict(env, source=f"{path} ({group}: {name})")) for name, env in entries.items()]
        )
    return groups[0], groups[1]


def read_run_config(path: Path, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """The run's saved training config; an empty or damaged file is an error naming it (never the defaults)."""
    if path.is_file() and not read_yaml_mapping(path, "training config"):
        raise ConfigError(f"{path}: empty; the run's training config is lost, so the run cannot be resumed")
    return load_train_config(path, overrides=overrides)


def append_command(path: Path, command: str) -> None:
    old = path.read_bytes() if path.is_file() else b""
    if old and not old.endswith(b"\n"):
        old += b"\n"
    atomic_write_bytes(path, old + f"# {time.strftime('%Y-%m-%d %H:%M:%S')}\n{command}\n".encode())


def platform_record() -> dict[str, Any]:
    """What, besides the config and the seed, decides a training's floats: the package versions, the CPU, and the
    kernel set torch dispatches to (``ATEN_CPU_CAPABILITY`` chooses it). The same run on another CPU capability
    trains other weights (docs/training.md, "Seeds"), so a run folder keeps this to explain a re-run that differs."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    packages = {}
    for name in ("scaling-env", "numpy", "numba", "torch", "stable-baselines3", "sb3-contrib", "gymnasium"):
        try:
            packages[name] = version(name)
        except PackageNotFoundError:
            packages[name] = None
    return {
        "time": time.strftime("%Y-%m-%d %H:%M:%S"),
        "python": platform.python_version(),
        "packages": packages,
        "cpu": cpu_name(),
        "cpus": os.cpu_count(),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "ATEN_CPU_CAPABILITY": os.environ.get("ATEN_CPU_CAPABILITY"),
        "MKL_ENABLE_INSTRUCTIONS": os.environ.get("MKL_ENABLE_INSTRUCTIONS"),
    }


def append_platform(path: Path) -> None:
    """Add this invocation's :func:`platform_record` to ``platform.json`` (a list: the training, then each resume).
    A resume whose kernel set is not the one the run last recorded (or that finds no record, as in runs from before
    the record) is warned about: the run continues, but no longer as one machine would train it."""
    records = json.loads(path.read_text()) if path.is_file() else []
    record = platform_record()
    last = records[-1].get("torch_cpu_capability") if records else None
    if path.parent.joinpath("config.yaml").is_file() and last != record["torch_cpu_capability"]:
        warnings.warn(
            f"{path.parent}: this run was trained with torch's {last or 'unrecorded'} kernels and resumes with its "
            f"{record['torch_cpu_capability']} ones: set ATEN_CPU_CAPABILITY to the recorded set to continue it as "
            "it started",
            stacklevel=2,
        )
    atomic_write_text(path, json.dumps([*records, record], indent=1))


# ------------------------------------------------------------------------------------------------ envs
def make_training_env(cfg: TrainConfig, scenarios: Scenarios, stats_path: Path | None = None) -> tuple[Any, Any]:
    """(the native SB3 VecEnv, the same wrapped as the model sees it: FlapPenalty if ``reward_shaping`` is on,
    VecMonitor, VecNormalize, VecFrameStack if ``frame_stack`` > 1, in this order as rl-baselines3-zoo does).

    The clusters are split evenly among the training scenarios. ``stats_path``: continue these VecNormalize
    statistics (a resume); ConfigError names the file if they are missing but needed, or unreadable."""
    parallel = True if cfg.sim_threads else None  # None: the simulator's own choice (serial below 256 clusters)
    base = ServerlessScalingVecEnv(cfg.n_envs, [config for _, config in scenarios], parallel=parallel)
    venv: Any = base
    shaping = cfg.reward_shaping
    wrap = (
        (lambda env: FlapPenalty(env, shaping.blocked, shaping.reversal, shaping.slo_violation))
        if shaping.active
        else None
    )
    if wrap is not None:
        venv = wrap(base)
    if cfg.residual is not None:
        r = cfg.residual
        names = [name for name, _ in scenarios]
        venv = ResidualVecEnv(
            base,
            r.policy,
            r.max_offset,
            venv=venv,
            names=names,
            experts=r.experts,
            hold=r.hold,
            sync=r.sync,
            paired=PairedBase(base, r.policy, names, wrap, parallel=parallel) if r.paired_base else None,
        )
    venv = VecMonitor(venv)
    norm = cfg.normalize
    if stats_path is not None and (norm.obs or norm.reward):
        if not stats_path.is_file():
            raise ConfigError(
                f"{stats_path}: the checkpoint's normalisation statistics are missing; the run "
                "normalises, so it cannot continue without them"
            )
        venv = load_vecnormalize(stats_path, venv)
        venv.training = True
    elif norm.obs or norm.reward:
        kwargs = dict(
            norm_obs=norm.obs,
            norm_reward=norm.reward,
            clip_obs=norm.clip_obs,
            clip_reward=norm.clip_reward,
            gamma=cfg.ppo.gamma,
        )
        if norm.reward_per_family:  # each training scenario's clusters form one family
            groups = np.empty(base.num_envs, dtype=np.int64)
            for g, sl in enumerate(base.slices):
                groups[sl] = g
            venv = FamilyVecNormalize(venv, groups, **kwargs)
        else:
            venv = VecNormalize(venv, **kwargs)
    if cfg.frame_stack > 1:
        venv = VecFrameStack(venv, cfg.frame_stack)
    return base, venv


def resume_seeds(cfg: TrainConfig, timesteps: int) -> list[np.random.SeedSequence]:
    """Seeds of a resumed run's clusters: streams of (seed + i, timesteps), which no integer seed (evaluation,
    benchmark) gives, and which differ from the run's first episodes."""
    return [np.random.SeedSequence([cfg.seed + i, timesteps]) for i in range(cfg.n_envs)]


# ------------------------------------------------------------------------------------------------ snapshots
def save_snapshot(model: Any, model_path: Path, stats_path: Path, manifest: Path, **extra: Any) -> None:
    """The model, its VecNormalize statistics (if it normalises) and, last, their manifest; each atomically."""
    with atomic_path(model_path) as tmp:
        model.save(str(tmp))
    files = [model_path]
    vec_normalize = model.get_vec_normalize_env()
    if vec_normalize is not None:
        with atomic_path(stats_path) as tmp:
            vec_normalize.save(str(tmp))
        files.append(stats_path)
    write_manifest(manifest, files, timesteps=int(model.num_timesteps), **extra)


def copy_snapshot(src: tuple[Path, Path, Path], dst: tuple[Path, Path, Path], **extra: Any) -> None:
    """Copy a snapshot (model, stats, manifest) to other names, each file atomically, the manifest last."""
    values = check_manifest(src[2])
    files = []
    for a, b in zip(src[:2], dst[:2]):
        if a.name in values["files"]:
            with atomic_path(b) as tmp:
                shutil.copyfile(a, tmp)
            files.append(b)
        else:
            b.unlink(missing_ok=True)
    values = {k: v for k, v in values.items() if k != "files"}
    write_manifest(dst[2], files, **{**values, **extra})


def save_checkpoint(model: Any, paths: RunPaths) -> Path:
    """Save the model and its VecNormalize statistics as a checkpoint (unless a complete one exists at this
    step); the manifest, written last, makes it count."""
    steps = int(model.num_timesteps)
    model_path, stats_path = paths.checkpoint(steps)
    try:
        check_manifest(paths.manifest(steps))
        return model_path
    except ManifestError:
        pass
    paths.manifest(steps).unlink(missing_ok=True)  # a stale manifest must not vouch for the new files
    save_snapshot(model, model_path, stats_path, paths.manifest(steps), **shaping_state(model.get_env()))
    return model_path


@contextlib.contextmanager
def sigint_deferred(reraise: bool = True) -> Iterator[None]:
    """Ctrl-C is held back for the block (a checkpoint being written must not be cut) and raised after it
    (unless ``reraise`` is False: already interrupted); no-op off the main thread, where Python delivers no
    signals anyway."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught and reraise:
        raise KeyboardInterrupt


_INTERRUPTS: list[int] = []  # Ctrl-Cs noted by interrupts_noted(), read by StopOnInterrupt


@contextlib.contextmanager
def interrupts_noted() -> Iterator[None]:
    """A first Ctrl-C is noted and raised as KeyboardInterrupt at the next training step (by
    :class:`StopOnInterrupt`), a second one at once. Raised at once, a Ctrl-C lands in whatever runs at that moment:
    inside numba compiling or caching a kernel (a ctypes callback) it is printed, dropped, and leaves the compile
    broken ("no compiled object yet"), so the run died with a RuntimeError instead of saving a checkpoint.
    No-op off the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def note(signum: int, frame: Any) -> None:
        _INTERRUPTS.append(signum)
        if len(_INTERRUPTS) > 1:  # asked twice: do not wait for the next step
            raise KeyboardInterrupt

    _INTERRUPTS.clear()
    previous = signal.signal(signal.SIGINT, note)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        _INTERRUPTS.clear()


# ------------------------------------------------------------------------------------------------ callbacks
class StopOnInterrupt(BaseCallback):
    """Raises, at the next step, the Ctrl-C that :func:`interrupts_noted` noted."""

    def _on_step(self) -> bool:
        if _INTERRUPTS:
            raise KeyboardInterrupt
        return True


class StopAt(BaseCallback):
    """Ends training before its schedules end (``schedule_timesteps`` > ``total_timesteps``): at the first step
    of the first rollout that starts at or after ``stop`` steps, so the rollout that crosses ``stop`` is still
    trained on, as SB3 does at the end of ``learn``. That step is collected and not trained on: the step counter
    and the last checkpoint read one vector step more, and an evaluation or checkpoint due at it is written (the
    longer run writes the same). A resume continues the schedules, with fresh episodes, so it is not the longer
    run step for step."""

    def __init__(self, stop: int) -> None:
        super().__init__()
        self.stop = stop
        self.stopping = False

    def _on_rollout_start(self) -> None:
        self.stopping = self.num_timesteps >= self.stop

    def _on_step(self) -> bool:
        return not self.stopping


class SloPenaltyFrom(BaseCallback):
    """Switches the training-only SLO penalty on from the first rollout that starts at or after ``start`` agent
    steps (``reward_shaping.slo_violation_from``), so that no rollout mixes the two rewards in its returns; before,
    every :class:`FlapPenalty` below the model (the training clusters' and the paired copy's alike) charges 0 per
    violating step. With 128 clusters and ``n_steps: 8`` a rollout is 1,024 agent steps: 62,500 switches at
    63,488. A resumed run counts its rollouts from the checkpoint, so it may switch up to a rollout earlier."""

    def __init__(self, venv: Any, penalty: float, start: int) -> None:
        super().__init__()
        self.shapers = flap_penalties(venv)
        if not self.shapers:
            raise RuntimeError("slo_violation_from: the training env has no FlapPenalty to switch")
        self.penalty = penalty
        self.start = start

    def _on_rollout_start(self) -> None:
        on = self.model.num_timesteps >= self.start
        for shaper in self.shapers:
            shaper.slo_violation = self.penalty if on else 0.0
        self.logger.record("train/slo_penalty", self.penalty if on else 0.0)

    def _on_step(self) -> bool:
        return True


class SloLagrangianUpdate(BaseCallback):
    """The adaptive SLO penalty (``reward_shaping.slo_lagrangian``, :class:`SloLagrangian`): at the start of every
    rollout after the first, each training scenario's penalty moves by the gap between the agent's SLO share and
    its target (expert 0's on the paired copy, less the margin) over the previous rollout's env steps
    (:func:`lagrange_step`); the training clusters' FlapPenalty and the paired copy's charge the same per-cluster
    penalties, so the paired reward stays the difference of two equally shaped rewards. The penalties are kept in
    every checkpoint's manifest (``slo_penalty``), so a resumed run continues them."""

    def __init__(self, venv: Any, base: ServerlessScalingVecEnv, names: list[str], settings: Any) -> None:
        super().__init__()
        self.agent, self.paired = paired_shapers(venv)
        self.slices = list(base.slices)
        self.names = names
        self.settings = settings
        start = np.broadcast_to(np.asarray(self.agent.slo_violation, dtype=np.float64), (base.num_envs,))
        self.penalty = np.array([start[sl.start] for sl in self.slices])  # per scenario (a resume: the saved ones)
        self._apply()

    def _apply(self) -> None:
        per_cluster = np.empty(sum(sl.stop - sl.start for sl in self.slices))
        for p, sl in zip(self.penalty, self.slices):
            per_cluster[sl] = p
        self.agent.slo_violation = per_cluster
        self.paired.slo_violation = per_cluster.copy()

    def _on_rollout_start(self) -> None:
        (agent, steps), (paired, paired_steps) = self.agent.take_violations(), self.paired.take_violations()
        if steps != paired_steps:
            raise RuntimeError("slo_lagrangian: the paired copy stepped other times than the training clusters")
        if steps:
            share = np.array([agent[sl].sum() / (steps * (sl.stop - sl.start)) for sl in self.slices])
            base_share = np.array([paired[sl].sum() / (steps * (sl.stop - sl.start)) for sl in self.slices])
            s = self.settings
            self.penalty = lagrange_step(self.penalty, share, base_share, s.lr, s.margins(self.names), s.max)
            self._apply()
            for name, a, b in zip(self.names, share, base_share):  # the raw gap (fractions), before the margin
                self.logger.record(f"slo_lagrangian/{name}_share_gap", a - b)
        for name, p in zip(self.names, self.penalty):
            self.logger.record(f"slo_lagrangian/{name}_penalty", float(p))

    def _on_step(self) -> bool:
        return True


def paired_shapers(venv: Any) -> tuple[FlapPenalty, FlapPenalty]:
    """(the training clusters' FlapPenalty, the paired copy's) below ``venv``; RuntimeError if either is missing."""
    agent = paired = None
    for inner in wrapper_chain(venv):
        if isinstance(inner, FlapPenalty) and agent is None:
            agent = inner
        pair = vars(inner).get("paired")
        if pair is not None and isinstance(pair.venv, FlapPenalty):
            paired = pair.venv
    if agent is None or paired is None:
        raise RuntimeError("slo_lagrangian: the training env needs a FlapPenalty on its clusters and its paired copy")
    return agent, paired


def shaping_state(venv: Any) -> dict[str, Any]:
    """What a checkpoint keeps of the reward shaping: the per-cluster SLO penalties of an adaptive run."""
    for inner in wrapper_chain(venv):
        if isinstance(inner, FlapPenalty) and np.ndim(inner.slo_violation) == 1:
            return {"slo_penalty": [float(x) for x in inner.slo_violation]}
    return {}


def restore_shaping(venv: Any, values: dict[str, Any], source: Path) -> None:
    """Give the FlapPenalties below ``venv`` (the paired copy's too) the SLO penalties a checkpoint kept."""
    if "slo_penalty" not in values:
        return
    try:
        penalty = np.asarray(values["slo_penalty"], dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError(f"{source}: slo_penalty is not a list of numbers") from None
    shapers = flap_penalties(venv)
    if penalty.shape != (venv.num_envs,) or not shapers:
        raise ConfigError(f"{source}: slo_penalty does not fit this run's {venv.num_envs} training clusters")
    for shaper in shapers:
        shaper.slo_violation = penalty.copy()


def wrapper_chain(venv: Any) -> Iterator[Any]:
    """``venv`` and every env it wraps, outermost first (each wrapper's own ``venv``: SB3's wrappers pass an
    unknown attribute on to the env they wrap, so ``getattr`` would answer for an inner one)."""
    inner = venv
    while inner is not None:
        yield inner
        inner = vars(inner).get("venv")


def flap_penalties(venv: Any) -> list[FlapPenalty]:
    """Every FlapPenalty in the wrapper chain below ``venv``, the paired copy's included (on the wrapper that
    owns ``paired``)."""
    found: list[FlapPenalty] = []
    for inner in wrapper_chain(venv):
        if isinstance(inner, FlapPenalty):
            found.append(inner)
        paired = vars(inner).get("paired")
        if paired is not None and isinstance(paired.venv, FlapPenalty):
            found.append(paired.venv)
    return found


def _due(num_timesteps: int, n_envs: int, every_calls: int) -> bool:
    """Whether a periodic task runs at this step: every ``every_calls`` calls counted from step 0, so a
    resumed run keeps the cadence of the run it continues (a fresh run: every ``every_calls``-th call)."""
    return (num_timesteps // n_envs) % every_calls == 0


class Checkpoints(BaseCallback):
    """A checkpoint every ``checkpoint_freq`` env steps (SB3's names), written atomically with a manifest."""

    def __init__(self, cfg: TrainConfig, paths: RunPaths) -> None:
        super().__init__()
        self.paths = paths
        self.n_envs = cfg.n_envs
        self.every = max(cfg.checkpoint_freq // cfg.n_envs, 1)

    def _on_step(self) -> bool:
        if _due(self.num_timesteps, self.n_envs, self.every):
            with sigint_deferred():
                save_checkpoint(self.model, self.paths)
        return True


class EpisodeMetrics(BaseCallback):
    """Per-episode metrics of the training clusters, logged once per rollout under ``episode/``.

    Reads the step arrays the native VecEnv exposes (raw rewards, not VecNormalize's) and feeds one
    :class:`EpisodeStats` per training scenario; at the end of each rollout, records the mean of every metric
    over the episodes that ended in it (and, with several scenarios, the reward and SLO violation share of each
    under ``episode_<scenario>/``)."""

    def __init__(self, base: ServerlessScalingVecEnv, names: list[str]) -> None:
        super().__init__()
        self.base = base
        self.names = names
        self.stats = [
            EpisodeStats(sl.stop - sl.start, sim.config.episode_steps, sim.config.step_seconds)
            for sim, sl in zip(base.sims, base.slices)
        ]
        self.ended: list[list[dict[str, float]]] = [[] for _ in names]

    def _on_step(self) -> bool:
        info, rewards, dones = self.base.batch_info(), self.base.step_rewards, self.base.step_dones
        for k, (stats, sl) in enumerate(zip(self.stats, self.base.slices)):
            part = info
            if len(self.stats) > 1:
                part = {key: v[sl] for key, v in info.items() if key != "reward_components"}
                part["reward_components"] = {n: v[sl] for n, v in info["reward_components"].items()}
            stats.update(rewards[sl], part)
            ids = np.flatnonzero(dones[sl])
            if ids.size:
                self.ended[k].extend(stats.pop(ids))
        return True

    def _on_rollout_end(self) -> None:
        episodes = [e for group in self.ended for e in group]
        if not episodes:
            return
        for name in METRIC_NAMES:
            self.logger.record(f"episode/{name}", float(np.mean([e[name] for e in episodes])))
        if len(self.names) > 1:
            for scenario, group in zip(self.names, self.ended):
                if group:
                    for name in ("reward", "slo_violation_share"):
                        self.logger.record(f"episode_{scenario}/{name}", float(np.mean([e[name] for e in group])))
        self.ended = [[] for _ in self.names]


class PeriodicEval(BaseCallback):
    """Every ``eval_freq`` env steps: ``n_eval_episodes`` deterministic episodes per evaluation scenario, seeded
    ``eval_seed + j`` (the same episodes each time), with the current VecNormalize statistics (not updated).
    Logs ``eval/`` (means over the scenarios; ``eval/mean_reward`` as SB3's EvalCallback names it; each
    scenario's reward and SLO violation share under ``eval_<scenario>/`` when there are several), appends to
    evaluations.csv and keeps best_model.zip + best_vecnormalize.pkl (each improvement also in best/)."""

    def __init__(
        self, scenarios: Scenarios, cfg: TrainConfig, paths: RunPaths, verbose: int = 0, base: Base | None = None
    ) -> None:
        super().__init__(verbose)
        self.scenarios = scenarios
        self.cfg = cfg
        self.paths = paths
        self.every = max(cfg.eval_freq // cfg.n_envs, 1)
        self.base = base if base is not None else base_evaluation(cfg, scenarios)
        self.best = best_evaluation(paths.evaluations, self.base)  # a resumed run keeps its best so far
        self.n_obs = int(ServerlessScalingVecEnv(1, scenarios[0][1]).observation_space.shape[0])
        if cfg.residual is not None:  # each rule's proposal, one-hot, follows the env's observation
            self.n_obs += (1 + len(cfg.residual.experts)) * len(scenarios[0][1].scaling.scale_steps)
        self.split: EvalSplit | None = None

    def _on_training_start(self) -> None:
        if self.split is None:  # its workers start beside the first rollouts (or the step-0 evaluation)
            self.split = EvalSplit(self.scenarios, self.cfg, self.n_obs)
        if self.cfg.eval_at_start and self.num_timesteps == 0 and not self.paths.evaluations.exists():
            self.evaluate()  # the untrained model (with residual and zero_bias: the rule) is a candidate too

    def _on_step(self) -> bool:
        if _due(self.num_timesteps, self.cfg.n_envs, self.every):
            self.evaluate()
        return True

    def close(self) -> None:
        """Shut the evaluation's worker processes down."""
        if self.split is not None:
            self.split.close()
            self.split = None

    def evaluate(self) -> float:
        if self.split is None:  # made at the first evaluation (its workers start then)
            self.split = EvalSplit(self.scenarios, self.cfg, self.n_obs)
        rows = [
            {"timesteps": self.num_timesteps, "scenario": name, **summary}
            for name, summary in self.split.evaluate(self.model, self.model.get_vec_normalize_env())
        ]
        score = selection_score(rows, self.base)
        mean_reward = score[1]
        self.logger.record("eval/mean_reward", mean_reward)
        if self.base is not None:
            self.logger.record("eval/wins_vs_base", score[0])
        for metric in METRIC_NAMES[1:]:
            self.logger.record(f"eval/{metric}", float(np.mean([r[metric] for r in rows])))
        if len(rows) > 1:
            for r in rows:
                self.logger.record(f"eval_{r['scenario']}/reward", r["reward"])
                self.logger.record(f"eval_{r['scenario']}/slo_violation_share", r["slo_violation_share"])
        self.logger.dump(self.num_timesteps)
        with sigint_deferred():
            # the rows first: a resume drops the rows of an improvement whose best model was not saved
            append_evaluations(self.paths.evaluations, rows)
            if self.best is None or score > self.best:
                self.best = score
                steps = int(self.num_timesteps)
                self.paths.best_history.mkdir(parents=True, exist_ok=True)
                snapshot = self.paths.best_at(steps)
                extra = {} if self.base is None else {"wins_vs_base": score[0]}
                save_snapshot(self.model, *snapshot, mean_reward=mean_reward, **extra)
                copy_snapshot(snapshot, (self.paths.best_model, self.paths.best_stats, self.paths.best_manifest))
        if self.verbose:
            wins = "" if self.base is None else f", beats the base on {score[0]} of {len(rows)} scenarios"
            best = f"{self.best[1]:.3f}" if self.base is None else f"{self.best[0]} wins, {self.best[1]:.3f}"
            print(f"eval at {self.num_timesteps:,} steps: mean reward {mean_reward:.3f}{wins} (best: {best})")
        return mean_reward


EVAL_FIELDS = ("timesteps", "scenario", *METRIC_NAMES, "reward_std", "reward_ci95")


def read_evaluations(path: Path) -> list[dict[str, Any]]:
    """The rows of evaluations.csv (timesteps as int, metrics as float); [] if there is none. A file that is
    empty, not ours, or has a cut or damaged row is an error naming the file and the line (a cut last row
    must never be read as a score)."""
    if not path.exists():
        return []
    try:
        text = path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the run's evaluations ({exc})") from None
    if not text.strip():
        raise ConfigError(f"{path}: empty (damaged); remove it to start the evaluation record afresh")
    if not text.endswith("\n"):
        raise ConfigError(f"{path}: the last row is cut (damaged file); remove that row and resume again")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if tuple(reader.fieldnames or ()) != EVAL_FIELDS:
        raise ConfigError(f"{path}: line 1: not the header of an evaluations file (damaged?): {reader.fieldnames}")
    rows = []
    for row in reader:
        try:
            if None in row or any(v is None or v == "" for v in row.values()):
                raise ValueError("wrong number of values")
            parsed: dict[str, Any] = {"timesteps": int(row["timesteps"]), "scenario": row["scenario"]}
            parsed.update({k: float(row[k]) for k in EVAL_FIELDS[2:]})
        except ValueError as exc:
            raise ConfigError(f"{path}: line {reader.line_num}: damaged row ({exc})") from None
        rows.append(parsed)
    return rows


def write_evaluations(path: Path, rows: list[dict[str, Any]]) -> None:
    """The whole file, atomically (a kill leaves the old file or the new one, never a cut row)."""
    buf = io.StringIO(newline="")
    writer = csv.DictWriter(buf, fieldnames=EVAL_FIELDS)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def append_evaluations(path: Path, rows: list[dict[str, Any]]) -> None:
    write_evaluations(path, read_evaluations(path) + rows)


Base = dict[str, tuple[float, float]]  # scenario -> the base rule's (mean reward, SLO share) on the eval episodes


def base_evaluation(cfg: TrainConfig, scenarios: Scenarios) -> Base | None:
    """With ``select_by: wins_vs_base``: residual.policy alone on each evaluation scenario's evaluation episodes
    (the seeds the periodic evaluation uses), as (mean reward, mean SLO share); else None."""
    if cfg.select_by != "wins_vs_base":
        return None
    assert cfg.residual is not None  # the config checks it
    out = {}
    for name, config in scenarios:
        rule = make_rule(cfg.residual.policy, config, scenario=name)
        summary = summarise_episodes(run_policy_episodes(rule, config, cfg.n_eval_episodes, cfg.eval_seed))
        out[name] = (summary["reward"], summary["slo_violation_share"])
    return out


def selection_score(rows: list[dict[str, Any]], base: Base | None) -> tuple[int, float]:
    """One evaluation's score, compared as a tuple: (wins, mean reward over the scenarios). A win: the scenario's
    mean reward above the base's and its SLO share not above it (the verdict's "win at no higher SLO share", on
    means); without a base, wins are 0 and the mean reward alone decides."""
    mean = float(np.mean([float(r["reward"]) for r in rows]))
    if base is None:
        return 0, mean
    wins = 0
    for r in rows:
        if r["scenario"] not in base:
            raise ConfigError(f"evaluation of scenario {r['scenario']!r}: the base rule was not evaluated on it")
        reward, slo = base[r["scenario"]]
        wins += beats_at_slo(float(r["reward"]) - reward, float(r["slo_violation_share"]), slo)
    return wins, mean


def score_by_step(rows: list[dict[str, Any]], base: Base | None = None) -> dict[int, tuple[int, float]]:
    """:func:`selection_score` of each evaluation step's rows, in step order."""
    by_step: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        by_step.setdefault(int(row["timesteps"]), []).append(row)
    return {step: selection_score(v, base) for step, v in sorted(by_step.items())}


def best_evaluation(path: Path, base: Base | None = None) -> tuple[int, float] | None:
    """The best :func:`selection_score` of the evaluations in evaluations.csv, or None."""
    return max(score_by_step(read_evaluations(path), base).values(), default=None)


# ------------------------------------------------------------------------------------------------ resume: the cut
def cut_evaluations(paths: RunPaths, steps: int, base: Base | None = None) -> int:
    """Drop the evaluation rows after ``steps`` (a lost segment's) and put back the best model of the rows
    kept (best by :func:`selection_score` against ``base``); returns the number of rows dropped. An improvement
    whose best model was never saved (killed between the two) has its rows dropped too, so the best model always
    matches the best row."""
    rows = read_evaluations(paths.evaluations)
    kept = [r for r in rows if r["timesteps"] <= steps]
    history = set(paths.best_history_steps())
    # runs from before best/ was kept (no manifests anywhere) are left as they are
    tracked = not paths.legacy_checkpoints() or bool(history) or paths.best_manifest.exists()
    if tracked:
        while True:  # drop the rows of improvements whose best model was never saved, until none is left
            best, improvements = None, []
            for step, score in score_by_step(kept, base).items():
                if best is None or score > best:
                    best = score
                    improvements.append(step)
            unsaved = {s for s in improvements if s not in history}
            if not unsaved:
                break
            kept = [r for r in kept if r["timesteps"] not in unsaved]
        for step in history:
            if step > steps:  # found by a lost segment
                for f in paths.best_at(step):
                    f.unlink(missing_ok=True)
        top = (paths.best_model, paths.best_stats, paths.best_manifest)
        if improvements:
            current = None
            with contextlib.suppress(ManifestError):
                current = check_manifest(paths.best_manifest).get("timesteps")
            if current != improvements[-1]:
                copy_snapshot(paths.best_at(improvements[-1]), top)
        else:
            for f in top:
                f.unlink(missing_ok=True)
    if len(kept) != len(rows):
        write_evaluations(paths.evaluations, kept)
    return len(rows) - len(kept)


def _records(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    """(whole record, payload) of each complete TFRecord in an event file's bytes; stops at a cut one."""
    pos = 0
    while pos + 12 <= len(data):
        (length,) = struct.unpack("<Q", data[pos : pos + 8])
        end = pos + 12 + length + 4
        if end > len(data):
            return
        yield data[pos:end], data[pos + 12 : pos + 12 + length]
        pos = end


def cut_tensorboard(tb: Path, steps: int) -> int:
    """Drop every TensorBoard event after ``steps`` (and any cut last record) from the run's event files,
    rewriting each file atomically; returns the number of events dropped."""
    from tensorboard.compat.proto import event_pb2

    dropped = 0
    for path in sorted(tb.glob("**/events.out.tfevents.*")):
        data = path.read_bytes()
        kept, used, count = [], 0, 0
        for record, payload in _records(data):
            used += len(record)
            event = event_pb2.Event()
            try:
                event.ParseFromString(payload)
            except Exception:  # a damaged record: dropped with the rest of the lost segment
                count += 1
                continue
            if event.step > steps and not event.HasField("file_version"):
                count += 1
                continue
            kept.append(record)
        if count or used != len(data):
            atomic_write_bytes(path, b"".join(kept))
            dropped += count
    return dropped


def set_aside_damaged(paths: RunPaths, steps: list[int]) -> None:
    """Move the files of incomplete checkpoints to checkpoints/damaged/ (kept for inspection, never resumed
    from, and out of the way of the checkpoints the resumed run writes at the same steps)."""
    paths.damaged.mkdir(parents=True, exist_ok=True)
    for step in steps:
        for f in (*paths.checkpoint(step), paths.manifest(step)):
            if f.exists():
                os.replace(f, paths.damaged / f.name)


# ------------------------------------------------------------------------------------------------ training
def load_checkpoint(cfg: TrainConfig, paths: RunPaths, steps: int, train: Scenarios) -> tuple[Any, Any, Any]:
    """(base env, wrapped env, model) from the checkpoint at ``steps``, or ConfigError saying what is wrong
    with it (incomplete, damaged, missing statistics). A run written before checkpoints had manifests (none in
    its folder) is checked by loading its files instead."""
    values = {} if paths.legacy_checkpoints() else check_manifest(paths.manifest(steps))
    model_path, stats_path = paths.checkpoint(steps)
    base, venv = make_training_env(cfg, train, stats_path=stats_path)
    restore_shaping(venv, values, paths.manifest(steps))
    kwargs = cfg.algo_kwargs()
    # the config's schedules replace the pickled ones (the same, unless the code that made them changed)
    schedules = {k: kwargs[k] for k in ("learning_rate", "clip_range")}
    model = load_sb3_model(algo_class(cfg.algo), model_path, env=venv, device=cfg.device, custom_objects=schedules)
    if int(model.num_timesteps) != steps:
        raise ConfigError(f"{model_path}: holds {model.num_timesteps:,} steps, its name says {steps:,}")
    model.set_random_seed(cfg.seed + model.num_timesteps)  # torch, numpy, action space
    venv.seed(resume_seeds(cfg, model.num_timesteps))  # the clusters: fresh episodes
    return base, venv, model


def learn(
    cfg: TrainConfig,
    paths: RunPaths,
    train: Scenarios,
    evals: Scenarios,
    start: tuple[Any, Any, Any] | None = None,
    progress_bar: bool = True,
    verbose: int = 0,
    selection_base: Base | None = None,
) -> Any:
    """Build the model on the training envs (or continue ``start``: (base env, wrapped env, model) of a loaded
    checkpoint) and train it up to ``cfg.total_timesteps`` (its schedules over ``cfg.horizon``); checkpoints,
    evaluations, TensorBoard and the final model go to ``paths``.

    Ctrl-C saves a checkpoint (Ctrl-C is held back while any checkpoint or best model is written) and then
    raises KeyboardInterrupt, only once it is saved; if it cannot be saved, ConfigError says so instead."""
    torch.set_num_threads(cfg.torch_threads)
    warnings.filterwarnings("ignore", category=TqdmExperimentalWarning)  # SB3's progress bar uses tqdm.rich
    if start is None:
        base, venv = make_training_env(cfg, train)
        model = algo_class(cfg.algo)(
            cfg.policy_name, venv, seed=cfg.seed, device=cfg.device, verbose=verbose, **cfg.algo_kwargs()
        )
        if cfg.residual is not None:
            prefer_zero_correction(model, cfg.residual.max_offset, cfg.residual.zero_bias)
    else:
        base, venv, model = start
    model.set_logger(configure(str(paths.tb), ["tensorboard"] + (["stdout"] if verbose else [])))

    metrics = EpisodeMetrics(base, [name for name, _ in train])
    callbacks = [StopOnInterrupt(), metrics]
    for inner in wrapper_chain(venv):  # a held residual choice steps the env several times per agent step: count each
        if isinstance(inner, ResidualVecEnv):
            inner.inner_step_hooks[:] = [metrics._on_step]
    shaping = cfg.reward_shaping
    if shaping.slo_violation_from > 0:
        callbacks.append(SloPenaltyFrom(venv, shaping.slo_violation, shaping.slo_violation_from))
    if shaping.slo_lagrangian is not None:
        callbacks.append(SloLagrangianUpdate(venv, base, [name for name, _ in train], shaping.slo_lagrangian))
    if cfg.horizon > cfg.total_timesteps:  # SB3 runs the schedules over learn()'s budget: stop early instead
        callbacks.append(StopAt(cfg.total_timesteps))
    if progress_bar:  # ours counts env steps up to whole rollouts (SB3's reads e.g. 32,768/20,000)
        callbacks.append(StepProgress(cfg.total_timesteps))
    if cfg.checkpoint_freq:
        callbacks.append(Checkpoints(cfg, paths))
    evaluation = PeriodicEval(evals, cfg, paths, verbose=verbose, base=selection_base) if cfg.eval_freq else None
    if evaluation is not None:
        callbacks.append(evaluation)
    try:
        model.learn(
            cfg.horizon - model.num_timesteps,
            callback=CallbackList(callbacks),
            reset_num_timesteps=start is None,
            progress_bar=False,
        )
    except KeyboardInterrupt:
        try:
            with sigint_deferred(reraise=False):  # a second Ctrl-C must not cut this checkpoint
                save_checkpoint(model, paths)  # so that --resume continues from here
        except OSError as exc:
            raise ConfigError(
                f"interrupted, and the checkpoint could not be saved in {paths.checkpoints}: {exc}"
            ) from None
        raise
    finally:
        if evaluation is not None:
            evaluation.close()
    with sigint_deferred():
        save_checkpoint(model, paths)
        save_snapshot(model, paths.final_model, paths.final_stats, paths.final_manifest)
    return model


def with_env_overrides(cfg: TrainConfig, scenarios: Scenarios) -> Scenarios:
    """The scenarios with the config's ``env_overrides`` merged in (errors name the scenario)."""
    return [
        (name, apply_env_overrides(config, cfg.env_overrides, f"env_overrides on scenario {name}"))
        for name, config in scenarios
    ]


def write_rule_settings(
    path: Path, cfg: TrainConfig, scenarios: Scenarios, traces_dir: str | Path | None = None
) -> None:
    """The parameters the run's rules play on its scenarios and the benchmark's (``residual.RULES_RECORD``), so
    that loading the run after a re-tune of its rules' files is refused rather than silently other experts."""
    assert cfg.residual is not None
    configs = dict(scenarios)
    configs.update({s: load_scenario(s, traces_dir).config for s in EVALUATION_SCENARIOS if s not in configs})
    specs = [cfg.residual.policy, *cfg.residual.experts]
    atomic_write_text(path, json.dumps(rule_settings(specs, configs), indent=1))


class Stopwatch:
    """Wall time, this process's CPU time and the 1-minute load average from its start: what timing.json keeps."""

    def __init__(self) -> None:
        self.load1_start = os.getloadavg()[0]
        self.wall0, self.cpu0 = time.perf_counter(), time.process_time()

    def write(self, path: Path, cfg: TrainConfig, **extra: Any) -> None:
        """timing.json of a finished training (or segment): the agent's steps, the env steps (a held residual
        choice is ``hold`` env steps), wall and CPU seconds (this process's: an evaluation worker's share is not
        in it), the load average at the start and the end, and the algorithm."""
        timing = {
            "timesteps": cfg.total_timesteps,
            "env_steps": cfg.total_timesteps * (cfg.residual.hold if cfg.residual is not None else 1),
            "wall_s": time.perf_counter() - self.wall0,
            "cpu_s": time.process_time() - self.cpu0,
            "load1_start": self.load1_start,
            "load1_end": os.getloadavg()[0],
            "algo": cfg.algo,
            **extra,
        }
        atomic_write_text(path, json.dumps(timing, indent=1))


def train(
    cfg: TrainConfig,
    run_dir: str | Path | None = None,
    command: str = "",
    traces_dir: str | Path | None = None,
    progress_bar: bool = True,
    verbose: int = 0,
) -> tuple[Any, Path]:
    """A new run: make its folder, write the resolved config, scenarios and command, then :func:`learn`.
    Returns (model, run folder). Another process writing the same folder is refused (ConfigError).

    With ``cfg.eval_workers`` > 1 the evaluation's worker processes are spawned: a script calling this must
    guard its top level with ``if __name__ == "__main__":`` (the workers import it), or use ``eval_workers: 1``.
    A finished run's wall and CPU time go to timing.json (:class:`Stopwatch`). torch trains with its AVX2 kernels
    on x86-64 unless ``ATEN_CPU_CAPABILITY`` says otherwise (:mod:`agents.learned.torch_kernels`)."""
    pin_training_kernels()
    check_training_kernels()
    watch = Stopwatch()
    train_scenarios = with_env_overrides(cfg, load_scenario_configs(cfg.scenarios, traces_dir))
    eval_scenarios = with_env_overrides(cfg, load_scenario_configs(cfg.evaluation_scenarios, traces_dir))
    steps = {tuple(c.scaling.scale_steps) for _, c in train_scenarios + eval_scenarios}
    if len(steps) > 1:
        raise ConfigError(
            "the training and evaluation scenarios must share one action set; their "
            f"scaling.scale_steps differ: {sorted(steps)}"
        )
    root = Path(run_dir) if run_dir is not None else default_run_dir(cfg, [n for n, _ in train_scenarios])
    paths = RunPaths(root)
    with output_lock(root, "run folder"), interrupts_noted():
        if paths.config.exists():
            raise ConfigError(f"{root} already holds a run: continue it with --resume {root} or choose another folder")
        root.mkdir(parents=True, exist_ok=True)
        write_scenarios(paths.scenarios, train_scenarios, eval_scenarios)
        if cfg.residual is not None:
            write_rule_settings(paths.root / RULES_RECORD, cfg, train_scenarios + eval_scenarios, traces_dir)
        append_command(paths.command, command or "(called from Python)")
        append_platform(paths.platform)
        atomic_write_text(paths.config, cfg.to_yaml())  # last: from here the folder holds a run
        try:
            model = learn(cfg, paths, train_scenarios, eval_scenarios, progress_bar=progress_bar, verbose=verbose)
        except KeyboardInterrupt:
            if paths.latest_checkpoint() is None:  # so that nobody is told a checkpoint was saved
                raise ConfigError(
                    f"interrupted before the first checkpoint was saved: {root} cannot be resumed; "
                    "remove it and start again"
                ) from None
            raise
        watch.write(paths.timing, cfg)
    return model, root


def resume(
    run_dir: str | Path,
    total_timesteps: int | None = None,
    command: str = "",
    progress_bar: bool = True,
    verbose: int = 0,
    log: Log = print,
) -> tuple[Any, Path]:
    """Continue a run from its newest complete checkpoint with its saved config and scenarios, up to its
    ``total_timesteps`` (or the new ``total_timesteps``); the step counter and TensorBoard run continue.

    Checkpoints that are incomplete or do not load are skipped (said through ``log``) and moved to
    checkpoints/damaged/; what the lost segment after the checkpoint wrote is cut: TensorBoard events and
    evaluation rows of later steps, and best models found after it. Another process writing the folder is
    refused; an empty or damaged run file is an error naming it. timing.json then holds the resumed segment's
    times, with ``resumed_from`` (its first step)."""
    pin_training_kernels()
    check_training_kernels()
    watch = Stopwatch()
    paths = RunPaths(Path(run_dir))
    if not paths.config.is_file():
        raise ConfigError(f"{run_dir}: not a run folder (no {paths.config.name})")
    with output_lock(paths.root, "run folder"), interrupts_noted():
        saved = read_run_config(paths.config)
        if total_timesteps is not None and saved.schedule_timesteps is not None:
            if total_timesteps > saved.schedule_timesteps:
                raise ConfigError(
                    f"{run_dir}: --total-timesteps {total_timesteps:,} is past the run's schedule_timesteps "
                    f"({saved.schedule_timesteps:,}), where its schedules end; it can continue up to "
                    f"{saved.schedule_timesteps:,} steps"
                )
        overrides = {"total_timesteps": total_timesteps} if total_timesteps is not None else None
        cfg = read_run_config(paths.config, overrides=overrides)
        train_scenarios, eval_scenarios = read_scenarios(paths.scenarios)
        read_evaluations(paths.evaluations)  # a damaged file stops the resume before anything is changed
        start, damaged = None, []
        for steps in paths.checkpoint_steps():
            try:
                start = load_checkpoint(cfg, paths, steps, train_scenarios)
                break
            except ConfigError as exc:
                log(f"skipping the checkpoint at {steps:,} steps: {exc}")
                damaged.append(steps)
        if start is None:
            raise ConfigError(f"{run_dir}: no complete checkpoint to resume from in {paths.checkpoints}")
        steps = int(start[2].num_timesteps)
        if steps >= cfg.total_timesteps:
            raise ConfigError(
                f"{run_dir}: the latest checkpoint is at {steps:,} steps, already total_timesteps "
                f"({cfg.total_timesteps:,}); pass a larger --total-timesteps to train further"
            )
        log(f"resuming from {paths.checkpoint(steps)[0]} ({steps:,} steps)")
        if damaged:
            set_aside_damaged(paths, damaged)
        selection_base = base_evaluation(cfg, eval_scenarios)  # once: the cut and the resumed evaluation share it
        rows = cut_evaluations(paths, steps, selection_base)
        events = cut_tensorboard(paths.tb, steps)
        if rows or events:
            log(
                f"cut what the lost segment after {steps:,} steps wrote: {rows} evaluation rows, "
                f"{events} TensorBoard events"
            )
        atomic_write_text(paths.config, cfg.to_yaml())
        append_command(paths.command, command or "(called from Python)")
        append_platform(paths.platform)
        model = learn(
            cfg,
            paths,
            train_scenarios,
            eval_scenarios,
            start=start,
            progress_bar=progress_bar,
            verbose=verbose,
            selection_base=selection_base,
        )
        watch.write(paths.timing, cfg, resumed_from=steps)
    return model, paths.root
