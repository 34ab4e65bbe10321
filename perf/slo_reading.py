"""A candidate against a rule, scenario by scenario, under two readings of issue 15's "at no higher SLO share".

    python perf/slo_reading.py EPISODES_CSV CANDIDATE RULES_CSV RULE [--rule-per-scenario JSON]

``EPISODES_CSV`` holds the candidate's per-seed episodes (a benchmark's or the ablation's ``episodes.csv``, or the
ablation's ``bound_episodes.csv`` with candidate ``hindsight``), ``RULES_CSV`` the rule's (the ablation's
``rules_episodes.csv``); ``RULE`` is one spec for every scenario, or a JSON mapping ``{scenario: spec}``.

Both readings need what the verdict needs for a win (``agents/experiments/verdict.py``): a paired t-test on the
common seeds with p < 0.05 and a higher mean reward. They differ in the SLO clause:

- strict (the verdict's): the candidate's mean SLO-violation share is at most the rule's;
- tested: the candidate's share is not significantly higher (a paired t-test of the per-seed shares with p < 0.05
  and a higher mean makes it higher).

A loss is p < 0.05 and a lower mean reward under both. Prints one line per scenario and the W/T/L of each reading.
"""

from __future__ import annotations

import argparse
import csv
import json

import numpy as np

from agents.experiments.benchmark import EVALUATION_SCENARIOS
from agents.experiments.verdict import beats_at_slo, paired_test


def episodes(path: str, policy: str) -> dict[str, dict[int, dict[str, str]]]:
    out: dict[str, dict[int, dict[str, str]]] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if row["policy"] == policy:
                out.setdefault(row["scenario"], {})[int(row["seed"])] = row
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("episodes_csv")
    ap.add_argument("candidate")
    ap.add_argument("rules_csv")
    ap.add_argument("rule", help="a spec, or a JSON mapping {scenario: spec}")
    args = ap.parse_args()
    rules = json.loads(args.rule) if args.rule.startswith("{") else dict.fromkeys(EVALUATION_SCENARIOS, args.rule)
    cand = episodes(args.episodes_csv, args.candidate)
    if not cand:
        raise SystemExit(f"{args.episodes_csv}: no episodes of {args.candidate!r}")
    counts = {"strict": [0, 0, 0], "tested": [0, 0, 0]}
    for scenario in EVALUATION_SCENARIOS:
        rule = episodes(args.rules_csv, rules[scenario]).get(scenario, {})
        seeds = sorted(set(rule) & set(cand.get(scenario, {})))
        if len(seeds) < 2:
            print(f"{scenario}: fewer than 2 common seeds, skipped")
            continue

        def col(rows: dict[int, dict[str, str]], key: str, seeds: list[int] = seeds) -> np.ndarray:
            return np.array([float(rows[s][key]) for s in seeds])

        reward = paired_test(col(cand[scenario], "reward"), col(rule, "reward"))
        a, b = col(cand[scenario], "slo_violation_share"), col(rule, "slo_violation_share")
        share = paired_test(a, b)
        calls = []
        for reading, slo_ok in (
            ("strict", beats_at_slo(reward.mean_diff, a.mean(), b.mean())),
            ("tested", reward.mean_diff > 0 and not (share.p_value < 0.05 and share.mean_diff > 0)),
        ):
            significant = reward.p_value < 0.05
            k = 0 if significant and slo_ok else 2 if significant and reward.mean_diff < 0 else 1
            counts[reading][k] += 1
            calls.append("WTL"[k])
        print(
            f"{scenario}: {reward.mean_diff:+.2f} (p = {reward.p_value:.2g}); SLO share {a.mean():.2%} against "
            f"{b.mean():.2%} (paired p = {share.p_value:.2g}); strict {calls[0]}, tested {calls[1]} [{rules[scenario]}]"
        )
    print(", ".join(f"{k} {'/'.join(map(str, v))}" for k, v in counts.items()))


if __name__ == "__main__":
    main()
