"""A candidate against a rule per scenario on two seed sets and on both pooled, with cost over the bound.

    PYTHONPATH=. python perf/pooled_reading.py results/s49/episodes.csv specialists_s49 \
        results/s47_all/rules_episodes.csv RULES_JSON --fresh results/s49/fresh.csv best_rule \
        --bound results/s47_all/bound_episodes.csv

``RULES_JSON`` maps each scenario to the rule's spec in the rules CSV, e.g. ``{"steady": "predictive@tuned"}``;
``--fresh CSV LABEL`` is a second seed set holding the candidate (same label) and the rule (``LABEL`` for every
scenario); ``--bound`` the ablation's ``bound_episodes.csv`` (policy ``hindsight``). Prints, per scenario, the
paired mean reward difference and its t-test p on the first set, the second and the two pooled, and the
candidate's and the rule's mean cost over the bound's on the first set's seeds (CSV rows as written by
perf/policy_episodes.py or the ablation).
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from scipy import stats

from perf.slo_reading import episodes as rows_of  # the per-scenario, per-seed rows of one policy


def diffs(cand: dict[int, dict[str, str]], rule: dict[int, dict[str, str]]) -> np.ndarray:
    seeds = sorted(set(cand) & set(rule))
    return np.array([float(cand[s]["reward"]) - float(rule[s]["reward"]) for s in seeds])


def reading(d: np.ndarray) -> str:
    if len(d) < 2:
        return "n/a"
    p = stats.ttest_1samp(d, 0.0).pvalue if d.std() > 0 else 1.0
    return f"{d.mean():+.2f} (p {p:.2g}, n {len(d)})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("episodes_csv")
    ap.add_argument("candidate")
    ap.add_argument("rules_csv")
    ap.add_argument("rules_json")
    ap.add_argument("--fresh", nargs=2, metavar=("CSV", "RULE_LABEL"), required=True)
    ap.add_argument("--bound", required=True)
    args = ap.parse_args()
    try:
        rules = json.loads(args.rules_json)
    except json.JSONDecodeError as exc:
        raise SystemExit(f"RULES_JSON {args.rules_json!r}: not JSON ({exc})") from None
    cand = rows_of(args.episodes_csv, args.candidate)
    fresh_cand = rows_of(args.fresh[0], args.candidate)
    fresh_rule = rows_of(args.fresh[0], args.fresh[1])
    bound = rows_of(args.bound, "hindsight")
    for scenario, spec in rules.items():
        rule = rows_of(args.rules_csv, spec).get(scenario, {})
        a = diffs(cand.get(scenario, {}), rule)
        b = diffs(fresh_cand.get(scenario, {}), fresh_rule.get(scenario, {}))
        seeds = sorted(set(cand.get(scenario, {})) & set(rule) & set(bound.get(scenario, {})))
        cost = ""
        if seeds:
            c = {
                name: np.mean([float(src[s]["cost_usd"]) for s in seeds])
                for name, src in (("cand", cand[scenario]), ("rule", rule), ("bound", bound[scenario]))
            }
            cost = f"; cost / bound {c['cand'] / c['bound']:.3f} (rule {c['rule'] / c['bound']:.3f})"
        print(
            f"{scenario} [{spec}]: first {reading(a)}; second {reading(b)}; "
            f"pooled {reading(np.concatenate([a, b]))}{cost}"
        )


if __name__ == "__main__":
    main()
