"""How much room issue 15's targets leave: its verdicts applied to references that know more than a policy can.

    PYTHONPATH=. python perf/target_room.py [--folder results/rl44_fc] [--ceiling results/rate_ceiling.json]

Issue 15's targets ask a learned generalist to beat the best one-setting tuned rule on every scenario at no higher
SLO share and the per-scenario tuned rules over all scenarios (IQM), and per-family specialists to beat each
scenario's best tuned rule on 4 of 7 (benchmark seeds 1000-1019, paired tests). This script makes the same calls,
with the same rules chosen on the tuning seeds 0-19, for candidates that are not policies one could train:

- ``the bound``: the ``hindsight`` planner, which knows every random draw of the episode (docs/planner.md);
- ``per-scenario rules``: each scenario's best tuned rule, i.e. a generalist told which scenario it is in and
  playing that scenario's tuned rule (judged as a generalist: against the best one-setting rule);
- with ``--ceiling``, the calls ``perf/rate_ceiling.py`` stored for ``oracle``, which knows each step's expected
  rate (the schedule) but no draw, tuned on the tuning seeds (per scenario and as one setting).

An ablation folder (``--folder``) holds what it needs: the rules' benchmark episodes (``rules_episodes.csv``),
their tuning-seed means (``tuning_rewards.json``) and the bound's episodes (``bound_episodes.csv``), stamped with
the code version that made them (``rules_version.txt``, checked). Each call is made under both readings of the
SLO clause (``perf/rate_ceiling.py``'s ``judge``: strict, the mean share at most the rule's; tested, not
significantly higher), and each candidate's IQM of normalised scores is compared with the verdict's best rule
over all scenarios with per-scenario settings allowed, as ``perf/fresh_seeds.py`` does. Runs nothing; prints the
calls and (re)writes ``<folder>/target_room.json``, which holds nothing but what it derives from the folder.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

from agents.experiments import verdict as vd
from agents.experiments.ablation import best_generalist, best_rule
from agents.experiments.benchmark import EVALUATION_SCENARIOS
from agents.experiments.bound import BOUND_POLICY, code_version
from perf.rate_ceiling import judge, line, tally

Triples = dict[int, tuple[float, float, float]]


def by_policy(path: Path) -> dict[tuple[str, str], Triples]:
    """An episodes CSV as {(scenario, policy): {seed: (reward, SLO-violation share, cost $)}}."""
    out: dict[tuple[str, str], Triples] = {}
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        out.setdefault((r["scenario"], r["policy"]), {})[int(r["seed"])] = (
            float(r["reward"]),
            float(r["slo_violation_share"]),
            float(r["cost_usd"]),
        )
    return out


def iqm_vs_pool(rules: dict[tuple[str, str], Triples], name: str, eps: dict[str, Triples], tuning: dict) -> list:
    """The candidate's IQM of normalised scores minus the verdict's best rule over all scenarios [95 % CI]."""
    bench = {k: {sd: v[:2] for sd, v in e.items()} for k, e in rules.items()}
    bench.update({(s, name): {sd: v[:2] for sd, v in eps[s].items()} for s in EVALUATION_SCENARIOS})
    _, agg = vd.aggregate_rows(vd.setup(bench, name), tuning)
    pool = next(o for o in agg if o["pool"].startswith("any rule"))
    return [pool["rule"], pool["iqm_diff"], pool["iqm_diff_low"], pool["iqm_diff_high"]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--folder", default="results/rl44_fc", help="an ablation folder (module docstring)")
    ap.add_argument("--ceiling", default=None, help="perf/rate_ceiling.py's JSON, for the oracle's stored calls")
    args = ap.parse_args()
    folder, version = Path(args.folder), code_version()
    need = ("rules_episodes.csv", "tuning_rewards.json", "bound_episodes.csv", "rules_version.txt")
    missing = [n for n in need if not (folder / n).is_file()]
    if missing:
        raise SystemExit(f"--folder {folder}: no {', '.join(missing)} (an ablation folder has them)")
    if (folder / "rules_version.txt").read_text().strip() != version:
        raise SystemExit(f"--folder {folder}: its episodes are not this code version's ({version})")
    ceiling = json.loads(Path(args.ceiling).read_text()) if args.ceiling else None
    if ceiling and ceiling.get("code_version") != version:
        raise SystemExit(f"--ceiling {args.ceiling}: not this code version's ({version}): run perf/rate_ceiling.py")

    tuning = {tuple(k.split("|")): v for k, v in json.loads((folder / "tuning_rewards.json").read_text()).items()}
    rules = by_policy(folder / "rules_episodes.csv")
    bound = by_policy(folder / "bound_episodes.csv")
    best = {s: best_rule(tuning, s) for s in EVALUATION_SCENARIOS}
    general = best_generalist(tuning, EVALUATION_SCENARIOS)
    absent = [s for s in EVALUATION_SCENARIOS if (s, BOUND_POLICY) not in bound]
    if absent:
        raise SystemExit(f"{folder}/bound_episodes.csv: no {BOUND_POLICY} episodes of {', '.join(absent)}")

    candidates = {
        "the bound": ({s: bound[(s, BOUND_POLICY)] for s in EVALUATION_SCENARIOS}, ("specialists", "generalist")),
        "per-scenario rules": ({s: rules[(s, best[s])] for s in EVALUATION_SCENARIOS}, ("generalist",)),
    }
    report: dict = {"code_version": version, "best_rule": best, "generalist_rule": general, "candidates": {}}
    for name, (eps, kinds) in candidates.items():
        entry: dict = {"iqm_vs_pool": iqm_vs_pool(rules, name, eps, tuning)}
        for kind in kinds:
            calls = []
            for s in EVALUATION_SCENARIOS:
                rule = best[s] if kind == "specialists" else general
                calls.append({"scenario": s, "rule": rule, **judge(eps[s], rules[(s, rule)])})
                print(line(s, name, rule, calls[-1]))
            against = "each scenario's best rule" if kind == "specialists" else general
            print(f"{name} against {against}: {tally([{'c': c} for c in calls], 'c')}")
            entry[kind] = calls
        rule, diff, low, high = entry["iqm_vs_pool"]
        print(f"{name}: IQM - {rule} (the verdict's pool): {diff:+.3f} [{low:+.3f}, {high:+.3f}]", flush=True)
        report["candidates"][name] = entry
    if ceiling:
        for kind, label in (("specialist", "oracle tuned per scenario"), ("generalist", "oracle tuned as one setting")):
            print(f"{label} (perf/rate_ceiling.py): {tally(ceiling['scenarios'], kind)}")
    (folder / "target_room.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
