"""How long a DAgger run's teachers take to label one round: round 0's collection job of each scenario, timed in
this process (agents/experiments/imitate.py).

    python perf/imitation_label_time.py CONFIG [--teacher SPEC] [--scenario a,b] [--round K] [--seeds-per-job N]

For each scenario of the imitation config ``CONFIG``: its teacher (or ``--teacher`` for every scenario), the
round's seeds (``--round``), the records, the wall time of its collection and the teacher's mean episode reward.
With ``--seeds-per-job N`` each scenario's seeds run as jobs of N seeds one after another, as ``seeds_per_job``
splits them for the workers; the rewards are the same (a cluster's episode does not depend on its batch).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from agents.learned.torch_kernels import pin_training_kernels

pin_training_kernels()  # before torch computes: the kernels a run collects with

from agents.experiments import imitate  # noqa: E402
from scaling_env.config import ConfigError  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("config", help="an imitation config (configs/train/imitate*.yaml)")
    ap.add_argument("--teacher", help="this policy spec teaches every scenario (default: the config's teachers)")
    ap.add_argument("--scenario", help="comma-separated scenarios of the config (default: all)")
    ap.add_argument("--round", type=int, default=0, help="the round whose collection seeds run (default 0)")
    ap.add_argument("--seeds-per-job", type=int, help="run each scenario's seeds as jobs of this many")
    args = ap.parse_args()
    try:
        icfg = imitate.load_imitation_config(args.config)
        names = args.scenario.split(",") if args.scenario else icfg.scenarios
        if args.seeds_per_job is not None:
            icfg = imitate.ImitationConfig.model_validate({**icfg.model_dump(), "seeds_per_job": args.seeds_per_job})
        icfg, _, envs = imitate.prepare(icfg, names)
        if args.teacher:
            imitate.make_policy(args.teacher, envs[0][1], scenario=envs[0][0])
    except (ConfigError, ValueError) as exc:
        raise SystemExit(f"error: {exc}") from None
    print("| scenario | teacher | seeds | jobs | records | seconds | teacher's mean reward |")
    print("|---|---|---|---:|---:|---:|---:|")
    for s, config in envs:
        teacher = args.teacher or icfg.teacher_for(s)
        jobs = [imitate.CollectJob(s, config, teacher, None, seeds) for seeds in icfg.collection_jobs(args.round)]
        start = time.perf_counter()
        result = imitate.merge_jobs([imitate.collect(job) for job in jobs])
        seconds = time.perf_counter() - start
        seeds = icfg.collection_seeds(args.round)
        reward = np.mean([m["reward"] for m in result["metrics"]])
        print(
            f"| {s} | {teacher} | {seeds[0]}..{seeds[-1]} | {len(jobs)} | {len(result['labels'])} | {seconds:.1f} "
            f"| {reward:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
