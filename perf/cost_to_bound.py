"""Each policy's cost over the bound's, per scenario: the mean over seeds of (its episode's cost / the bound's
episode's cost on the same seed), as docs/results.md reports "cost / bound" since stop 49.

    python perf/cost_to_bound.py EPISODES_CSV [--bound results/planner/episodes.json] [--policy P ...]

The bound's episodes are the ones ``perf/bench_planner.py`` writes (policy ``hindsight``); a seed the bound did not
run is left out, and a scenario without any bound episode is named.
"""

from __future__ import annotations

import argparse
import csv
import json
from collections import defaultdict
from pathlib import Path

BOUND_POLICY = "hindsight"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("episodes", type=Path, help="a benchmark's episodes.csv")
    ap.add_argument("--bound", type=Path, default=Path("results/planner/episodes.json"), help="the bound's episodes")
    ap.add_argument("--policy", action="append", help="only these policies (repeat; default: all)")
    args = ap.parse_args()
    for path in (args.episodes, args.bound):
        if not path.is_file():
            raise SystemExit(f"{path}: no such file")
    bound = {
        (e["scenario"], int(e["seed"])): float(e["cost_usd"])
        for e in json.loads(args.bound.read_text())
        if e["policy"] == BOUND_POLICY
    }
    ratios: dict[tuple[str, str], list[float]] = defaultdict(list)
    missing: set[str] = set()
    with open(args.episodes, newline="") as fh:
        for row in csv.DictReader(fh):
            if args.policy and row["policy"] not in args.policy:
                continue
            key = (row["scenario"], int(row["seed"]))
            if key not in bound:
                missing.add(row["scenario"])
                continue
            ratios[(row["policy"], row["scenario"])].append(float(row["cost_usd"]) / bound[key])
    print("| policy | scenario | seeds | cost / bound |\n|---|---|---:|---:|")
    for (policy, scenario), r in sorted(ratios.items()):
        print(f"| {policy} | {scenario} | {len(r)} | {sum(r) / len(r):.3f} |")
    never = sorted(missing - {s for _, s in ratios})
    if never:
        print(f"no bound episode for {', '.join(never)} in {args.bound}")


if __name__ == "__main__":
    main()
