"""The training curve of a run as a PNG: periodic evaluation reward per scenario and training episode reward.

    scaling-env plot-training RUN_DIR --out docs/training_curve.png \
        [--reference results/x/episodes.csv]

Reads the run folder's ``evaluations.csv`` (one row per scenario per periodic evaluation: deterministic
episodes on the evaluation seeds) and its TensorBoard ``episode/reward`` scalar (mean reward of the training
episodes that ended in each rollout, stochastic policy, randomised training scenarios). Left panel: the mean
evaluation reward over the scenarios and the training episode reward; right panel: the evaluation reward of
each scenario. A dotted line marks the step of ``best_model.zip`` (the best evaluation mean). ``--reference``
(a benchmark's ``episodes.csv``) draws, per scenario, the reward of the best non-oracle policy of that
benchmark as a dashed line of the same colour, and their mean on the left panel (measured on the benchmark's
seeds, not the evaluation seeds: a guide, not the same episodes).
"""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import numpy as np

from scaling_env.files import atomic_path


def read_evaluations(path: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(timesteps, {scenario: reward per timestep}) from evaluations.csv."""
    by_step: dict[int, dict[str, float]] = defaultdict(dict)
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            by_step[int(row["timesteps"])][row["scenario"]] = float(row["reward"])
    steps = np.array(sorted(by_step))
    names = list(by_step[steps[0]]) if len(steps) else []
    return steps, {n: np.array([by_step[t].get(n, np.nan) for t in steps]) for n in names}


def read_scalar(tb_dir: Path, tag: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of a TensorBoard scalar over every event file of the folder (a resumed run has several)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    points: dict[int, float] = {}
    for f in sorted(tb_dir.glob("**/events.out.tfevents.*")):
        acc = EventAccumulator(str(f), size_guidance={"scalars": 0})
        acc.Reload()
        if tag in acc.Tags().get("scalars", []):
            points.update({e.step: e.value for e in acc.Scalars(tag)})
    steps = np.array(sorted(points))
    return steps, np.array([points[s] for s in steps])


def best_rule_rewards(path: Path) -> dict[str, tuple[str, float]]:
    """{scenario: (policy, mean reward)} of the best non-oracle, non-PPO policy in a benchmark's episodes.csv."""
    rewards: dict[tuple[str, str], list[float]] = defaultdict(list)
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            if row["policy"] == "oracle" or row["policy"].startswith("ppo"):
                continue
            rewards[(row["scenario"], row["policy"])].append(float(row["reward"]))
    best: dict[str, tuple[str, float]] = {}
    for (scenario, policy), values in rewards.items():
        mean = float(np.mean(values))
        if scenario not in best or mean > best[scenario][1]:
            best[scenario] = (policy, mean)
    return best


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average (shorter at the start)."""
    if window <= 1 or len(values) == 0:
        return values
    c = np.cumsum(np.insert(values, 0, 0.0))
    out = np.empty(len(values))
    for i in range(len(values)):
        lo = max(0, i + 1 - window)
        out[i] = (c[i + 1] - c[lo]) / (i + 1 - lo)
    return out


def plot(
    run_dir: Path,
    out: Path,
    reference: Path | None = None,
    title: str | None = None,
    ylim: tuple[float, float] | None = None,
) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps, per_scenario = read_evaluations(run_dir / "evaluations.csv")
    train_steps, train_reward = read_scalar(run_dir / "tb", "episode/reward")
    best = best_rule_rewards(reference) if reference is not None else {}

    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5), layout="constrained")
    millions = 1e6
    mean_eval = np.nanmean(np.stack(list(per_scenario.values())), axis=0)
    if len(train_steps):
        left.plot(
            train_steps / millions,
            train_reward,
            color="0.75",
            lw=0.8,
            label="training episodes (stochastic, training scenarios)",
        )
        left.plot(
            train_steps / millions,
            smooth(train_reward, 10),
            color="0.4",
            lw=1.2,
            label="training episodes, moving average of 10 rollouts",
        )
    left.plot(
        steps / millions,
        mean_eval,
        color="C0",
        lw=2.0,
        label=f"evaluation (deterministic), mean of {len(per_scenario)} scenarios",
    )
    if best and all(n in best for n in per_scenario):
        ref = float(np.mean([best[n][1] for n in per_scenario]))
        left.axhline(ref, color="C3", ls="--", lw=1.2, label="best rule policy per scenario, mean (benchmark seeds)")
    best_step = steps[int(np.nanargmax(mean_eval))] / millions  # the step of best_model.zip
    for ax in (left, right):
        ax.axvline(best_step, color="0.3", ls=":", lw=1.0)
    left.plot(
        [], [], color="0.3", ls=":", lw=1.0, label=f"best_model.zip (best evaluation mean, {best_step:.2f}M steps)"
    )
    left.set_xlabel("environment steps (millions, all clusters)")
    left.set_ylabel("episode reward (1 h episode, 240 steps)")
    left.set_title("Mean episode reward")
    left.grid(alpha=0.3)
    left.legend(loc="lower right", fontsize=8)

    for i, (name, values) in enumerate(per_scenario.items()):
        color = f"C{i % 10}"
        right.plot(steps / millions, values, color=color, lw=1.3, label=name)
        if name in best:
            right.axhline(best[name][1], color=color, ls="--", lw=0.9, alpha=0.8)
    right.set_xlabel("environment steps (millions, all clusters)")
    right.set_ylabel("evaluation episode reward")
    right.set_title("Evaluation reward per scenario" + (" (dashed: best rule policy)" if best else ""))
    right.grid(alpha=0.3)
    right.legend(loc="lower right", fontsize=8, ncol=2)
    if ylim is not None:
        left.set_ylim(*ylim)
        right.set_ylim(*ylim)

    fig.suptitle(title or f"PPO training curve: {run_dir.name}")
    with atomic_path(out) as tmp:  # a reader never sees half a PNG
        fig.savefig(tmp, dpi=80, format=out.suffix.lstrip(".") or "png")
    plt.close(fig)
    return out


def main() -> None:
    """``python -m`` runs ``scaling-env plot-training`` (the command line lives in ``agents/experiments/cli.py``)."""
    import sys

    from .cli import app

    app(["plot-training", *sys.argv[1:]])


if __name__ == "__main__":
    main()
