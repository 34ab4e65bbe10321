"""``scaling-env sweep GRID.yaml``: training runs over seeds x scenarios x hyperparameters, one run folder each.

The grid file::

    config: ppo.yaml              # the base training config (relative to this file; default: the shipped one)
    seeds: [0, 1]                 # training seeds: one run each
    scenarios:                    # training scenario sets: one run each (a name, a YAML path or a list of them;
      - train_diurnal             #   default: the config's scenarios)
      - [train_diurnal, train_flash_crowd]
    grid:                         # --set keys of the training config -> values: every combination
      ppo.learning_rate: [3.0e-4, 1.0e-4]
      ppo.ent_coef: [0.0, 0.001]
    set:                          # --set keys applied to every run
      total_timesteps: 1000000

Every run is a job on the execution layer (``agents.experiments.execution``: local processes, or Ray tasks with
``--backend ray``) that calls ``train`` into ``<out>/<run name>/``, the same run folder ``scaling-env train``
writes (config, scenarios, TensorBoard, checkpoints, evaluations.csv, best and final model). Plain tasks rather
than Ray Tune trials: a run's state is its run folder, which ``train --resume`` already continues, so Tune's own
trial folders, checkpoint syncing and experiment state would duplicate it; the same jobs then run locally too.

Running the command again continues the sweep: a run folder with ``final_model.zip`` is finished and skipped; one
with checkpoints is resumed from the latest (``train.resume``); one its sweep started but killed before its first
checkpoint holds nothing worth keeping and is started again. A folder that holds another config is never touched:
that run is reported as a conflict. At the end, ``<out>/sweep.csv`` and a table hold each run's evaluations (the
last periodic evaluation and the best, means over the evaluation scenarios).
"""

from __future__ import annotations

import csv
import itertools
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Optional

import numpy as np
import typer
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from rich import box
from rich.table import Table

from scaling_env.config import ConfigError, deep_merge, format_validation_error, read_yaml_mapping
from scaling_env.resources import config_dir
from scaling_env.traces import TraceError

from .console import console, fail
from .execution import ExecutionError, Failure, make_executor, run_all

DEFAULT_OUT = Path("runs/sweep")
SWEEP_MARK = "scaling-env sweep"  # in command.txt of a run the sweep started


