"""Evaluate a policy (a trained model) on scenarios: episodes in one batch, the benchmark's per-episode metrics.

``run_policy_episodes`` runs ``episodes`` clusters of one env config for one episode each, seeded
``seed + i``, under a batched policy, and returns the :class:`~scaling_env.episode_stats.EpisodeStats` metrics
of each episode. ``evaluate`` does it for a trained model on several scenarios and averages per scenario; its
rows print with ``agents.experiments.tables.rich_table``, as the benchmark's.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from scaling_env.config import EnvConfig
from scaling_env.rollout import rollout

from .tables import summarise_episodes
from .train_config import FIRST_BENCHMARK_SEED

# `scaling-env evaluate` runs the benchmark's episodes by default: seeds no training cluster starts from, and not
# those the training's periodic evaluation picks the best model on
DEFAULT_EVAL_SEED = FIRST_BENCHMARK_SEED


def load_scenario_configs(specs: Sequence[str], traces_dir: str | Path | None = None) -> list[tuple[str, EnvConfig]]:
    """(name, env config) of each scenario name or path; ConfigError / TraceNotFoundError name the culprit."""
    from scaling_env.scenarios import load_scenario

    out = []
    for spec in specs:
        scenario = load_scenario(spec, traces_dir)
        out.append((scenario.name, scenario.config))
    return out


def run_policy_episodes(policy: Any, config: EnvConfig, episodes: int, seed: int) -> list[dict[str, float]]:
    """One episode per cluster, cluster i seeded ``seed + i``; the metrics of each episode (the benchmark's
    loop, ``scaling_env.rollout``)."""
    return rollout(config, policy, [seed + i for i in range(episodes)]).metrics


def evaluate(
    model_or_run_dir: str | Path,
    scenarios: Sequence[str],
    episodes: int = 20,
    seed: int = DEFAULT_EVAL_SEED,
    traces_dir: str | Path | None = None,
) -> list[dict[str, Any]]:
    """Mean metrics of a trained model (run folder or .zip) per scenario, ``episodes`` episodes each seeded
    ``seed + i``: one row per scenario with ``policy``, ``scenario``, ``episodes``, ``seed`` and the metrics."""
    from ..learned.ppo import load_ppo_policy

    rows = []
    for name, config in load_scenario_configs(scenarios, traces_dir):
        policy = load_ppo_policy(model_or_run_dir, config, scenario=name)
        row: dict[str, Any] = {
            "policy": f"ppo:{model_or_run_dir}",
            "scenario": name,
            "episodes": episodes,
            "seed": seed,
        }
        row.update(
            summarise_episodes(run_policy_episodes(policy, policy.env_config, episodes, seed))
        )  # + env_overrides
        rows.append(row)
    return rows
