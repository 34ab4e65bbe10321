"""A deployable student that imitates the planning oracle (DAgger), per scenario or for several at once.

    python -m agents.experiments.imitate --config configs/train/imitate.yaml --scenario steady \
        --out runs/imitate_steady
    python -m agents.experiments.imitate --config configs/train/imitate_generalist.yaml \
        --out runs/imitate_generalist --workers 2

The teacher is ``planner`` (agents/references/planner.py): it plans with the simulator on sampled futures and
knows the expected rates, the cluster's hidden state and the model, none of which a real autoscaler has. The
student is a MaskablePPO policy network that sees only the env's observation, so it deploys like any trained
model (``ppo:RUN``). Learning from a teacher that sees more than the student is
"learning by cheating" (Chen, Zhou, Koltun and Krähenbühl, CoRL 2019); the student can only take the part of the
teacher's gain that its observation reveals (the "imitation gap": Weihs et al., NeurIPS 2021).

DAgger (Ross, Gordon and Bagnell, AISTATS 2011), one round after another:

1. **collect**: run ``episodes_per_round`` episodes (seeds from ``first_seed`` on, new ones each round); round 0
   acts with the teacher, later rounds with the last student; at every step where the choice matters (two allowed
   actions change the fleet differently) record the observation, the action mask and the teacher's action there;
2. **fit**: a new student (seeded) on every round's records so far: observation statistics from the records,
   then the masked cross-entropy of the teacher's actions (behaviour cloning), ``epochs`` passes;
3. **select**: run the student alone on the ``selection_seeds`` (below the benchmark's 1000, apart from the
   collection's and the tuner's 0..19) and keep it as the best model if its score is the highest so far: its mean
   reward, or over several scenarios the mean relative gain on each scenario's ``references`` policy
   (:func:`selection_score`).

With several ``scenarios`` one student learns them all (a generalist): every round collects each scenario's
episodes with its teacher (``teachers`` overrides ``teacher`` per scenario), in ``--workers`` processes (the
records do not depend on their number; ``seeds_per_job`` splits a scenario's episodes into several jobs, so that
the workers share the heavy teachers evenly), and fits one network on all records.

The run folder is a training run's (config.yaml, scenarios.yaml, command.txt, platform.json, tb/, best_model.zip
with its statistics and manifest), plus imitation.yaml, rounds.csv (one row per round), rounds_by_scenario.csv (one
per round and scenario), ``rounds/`` (round_<k>_model.zip) and records.npz (every record so far: obs, masks,
labels, round, scenario). Why the selection seeds
and not the tuner's: a tuned rule's reward on its tuning seeds is optimistic (it was chosen there), so a student
compared there starts behind (docs/results.md, stop 49).
"""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import torch
import typer
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from stable_baselines3.common.logger import configure

from scaling_env.config import ConfigError, EnvConfig, deep_merge, format_validation_error, read_yaml_mapping
from scaling_env.files import atomic_file, atomic_path, atomic_write_text, output_lock
from scaling_env.rollout import rollout
from scaling_env.scenarios import load_scenario

from ..learned.ppo import algo_class, apply_env_overrides, load_ppo_policy
from ..learned.torch_kernels import check_training_kernels, pin_training_kernels
from ..references.planner import bounded
from ..registry import make_policy
from .ablation import TUNING_SEEDS
from .execution import Executor, run_all
from .train import (
    RunPaths,
    append_command,
    append_platform,
    copy_snapshot,
    make_training_env,
    save_snapshot,
    write_scenarios,
)
from .train_config import FIRST_BENCHMARK_SEED, TrainConfig

ROUNDS_FILE = "rounds.csv"  # one row per round (not a training run's evaluations.csv: other columns)
SCENARIO_ROUNDS_FILE = "rounds_by_scenario.csv"  # one row per round and scenario
Envs = list[tuple[str, EnvConfig]]  # (scenario, its env config with the student's env_overrides)


