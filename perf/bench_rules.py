"""Time the rule policies' decisions (``RulePolicy.act_batch``), next to CartPole.

A rule decides for a batch of clusters at every step: in the benchmark, in the tuner, and in a residual gate's
training, where each training scenario's rule and experts decide at every env step for that scenario's share of the
128 training clusters (about 18). On batches of 20 clusters a decision is mostly the cost of the numpy calls
around the rule's own arithmetic, so this counts the time spent inside ``act_batch`` only, not the simulator's.

Cases: every tuned setting (``configs/policies/tuned/<scenario>/*.yaml``) on its scenario, and the generalist
settings on all seven evaluation scenarios; ``--seeds`` episodes per case in one batch, ``--repeats`` times (the best
total is kept). CartPole-v1's single-env steps/s is measured in the same run and the load average printed, as the
machines are shared. ``--digest`` prints a hash of every action, every desired count after the decision and every
episode's metrics: a speed change must not change it. To time an older commit, run this file with ``PYTHONPATH`` at
a worktree of it.

    PYTHONPATH=. python perf/bench_rules.py [--seeds 20] [--repeats 3] [--digest]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np
from bench_memory import cartpole_steps_per_second

import agents.rules.base as rules_base
from agents.experiments.benchmark import EVALUATION_SCENARIOS
from agents.registry import TUNED_DIR, make_policy
from scaling_env.rollout import rollout
from scaling_env.scenarios import load_scenario


def cases() -> list[tuple[str, Path]]:
    out = []
    for scenario in EVALUATION_SCENARIOS:
        out += [(scenario, f) for f in sorted((Path(TUNED_DIR) / scenario).glob("*.yaml"))]
        out += [(scenario, f) for f in sorted((Path(TUNED_DIR) / "generalist").glob("*.yaml"))]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=20, help="episodes per case: seeds 1000 .. 1000+N-1")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs (the best total is kept; >= 1)")
    ap.add_argument("--digest", action="store_true", help="print a hash of the decisions (compare two commits)")
    args = ap.parse_args()
    if args.repeats < 1 or args.seeds < 1:
        ap.error("--repeats and --seeds must be at least 1")
    seeds = list(range(1000, 1000 + args.seeds))
    load_start = os.getloadavg()[0]
    cartpole = cartpole_steps_per_second()
    configs = {s: load_scenario(s).config for s in EVALUATION_SCENARIOS}
    plan = [(s, make_policy(str(f), configs[s], scenario=s)) for s, f in cases()]
    decide = rules_base.RulePolicy.act_batch
    clock = {"s": 0.0, "calls": 0, "record": args.digest}
    digest = hashlib.sha256()

    def timed(self: rules_base.RulePolicy, obs: np.ndarray, info: dict) -> np.ndarray:
        t = time.perf_counter()
        actions = decide(self, obs, info)
        clock["s"] += time.perf_counter() - t
        clock["calls"] += 1
        if clock["record"]:  # the first run's decisions
            digest.update(np.asarray(actions, dtype=np.int64).tobytes() + self.desired.tobytes())
        return actions

    rules_base.RulePolicy.act_batch = timed
    by_family: dict[str, float] = {}
    totals = []
    for repeat in range(args.repeats):
        clock["s"], clock["calls"] = 0.0, 0
        family: dict[str, float] = {}
        for scenario, policy in plan:
            before = clock["s"]
            run = rollout(configs[scenario], policy, seeds, parallel=False)
            family[policy.name] = family.get(policy.name, 0.0) + clock["s"] - before
            if args.digest and repeat == 0:
                digest.update(json.dumps(run.metrics, sort_keys=True).encode())
        clock["record"] = False
        totals.append(clock["s"])
        if clock["s"] == min(totals):
            by_family = family
        print(f"run {repeat + 1}: {clock['calls']:,} decisions in {clock['s']:.3f} s", flush=True)
    best = min(totals)
    calls = clock["calls"]
    print(f"\n{len(plan)} cases x {args.seeds} seeds; CartPole-v1 {cartpole:,.0f} steps/s in this run")
    print("| rule | s in act_batch (best run) |\n|---|---:|")
    for name, seconds in sorted(by_family.items()):
        print(f"| {name} | {seconds:.3f} |")
    per_call = best / calls
    print(
        f"| **all** | **{best:.3f}** |\n\n{per_call * 1e6:.0f} us per decision of a {args.seeds}-cluster batch: "
        f"{1 / per_call / cartpole:.3f}x CartPole's steps/s"
    )
    print(f"load average: {load_start:.2f} at start, {os.getloadavg()[0]:.2f} at the end")
    if args.digest:
        print(f"digest {digest.hexdigest()[:16]}")


if __name__ == "__main__":
    main()