class SweepSpec(BaseModel):
    """A grid file (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    config: Optional[str] = Field(None, description="base training config, relative to the grid file")
    seeds: list[int] = Field([0], min_length=1, description="training seeds, one run each")
    scenarios: Optional[list[str | list[str]]] = Field(None, min_length=1, description="training scenario sets")
    grid: dict[str, list[Any]] = Field(default_factory=dict, description="--set keys -> values, every combination")
    set: dict[str, Any] = Field(default_factory=dict, description="--set keys applied to every run")

    @field_validator("grid")
    @classmethod
    def _values(cls, grid: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for key, values in grid.items():
            if not values:
                raise ValueError(f"{key}: give at least one value")
        return grid


@dataclass(frozen=True)
class SweepRun:
    """One training run of the sweep: its folder and resolved config (a job for a worker)."""

    name: str
    run_dir: str  # absolute: a Ray worker has its own working directory
    config: Any  # TrainConfig
    traces_dir: str | None
    seed: int
    scenarios: tuple[str, ...]
    values: tuple[tuple[str, Any], ...]  # the grid's values for this run


def _nested(key: str, value: Any) -> dict[str, Any]:
    out: Any = value
    for part in reversed(key.split(".")):
        out = {part: out}
    return out


def _label(value: Any) -> str:
    text = value if isinstance(value, str) else yaml.safe_dump(value, default_flow_style=True, width=1000)
    text = text.strip().removesuffix("...").strip()
    return re.sub(r"[^A-Za-z0-9._+=-]+", "-", text).strip("-")


def run_name(seed: int, scenarios: tuple[str, ...], values: tuple[tuple[str, Any], ...]) -> str:
    names = [Path(s).stem for s in scenarios]
    label = "+".join(names) if len(names) <= 3 else f"{names[0]}+{len(names) - 1}more"
    parts = [f"seed{seed}", label, *(f"{key}={_label(v)}" for key, v in values)]
    return "_".join(parts)


def _absolute_paths(cfg: Any) -> Any:
    """The config with its scenario YAML paths made absolute (relative to this directory, as ``train`` reads
    them): a Ray worker runs in another directory, maybe on another machine."""

    def fix(names: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if names is None:
            return None
        return tuple(str(Path(n).resolve()) if n.endswith((".yaml", ".yml")) else n for n in names)

    return cfg.model_copy(update={"scenarios": fix(cfg.scenarios), "eval_scenarios": fix(cfg.eval_scenarios)})


def plan(grid_file: Path, out: Path, traces_dir: str | None = None) -> list[SweepRun]:
    """Every run of the grid file, each config validated (a ConfigError names the file, the run and the field)."""
    from .train_config import load_train_config

    data = read_yaml_mapping(grid_file, "sweep grid")
    try:
        spec = SweepSpec.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, str(grid_file), SweepSpec)) from None
    base = (grid_file.parent / spec.config) if spec.config else config_dir("train") / "ppo.yaml"
    if not base.is_file():
        raise ConfigError(f"{grid_file}: config: {base} does not exist")
    fixed: dict[str, Any] = {}
    for key, value in spec.set.items():
        fixed = deep_merge(fixed, _nested(key, value))

    def resolve(name: str) -> str:  # a YAML path relative to the grid file; a scenario name as it is
        if name.endswith((".yaml", ".yml")):
            return str((grid_file.parent / name).resolve())
        return name

    if spec.scenarios is None:
        scenario_sets: list[tuple[str, ...] | None] = [None]
    else:
        scenario_sets = [tuple(resolve(s) for s in ([e] if isinstance(e, str) else e)) for e in spec.scenarios]
    keys = list(spec.grid)
    runs: list[SweepRun] = []
    for seed, scen, combo in itertools.product(spec.seeds, scenario_sets, itertools.product(*spec.grid.values())):
        values = tuple(zip(keys, combo))
        overrides = deep_merge(fixed, {"seed": seed})
        if scen is not None:
            overrides["scenarios"] = list(scen)
        for key, value in values:
            overrides = deep_merge(overrides, _nested(key, value))
        where = f"{grid_file}: run seed={seed}" + "".join(f", {k}={v!r}" for k, v in values)
        try:
            cfg = load_train_config(base, overrides=overrides)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        cfg = _absolute_paths(cfg)
        name = run_name(seed, tuple(cfg.scenarios), values)
        runs.append(SweepRun(name, str((out / name).resolve()), cfg, traces_dir, seed, tuple(cfg.scenarios), values))
    names = [r.name for r in runs]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise ConfigError(f"{grid_file}: two runs would share the folder {dup}: make the grid's values distinct")
    return runs


def run_state(run: SweepRun) -> str:
    """``new``, ``finished``, ``resume``, ``restart`` (started by the sweep, no checkpoint yet) or ``conflict``
    (the folder holds another config, or something that is not a run of this sweep)."""
    from .train import RunPaths

    paths = RunPaths(Path(run.run_dir))
    if not paths.root.exists():
        return "new"
    if not paths.config.is_file():
        return "conflict" if any(paths.root.iterdir()) else "new"
    if yaml.safe_load(paths.config.read_text()) != yaml.safe_load(run.config.to_yaml()):
        return "conflict"
    if paths.final_model.is_file():
        return "finished"
    if paths.latest_checkpoint() is not None:
        return "resume"
    made_by_sweep = paths.command.is_file() and SWEEP_MARK in paths.command.read_text()
    return "restart" if made_by_sweep else "conflict"


def train_run(run: SweepRun) -> dict[str, Any]:
    """A worker's job: train, resume or skip one run; returns what was done and how long it took."""
    from .train import resume, train

    state = run_state(run)
    t = time.perf_counter()
    command = f"{SWEEP_MARK} (run {run.name})"
    if state == "finished":
        return {"state": state, "seconds": 0.0}
    if state == "conflict":
        raise ConfigError(f"{run.run_dir} holds another run (its config.yaml differs): not touching it")
    if state == "restart":  # killed before its first checkpoint: nothing in it can be continued
        shutil.rmtree(run.run_dir)
    if state == "resume":
        resume(run.run_dir, command=command, progress_bar=False)
    else:
        train(run.config, run.run_dir, command=command, traces_dir=run.traces_dir, progress_bar=False)
    return {"state": "resumed" if state == "resume" else "trained", "seconds": time.perf_counter() - t}


def evaluations(run_dir: Path) -> dict[str, Any]:
    """The last and the best periodic evaluation of a run folder (means over its evaluation scenarios)."""
    path = run_dir / "evaluations.csv"
    if not path.is_file():
        return {}
    scenario_rows: dict[int, dict[str, dict[str, str]]] = {}
    with path.open(newline="") as f:
        for row in csv.DictReader(f):  # a resumed run may evaluate a step again: its latest rows count
            scenario_rows.setdefault(int(row["timesteps"]), {})[row["scenario"]] = row
    if not scenario_rows:
        return {}
    by_step = {step: list(rows.values()) for step, rows in scenario_rows.items()}

    def mean(rows: list[dict[str, str]], key: str) -> float:
        return float(np.mean([float(r[key]) for r in rows]))

    last = max(by_step)
    best = max(by_step, key=lambda s: (mean(by_step[s], "reward"), -s))
    return {
        "timesteps": last,
        "eval_reward": mean(by_step[last], "reward"),
        "eval_slo_violation_share": mean(by_step[last], "slo_violation_share"),
        "best_eval_reward": mean(by_step[best], "reward"),
        "best_at": best,
    }