class ImitationConfig(BaseModel):
    """The DAgger run (module docstring); ``train`` and ``set`` give the student's network and observation."""

    model_config = ConfigDict(extra="forbid")
    train: str = Field("configs/train/ppo.yaml", description="training config of the student's model")
    set: dict[str, Any] = Field(default_factory=dict, description="overrides of that config (nested keys)")
    scenarios: list[str] = Field(
        default_factory=list,
        description="the scenarios: one trains a specialist, several one generalist student (--scenario sets them)",
    )
    teacher: str = Field("planner", description="the policy spec imitated")
    teachers: dict[str, str] = Field(default_factory=dict, description="a scenario's own teacher, in place of teacher")
    references: dict[str, str] = Field(
        default_factory=dict,
        description="with several scenarios, each one's reference policy for the round's selection score",
    )
    rounds: int = Field(6, ge=1, le=100, description="DAgger rounds (round 0 collects with the teacher)")
    episodes_per_round: int = Field(20, ge=1, le=1000, description="episodes collected per round")
    first_seed: int = Field(300, ge=0, description="the collection's first seed (round k: after round k-1's)")
    seeds_per_job: int | None = Field(
        None,
        ge=1,
        description="split a scenario's episodes of a round into jobs of this many seeds, so that the --workers "
        "share the heavy teachers evenly (None: one job per scenario). The records' order follows the jobs",
    )
    selection_seeds: tuple[int, int] = Field((500, 20), description="(first, count): the seeds that pick the round")
    epochs: int = Field(60, ge=1, le=10000, description="passes over the records per fit")
    batch_size: int = Field(256, ge=1)
    learning_rate: float = Field(1e-3, gt=0.0, le=1.0)
    class_weights: Literal["none", "inverse_sqrt"] = Field(
        "none", description="weight each record by 1/sqrt(its action's share of the records): rarer actions count more"
    )

    @model_validator(mode="after")
    def _seeds_apart(self) -> ImitationConfig:
        collect = range(self.first_seed, self.first_seed + self.rounds * self.episodes_per_round)
        first, count = self.selection_seeds
        select = range(first, first + count)
        if count < 1 or first < 0:
            raise ValueError(
                f"selection_seeds (first, count) needs first >= 0 and count >= 1, got {self.selection_seeds}"
            )
        for name, seeds in (("the collection's seeds", collect), ("selection_seeds", select)):
            if seeds.stop > FIRST_BENCHMARK_SEED:
                raise ValueError(
                    f"{name} reach {seeds.stop - 1}: they must stay below the benchmark's {FIRST_BENCHMARK_SEED}"
                )
            if set(seeds) & set(TUNING_SEEDS):
                raise ValueError(f"{name} ({seeds.start}..{seeds.stop - 1}) overlap the tuner's seeds 0..19")
        for field in ("teachers", "references"):
            stray = sorted(set(getattr(self, field)) - set(self.scenarios)) if self.scenarios else []
            if stray:
                raise ValueError(f"{field} names {stray}, which are not among scenarios {self.scenarios}")
        if set(collect) & set(select):
            raise ValueError(
                f"the collection's seeds ({collect.start}..{collect.stop - 1}) overlap selection_seeds "
                f"({select.start}..{select.stop - 1})"
            )
        return self

    def teacher_for(self, scenario: str) -> str:
        """The scenario's teacher: its ``teachers`` entry, else ``teacher``."""
        return self.teachers.get(scenario, self.teacher)

    def collection_seeds(self, round_: int) -> list[int]:
        first = self.first_seed + round_ * self.episodes_per_round
        return list(range(first, first + self.episodes_per_round))

    def collection_jobs(self, round_: int) -> list[tuple[int, ...]]:
        """The round's seeds, split into the seed tuples of its collection jobs (``seeds_per_job``)."""
        seeds = self.collection_seeds(round_)
        size = self.seeds_per_job or len(seeds)
        return [tuple(seeds[i : i + size]) for i in range(0, len(seeds), size)]

    def selection(self) -> list[int]:
        first, count = self.selection_seeds
        return list(range(first, first + count))


def load_imitation_config(path: str | Path) -> ImitationConfig:
    """The file, validated; errors name it and the field."""
    data = read_yaml_mapping(path, "imitation config")
    try:
        return ImitationConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, str(path), ImitationConfig)) from None


def student_config(icfg: ImitationConfig, scenarios: str | list[str]) -> TrainConfig:
    """The student's training config: ``train`` with ``set``, on the scenario(s), maskable."""
    scenarios = [scenarios] if isinstance(scenarios, str) else scenarios
    data = deep_merge(read_yaml_mapping(icfg.train, "training config"), icfg.set)
    data = deep_merge(data, {"scenarios": list(scenarios), "eval_scenarios": list(scenarios)})
    try:
        cfg = TrainConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, f"{icfg.train} with the imitation's set", TrainConfig)) from None
    if cfg.algo != "maskable_ppo":
        raise ConfigError(
            f"the imitation config's set.algo must be maskable_ppo (the student is fitted to masked actions); "
            f"{icfg.train} with set gives {cfg.algo}"
        )
    if cfg.residual is not None or cfg.frame_stack > 1 or cfg.recurrent is not None:
        raise ConfigError(f"{icfg.train}: the student sees one observation: no residual, frame_stack or recurrent")
    return cfg


