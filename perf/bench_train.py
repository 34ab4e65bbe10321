"""PPO training throughput: env steps per second including the updates, for planning a training budget.

    python benchmarks/bench_train.py --n-envs 64 --rollouts 6 [--threads 1] [--set ppo.n_epochs=5 ...]

Trains ``rollouts`` rollouts of the training config (default configs/train/ppo.yaml; with the per-episode
TensorBoard metrics, without evaluations and checkpoints) and reports, after the first rollout (warm-up), the
mean time to collect a rollout, the mean time of an update and the resulting env-steps/s.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback

from agents.experiments.evaluate import load_scenario_configs
from agents.experiments.train import EpisodeMetrics, make_training_env
from agents.experiments.train_config import load_train_config
from agents.learned.ppo import algo_class


class RolloutTimer(BaseCallback):
    def __init__(self) -> None:
        super().__init__()
        self.starts: list[float] = []
        self.ends: list[float] = []

    def _on_rollout_start(self) -> None:
        self.starts.append(time.perf_counter())

    def _on_rollout_end(self) -> None:
        self.ends.append(time.perf_counter())

    def _on_step(self) -> bool:
        return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--config", type=Path, default=Path(__file__).resolve().parent.parent / "configs" / "train" / "ppo.yaml"
    )
    parser.add_argument("--n-envs", type=int, default=64)
    parser.add_argument("--rollouts", type=int, default=6)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--set", dest="sets", action="append", default=[], help="config override key=value")
    args = parser.parse_args()

    cfg = load_train_config(
        args.config, overrides={"n_envs": args.n_envs, "torch_threads": args.threads}, sets=args.sets
    )
    torch.set_num_threads(cfg.torch_threads)
    scenarios = load_scenario_configs(cfg.scenarios)
    base, venv = make_training_env(cfg, scenarios)
    model = algo_class(cfg.algo)(cfg.policy_name, venv, seed=cfg.seed, device=cfg.device, **cfg.algo_kwargs())
    per_rollout = cfg.n_envs * cfg.ppo.n_steps
    timer = RolloutTimer()
    t0 = time.perf_counter()
    model.learn(per_rollout * args.rollouts, callback=[EpisodeMetrics(base, [n for n, _ in scenarios]), timer])
    end = time.perf_counter()
    collect = np.array(timer.ends) - np.array(timer.starts)
    update = np.array(timer.starts[1:] + [end]) - np.array(timer.ends)
    c, u = collect[1:].mean(), update[1:].mean()
    print(
        f"{cfg.algo}, n_envs {cfg.n_envs}, {per_rollout:,} steps per rollout, torch threads {cfg.torch_threads}, "
        f"scenarios {', '.join(cfg.scenarios)}"
    )
    print(
        f"  collect {c:.2f} s/rollout ({per_rollout / c:,.0f} env-steps/s), update {u:.2f} s/rollout; "
        f"overall {per_rollout / (c + u):,.0f} env-steps/s (wall {end - t0:.1f} s for {model.num_timesteps:,} steps)"
    )


if __name__ == "__main__":
    main()
