"""How often a rule's fleet is below its own minimum capacity (``min_capacity``) on the benchmark seeds.

For each tuned setting with a minimum above the env's, over seeds 1000-1019 of each evaluation scenario: the steps,
after each episode's first ``--skip`` decisions (the rule raises a smaller starting fleet to its minimum as fast
as the steps and the cooldown allow), on which the controlled count (``instances_controlled``: crashed and
unhealthy instances count until they are replaced, so a crash does not lower it) is below the minimum.

    PYTHONPATH=. python perf/min_capacity_dips.py
"""

from __future__ import annotations

import argparse

import numpy as np

from agents.experiments.benchmark import EVALUATION_SCENARIOS
from agents.registry import make_policy
from scaling_env.rollout import rollout
from scaling_env.scenarios import load_scenario

RULES = ("threshold", "step_scaling", "target_tracking", "hpa", "kpa", "predictive")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skip", type=int, default=8, help="decisions at each episode's start not counted")
    ap.add_argument("--seeds", type=int, default=20, help="seeds 1000 .. 1000+N-1")
    args = ap.parse_args()
    seeds = list(range(1000, 1000 + args.seeds))
    total = 0
    for scenario in EVALUATION_SCENARIOS:
        config = load_scenario(scenario).config
        for rule in RULES:
            for mode in ("tuned", "generalist"):
                policy = make_policy(f"{rule}@{mode}", config, scenario=scenario)
                floor = policy.min_count()
                if floor <= config.scaling.min_instances:
                    continue
                run = rollout(config, policy, seeds, record=("instances_controlled",))
                count = np.rint(run.traces["instances_controlled"][:, args.skip :]).astype(int)
                below = count < floor
                steps = below.size
                total += int(below.sum())
                print(
                    f"{scenario:17s} {rule}@{mode:10s} min {floor:2d}: below on {int(below.sum()):4d} of {steps} "
                    f"steps (lowest {int(count.min())})"
                )
    print(f"total steps below the minimum: {total}")


if __name__ == "__main__":
    main()