def choice_steps(sim: Any, config: EnvConfig, masks: np.ndarray, taught: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """((B,) whether two allowed actions change the fleet differently, as the planner decides where to plan;
    (B,) the teacher's actions as allowed ones: a blocked action is a no-op, so it becomes the first allowed
    action that changes the fleet as little, and of equal actions (at a bound) the teacher's if allowed)."""
    sc = config.scaling
    change = bounded(sim.controlled_counts(), np.asarray(sc.scale_steps, np.int64), sc.min_instances, sc.max_instances)
    effective = np.where(masks, change, 0)
    where = (effective.max(axis=1) != effective.min(axis=1)) & (sim.step_index() < config.episode_steps)
    rows = np.arange(len(taught))
    wanted = effective[rows, taught]
    same = masks & (effective == wanted[:, None])
    labels = np.where(same[rows, taught], taught, np.argmax(same, axis=1))
    return where, labels


class Collector:
    """A batch policy that acts with ``actor`` (the teacher where None) and records the teacher's action, the
    observation and the mask at every step where the choice matters."""

    def __init__(self, teacher: Any, actor: Any | None, config: EnvConfig) -> None:
        self.teacher, self.actor, self.config = teacher, actor, config
        self.obs: list[np.ndarray] = []
        self.masks: list[np.ndarray] = []
        self.labels: list[np.ndarray] = []
        self.sim: Any = None

    def reset(self, seed: int | None = None, num_envs: int = 1) -> None:
        self.teacher.reset(seed=seed, num_envs=num_envs)
        if self.actor is not None:
            self.actor.reset(seed=seed, num_envs=num_envs)

    def bind(self, env: Any) -> None:
        self.sim = env.sim
        self.teacher.bind(env)
        if self.actor is not None and hasattr(self.actor, "bind"):
            self.actor.bind(env)

    def act_batch(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        masks = np.asarray(self.sim.action_masks(), dtype=bool)
        taught = self.teacher.act_batch(obs, info)
        taught = np.asarray(taught, np.int64)
        where, labels = choice_steps(self.sim, self.config, masks, taught)
        self.obs.append(np.asarray(obs, np.float32)[where])
        self.masks.append(masks[where])
        self.labels.append(labels[where])
        return taught if self.actor is None else self.actor.act_batch(obs, info)


def record_weights(labels: np.ndarray, n_actions: int, mode: str) -> np.ndarray:
    """Each record's weight in the fit, mean 1: equal (``none``), or 1/sqrt(its action's share of the records)."""
    if mode == "none":
        return np.ones(len(labels), dtype=np.float32)
    share = np.bincount(labels, minlength=n_actions) / len(labels)
    weights = 1.0 / np.sqrt(share[labels])
    return (weights / weights.mean()).astype(np.float32)


def fit_student(cfg: TrainConfig, icfg: ImitationConfig, envs: Envs, data: dict) -> tuple[Any, float, float]:
    """A new seeded student fitted to ``data`` (obs, masks, labels); returns (model, final loss, accuracy)."""
    torch.manual_seed(cfg.seed)
    _, venv = make_training_env(cfg, envs)
    model = algo_class(cfg.algo)(cfg.policy_name, venv, seed=cfg.seed, device=cfg.device, **cfg.algo_kwargs())
    norm = model.get_vec_normalize_env()
    x = data["obs"].astype(np.float64)
    if norm is not None and norm.norm_obs:
        norm.obs_rms.mean = x.mean(axis=0)
        norm.obs_rms.var = x.var(axis=0)
        norm.obs_rms.count = float(len(x))
        x = norm.normalize_obs(data["obs"])
    policy = model.policy
    policy.set_training_mode(True)
    obs_t = torch.as_tensor(np.asarray(x, np.float32))
    masks_t = torch.as_tensor(data["masks"])
    labels_t = torch.as_tensor(data["labels"])
    weights_t = torch.as_tensor(record_weights(data["labels"], int(model.action_space.n), icfg.class_weights))
    opt = torch.optim.Adam(policy.parameters(), lr=icfg.learning_rate)
    gen = torch.Generator().manual_seed(cfg.seed)
    n = len(labels_t)
    for _ in range(icfg.epochs):
        order = torch.randperm(n, generator=gen)
        for i in range(0, n, icfg.batch_size):
            b = order[i : i + icfg.batch_size]
            dist = policy.get_distribution(obs_t[b], action_masks=masks_t[b].numpy())
            loss = -(weights_t[b] * dist.log_prob(labels_t[b])).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    policy.set_training_mode(False)
    with torch.no_grad():  # over every record
        dist = policy.get_distribution(obs_t, action_masks=masks_t.numpy())
        loss = -(weights_t * dist.log_prob(labels_t)).mean()
        accuracy = float((dist.distribution.probs.argmax(dim=1) == labels_t).float().mean())
    return model, float(loss), accuracy


def mean_of(metrics: list[dict[str, float]], key: str) -> float:
    return float(np.mean([m[key] for m in metrics]))


@dataclass(frozen=True)
class CollectJob:
    """One scenario's episodes of one round: acted by ``student`` (a model file; the teacher where None)."""

    scenario: str
    env_config: EnvConfig
    teacher: str
    student: str | None
    seeds: tuple[int, ...]


def collect(job: CollectJob) -> dict[str, Any]:
    """Run a :class:`CollectJob` (in this process or a worker): its records and the episodes' metrics."""
    pin_training_kernels()  # in a spawned worker: the kernels the student was fitted with, before torch computes
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the student acts on one cluster batch; restored for the fits of this process
    try:
        teacher = make_policy(job.teacher, job.env_config, scenario=job.scenario)
        student = None if job.student is None else load_ppo_policy(job.student, job.env_config, scenario=job.scenario)
        collector = Collector(teacher, student, job.env_config)
        metrics = rollout(job.env_config, collector, list(job.seeds), parallel=False).metrics
    finally:
        torch.set_num_threads(threads)
    return {
        "obs": np.concatenate(collector.obs),
        "masks": np.concatenate(collector.masks),
        "labels": np.concatenate(collector.labels),
        "metrics": metrics,
    }


def merge_jobs(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One scenario's collection from its jobs' results, in the jobs' order."""
    if len(parts) == 1:
        return parts[0]
    joined = {key: np.concatenate([p[key] for p in parts]) for key in ("obs", "masks", "labels")}
    return {**joined, "metrics": [m for p in parts for m in p["metrics"]]}


def selection_score(rewards: dict[str, float], references: dict[str, float]) -> float:
    """A round's score: its mean reward on one scenario; over several, the mean of (reward - reference's) /
    |reference's|, so that each scenario counts by its relative gain whatever its reward's scale."""
    if len(rewards) == 1:
        return next(iter(rewards.values()))
    return float(np.mean([(rewards[s] - references[s]) / abs(references[s]) for s in rewards]))


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with atomic_file(path, newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def refuse_used_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"{out} already exists and is not an empty folder; choose another --out")


def prepare(icfg: ImitationConfig, names: list[str]) -> tuple[ImitationConfig, TrainConfig, Envs]:
    """Every check a run makes before it writes anything: (the config for these scenarios, the student's training
    config, each scenario's env config). Scenarios chosen from the config's (``--scenario``) keep their teachers
    and references; any other ``teachers`` or ``references`` entry is an error, as is a scenario without a
    reference in a run of several, or scenarios whose actions or observations differ."""
    if not names or "" in names or len(set(names)) != len(names):
        raise ConfigError(f"the scenarios must be named once each, at least one: got {names}")
    if icfg.scenarios:
        subset = {"teachers": icfg.teachers, "references": icfg.references}
        keep = {k: {s: v for s, v in d.items() if s in names} for k, d in subset.items()}
    else:
        keep = {"teachers": icfg.teachers, "references": icfg.references}
    for field, d in keep.items():
        stray = sorted(set(d) - set(names))
        if stray:
            raise ConfigError(f"{field} names {stray}, which are not among the run's scenarios {names}")
    icfg = icfg.model_copy(update={"scenarios": list(names), **keep})
    missing = [s for s in names if s not in icfg.references]
    if len(names) > 1 and missing:
        raise ConfigError(f"references: a student of several scenarios needs a reference for each; missing {missing}")
    cfg = student_config(icfg, names)
    envs: Envs = []
    for s in names:
        env_config = apply_env_overrides(load_scenario(s).config, cfg.env_overrides, "env_overrides")
        if 0 not in env_config.scaling.scale_steps:  # a blocked teacher action is recorded as the allowed no-op
            raise ConfigError(f"scenario {s}: scaling.scale_steps has no 0 (hold); the student needs one")
        if envs:
            first, config0 = envs[0]
            if tuple(env_config.scaling.scale_steps) != tuple(config0.scaling.scale_steps):
                raise ConfigError(
                    f"scenario {s}: scaling.scale_steps {list(env_config.scaling.scale_steps)} differ from "
                    f"{first}'s {list(config0.scaling.scale_steps)}: one student has one action space"
                )
            if env_config.observation != config0.observation:
                raise ConfigError(f"scenario {s}: its observation options differ from {first}'s: one student sees one")
        make_policy(icfg.teacher_for(s), env_config, scenario=s)  # a bad teacher is named before anything is written
        if s in icfg.references:
            make_policy(icfg.references[s], env_config, scenario=s)
        envs.append((s, env_config))
    return icfg, cfg, envs


def imitate(
    icfg: ImitationConfig,
    scenarios: str | list[str],
    out: Path,
    command: str = "",
    log: Any = print,
    workers: int = 1,
) -> Path:
    """Run DAgger (module docstring) into the run folder ``out``; returns the best model's path. With several
    scenarios one student learns them all (a generalist): each round collects every scenario's episodes
    (``workers`` processes at once; the records are the same whatever their number) and the round's score is
    :func:`selection_score` against each scenario's ``references`` policy on the selection seeds. torch fits with
    its AVX2 kernels on x86-64, as training does (:mod:`agents.learned.torch_kernels`)."""
    pin_training_kernels()
    check_training_kernels()
    names = [scenarios] if isinstance(scenarios, str) else list(scenarios)
    refuse_used_out(out)
    icfg, cfg, envs = prepare(icfg, names)
    torch.set_num_threads(cfg.torch_threads)
    references: dict[str, float] = {}
    if len(names) > 1:
        for s, env_config in envs:
            ref = make_policy(icfg.references[s], env_config, scenario=s)
            references[s] = mean_of(rollout(env_config, ref, icfg.selection(), parallel=False).metrics, "reward")
            if references[s] == 0.0:
                raise ConfigError(f"references: {icfg.references[s]} earns 0 on {s}'s selection seeds: no scale")
    paths = RunPaths(out)
    rounds_dir = out / "rounds"
    with output_lock(out, "run folder"), Executor(workers) as executor:
        refuse_used_out(out)
        rounds_dir.mkdir(parents=True, exist_ok=True)
        write_scenarios(paths.scenarios, envs, envs)
        append_command(paths.command, command or "(called from Python)")
        append_platform(paths.platform)
        atomic_write_text(out / "imitation.yaml", yaml.safe_dump(icfg.model_dump(mode="json"), sort_keys=False))
        atomic_write_text(paths.config, cfg.to_yaml())
        logger = configure(str(paths.tb), ["tensorboard"])
        data: dict[str, list[np.ndarray]] = {"obs": [], "masks": [], "labels": [], "scenario": [], "round": []}
        best = -np.inf
        rows: list[dict[str, Any]] = []
        by_scenario: list[dict[str, Any]] = []
        student: str | None = None
        for k in range(icfg.rounds):
            start = time.perf_counter()
            chunks = icfg.collection_jobs(k)
            jobs = [CollectJob(s, c, icfg.teacher_for(s), student, seeds) for s, c in envs for seeds in chunks]
            done = run_all(executor, collect, jobs)
            results = [merge_jobs(done[i : i + len(chunks)]) for i in range(0, len(done), len(chunks))]
            for i, result in enumerate(results):  # in the scenarios' order, whatever order they finished in
                for key in ("obs", "masks", "labels"):
                    data[key].append(result[key])
                data["scenario"].append(np.full(len(result["labels"]), i))
                data["round"].append(np.full(len(result["labels"]), k))
            joined = {key: np.concatenate(v) for key, v in data.items()}
            with atomic_path(out / "records.npz") as tmp, open(tmp, "wb") as f:  # every round's records so far
                np.savez_compressed(f, **joined, scenarios=np.array(names))
            model, loss, accuracy = fit_student(cfg, icfg, envs, joined)
            model_path = rounds_dir / f"round_{k}_model.zip"
            snapshot = (model_path, rounds_dir / f"round_{k}_vecnormalize.pkl", rounds_dir / f"round_{k}_model.json")
            save_snapshot(model, *snapshot, round=k, records=int(len(joined["labels"])))
            student = str(model_path)
            chosen = {}
            for s, env_config in envs:
                policy = load_ppo_policy(model_path, env_config, scenario=s)
                chosen[s] = rollout(env_config, policy, icfg.selection(), parallel=False).metrics
            rewards = {s: mean_of(m, "reward") for s, m in chosen.items()}
            score = selection_score(rewards, references)
            collected = [m for r in results for m in r["metrics"]]
            picked = [m for ms in chosen.values() for m in ms]
            row = {
                "round": k,
                "records": int(len(joined["labels"])),
                "collected_by": "teacher" if k == 0 else "student",
                "collected_reward": mean_of(collected, "reward"),
                "loss": loss,
                "accuracy": accuracy,
                "selection_reward": mean_of(picked, "reward"),
                "selection_slo_violation_share": mean_of(picked, "slo_violation_share"),
                "selection_mean_instances": mean_of(picked, "mean_instances"),
                "selection_score": score,
                "seconds": time.perf_counter() - start,
            }
            rows.append(row)
            for i, (s, _) in enumerate(envs):
                by_scenario.append(
                    {
                        "round": k,
                        "scenario": s,
                        "teacher": icfg.teacher_for(s),
                        "records": int(np.sum(joined["scenario"] == i)),
                        "collected_reward": mean_of(results[i]["metrics"], "reward"),
                        "selection_reward": rewards[s],
                        "reference": icfg.references.get(s, ""),
                        "reference_reward": references.get(s, float("nan")),
                        "selection_slo_violation_share": mean_of(chosen[s], "slo_violation_share"),
                        "selection_mean_instances": mean_of(chosen[s], "mean_instances"),
                    }
                )
            for key in ("loss", "accuracy", "selection_reward", "selection_score", "collected_reward"):
                logger.record(f"imitation/{key}", row[key])
            logger.dump(k)
            if score > best:
                best = score
                copy_snapshot(snapshot, (paths.best_model, paths.best_stats, paths.best_manifest), round=k)
            _write_csv(out / ROUNDS_FILE, rows)
            _write_csv(out / SCENARIO_ROUNDS_FILE, by_scenario)
            ref_text = {s: f" ({references[s]:.2f})" if references else "" for s in rewards}
            log(
                f"round {k}: {row['records']} records, accuracy {accuracy:.3f}, selection reward "
                f"{row['selection_reward']:.2f} (SLO {row['selection_slo_violation_share']:.4f}), score {score:.4f}, "
                f"{row['seconds']:.0f} s; " + ", ".join(f"{s} {r:.2f}{ref_text[s]}" for s, r in rewards.items())
            )
    return paths.best_model


app = typer.Typer(add_completion=False)


@app.command()
def main(
    out: Annotated[Path, typer.Option(help="the run folder (new)")],
    scenario: Annotated[
        str | None, typer.Option(help="the scenario(s), comma-separated (default: the config's scenarios)")
    ] = None,
    config: Annotated[Path, typer.Option(help="the imitation config")] = Path("configs/train/imitate.yaml"),
    seed: Annotated[int | None, typer.Option(help="the student's seed (the config's set.seed)")] = None,
    workers: Annotated[int, typer.Option(help="processes collecting scenarios at once (same records)")] = 1,
) -> None:
    """DAgger from the planning oracle into a MaskablePPO student (module docstring)."""
    import sys

    pin_training_kernels()  # before any torch operation
    try:
        icfg = load_imitation_config(config)
        if seed is not None:
            icfg = icfg.model_copy(update={"set": deep_merge(icfg.set, {"seed": seed})})
        names = [s.strip() for s in scenario.split(",")] if scenario is not None else icfg.scenarios
        if not names or "" in names:
            raise ConfigError(f"--scenario: name one or more scenarios, comma-separated (got {scenario!r})")
        if workers < 1:
            raise ConfigError(f"--workers must be at least 1, got {workers}")
        best = imitate(icfg, names, out, command=" ".join(sys.argv), workers=workers)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"best model: {best}")


if __name__ == "__main__":
    app()
