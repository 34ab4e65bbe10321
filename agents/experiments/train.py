"""Train PPO (or sb3-contrib's MaskablePPO) on the native batched env; one folder per run.

Read top to bottom: the run folder, the envs, our TensorBoard metrics, the periodic evaluation, then
:func:`train` (a new run) and :func:`resume` (continue a run from its last checkpoint), which share
:func:`learn`.

Run folder (``runs/<algo>_<scenarios>_<seed>_<timestamp>/`` unless ``--run-dir`` names it)::

    config.yaml            the resolved training config (a resume reloads it)
    scenarios.yaml         the env config of every training and evaluation scenario, as resolved at the start
    command.txt            the command of each invocation (a resume appends its own)
    tb/                    TensorBoard: SB3's rollout/, train/, time/ and ours: episode/ (training episodes that
                           ended in the rollout), eval/ (periodic evaluation)
    checkpoints/           rl_model_<t>_steps.zip + rl_model_vecnormalize_<t>_steps.pkl, also at the end
    best_model.zip         + best_vecnormalize.pkl: the model with the best mean evaluation reward so far
    evaluations.csv        every periodic evaluation: one row per scenario
    final_model.zip        + final_vecnormalize.pkl: the model at the end of training

Seeds: training cluster i starts from seed ``seed + i`` (its generator then draws every later episode); the
periodic evaluation runs episodes seeded ``eval_seed + j``, a range the config checks is disjoint from the
training seeds. Training seeds stay below the benchmark's
(``FIRST_BENCHMARK_SEED``). A resumed run seeds its clusters from (seed + i, step count), streams no integer seed
gives, so it neither replays its first episodes nor meets evaluation ones.
"""

from __future__ import annotations

import csv
import re
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from sb3_contrib import MaskablePPO
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback, CallbackList, CheckpointCallback
from stable_baselines3.common.logger import configure
from stable_baselines3.common.vec_env import VecMonitor, VecNormalize
from tqdm import TqdmExperimentalWarning

from scaling_env.config import ConfigError, EnvConfig
from scaling_env.envs.sb3 import ServerlessScalingVecEnv
from scaling_env.episode_stats import METRIC_NAMES, EpisodeStats

from ..learned.ppo import PPOPolicy, vecnormalize_path
from .evaluate import load_scenario_configs, run_policy_episodes
from .progress import StepProgress
from .tables import summarise_episodes
from .train_config import TrainConfig, load_train_config

Scenarios = list[tuple[str, EnvConfig]]


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
        self.best_model = root / "best_model.zip"
        self.best_stats = root / "best_vecnormalize.pkl"
        self.final_model = root / "final_model.zip"
        self.final_stats = root / "final_vecnormalize.pkl"
        self.evaluations = root / "evaluations.csv"

    def checkpoint(self, steps: int) -> tuple[Path, Path]:
        """(model, VecNormalize stats) of the checkpoint at ``steps``, named as SB3's CheckpointCallback does."""
        return (
            self.checkpoints / f"rl_model_{steps}_steps.zip",
            self.checkpoints / f"rl_model_vecnormalize_{steps}_steps.pkl",
        )

    def latest_checkpoint(self) -> tuple[Path, int] | None:
        found = [
            (int(m.group(1)), p)
            for p in self.checkpoints.glob("rl_model_*_steps.zip")
            if (m := re.fullmatch(r"rl_model_(\d+)_steps\.zip", p.name))
        ]
        if not found:
            return None
        steps, path = max(found)
        return path, steps


def default_run_dir(cfg: TrainConfig, names: list[str], base: str | Path = "runs") -> Path:
    label = "+".join(names) if len(names) <= 3 else f"{names[0]}+{len(names) - 1}more"
    return Path(base) / f"{cfg.algo}_{label}_{cfg.seed}_{time.strftime('%Y%m%d-%H%M%S')}"


