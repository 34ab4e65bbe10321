"""The ``scaling-env train`` and ``scaling-env evaluate`` commands (registered in ``agents/experiments/cli.py``).

Heavy imports (torch, stable-baselines3) happen inside the commands, so that ``scaling-env --help`` stays fast.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from scaling_env.config import ConfigError
from scaling_env.traces import TraceError

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "train" / "ppo.yaml"

console = Console(width=160) if not Console().is_terminal else Console()


def _fail(message: str) -> None:
    console.print(f"[red]{message}[/red]", highlight=False)
    raise typer.Exit(2)


def _command(name: str, options: list[tuple[str, object]]) -> str:
    """The command line that repeats this invocation (options as given, None and False left out)."""
    args = ["scaling-env", name]
    for flag, value in options:
        values = value if isinstance(value, (list, tuple)) else [value]
        for v in values:
            if v is None or v is False:
                continue
            args += [flag] if v is True else [flag, str(v)]
    return shlex.join(args)


def train(
    config: Annotated[
        Optional[Path],
        typer.Option(help=f"training config YAML (default: {DEFAULT_CONFIG.name} in configs/train, if present)"),
    ] = None,
    scenario: Annotated[
        Optional[list[str]],
        typer.Option(help="training scenario (name or YAML path); repeat for several (replaces the config's)"),
    ] = None,
    seed: Annotated[Optional[int], typer.Option(help="training seed (cluster i starts from seed + i)")] = None,
    total_timesteps: Annotated[Optional[int], typer.Option(help="env steps over all clusters")] = None,
    algo: Annotated[Optional[str], typer.Option(help="ppo or maskable_ppo")] = None,
    set_: Annotated[
        Optional[list[str]],
        typer.Option("--set", help="override a config value: dotted.key=value (value in YAML), repeatable"),
    ] = None,
    run_dir: Annotated[
        Optional[Path], typer.Option(help="run folder (default: runs/<algo>_<scenarios>_<seed>_<timestamp>)")
    ] = None,
    resume: Annotated[
        Optional[Path], typer.Option(help="continue this run folder from its latest checkpoint with its saved config")
    ] = None,
    traces_dir: Annotated[Optional[Path], typer.Option(help="folder of trace CSVs named by scenarios")] = None,
    progress: Annotated[bool, typer.Option(help="progress bar")] = True,
    verbose: Annotated[int, typer.Option(help="1: print SB3's table after each rollout and each evaluation")] = 0,
) -> None:
    """Train PPO (or MaskablePPO) on the native batched env; writes a run folder (config, TensorBoard,
    checkpoints, best and final models)."""
    from .train_config import load_train_config

    command = _command(
        "train",
        [
            ("--config", config),
            ("--scenario", scenario),
            ("--seed", seed),
            ("--total-timesteps", total_timesteps),
            ("--algo", algo),
            ("--set", set_),
            ("--run-dir", run_dir),
            ("--resume", resume),
            ("--traces-dir", traces_dir),
        ],
    )
    if resume is not None:
        # the saved scenarios.yaml holds the resolved trace paths, so --traces-dir cannot apply either
        others = {
            "--config": config,
            "--scenario": scenario,
            "--seed": seed,
            "--algo": algo,
            "--set": set_,
            "--run-dir": run_dir,
            "--traces-dir": traces_dir,
        }
        given = [flag for flag, v in others.items() if v is not None and v != [] and v != ()]
        if given:
            _fail(
                f"--resume continues a run with its saved config; {', '.join(given)} cannot change it "
                "(only --total-timesteps can)"
            )
        try:
            from .train import resume as resume_run

            model, root = resume_run(resume, total_timesteps, command=command, progress_bar=progress, verbose=verbose)
        except (ConfigError, TraceError) as exc:
            _fail(str(exc))
        except KeyboardInterrupt:
            console.print(f"interrupted: checkpoint saved; continue with scaling-env train --resume {resume}")
            raise typer.Exit(130) from None
        console.print(f"resumed {root}: now at {model.num_timesteps:,} steps")
        return

    overrides: dict[str, object] = {}
    if scenario:
        overrides["scenarios"] = list(scenario)
    if seed is not None:
        overrides["seed"] = seed
    if total_timesteps is not None:
        overrides["total_timesteps"] = total_timesteps
    if algo is not None:
        overrides["algo"] = algo
    path = config if config is not None else (DEFAULT_CONFIG if DEFAULT_CONFIG.is_file() else None)
    try:
        cfg = load_train_config(path, overrides=overrides, sets=set_ or ())
        from .train import train as train_run

        model, root = train_run(
            cfg, run_dir, command=command, traces_dir=traces_dir, progress_bar=progress, verbose=verbose
        )
    except (ConfigError, TraceError) as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        console.print("interrupted: checkpoint saved; continue with scaling-env train --resume RUN_DIR")
        raise typer.Exit(130) from None
    console.print(f"trained {model.num_timesteps:,} steps: {root}")


def evaluate(
    model: Annotated[Path, typer.Option(help="run folder (its best model, else final) or a model .zip")],
    scenario: Annotated[
        Optional[list[str]],
        typer.Option(help="scenario name or YAML path, repeatable (default: the run's evaluation scenarios)"),
    ] = None,
    episodes: Annotated[
        int, typer.Option(min=1, help="episodes per scenario, run as one batch (the benchmark's default)")
    ] = 20,
    seed: Annotated[
        Optional[int],
        typer.Option(
            help="seed of the first episode (episode i uses seed + i); default: the benchmark's evaluation seeds"
        ),
    ] = None,
    traces_dir: Annotated[Optional[Path], typer.Option(help="folder of trace CSVs named by scenarios")] = None,
) -> None:
    """Evaluate a trained model on scenarios and print the benchmark's metrics (mean over episodes)."""
    from ..learned.ppo import find_model
    from .evaluate import DEFAULT_EVAL_SEED, results_table
    from .evaluate import evaluate as evaluate_model
    from .train_config import load_train_config

    try:
        names = list(scenario or [])
        if not names:
            _, run_dir = find_model(model)
            if run_dir is None:
                _fail(f"{model}: not in a run folder; name the scenarios with --scenario")
            names = list(load_train_config(run_dir / "config.yaml").evaluation_scenarios)
        first = DEFAULT_EVAL_SEED if seed is None else seed
        rows = evaluate_model(model, names, episodes, first, traces_dir)
    except (ConfigError, TraceError) as exc:
        _fail(str(exc))
    console.print(
        results_table(rows, title=f"{model}: {episodes} episodes per scenario, seeds {first}..{first + episodes - 1}")
    )
