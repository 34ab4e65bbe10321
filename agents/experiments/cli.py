"""The ``scaling-env`` command line: every command in one Typer app.

Heavy imports (torch, stable-baselines3, matplotlib) happen inside the commands, so that ``scaling-env --help``
stays fast. Output goes through the one console of :mod:`agents.experiments.console` (plain text, never markup);
a user error exits with status 2 and a message, never a traceback.
"""

from __future__ import annotations

import shlex
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich import box
from rich.table import Table

from scaling_env.config import ConfigError, EnvConfig
from scaling_env.resources import config_dir, package_version
from scaling_env.traces import TraceError

from ..learned.torch_kernels import pin_training_kernels
from .console import console, fail

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    help="Autoscaling a serverless service: RL and rules.",
    context_settings={"help_option_names": ["-h", "--help"]},
)

DEFAULT_TRAIN_CONFIG = config_dir("train") / "ppo.yaml"

TracesDir = Annotated[
    Optional[Path],
    typer.Option(
        "--traces-dir",
        help="folder of your own trace CSVs, searched first (also $SCALING_ENV_TRACES); the shipped scenarios' "
        "traces come with the package",
        show_default=False,
    ),
]


def _version(value: bool) -> None:
    if value:
        console.print(f"scaling-env {package_version()}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="print the version and exit")
    ] = False,
) -> None:
    """Autoscaling a serverless service: RL and rules."""
    pin_training_kernels()  # before any torch operation: a seed trains alike on AVX2 and AVX-512 machines


# ------------------------------------------------------------------------------------------- simulate


@app.command(short_help="one episode of a scenario under a policy, and its dashboard")
def simulate(
    scenario: Annotated[
        Optional[str], typer.Option(help="scenario name or YAML path (see `scaling-env scenarios`)")
    ] = None,
    config: Annotated[Optional[Path], typer.Option(help="YAML env config, instead of a scenario")] = None,
    policy: Annotated[str, typer.Option(help="policy name, policy YAML, or ppo:RUN_DIR")] = "threshold",
    seed: Annotated[int, typer.Option(min=0, help="episode seed (non-negative)")] = 0,
    out: Annotated[
        Optional[Path],
        typer.Option(help="dashboard PNG (default: results/simulate/<scenario>_<policy>_seed<seed>.png)"),
    ] = None,
    traces_dir: TracesDir = None,
) -> None:
    """Run one episode of a scenario under a policy; print its metrics and save a PNG dashboard."""
    from agents import make_policy
    from scaling_env.dashboard import save_dashboard
    from scaling_env.rollout import DASHBOARD_KEYS, rollout
    from scaling_env.scenarios import load_scenario

    from .tables import metric_list

    if scenario is not None and config is not None:
        fail("give --scenario or --config, not both")
    try:
        if config is not None:
            cfg, name = EnvConfig.coerce(config), config.stem
        else:
            sc = load_scenario(scenario or "diurnal", traces_dir)
            cfg, name = sc.config, sc.name
        pol = make_policy(policy, cfg)
        t = time.perf_counter()
        run = rollout(cfg, pol, [seed], record=DASHBOARD_KEYS)  # in the try: the workload checks its trace here
        seconds = time.perf_counter() - t
    except (ConfigError, TraceError) as exc:
        fail(str(exc))
    policy_name = policy.replace(":", "_").replace("/", "_")
    out = out or Path("results") / "simulate" / f"{name}_{policy_name}_seed{seed}.png"
    save_dashboard(run.episode(0), cfg, out, title=f"{name} under {policy}, seed {seed}")
    title = (
        f"{name} under {policy}: one episode of {cfg.episode_steps} steps of "
        f"{cfg.step_seconds:g} s (seed {seed}, {seconds:.2f} s)"
    )
    console.print(metric_list(run.metrics[0], title))
    console.print(f"dashboard: {out}", soft_wrap=True)


# -------------------------------------------------------------------------------------- the listings


@app.command(short_help="the shipped scenarios")
def scenarios(traces_dir: TracesDir = None) -> None:
    """List the shipped scenarios with their descriptions."""
    from scaling_env.scenarios import list_scenarios

    table = Table(title="Scenarios; use a name or a YAML path with --scenario", box=box.SIMPLE_HEAD)
    table.add_column("name", overflow="fold")
    table.add_column("description")
    table.add_column("trace", overflow="fold")
    for name, description, note in list_scenarios(traces_dir):
        table.add_row(name, description, note)
    console.print(table)


def _markdown_rows(text: str) -> list[list[str]]:
    """The body rows of a Markdown table (``scaling_env.fields`` writes the env's tables as Markdown)."""
    rows = [[c.strip().strip("`") for c in line.strip().strip("|").split("|")] for line in text.splitlines()]
    return rows[2:]