def write_scenarios(path: Path, train: Scenarios, evals: Scenarios) -> None:
    data = {
        group: {name: config.model_dump(mode="json") for name, config in scen}
        for group, scen in (("train", train), ("eval", evals))
    }
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def read_scenarios(path: Path) -> tuple[Scenarios, Scenarios]:
    data = yaml.safe_load(path.read_text()) or {}
    groups = []
    for group in ("train", "eval"):
        groups.append(
            [
                (name, EnvConfig.from_dict(env, source=f"{path} ({group}: {name})"))
                for name, env in (data.get(group) or {}).items()
            ]
        )
    return groups[0], groups[1]


def append_command(path: Path, command: str) -> None:
    with path.open("a") as f:
        f.write(f"# {time.strftime('%Y-%m-%d %H:%M:%S')}\n{command}\n")


# ------------------------------------------------------------------------------------------------ envs
def make_training_env(cfg: TrainConfig, scenarios: Scenarios, stats_path: Path | None = None) -> tuple[Any, Any]:
    """(the native SB3 VecEnv, the same wrapped in VecMonitor and VecNormalize as the model sees it).

    The clusters are split evenly among the training scenarios. ``stats_path``: continue these VecNormalize
    statistics (a resume)."""
    base = ServerlessScalingVecEnv(cfg.n_envs, [config for _, config in scenarios])
    venv: Any = VecMonitor(base)
    norm = cfg.normalize
    if stats_path is not None and stats_path.is_file():
        venv = VecNormalize.load(str(stats_path), venv)
        venv.training = True
    elif stats_path is not None and (norm.obs or norm.reward):
        raise ConfigError(
            f"{stats_path}: the checkpoint's normalisation statistics are missing; the run "
            "normalises, so it cannot continue without them"
        )
    elif norm.obs or norm.reward:
        venv = VecNormalize(
            venv,
            norm_obs=norm.obs,
            norm_reward=norm.reward,
            clip_obs=norm.clip_obs,
            clip_reward=norm.clip_reward,
            gamma=cfg.ppo.gamma,
        )
    return base, venv


def resume_seeds(cfg: TrainConfig, timesteps: int) -> list[np.random.SeedSequence]:
    """Seeds of a resumed run's clusters: streams of (seed + i, timesteps), which no integer seed (evaluation,
    benchmark) gives, and which differ from the run's first episodes."""
    return [np.random.SeedSequence([cfg.seed + i, timesteps]) for i in range(cfg.n_envs)]


