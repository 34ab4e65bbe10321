"""How much room issue 15's targets leave: its verdicts applied to references that know more than a policy can.

    PYTHONPATH=. python perf/target_room.py [--folder results/rl44_fc] [--ceiling results/rate_ceiling.json] \
        [--cache results/planner/cache.json] [--sampled results/planner_sampled/cache.json]

Issue 15's targets ask a learned generalist to beat the best one-setting tuned rule on every scenario at no higher
SLO share and the per-scenario tuned rules over all scenarios (IQM), and per-family specialists to beat each
scenario's best tuned rule on 4 of 7 (benchmark seeds 1000-1019, paired tests). This script makes the same calls,
with the same rules chosen on the tuning seeds 0-19, for references that know more than a trained policy is
given:

- ``the bound``: the ``hindsight`` planner, which knows every random draw of the episode (docs/planner.md), read
  from the planner cache (``--cache``) for this code version;
- ``per-scenario rules``: each scenario's best tuned rule, i.e. a generalist told which scenario it is in and
  playing that scenario's tuned rule (judged as a generalist: against the best one-setting rule);
- with ``--sampled``, the sampled-futures ``planner`` (docs/planner.md), which knows each step's expected rate
  (on noisy_trace: the seed's drawn day of the trace), the scheduled outages and the cluster's exact hidden
  state, and plans with the simulator itself over sampled futures, but knows no Poisson draw or crash to come.
  Read from that planner cache (made by ``perf/bench_planner.py --bound planner``) for this code version;
- with ``--ceiling``, the calls ``perf/rate_ceiling.py`` stored for ``oracle``, which knows each step's expected
  rate (on noisy_trace: the seed's drawn trace) but no Poisson draw or crash, tuned on the tuning seeds (per
  scenario and as one setting); they are printed only if that file chose the same rules as here.

An ablation folder (``--folder``) holds the rules' benchmark episodes (``rules_episodes.csv``) and their
tuning-seed means (``tuning_rewards.json``), stamped with the code version that made them (``rules_version.txt``,
checked); every episode set used must cover the benchmark seeds 1000-1019. Each call is made under both readings of the
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
from typing import Any

from agents.experiments import verdict as vd
from agents.experiments.ablation import SEEDS, best_generalist, best_rule, bound_rows
from agents.experiments.benchmark import EVALUATION_SCENARIOS
from agents.experiments.bound import BOUND_POLICY, DEFAULT_CACHE, code_version
from perf.rate_ceiling import judge, line, read_ceiling, tally
from scaling_env.config import ConfigError
from scaling_env.scenarios import load_scenario

Triples = dict[int, tuple[float, float, float]]
Episodes = dict[tuple[str, str], Triples]


def by_policy(rows: list[dict[str, Any]]) -> Episodes:
    """Episode rows as {(scenario, policy): {seed: (reward, SLO-violation share, cost $)}}."""
    out: Episodes = {}
    for r in rows:
        out.setdefault((r["scenario"], r["policy"]), {})[int(r["seed"])] = (
            float(r["reward"]),
            float(r["slo_violation_share"]),
            float(r["cost_usd"]),
        )
    return out


def iqm_vs_pool(
    rules: Episodes, name: str, eps: dict[str, Triples], tuning: dict[tuple[str, str], float]
) -> tuple[str, float, float, float]:
    """The candidate's IQM of normalised scores minus the verdict's best rule over all scenarios [95 % CI]."""
    bench = {k: {sd: v[:2] for sd, v in e.items()} for k, e in rules.items()}
    bench.update({(s, name): {sd: v[:2] for sd, v in eps[s].items()} for s in EVALUATION_SCENARIOS})
    _, agg = vd.aggregate_rows(vd.setup(bench, name), tuning)
    pool = next(o for o in agg if o["pool"].startswith("any rule"))
    return pool["rule"], pool["iqm_diff"], pool["iqm_diff_low"], pool["iqm_diff_high"]


def drawn_schedule(scenario: str) -> bool:
    """Whether the scenario's schedule of expected rates is itself drawn per seed (a trace replayed from a random
    start, a random phase or scale jitter), so that a reference reading those rates knows a random draw."""
    w = load_scenario(scenario).config.workload
    return w.random_phase or w.scale_jitter > 0 or getattr(w.shape, "start", None) == "random"


def planner_episodes(flag: str, cache: str, spec: str) -> Episodes:
    """The planner variant ``spec``'s benchmark episodes from the cache ``cache`` (given as ``flag``), for this
    code version; a missing or unreadable entry exits with a message naming the flag and the command."""
    try:
        return by_policy(bound_rows(list(EVALUATION_SCENARIOS), Path(cache), spec))
    except (ConfigError, ValueError) as exc:
        raise SystemExit(f"{flag} {cache}: {exc}") from None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--folder", default="results/rl44_fc", help="an ablation folder (module docstring)")
    ap.add_argument("--ceiling", default=None, help="perf/rate_ceiling.py's JSON, for the oracle's stored calls")
    ap.add_argument("--cache", default=str(DEFAULT_CACHE), help="the planner cache, for the bound's episodes")
    ap.add_argument("--sampled", default=None, help="the sampled-futures planner's cache (module docstring)")
    args = ap.parse_args()
    folder, version = Path(args.folder), code_version()
    if not folder.is_dir():
        raise SystemExit(f"--folder {folder}: no such folder")
    need = ("rules_episodes.csv", "tuning_rewards.json", "rules_version.txt")
    missing = [n for n in need if not (folder / n).is_file()]
    if missing:
        raise SystemExit(f"--folder {folder}: no {', '.join(missing)} (an ablation folder has them)")
    if (folder / "rules_version.txt").read_text().strip() != version:
        raise SystemExit(f"--folder {folder}: its episodes are not this code version's ({version})")
    ceiling = read_ceiling(args.ceiling, version) if args.ceiling is not None else None
    bound = planner_episodes("--cache", args.cache, BOUND_POLICY)
    sampled = planner_episodes("--sampled", args.sampled, "planner") if args.sampled is not None else None

    tuning = {tuple(k.split("|")): v for k, v in json.loads((folder / "tuning_rewards.json").read_text()).items()}
    with open(folder / "rules_episodes.csv", newline="") as fh:
        rules = by_policy(list(csv.DictReader(fh)))
    best = {s: best_rule(tuning, s) for s in EVALUATION_SCENARIOS}
    general = best_generalist(tuning, EVALUATION_SCENARIOS)
    used = [(s, best[s]) for s in EVALUATION_SCENARIOS] + [(s, general) for s in EVALUATION_SCENARIOS]
    short = [f"{s} {p}" for s, p in used if set(rules.get((s, p), {})) != set(SEEDS)]
    if short:
        raise SystemExit(f"{folder}/rules_episodes.csv: not seeds 1000-1019 exactly for {', '.join(short[:3])}")

    candidates = {
        "the bound": ({s: bound[(s, BOUND_POLICY)] for s in EVALUATION_SCENARIOS}, ("specialists", "generalist")),
        "per-scenario rules": ({s: rules[(s, best[s])] for s in EVALUATION_SCENARIOS}, ("generalist",)),
    }
    if sampled is not None:
        eps = {s: sampled[(s, "planner")] for s in EVALUATION_SCENARIOS}
        candidates["the sampled-futures planner"] = (eps, ("specialists", "generalist"))
        # where the schedule itself is drawn per seed, the planner's expected rates read that draw: the same
        # planner on the fixed schedules only, playing the scenario's best rule where it would read a draw
        drawn = [s for s in EVALUATION_SCENARIOS if drawn_schedule(s)]
        fixed = {s: rules[(s, best[s])] if s in drawn else eps[s] for s in EVALUATION_SCENARIOS}
        candidates[f"the planner on fixed schedules (the best rule on {', '.join(drawn)})"] = (fixed, ("specialists",))
    report: dict[str, Any] = {"code_version": version, "best_rule": best, "generalist_rule": general, "candidates": {}}
    for name, (eps, kinds) in candidates.items():
        entry: dict[str, Any] = {"iqm_vs_pool": iqm_vs_pool(rules, name, eps, tuning)}
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
    if ceiling is not None:
        chosen = {r["scenario"]: r["rule"] for r in ceiling["scenarios"]}
        if chosen != best or ceiling["generalist_rule"] != general:
            raise SystemExit(f"--ceiling {args.ceiling}: judged against other rules than {folder}'s tuning rewards")
        for kind, label in (("specialist", "oracle tuned per scenario"), ("generalist", "oracle tuned as one setting")):
            print(f"{label} (perf/rate_ceiling.py): {tally(ceiling['scenarios'], kind)}")
    (folder / "target_room.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
