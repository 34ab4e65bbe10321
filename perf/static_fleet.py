"""A fixed fleet chosen on the tuning seeds, judged against a rule on the benchmark seeds.

    PYTHONPATH=. python perf/static_fleet.py steady --instances 8..15 --rule predictive@tuned

Asks whether a scenario's room over its tuned rule is a matter of fleet size alone: the ``static`` policy with
each count of ``--instances`` is rolled out on the tuning seeds (0-19 by default, the rules' tuning seeds), the
count with the highest mean reward is kept, and that fleet is judged against ``--rule`` on the benchmark seeds
1000-1019 with the verdict's paired test and both readings of the SLO clause (``perf/rate_ceiling.py``'s
``judge``). Runs everything it reports (a few seconds per count); writes nothing.
"""

from __future__ import annotations

import argparse

import numpy as np

from agents.experiments.ablation import SEEDS
from agents.experiments.benchmark import EVALUATION_SCENARIOS
from agents.experiments.train_config import FIRST_BENCHMARK_SEED
from perf.bench_planner import parse_seeds, run
from perf.rate_ceiling import judge, line


def triples(rows: list[dict]) -> dict[int, tuple[float, float, float]]:
    return {int(r["seed"]): (float(r["reward"]), float(r["slo_violation_share"]), float(r["cost_usd"])) for r in rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("scenario", choices=list(EVALUATION_SCENARIOS))
    ap.add_argument("--instances", default="8..15", help="the fleet sizes to try: first..last or a comma list")
    ap.add_argument("--rule", required=True, help="the rule to judge against, e.g. predictive@tuned")
    ap.add_argument("--tuning", default="0..19", help="the seeds the fleet size is chosen on")
    args = ap.parse_args()
    counts, tuning = parse_seeds(args.instances), parse_seeds(args.tuning)
    if max(tuning) >= FIRST_BENCHMARK_SEED:
        raise SystemExit(f"--tuning: the fleet is chosen below the benchmark seeds ({FIRST_BENCHMARK_SEED}+)")
    if min(counts) < 1:
        raise SystemExit(f"--instances: at least 1, got {min(counts)}")
    means = {}
    for n in counts:
        rows, _ = run(args.scenario, "static", tuning, {"instances": n})
        r = np.array([x["reward"] for x in rows])
        s = np.array([x["slo_violation_share"] for x in rows])
        means[n] = r.mean()
        print(f"static {n:3d} on the tuning seeds: reward {r.mean():.2f}, SLO share {100 * s.mean():.2f}%", flush=True)
    rule_rows, _ = run(args.scenario, args.rule, tuning)
    print(f"{args.rule} on the tuning seeds: reward {np.mean([x['reward'] for x in rule_rows]):.2f}")
    chosen = max(counts, key=lambda n: means[n])  # the first of equal means
    static, _ = run(args.scenario, "static", SEEDS, {"instances": chosen})
    rule, _ = run(args.scenario, args.rule, SEEDS)
    print(line(args.scenario, f"static {chosen}", args.rule, judge(triples(static), triples(rule))))


if __name__ == "__main__":
    main()