@app.command(short_help="observation, actions, reward and info fields")
def info() -> None:
    """Print the env's interface: observation fields, actions, reward components and info keys."""
    from scaling_env.config import ScalingConfig
    from scaling_env.fields import HISTORY_GROUPS, REWARD_COMPONENTS, info_table, observation_table

    obs = Table(
        title="Observation: Box of float32, one row per index (ServerlessScaling-v0: indices 0-18; -v1: all, the "
        "history groups chosen by config observation.history)",
        box=box.SIMPLE_HEAD,
        title_justify="left",
    )
    for col, justify in (("index", "right"), ("name", "left"), ("min", "right"), ("max", "right"), ("meaning", "left")):
        obs.add_column(col, justify=justify)
    for row in _markdown_rows(observation_table(HISTORY_GROUPS)):
        obs.add_row(*row)
    console.print(obs)

    default_steps = ScalingConfig().scale_steps
    actions = Table(
        title="Actions: Discrete(len(scaling.scale_steps)); action i asks for scale_steps[i] more instances "
        "(clipped to min/max, blocked by a cooldown)",
        box=box.SIMPLE_HEAD,
        title_justify="left",
    )
    actions.add_column("action", justify="right")
    actions.add_column("default env", justify="right")
    scenario_steps = _scenario_scale_steps()
    if scenario_steps:
        actions.add_column("shipped scenarios", justify="right")
    for i in range(max(len(default_steps), len(scenario_steps))):
        cells = [str(i), f"{default_steps[i]:+d}" if i < len(default_steps) else ""]
        if scenario_steps:
            cells.append(f"{scenario_steps[i]:+d}" if i < len(scenario_steps) else "")
        actions.add_row(*cells)
    console.print(actions)
    note = f"scale_steps: default env {list(default_steps)}"
    if scenario_steps:
        note += f"; shipped scenarios {list(scenario_steps)}"
    if scenario_steps and scenario_steps != default_steps:
        i = next(i for i, (a, b) in enumerate(zip(default_steps, scenario_steps)) if a != b)
        note += (
            f". The same index asks for different changes under different scale_steps (action {i} is "
            f"{default_steps[i]:+d} in the default env and {scenario_steps[i]:+d} in the shipped scenarios): "
            "map actions through env.unwrapped.config.scaling.scale_steps"
        )
    console.print(note + ".\n")

    reward = Table(
        title="Reward: minus the weighted sum of these components (weights: reward.weights.<name>)",
        box=box.SIMPLE_HEAD,
        title_justify="left",
    )
    reward.add_column("component")
    reward.add_column("value per step")
    for name, doc in REWARD_COMPONENTS:
        reward.add_row(name, doc)
    console.print(reward)

    info_keys = Table(title="Info: one value per key and step", box=box.SIMPLE_HEAD, title_justify="left")
    info_keys.add_column("key")
    info_keys.add_column("meaning")
    for row in _markdown_rows(info_table()):
        info_keys.add_row(*row)
    console.print(info_keys)


def _scenario_scale_steps() -> tuple[int, ...]:
    """The scale_steps the shipped scenarios share (empty if they differ)."""
    from scaling_env.scenarios import read_scenario_file, scenario_names

    found = set()
    for name in scenario_names():
        _, env = read_scenario_file(config_dir("scenarios") / f"{name}.yaml")
        found.add(tuple(env.get("scaling", {}).get("scale_steps", ())))
    return found.pop() if len(found) == 1 else ()


# ------------------------------------------------------------------------------------------ benchmark


def _benchmark_command() -> None:
    from .benchmark import benchmark

    app.command(name="benchmark", short_help="every policy on every scenario, side by side")(benchmark)


_benchmark_command()


def _tune_command() -> None:
    from .tune import tune_command

    app.command(name="tune", short_help="tune rule policies with Optuna; writes tuned policy files")(tune_command)


_tune_command()


def _sweep_command() -> None:
    from .sweep import sweep_command

    app.command(name="sweep", short_help="training runs over seeds x scenarios x hyperparameters")(sweep_command)


_sweep_command()


# ------------------------------------------------------------------------------------ train, evaluate


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


