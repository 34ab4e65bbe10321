"""Speed of the request-level backend (``simulator: request``): simulated requests per second.

Run from the repository root::

    python perf/bench_request.py            # an hour at 500 req/s, 3 repeats, + CartPole in the same run
    python perf/bench_request.py --rate 2000 --repeats 5
    python perf/bench_request.py --scenario scaling_rate_burst   # a shipped scenario instead (e.g. platform mode)

What is timed (``time.perf_counter``, after one untimed episode that compiles or loads the cache): one episode of
240 steps of 15 s (an hour) at a constant ``--rate`` requests/s, Poisson arrivals, exponential service of 0.1 s,
concurrency 10, 8 warm instances (utilisation ``rate / 800``), least-outstanding routing, driven through
``ServerlessScalingEnv.step`` with the hold action; the figure is requests simulated / wall seconds. The fast model
runs the same episode for comparison, and Gymnasium's ``CartPole-v1`` steps for 2 s with random actions, so that
the figures can be read as ratios on a machine whose load varies (``os.getloadavg`` is printed).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from scaling_env import ServerlessScalingEnv  # noqa: E402


def config(simulator: str, rate: float) -> dict:
    return {
        "simulator": simulator,
        "episode_steps": 240,
        "workload": {"shape": {"kind": "constant", "rate_rps": rate}},
        "instances": {"concurrency": 10, "service_seconds": 0.1, "service_cv": 1.0},
        "scaling": {"min_instances": 8, "max_instances": 8, "initial_instances": 8},
        "load_balancer": {"algorithm": "least_outstanding"},
        "failures": {"mtbf_seconds": None},
    }


def scenario_config(name: str, simulator: str) -> dict:
    from scaling_env.scenarios import load_scenario

    return load_scenario(name).config.with_updates({"simulator": simulator})


def episode(env: ServerlessScalingEnv, seed: int) -> tuple[float, int]:
    """Wall seconds and arrivals of one episode (the hold action: the scale step 0)."""
    env.reset(seed=seed)
    hold = list(env.config.scaling.scale_steps).index(0)
    arrivals = 0
    t0 = time.perf_counter()
    for _ in range(env.config.episode_steps):
        _, _, _, _, info = env.step(hold)
        arrivals += int(info["arrivals"])
    return time.perf_counter() - t0, arrivals


def cartpole_steps_per_second(seconds: float = 2.0) -> float:
    import gymnasium as gym

    env = gym.make("CartPole-v1")
    env.reset(seed=0)
    actions = np.random.default_rng(0).integers(0, 2, 1_000_000)
    n = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        _, _, term, trunc, _ = env.step(int(actions[n % len(actions)]))
        n += 1
        if term or trunc:
            env.reset()
    return n / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=500.0, help="requests/s (default 500)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--scenario", default=None, help="time a shipped scenario's episode instead")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}")
    rows = []
    for simulator in ("request", "fast"):
        cfg = config(simulator, args.rate) if args.scenario is None else scenario_config(args.scenario, simulator)
        env = ServerlessScalingEnv(cfg)
        episode(env, 0)  # compile / load the cache
        times = [episode(env, 1 + r) for r in range(args.repeats)]
        best = min(t for t, _ in times)
        arrivals = times[0][1]
        rows.append((simulator, best, arrivals, arrivals / best, env.config.episode_steps / best))
    cartpole = cartpole_steps_per_second()
    what = f"one hour (240 steps of 15 s) at {args.rate:g} req/s" if args.scenario is None else args.scenario
    print(f"\n{what}, best of {args.repeats}; CartPole-v1 {cartpole:,.0f} steps/s\n")
    print("| simulator | wall s per episode | requests | simulated requests/s | env steps/s | steps/s / CartPole |")
    print("|---|---:|---:|---:|---:|---:|")
    for simulator, best, arrivals, rps, sps in rows:
        print(f"| {simulator} | {best:.3f} | {arrivals:,} | {rps:,.0f} | {sps:,.0f} | {sps / cartpole:.3f} |")
    print(f"\nload average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