SUMMARY_FIELDS = (
    "run",
    "seed",
    "scenarios",
    "params",
    "status",
    "timesteps",
    "eval_reward",
    "eval_slo_violation_share",
    "best_eval_reward",
    "best_at",
    "seconds",
)


def summary_rows(runs: list[SweepRun], outcomes: list[Any]) -> list[dict[str, Any]]:
    rows = []
    for run, res in zip(runs, outcomes):
        status = f"failed: {res.message}" if isinstance(res, Failure) else res["state"]
        rows.append(
            {
                "run": run.name,
                "seed": run.seed,
                "scenarios": "+".join(Path(s).stem for s in run.scenarios),
                "params": " ".join(f"{k}={_label(v)}" for k, v in run.values),
                "short_params": " ".join(f"{k.rsplit('.', 1)[-1]}={_label(v)}" for k, v in run.values),
                "status": status,
                **evaluations(Path(run.run_dir)),
                "seconds": None if isinstance(res, Failure) else round(res["seconds"], 1),
            }
        )
    return rows


def write_summary(path: Path, rows: list[dict[str, Any]]) -> None:
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=SUMMARY_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def summary_table(rows: list[dict[str, Any]], title: str) -> Table:
    table = Table(title=title, box=box.SIMPLE_HEAD)
    for col, justify in (
        ("seed", "right"),
        ("scenarios", "left"),
        ("params", "left"),
        ("status", "left"),
        ("steps", "right"),
        ("eval reward", "right"),
        ("SLO viol.", "right"),
        ("best", "right"),
    ):
        table.add_column(col, justify=justify, overflow="fold")
    for r in rows:
        has = "eval_reward" in r
        table.add_row(
            str(r["seed"]),
            r["scenarios"],
            r["short_params"] or "-",
            r["status"],
            f"{r['timesteps']:,}" if has else "-",
            f"{r['eval_reward']:.1f}" if has else "-",
            f"{r['eval_slo_violation_share']:.1%}" if has else "-",
            f"{r['best_eval_reward']:.1f}" if has else "-",
        )
    return table


def sweep_command(
    grid: Annotated[Path, typer.Argument(help="the grid YAML (config, seeds, scenarios, grid, set)")],
    out: Annotated[Path, typer.Option(help="folder of the run folders and sweep.csv")] = DEFAULT_OUT,
    workers: Annotated[int, typer.Option(min=1, help="runs at once (local processes or Ray tasks)")] = 1,
    backend: Annotated[str, typer.Option(help="where runs train: local (processes) or ray")] = "local",
    address: Annotated[
        Optional[str], typer.Option(help="Ray cluster address (with --backend ray; default: start a local Ray)")
    ] = None,
    traces_dir: Annotated[Optional[Path], typer.Option(help="folder of trace CSVs")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="list the runs and their state; train nothing")] = False,
) -> None:
    """Train one run per seed x scenario set x grid point (one run folder each); re-running skips finished runs
    and resumes unfinished ones; prints the evaluations of every run."""
    if not grid.is_file():
        fail(f"{grid}: no such grid file")
    tdir = str(traces_dir.resolve()) if traces_dir else None
    try:
        runs = plan(grid, out, tdir)
        states = [run_state(r) for r in runs]
    except (ConfigError, TraceError) as exc:
        fail(str(exc))
    counts = {s: states.count(s) for s in dict.fromkeys(states)}
    console.print(
        f"sweep {grid}: {len(runs)} run(s) in {out} (" + ", ".join(f"{n} {s}" for s, n in counts.items()) + ")",
        soft_wrap=True,
    )
    if dry_run:
        for r, s in zip(runs, states):
            console.print(f"  {s:9s} {r.name}", soft_wrap=True)
        return
    conflicts = [r.run_dir for r, s in zip(runs, states) if s == "conflict"]
    if conflicts:
        fail(
            "these folders hold other runs (another config.yaml): move them or choose another --out: "
            + ", ".join(conflicts)
        )
    try:
        executor = make_executor(backend, workers, address)
    except ExecutionError as exc:
        fail(str(exc))
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with executor:
        console.print(f"training on {executor.describe()}", soft_wrap=True)

        def done(i: int, res: Any) -> None:
            text = f"failed: {res.message}" if isinstance(res, Failure) else res["state"]
            console.print(f"{runs[i].name}: {text}", soft_wrap=True)

        outcomes = run_all(executor, train_run, runs, on_done=done, failures="return")
    rows = summary_rows(runs, outcomes)
    write_summary(out / "sweep.csv", rows)
    seconds = time.perf_counter() - t0
    console.print(summary_table(rows, f"Sweep {grid}: evaluation reward (mean over the evaluation scenarios)"))
    failed = sum(isinstance(o, Failure) for o in outcomes)
    console.print(
        f"{len(runs)} run(s) in {seconds:.1f} s; wrote {out / 'sweep.csv'}"
        + (f"; {failed} FAILED (run the command again to resume them)" if failed else ""),
        soft_wrap=True,
    )
    if failed:
        raise typer.Exit(1)