# ------------------------------------------------------------------------------------------------ callbacks
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
    evaluations.csv and keeps best_model.zip + best_vecnormalize.pkl."""

    def __init__(self, scenarios: Scenarios, cfg: TrainConfig, paths: RunPaths, verbose: int = 0) -> None:
        super().__init__(verbose)
        self.scenarios = scenarios
        self.cfg = cfg
        self.paths = paths
        self.every = max(cfg.eval_freq // cfg.n_envs, 1)
        self.best = best_evaluation(paths.evaluations)  # a resumed run keeps its best so far

    def _on_step(self) -> bool:
        if self.n_calls % self.every == 0:
            self.evaluate()
        return True

    def evaluate(self) -> float:
        vec_normalize = self.model.get_vec_normalize_env()
        rows = []
        for name, config in self.scenarios:
            policy = PPOPolicy(config, model=self.model, vec_normalize=vec_normalize, source="(training)")
            episodes = run_policy_episodes(policy, config, self.cfg.n_eval_episodes, self.cfg.eval_seed)
            rows.append({"timesteps": self.num_timesteps, "scenario": name, **summarise_episodes(episodes)})
        mean_reward = float(np.mean([r["reward"] for r in rows]))
        self.logger.record("eval/mean_reward", mean_reward)
        for metric in METRIC_NAMES[1:]:
            self.logger.record(f"eval/{metric}", float(np.mean([r[metric] for r in rows])))
        if len(rows) > 1:
            for r in rows:
                self.logger.record(f"eval_{r['scenario']}/reward", r["reward"])
                self.logger.record(f"eval_{r['scenario']}/slo_violation_share", r["slo_violation_share"])
        self.logger.dump(self.num_timesteps)
        append_evaluations(self.paths.evaluations, rows)
        if self.best is None or mean_reward > self.best:
            self.best = mean_reward
            self.model.save(str(self.paths.best_model))
            if vec_normalize is not None:
                vec_normalize.save(str(self.paths.best_stats))
        if self.verbose:
            print(f"eval at {self.num_timesteps:,} steps: mean reward {mean_reward:.3f} (best {self.best:.3f})")
        return mean_reward


EVAL_FIELDS = ("timesteps", "scenario", *METRIC_NAMES, "reward_std", "reward_ci95")


def append_evaluations(path: Path, rows: list[dict[str, Any]]) -> None:
    new = not path.exists()
    with path.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=EVAL_FIELDS)
        if new:
            writer.writeheader()
        writer.writerows(rows)


def best_evaluation(path: Path) -> float | None:
    """The best mean (over scenarios) evaluation reward in evaluations.csv, or None."""
    if not path.exists():
        return None
    by_step: dict[str, list[float]] = {}
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            by_step.setdefault(row["timesteps"], []).append(float(row["reward"]))
    return max((float(np.mean(v)) for v in by_step.values()), default=None)


# ------------------------------------------------------------------------------------------------ training
def save_checkpoint(model: Any, paths: RunPaths) -> Path:
    """Save the model and its VecNormalize statistics as a checkpoint (unless one exists at this step)."""
    model_path, stats_path = paths.checkpoint(model.num_timesteps)
    if not model_path.exists():
        paths.checkpoints.mkdir(parents=True, exist_ok=True)
        model.save(str(model_path))
        if model.get_vec_normalize_env() is not None:
            model.get_vec_normalize_env().save(str(stats_path))
    return model_path


def learn(
    cfg: TrainConfig,
    paths: RunPaths,
    train: Scenarios,
    evals: Scenarios,
    checkpoint: Path | None = None,
    progress_bar: bool = True,
    verbose: int = 0,
) -> Any:
    """Build (or load from ``checkpoint``) the model on the training envs and train it up to
    ``cfg.total_timesteps``; checkpoints, evaluations, TensorBoard and the final model go to ``paths``."""
    torch.set_num_threads(cfg.torch_threads)
    warnings.filterwarnings("ignore", category=TqdmExperimentalWarning)  # SB3's progress bar uses tqdm.rich
    algo = MaskablePPO if cfg.algo == "maskable_ppo" else PPO
    kwargs = cfg.algo_kwargs()
    if checkpoint is None:
        base, venv = make_training_env(cfg, train)
        model = algo("MlpPolicy", venv, seed=cfg.seed, device=cfg.device, verbose=verbose, **kwargs)
    else:
        base, venv = make_training_env(cfg, train, stats_path=vecnormalize_path(checkpoint))
        # the config's schedules replace the pickled ones (the same, unless the code that made them changed)
        schedules = {k: kwargs[k] for k in ("learning_rate", "clip_range")}
        model = algo.load(str(checkpoint), env=venv, device=cfg.device, custom_objects=schedules)
        model.set_random_seed(cfg.seed + model.num_timesteps)  # torch, numpy, action space
        venv.seed(resume_seeds(cfg, model.num_timesteps))  # the clusters: fresh episodes
    model.set_logger(configure(str(paths.tb), ["tensorboard"] + (["stdout"] if verbose else [])))

    callbacks = [EpisodeMetrics(base, [name for name, _ in train])]
    if progress_bar:  # ours counts env steps up to whole rollouts (SB3's reads e.g. 32,768/20,000)
        callbacks.append(StepProgress())
    if cfg.checkpoint_freq:
        callbacks.append(
            CheckpointCallback(
                max(cfg.checkpoint_freq // cfg.n_envs, 1), str(paths.checkpoints), save_vecnormalize=True
            )
        )
    if cfg.eval_freq:
        callbacks.append(PeriodicEval(evals, cfg, paths, verbose=verbose))
    try:
        model.learn(
            cfg.total_timesteps - model.num_timesteps,
            callback=CallbackList(callbacks),
            reset_num_timesteps=checkpoint is None,
            progress_bar=False,
        )
    except KeyboardInterrupt:
        save_checkpoint(model, paths)  # so that --resume continues from here
        raise
    save_checkpoint(model, paths)
    model.save(str(paths.final_model))
    if model.get_vec_normalize_env() is not None:
        model.get_vec_normalize_env().save(str(paths.final_stats))
    return model


def train(
    cfg: TrainConfig,
    run_dir: str | Path | None = None,
    command: str = "",
    traces_dir: str | Path | None = None,
    progress_bar: bool = True,
    verbose: int = 0,
) -> tuple[Any, Path]:
    """A new run: make its folder, write the resolved config, scenarios and command, then :func:`learn`.
    Returns (model, run folder)."""
    train_scenarios = load_scenario_configs(cfg.scenarios, traces_dir)
    eval_scenarios = load_scenario_configs(cfg.evaluation_scenarios, traces_dir)
    steps = {tuple(c.scaling.scale_steps) for _, c in train_scenarios + eval_scenarios}
    if len(steps) > 1:
        raise ConfigError(
            "the training and evaluation scenarios must share one action set; their "
            f"scaling.scale_steps differ: {sorted(steps)}"
        )
    root = Path(run_dir) if run_dir is not None else default_run_dir(cfg, [n for n, _ in train_scenarios])
    paths = RunPaths(root)
    if paths.config.exists():
        raise ConfigError(f"{root} already holds a run: continue it with --resume {root} or choose another folder")
    root.mkdir(parents=True, exist_ok=True)
    paths.config.write_text(cfg.to_yaml())
    write_scenarios(paths.scenarios, train_scenarios, eval_scenarios)
    append_command(paths.command, command or "(called from Python)")
    model = learn(cfg, paths, train_scenarios, eval_scenarios, progress_bar=progress_bar, verbose=verbose)
    return model, root


def resume(
    run_dir: str | Path,
    total_timesteps: int | None = None,
    command: str = "",
    progress_bar: bool = True,
    verbose: int = 0,
) -> tuple[Any, Path]:
    """Continue a run from its latest checkpoint with its saved config and scenarios, up to its
    ``total_timesteps`` (or the new ``total_timesteps``); the step counter and TensorBoard run continue."""
    paths = RunPaths(Path(run_dir))
    if not paths.config.is_file():
        raise ConfigError(f"{run_dir}: not a run folder (no {paths.config.name})")
    overrides = {"total_timesteps": total_timesteps} if total_timesteps is not None else None
    cfg = load_train_config(paths.config, overrides=overrides)
    train_scenarios, eval_scenarios = read_scenarios(paths.scenarios)
    latest = paths.latest_checkpoint()
    if latest is None:
        raise ConfigError(f"{run_dir}: no checkpoint to resume from in {paths.checkpoints}")
    checkpoint, steps = latest
    if steps >= cfg.total_timesteps:
        raise ConfigError(
            f"{run_dir}: the latest checkpoint is at {steps:,} steps, already total_timesteps "
            f"({cfg.total_timesteps:,}); pass a larger --total-timesteps to train further"
        )
    paths.config.write_text(cfg.to_yaml())
    append_command(paths.command, command or "(called from Python)")
    model = learn(
        cfg, paths, train_scenarios, eval_scenarios, checkpoint=checkpoint, progress_bar=progress_bar, verbose=verbose
    )
    return model, paths.root