@app.command(short_help="train PPO; writes a run folder")
def train(
    config: Annotated[
        Optional[Path],
        typer.Option(help="training config YAML (default: the shipped configs/train/ppo.yaml)", show_default=False),
    ] = None,
    scenario: Annotated[
        Optional[list[str]],
        typer.Option(help="training scenario (name or YAML path); repeat for several (replaces the config's)"),
    ] = None,
    seed: Annotated[Optional[int], typer.Option(min=0, help="training seed (cluster i starts from seed + i)")] = None,
    total_timesteps: Annotated[Optional[int], typer.Option(min=1, help="env steps over all clusters")] = None,
    algo: Annotated[Optional[str], typer.Option(help="ppo, maskable_ppo or recurrent_ppo")] = None,
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
    traces_dir: TracesDir = None,
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
    for flag, folder in (("--run-dir", run_dir), ("--resume", resume)):
        if folder is not None and folder.exists() and not folder.is_dir():
            fail(f"{flag} {folder}: is a file, not a folder; name a new folder for the run")
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
            fail(
                f"--resume continues a run with its saved config; {', '.join(given)} cannot change it "
                "(only --total-timesteps can)"
            )
        try:
            from .train import resume as resume_run

            model, root = resume_run(resume, total_timesteps, command=command, progress_bar=progress, verbose=verbose)
        except (ConfigError, TraceError) as exc:
            fail(str(exc))
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
    path = config if config is not None else DEFAULT_TRAIN_CONFIG
    try:
        cfg = load_train_config(path, overrides=overrides, sets=set_ or ())
        from .train import train as train_run

        model, root = train_run(
            cfg, run_dir, command=command, traces_dir=traces_dir, progress_bar=progress, verbose=verbose
        )
    except TraceError as exc:
        fail(
            f"{exc}\nThe training and evaluation scenarios come from the config (scenarios, eval_scenarios): "
            "choose others with --scenario and --set 'eval_scenarios=[steady, diurnal]', or point --traces-dir "
            "at the folder that holds the file."
        )
    except ConfigError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        console.print("interrupted: checkpoint saved; continue with scaling-env train --resume RUN_DIR")
        raise typer.Exit(130) from None
    console.print(f"trained {model.num_timesteps:,} steps: {root}", soft_wrap=True)


@app.command(short_help="the benchmark's metrics for a trained model")
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
            min=0,
            help="seed of the first episode (episode i uses seed + i); default: the benchmark's evaluation seeds",
        ),
    ] = None,
    traces_dir: TracesDir = None,
    wide: Annotated[bool, typer.Option("--wide", help="every metric column")] = False,
) -> None:
    """Evaluate a trained model on scenarios and print the benchmark's metrics (mean over episodes)."""
    from ..learned.ppo import find_model
    from .evaluate import DEFAULT_EVAL_SEED
    from .evaluate import evaluate as evaluate_model
    from .tables import legend, rich_table
    from .train_config import load_train_config

    try:
        names = list(scenario or [])
        if not names:
            _, run_dir = find_model(model)
            if run_dir is None:
                fail(f"{model}: not in a run folder; name the scenarios with --scenario")
            names = list(load_train_config(run_dir / "config.yaml").evaluation_scenarios)
        first = DEFAULT_EVAL_SEED if seed is None else seed
        rows = evaluate_model(model, names, episodes, first, traces_dir)
    except (ConfigError, TraceError) as exc:
        fail(str(exc))
    title = f"{model}: {episodes} episodes per scenario, seeds {first}..{first + episodes - 1}"
    console.print(rich_table(rows, title, wide))
    console.print(legend(rows, wide))


# ------------------------------------------------------------------------------- plots and verdicts


@app.command("plot-training", short_help="the training curve of a run, as a PNG")
def plot_training(
    run_dir: Annotated[Path, typer.Argument(help="run folder (evaluations.csv, tb/)")],
    out: Annotated[Path, typer.Option(help="PNG to write")] = Path("training_curve.png"),
    reference: Annotated[
        Optional[Path],
        typer.Option(help="a benchmark's episodes.csv: dashed lines at the best rule policy of each scenario"),
    ] = None,
    title: Annotated[Optional[str], typer.Option(help="figure title")] = None,
    ymin: Annotated[Optional[float], typer.Option(help="lower limit of the reward axes")] = None,
    ymax: Annotated[Optional[float], typer.Option(help="upper limit of the reward axes")] = None,
) -> None:
    """The training curve of a run as a PNG: evaluation reward per scenario and training episode reward."""
    from .plot_training import plot

    if not (run_dir / "evaluations.csv").is_file():
        fail(f"{run_dir}: not a run folder with evaluations (no evaluations.csv)")
    if reference is not None and not reference.is_file():
        fail(f"--reference {reference}: no such file")
    ylim = None
    if ymin is not None or ymax is not None:
        ylim = (ymin if ymin is not None else -250.0, ymax if ymax is not None else 0.0)
    console.print(str(plot(run_dir, out, reference, title, ylim)), soft_wrap=True)


@app.command(short_help="a policy against the best rule: paired tests, IQM")
def verdict(
    episodes: Annotated[Path, typer.Argument(help="a benchmark's episodes.csv with the policy, the rules and oracle")],
    policy: Annotated[
        Optional[str],
        typer.Option("--policy", "--ppo", help="the policy to judge, as named in the CSV (default: the one ppo:...)"),
    ] = None,
    tuning_seeds: Annotated[str, typer.Option(help="seeds the best rule is chosen on (e.g. 0-19)")] = "0-19",
    out: Annotated[Optional[Path], typer.Option(help="folder for verdict.md and verdict.png")] = None,
    traces_dir: TracesDir = None,
) -> None:
    """A policy against the best rule policy of each scenario and over all scenarios (paired tests, IQM with
    stratified-bootstrap CIs), from a benchmark's episodes.csv, as Markdown tables."""
    from .tune import TuneError
    from .verdict import VerdictError, run_verdict

    if not episodes.is_file():
        fail(f"{episodes}: no such file (give a benchmark's episodes.csv)")
    try:
        text = run_verdict(episodes, policy, tuning_seeds, out, str(traces_dir) if traces_dir else None)
    except (VerdictError, TuneError, ConfigError, TraceError) as exc:
        fail(f"{episodes}: {exc}")
    console.print(text, soft_wrap=True)


if __name__ == "__main__":
    app()
