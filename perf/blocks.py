"""Where in the episode policies differ: mean fleet and SLO-violating steps per block of steps, side by side.

    PYTHONPATH=. python perf/blocks.py SCENARIO POLICY [POLICY ...] [--seeds 0-19] [--block 20]

Each POLICY is a registry spec (``predictive@tuned``, ``hindsight``, ``ppo:RUN_DIR``, ...). Every policy is rolled
out on the same seeds (one batch, as the benchmark runs it; a learned policy with its run's ``env_overrides``) and
the episode is cut into blocks of ``--block`` steps. A cell is the mean count of instances the autoscaler controls
(warm and booting) over the block and the seeds, and the violating steps summed over the block and the seeds.
The default seeds are the tuning seeds; looking at the benchmark's (1000-1019) is looking at the verdict's data.
"""

from __future__ import annotations

import argparse

import numpy as np

from agents.experiments.gate_choices import parse_seeds
from agents.registry import make_policy
from scaling_env.rollout import rollout
from scaling_env.scenarios import load_scenario

KEYS = ("instances_controlled", "slo_violated")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("scenario")
    ap.add_argument("policies", nargs="+")
    ap.add_argument("--seeds", default="0-19")
    ap.add_argument("--block", type=int, default=20, help="steps per block")
    args = ap.parse_args()
    seeds = parse_seeds(args.seeds)
    sc = load_scenario(args.scenario)
    runs = {}
    for spec in args.policies:
        policy = make_policy(spec, sc.config, scenario=sc.name)
        config = getattr(policy, "env_config", sc.config)  # a learned policy's env_overrides
        runs[spec] = rollout(config, policy, seeds, record=KEYS)
        mean = {k: np.mean([e[k] for e in runs[spec].metrics]) for k in ("reward", "cost_usd", "slo_violation_share")}
        print(
            f"{spec}: reward {mean['reward']:.2f}, cost $ {mean['cost_usd']:.3f}, "
            f"SLO share {100 * mean['slo_violation_share']:.2f}%"
        )
    steps, dt = sc.config.episode_steps, sc.config.step_seconds
    print("| minutes | rate (req/s) | " + " | ".join(f"`{s}`" for s in runs) + " |")
    print("|---|---:|" + "---|" * len(runs))
    first = next(iter(runs.values()))
    for b in range(0, steps, args.block):
        rate = first.traces["rate_rps"][:, b : b + args.block].mean()
        cells = [
            f"{r.traces['instances_controlled'][:, b : b + args.block].mean():.1f}, "
            f"{r.traces['slo_violated'][:, b : b + args.block].sum():.0f}"
            for r in runs.values()
        ]
        span = f"{b * dt / 60:g}-{min(b + args.block, steps) * dt / 60:g}"
        print(f"| {span} | {rate:,.0f} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
