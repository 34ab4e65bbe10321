"""Per-seed episodes of one policy per scenario, as rows of the ablation's episodes.csv (for perf/slo_reading.py).

    python perf/policy_episodes.py --label imitation --seeds 1000..1019 --out results/s49/episodes.csv \
        steady=ppo:results/s49/imitate_steady diurnal=ppo:results/s49/imitate_diurnal

Each ``SCENARIO=SPEC`` runs ``SPEC`` (any policy spec: ``ppo:RUN``, ``kpa@tuned``...) on the scenario over the
seeds, one batch as the benchmark does, and appends its rows (``policy`` is ``--label``) to ``--out``, which must
not hold rows of that label and scenario already (nothing is overwritten). ``--seeds`` below 1000 are for choices
(e.g. which specialist a scenario gets), 1000..1019 are the benchmark's.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from agents.registry import make_policy
from scaling_env.config import ConfigError
from scaling_env.episode_stats import METRIC_NAMES
from scaling_env.rollout import rollout
from scaling_env.scenarios import load_scenario


def parse_seeds(text: str) -> list[int]:
    try:
        if ".." in text:
            a, b = text.split("..")
            return list(range(int(a), int(b) + 1))
        return [int(s) for s in text.split(",")]
    except ValueError:
        raise SystemExit(f"--seeds {text!r}: expected A..B or a comma-separated list of integers") from None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("pairs", nargs="+", help="SCENARIO=SPEC")
    ap.add_argument("--label", required=True, help="the rows' policy column")
    ap.add_argument("--seeds", default="1000..1019")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    seeds = parse_seeds(args.seeds)
    pairs: dict[str, str] = {}
    for pair in args.pairs:
        scenario, sep, spec = pair.partition("=")
        if not sep or not scenario or not spec:
            raise SystemExit(f"{pair!r}: expected SCENARIO=SPEC")
        if scenario in pairs:
            raise SystemExit(f"scenario {scenario} is given twice; one policy per scenario and label")
        pairs[scenario] = spec
    out = Path(args.out)
    fields = ["policy", "scenario", "seed", *METRIC_NAMES]
    have: set[tuple[str, str]] = set()
    if out.exists():
        with open(out, newline="") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames != fields:
                raise SystemExit(f"{out}: its columns are not this script's {fields}")
            have = {(r["policy"], r["scenario"]) for r in reader}
    clash = [s for s in pairs if (args.label, s) in have]
    if clash:
        raise SystemExit(f"{out} already holds rows of {args.label!r} on {clash}; choose another --label or --out")
    policies = []
    for scenario, spec in pairs.items():  # every policy is built before anything is written
        try:
            cfg = load_scenario(scenario).config
            policies.append((scenario, spec, make_policy(spec, cfg, scenario=scenario), cfg))
        except ConfigError as exc:
            raise SystemExit(f"{scenario}={spec}: {exc}") from None
    rows = []
    for scenario, spec, policy, cfg in policies:
        run_cfg = getattr(policy, "env_config", cfg)  # a trained model's env: the run's observation options
        res = rollout(run_cfg, policy, seeds, parallel=False)
        rows += [
            {"policy": args.label, "scenario": scenario, "seed": s, **{k: m[k] for k in METRIC_NAMES}}
            for s, m in zip(seeds, res.metrics)
        ]
        mean = sum(m["reward"] for m in res.metrics) / len(seeds)
        print(f"{scenario}: {spec} mean reward {mean:.2f} over {len(seeds)} seeds")
    new_file = not out.exists()
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "a", newline="") as f:  # all rows at once, after every episode ran
        w = csv.DictWriter(f, fieldnames=fields)
        if new_file:
            w.writeheader()
        w.writerows(rows)


if __name__ == "__main__":
    main()
