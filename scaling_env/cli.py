"""The ``scaling-env`` command line."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from .config import ConfigError, EnvConfig
from .vector_env import ServerlessScalingVectorEnv

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Autoscaling a serverless service: RL and rules.")
console = Console(width=160) if not Console().is_terminal else Console()


def run_episodes(config: EnvConfig, policy, episodes: int, seed: int) -> dict[str, float]:
    """Run ``episodes`` episodes in one batch under ``policy``; return per-run aggregate metrics."""
    # next-step autoreset: the info of the episode's last step is the one step() returns
    env = ServerlessScalingVectorEnv(num_envs=episodes, config=config, autoreset_mode="next_step")
    _, info = env.reset(seed=seed)
    totals = {k: np.zeros(episodes) for k in ("reward", "cost", "slo", "p95", "arrivals", "dropped", "failed",
                                             "instances", "cold_starts", "scale_actions")}
    steps = config.episode_steps
    for _ in range(steps):
        _, reward, _, _, step_info = env.step(policy.act(info, episodes))
        info = step_info
        totals["reward"] += reward
        totals["cost"] += step_info["cost_usd"]
        totals["slo"] += step_info["slo_violated"]
        totals["p95"] += step_info["latency_p95_s"]
        totals["arrivals"] += step_info["arrivals"]
        totals["dropped"] += step_info["dropped"]
        totals["failed"] += step_info["failed"]
        totals["instances"] += step_info["instances_warm"] + step_info["instances_booting"]
        totals["cold_starts"] += step_info["cold_starts"]
        totals["scale_actions"] += step_info["scale_applied"] != 0
    arrivals = np.maximum(totals["arrivals"], 1.0)
    return {
        "reward": float(totals["reward"].mean()),
        "reward_std": float(totals["reward"].std()),
        "cost_usd": float(totals["cost"].mean()),
        "slo_violation_share": float((totals["slo"] / steps).mean()),
        "p95_s": float((totals["p95"] / steps).mean()),
        "dropped_share": float((totals["dropped"] / arrivals).mean()),
        "failed_share": float((totals["failed"] / arrivals).mean()),
        "mean_instances": float((totals["instances"] / steps).mean()),
        "cold_starts": float(totals["cold_starts"].mean()),
        "scale_actions": float(totals["scale_actions"].mean()),
    }


@app.command()
def simulate(
    config: Annotated[Optional[Path], typer.Option(help="YAML env config (default: built-in defaults)")] = None,
    episodes: Annotated[int, typer.Option(min=1, help="episodes per policy, run as one batch")] = 8,
    seed: Annotated[int, typer.Option(help="seed of the first episode (episode i uses seed + i)")] = 0,
) -> None:
    """Run a short simulation under two simple policies and print a summary table."""
    from agents import CpuThresholdPolicy, StaticPolicy

    try:
        cfg = EnvConfig.coerce(config)
    except ConfigError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    table = Table(title=f"{episodes} episodes x {cfg.episode_steps} steps of {cfg.step_seconds:g} s "
                        f"({cfg.workload.shape.kind} workload)")
    for col in ("policy", "reward", "cost USD", "SLO viol.", "p95 s", "dropped", "failed", "instances",
                "cold starts", "env-steps/s"):
        table.add_column(col, justify="right")
    run_episodes(cfg.model_copy(update={"episode_steps": 1}), StaticPolicy(cfg), 1, seed)  # load compiled code
    for policy in (StaticPolicy(cfg), CpuThresholdPolicy(cfg)):
        t = time.perf_counter()
        r = run_episodes(cfg, policy, episodes, seed)
        rate = episodes * cfg.episode_steps / (time.perf_counter() - t)
        table.add_row(policy.name, f"{r['reward']:.1f} ± {r['reward_std']:.1f}", f"{r['cost_usd']:.4f}",
                      f"{r['slo_violation_share']:.1%}", f"{r['p95_s']:.3f}", f"{r['dropped_share']:.2%}",
                      f"{r['failed_share']:.2%}", f"{r['mean_instances']:.1f}", f"{r['cold_starts']:.1f}",
                      f"{rate:,.0f}")
    console.print(table)


@app.command()
def info() -> None:
    """Print the observation fields and the info keys."""
    from .fields import info_table, observation_table

    console.print(observation_table())
    console.print(info_table())


if __name__ == "__main__":
    app()
