"""The ``scaling-env`` command line."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from scaling_env.config import ConfigError, EnvConfig
from scaling_env.traces import TraceError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Autoscaling a serverless service: RL and rules.")
console = Console(width=160) if not Console().is_terminal else Console()


TracesDir = Annotated[
    Optional[Path],
    typer.Option(
        "--traces-dir",
        help="folder of trace CSVs named by scenarios (default: $SCALING_ENV_TRACES, ./traces, "
        "shared/traces beside the checkout)",
    ),
]


def fail(message: str) -> None:
    """Print a user error in red and exit with status 2."""
    console.print(f"[red]{message}[/red]", highlight=False)
    raise typer.Exit(2)


def metrics_row(metrics: dict[str, float]) -> list[str]:
    return [
        f"{metrics['reward']:.1f}",
        f"{metrics['cost_usd']:.4f}",
        f"{metrics['slo_violation_share']:.1%}",
        f"{metrics['p95_s']:.3f}",
        f"{metrics['dropped_share']:.2%}",
        f"{metrics['failed_share']:.2%}",
        f"{metrics['mean_instances']:.1f}",
        f"{metrics['scale_actions']:.0f}",
        f"{metrics['cold_starts']:.0f}",
    ]


METRIC_HEADERS = (
    "reward",
    "cost USD",
    "SLO viol.",
    "p95 s",
    "dropped",
    "failed",
    "instances",
    "scalings",
    "cold starts",
)


@app.command()
def simulate(
    scenario: Annotated[
        Optional[str], typer.Option(help="scenario name or YAML path (see `scaling-env scenarios`)")
    ] = None,
    config: Annotated[Optional[Path], typer.Option(help="YAML env config, instead of a scenario")] = None,
    policy: Annotated[str, typer.Option(help="policy name, policy YAML, or ppo:RUN_DIR")] = "threshold",
    seed: Annotated[int, typer.Option(help="episode seed")] = 0,
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
    table = Table(
        title=f"{name} under {policy}: one episode of {cfg.episode_steps} steps of "
        f"{cfg.step_seconds:g} s (seed {seed}, {seconds:.2f} s)"
    )
    for col in METRIC_HEADERS:
        table.add_column(col, justify="right")
    table.add_row(*metrics_row(run.metrics[0]))
    console.print(table)
    console.print(f"dashboard: {out}")


@app.command()
def scenarios(traces_dir: TracesDir = None) -> None:
    """List the scenarios in configs/scenarios with their descriptions."""
    from scaling_env.scenarios import list_scenarios

    table = Table(title="Scenarios (configs/scenarios); use a name or a YAML path with --scenario")
    table.add_column("name")
    table.add_column("description")
    table.add_column("trace")
    for name, description, note in list_scenarios(traces_dir):
        table.add_row(name, description, note)
    console.print(table)


def _benchmark_command() -> None:
    from .benchmark import benchmark

    app.command(name="benchmark")(benchmark)


_benchmark_command()


def _training_commands() -> None:
    from .cli_train import evaluate, train

    app.command(name="train")(train)
    app.command(name="evaluate")(evaluate)


_training_commands()


@app.command()
def info() -> None:
    """Print the observation fields and the info keys."""
    from scaling_env.fields import info_table, observation_table

    console.print(observation_table())
    console.print(info_table())


if __name__ == "__main__":
    app()
