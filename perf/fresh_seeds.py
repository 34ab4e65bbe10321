"""Issue 15's published candidates judged again on seeds that no choice has read (default 2000-2019).

    PYTHONPATH=. python perf/fresh_seeds.py --specialists s0=results/rl44_gs4 ... \
        --generalists gen4=results/rl44_gen4/runs/<variant> ... [--ceiling results/rate_ceiling.json] \
        [--seeds 2000-2019] [--out results/fresh_seeds]

Every verdict in docs/results.md is on the benchmark seeds 1000-1019, and some recipes were chosen after reading
episodes on them (stop 44 says which). This script asks whether the calls hold on another 20 seeds:

- the rules (every family's default, ``@generalist`` and ``@tuned`` setting, and ``oracle``, the normalising
  reference) are run on the new seeds (cached in ``<out>/rules_episodes.csv`` for this code version);
- the best rules are those the verdict chose: the highest mean reward on the tuning seeds 0-19, read from an
  ablation folder's ``tuning_rewards.json`` (``--tuning``; its ``rules_version.txt`` must be this code version);
- ``--specialists NAME=FOLDER``: an ablation's gate specialists (``FOLDER/runs/gate_specialist_<scenario>``),
  each judged on its own scenario against that scenario's best rule;
- ``--generalists NAME=RUN``: one run folder judged on all seven against the best one-setting rule;
- ``--ceiling``: the oracle with ``perf/rate_ceiling.py``'s margins (chosen on the tuning seeds), per scenario and
  as one setting, judged the same ways.

Each call is made under both readings of the SLO clause (strict: the mean share at most the rule's; tested: not
significantly higher; ``perf/rate_ceiling.py``'s ``judge``), and each candidate's IQM of normalised scores is
compared with that of the verdict's best rule over all scenarios with per-scenario settings allowed
(``verdict.aggregate_rows``' "any rule" pool: one rule family, each scenario with its ``@tuned`` setting). Writes
``<out>/episodes.csv`` and ``<out>/fresh_seeds.json``; prints one line per call. The ``--ceiling`` file must be
this code version's (``perf/rate_ceiling.py`` writes it): its margins were chosen on that simulator.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from agents.experiments import verdict as vd
from agents.experiments.ablation import RULES, best_generalist, best_rule, evaluate_run, read_rows, write_rows
from agents.experiments.benchmark import EVALUATION_SCENARIOS, run_benchmark
from agents.experiments.bound import code_version
from agents.registry import with_tuned
from perf.rate_ceiling import judge, line, oracle, read_ceiling, tally
from perf.target_room import by_policy
from scaling_env.rollout import rollout
from scaling_env.scenarios import load_scenario


def seed_list(text: str) -> list[int]:
    """``2000-2019``, ``5,7,9`` or both mixed (``2000-2009,2020``)."""
    seeds: list[int] = []
    try:
        for part in text.split(","):
            a, _, b = part.partition("-")
            seeds += list(range(int(a), int(b) + 1)) if b else [int(a)]
    except ValueError:
        raise SystemExit(f"--seeds {text!r}: give ranges a-b and seeds, comma-separated") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise SystemExit(f"--seeds {text!r}: no seeds, or a seed twice")
    return seeds


def named(pairs: list[str], flag: str) -> dict[str, Path]:
    out = {}
    for p in pairs:
        if "=" not in p:
            raise SystemExit(f"{flag} {p!r}: give NAME=PATH")
        name, path = p.split("=", 1)
        if not Path(path).is_dir():
            raise SystemExit(f"{flag} {p!r}: {path} is not a folder")
        out[name] = Path(path)
    return out


def as_triples(rows: list[dict]) -> dict[int, tuple[float, float, float]]:
    return {int(r["seed"]): (float(r["reward"]), float(r["slo_violation_share"]), float(r["cost_usd"])) for r in rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", default="2000-2019")
    ap.add_argument("--tuning", default="results/rl44_gs4", help="an ablation folder with tuning_rewards.json")
    ap.add_argument("--specialists", nargs="*", default=[], metavar="NAME=FOLDER")
    ap.add_argument("--generalists", nargs="*", default=[], metavar="NAME=RUN")
    ap.add_argument("--ceiling", default=None, help="perf/rate_ceiling.py's JSON")
    ap.add_argument("--out", default="results/fresh_seeds")
    args = ap.parse_args()
    seeds, out, t0 = seed_list(args.seeds), Path(args.out), time.time()
    if min(seeds) < 1020 or max(seeds) >= 1_000_000:
        raise SystemExit(f"--seeds {args.seeds}: use seeds no choice has read (not 0-1019, not 1,000,000+)")
    tuning_dir = Path(args.tuning)
    version = code_version()
    if (tuning_dir / "rules_version.txt").read_text().strip() != version:
        raise SystemExit(f"{tuning_dir}: its tuning rewards are not this code version's ({version})")
    tuning = {tuple(k.split("|")): v for k, v in json.loads((tuning_dir / "tuning_rewards.json").read_text()).items()}
    specialists, generalists = named(args.specialists, "--specialists"), named(args.generalists, "--generalists")
    ceiling = read_ceiling(args.ceiling, version) if args.ceiling is not None else None
    out.mkdir(parents=True, exist_ok=True)

    cache, stamp = out / "rules_episodes.csv", out / "rules_version.txt"
    if cache.is_file() and stamp.is_file() and stamp.read_text().strip() == f"{version} {args.seeds}":
        rules = read_rows(cache)
    else:
        scenarios = [load_scenario(s) for s in EVALUATION_SCENARIOS]
        rules, _ = run_benchmark(with_tuned(list(RULES)), scenarios, seeds, progress=False)
        write_rows(cache, rules)
        stamp.write_text(f"{version} {args.seeds}\n")
    print(f"rules on seeds {args.seeds}: {len(rules)} episodes, {time.time() - t0:.0f} s", flush=True)
    by = by_policy(rules)
    missing = [(s, p) for s, p in tuning if (s, p) not in by] + [
        s for s in EVALUATION_SCENARIOS if not any(q == s for q, _ in tuning)
    ]
    if missing:
        raise SystemExit(f"{tuning_dir}/tuning_rewards.json and the rules run here differ: {missing[:3]}")
    # the verdict's choices on the tuning seeds, as the ablation makes them
    best = {s: best_rule(tuning, s) for s in EVALUATION_SCENARIOS}
    general = best_generalist(tuning, EVALUATION_SCENARIOS)

    cand_rows: list[dict] = []
    candidates: dict[str, tuple[str, dict[str, dict[int, tuple]]]] = {}  # name -> (kind, {scenario: episodes})
    for name, folder in specialists.items():
        eps = {}
        for s in EVALUATION_SCENARIOS:
            rows = evaluate_run(folder / "runs" / f"gate_specialist_{s}", [s], name, seeds)
            cand_rows += rows
            eps[s] = as_triples(rows)
        candidates[name] = ("specialists", eps)
    for name, run in generalists.items():
        eps = {}
        for s in EVALUATION_SCENARIOS:
            rows = evaluate_run(run, [s], name, seeds)
            cand_rows += rows
            eps[s] = as_triples(rows)
        candidates[name] = ("generalist", eps)
    if ceiling is not None:

        def margins_of(params: dict) -> tuple[float, float]:
            return params["latency_margin"], params["poisson_z"]

        one = margins_of(ceiling["generalist_params"])
        for name, kind, margins in (
            (
                "oracle per scenario",
                "specialists",
                {r["scenario"]: margins_of(r["oracle_params"]) for r in ceiling["scenarios"]},
            ),
            ("oracle one setting", "generalist", dict.fromkeys(EVALUATION_SCENARIOS, one)),
        ):
            eps = {}
            for s in EVALUATION_SCENARIOS:
                cfg = load_scenario(s).config
                m = rollout(cfg, oracle(cfg, margins[s]), seeds, parallel=False).metrics
                rows = [{"policy": name, "scenario": s, "seed": k, **e} for k, e in zip(seeds, m)]
                cand_rows += rows
                eps[s] = as_triples(rows)
            candidates[name] = (kind, eps)
    write_rows(out / "episodes.csv", cand_rows)

    report = {"seeds": seeds, "code_version": version, "best_rule": best, "generalist_rule": general, "candidates": {}}
    for name, (kind, eps) in candidates.items():
        calls = []
        for s in EVALUATION_SCENARIOS:
            rule = best[s] if kind == "specialists" else general
            j = {"scenario": s, "rule": rule, **judge(eps[s], by[(s, rule)])}
            calls.append(j)
            print(line(s, name, rule, j))
        against = "each scenario's best rule" if kind == "specialists" else general
        print(f"{name} against {against}: {tally([{'c': c} for c in calls], 'c')}")
        bench = {k: {sd: v[:2] for sd, v in e.items()} for k, e in by.items()}
        bench.update({(s, name): {sd: v[:2] for sd, v in eps[s].items()} for s in EVALUATION_SCENARIOS})
        _, agg = vd.aggregate_rows(vd.setup(bench, name), tuning)
        pool = next(o for o in agg if o["pool"].startswith("any rule"))
        print(
            f"{name}: IQM - {pool['rule']} (the verdict's best rule over all scenarios, per-scenario settings "
            f"allowed): {pool['iqm_diff']:+.3f} "
            f"[{pool['iqm_diff_low']:+.3f}, {pool['iqm_diff_high']:+.3f}]",
            flush=True,
        )
        report["candidates"][name] = {
            "kind": kind,
            "calls": calls,
            "iqm_vs_pool": [pool["rule"], pool["iqm_diff"], pool["iqm_diff_low"], pool["iqm_diff_high"]],
        }
    (out / "fresh_seeds.json").write_text(json.dumps(report, indent=1))
    print(f"{time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
