"""What late metrics cost each policy: paired differences of episode rewards between ``diurnal`` and
``diurnal_delayed_metrics`` (the same load, seeds and simulation; only what the policies see differs).

Run from the repository root (the benchmark's own seeds, 1000..1019)::

    scaling-env benchmark --scenarios diurnal,diurnal_delayed_metrics \\
        --policies static,threshold,step_scaling,target_tracking,hpa,kpa,predictive,oracle --out results/delay_default
    scaling-env benchmark --scenarios diurnal,diurnal_delayed_metrics \\
        --policies $(ls configs/policies/tuned/diurnal/*.yaml | paste -sd,) --out results/delay_tuned
    python perf/delay_cost.py results/delay_default/episodes.csv results/delay_tuned/episodes.csv

prints the Markdown table of docs/benchmark.md ("What late metrics cost"): per policy, the mean reward on each
scenario, the mean paired difference (delayed - undelayed) with its 95 % Student-t interval, and the SLO
violation share, cost and mean fleet on each.
"""

from __future__ import annotations

import csv
import sys

import numpy as np
from scipy import stats

PLAIN, DELAYED = "diurnal", "diurnal_delayed_metrics"
TUNED_PREFIX = "configs/policies/tuned/diurnal/"


def rows(path: str) -> list[str]:
    """The table rows of one benchmark's episodes.csv (its policies in the order they appear)."""
    runs: dict[str, dict[str, dict[int, dict[str, str]]]] = {}
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            runs.setdefault(r["policy"], {}).setdefault(r["scenario"], {})[int(r["seed"])] = r
    out = []
    for policy, by in runs.items():
        if PLAIN not in by or DELAYED not in by:
            raise SystemExit(f"{path}: policy {policy!r} lacks the {PLAIN} or {DELAYED} episodes")
        a, b = by[PLAIN], by[DELAYED]
        seeds = sorted(a)
        if sorted(b) != seeds:
            raise SystemExit(f"{path}: policy {policy!r} ran other seeds on {DELAYED} than on {PLAIN}")

        def col(side: dict[int, dict[str, str]], key: str, seeds: list[int] = seeds) -> np.ndarray:
            return np.array([float(side[s][key]) for s in seeds])

        d = col(b, "reward") - col(a, "reward")
        half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else float("nan")
        name = policy.replace(TUNED_PREFIX, "").replace(".yaml", " (tuned on diurnal)")
        slo_a, slo_b = 100 * col(a, "slo_violation_share").mean(), 100 * col(b, "slo_violation_share").mean()
        out.append(
            f"| {name} | {col(a, 'reward').mean():.1f} | {col(b, 'reward').mean():.1f} | {d.mean():+.1f} ± {half:.1f} "
            f"| {slo_a:.1f} % → {slo_b:.1f} % | {col(a, 'cost_usd').mean():.3f} → {col(b, 'cost_usd').mean():.3f} "
            f"| {col(a, 'mean_instances').mean():.1f} → {col(b, 'mean_instances').mean():.1f} |"
        )
    return out


def main(paths: list[str]) -> None:
    if not paths:
        raise SystemExit(__doc__)
    print(
        "| policy | reward, diurnal | reward, delayed metrics | delay cost (paired, 95 % CI) | SLO viol. | cost USD "
        "| instances |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for path in paths:
        print("\n".join(rows(path)))


if __name__ == "__main__":
    main(sys.argv[1:])
