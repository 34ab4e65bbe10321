"""Time memory_pressure's episodes, where the crash model (``sim/memory.py``) does most of its work, next to CartPole.

memory_pressure is the scenario whose episodes cost the most: a replacement that joins a pool that changes again in
the step is followed through the (count, arrival phase) chain (``memory.lone_part``, uniformization), which a
policy that lets the fleet fall into the crash spiral (the default ``kpa``) asks for on many steps. Each case runs
``--seeds`` episodes in one batch, ``--repeats`` times (the best is kept); CartPole-v1's single-env steps/s is
measured in the same run, and the load average before and after is printed, as the machines are shared.

``--digest`` prints a hash of every episode's metrics (the benchmark's summaries) and per-step controlled count: a
different digest on two commits means different episodes (a speed change must not change it). To time an older
commit, run this file with ``PYTHONPATH`` at a worktree of it.

    PYTHONPATH=. python perf/bench_memory.py [--seeds 20] [--repeats 3] [--digest]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time

import gymnasium as gym
import numpy as np

from agents.registry import make_policy
from scaling_env.rollout import rollout
from scaling_env.scenarios import load_scenario

SCENARIO = "memory_pressure"
POLICIES = ("kpa", "threshold", "hpa", "kpa@tuned", "predictive@generalist")


def cartpole_steps_per_second(duration: float = 2.0) -> float:
    env = gym.make("CartPole-v1")
    env.reset(seed=0)
    actions = np.random.default_rng(0).integers(0, 2, 100_000)
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < duration:
        for a in actions[:1000]:
            _, _, terminated, truncated, _ = env.step(int(a))
            if terminated or truncated:
                env.reset()
        steps += 1000
    return steps / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=20, help="episodes per case: seeds 1000 .. 1000+N-1")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per case (the best is kept; >= 1)")
    ap.add_argument("--digest", action="store_true", help="print a hash of the episodes (compare two commits)")
    args = ap.parse_args()
    if args.repeats < 1 or args.seeds < 1:
        ap.error("--repeats and --seeds must be at least 1")
    config = load_scenario(SCENARIO).config
    seeds = list(range(1000, 1000 + args.seeds))
    load_start = os.getloadavg()[0]
    cartpole = cartpole_steps_per_second()
    digest = hashlib.sha256()
    total = 0.0
    print(f"CartPole-v1 single env: {cartpole:,.0f} steps/s; load average at start {load_start:.2f}")
    for name in POLICIES:
        policy = make_policy(name, config, scenario=SCENARIO)
        rollout(config, policy, [0])  # (compile or load the kernels)
        best = float("inf")
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            run = rollout(config, policy, seeds, record=("instances_controlled",))
            best = min(best, time.perf_counter() - t0)
        total += best
        steps = len(seeds) * config.episode_steps
        digest.update(json.dumps(run.metrics, sort_keys=True).encode())
        digest.update(run.traces["instances_controlled"].tobytes())
        print(
            f"{SCENARIO} {name:22s} {best / len(seeds):7.3f} s/episode  {steps / best:9,.0f} steps/s "
            f"({steps / best / cartpole:.3f}x CartPole)"
        )
    print(f"total (best of {args.repeats} each): {total:.2f} s; load average at end {os.getloadavg()[0]:.2f}")
    if args.digest:
        print(f"digest {digest.hexdigest()[:16]}")


if __name__ == "__main__":
    main()
