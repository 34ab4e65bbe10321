"""Each evaluation scenario's best tuned rule played on every scenario, on the tuning seeds: can one of them serve
as a single setting for all scenarios (what a gate over them gains beyond picking the best one)?

    python -m agents.experiments.cross_rules [--seeds 0-19] [--all]

The best rule of each scenario is chosen on the tuning seeds as the ablation chooses it (``ablation.best_rule``
over the rules' tuning rewards, computed here for the rule settings the ablation benchmarks), read from its file
(``ablation.rule_file``); each file, and the best one-setting rule (``ablation.best_generalist``), is then run on
every scenario on the same tuning seeds (never the benchmark's 1000-1019). Prints a Markdown table of mean rewards.

``--all`` plays every tuned setting (each file under configs/policies/tuned/) on every scenario instead, each cell
its mean reward minus the best one-setting rule's and its SLO share, marked ``*`` where it earns more at no higher
SLO share: which rules a gate could safely follow where (about 5 minutes, memory_pressure most of it).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from scaling_env.config import ConfigError

from . import ablation as ab
from . import verdict as vd
from .benchmark import EVALUATION_SCENARIOS
from .gate_choices import parse_seeds

TUNED_DIR = Path("configs/policies/tuned")


def cross_table(seeds: list[int]) -> str:
    from agents.registry import with_tuned

    scenarios = list(EVALUATION_SCENARIOS)
    rules = [p for p in with_tuned(list(ab.RULES)) if not vd.is_clairvoyant(p, scenarios[0])]
    tuning = vd.tuning_rewards(rules, scenarios, seeds)
    files = list(dict.fromkeys(ab.rule_file(ab.best_rule(tuning, s), s) for s in scenarios))
    generalist = ab.best_generalist(tuning, scenarios)
    cross = vd.tuning_rewards(files, scenarios, seeds)
    lines = [
        "| rule, tuning seeds | " + " | ".join(scenarios) + " | mean |",
        "|---|" + "---:|" * (len(scenarios) + 1),
    ]
    for spec, table in [(f, cross) for f in files] + [(generalist, tuning)]:
        values = [table[(s, spec)] for s in scenarios]
        lines.append(f"| {spec} | " + " | ".join(f"{v:.1f}" for v in values) + f" | {np.mean(values):.1f} |")
    return "\n".join(lines) + "\n"


def all_tuned_table(seeds: list[int]) -> str:
    """Every tuned setting (each file under :data:`TUNED_DIR`) on every evaluation scenario on ``seeds``: its mean
    reward minus the best one-setting rule's (whose row shows its own mean reward) and its SLO share, ``*`` where it
    earns more at no higher share (module docstring)."""
    from agents.registry import with_tuned

    scenarios = list(EVALUATION_SCENARIOS)
    rules = [p for p in vd.one_setting(with_tuned(list(ab.RULES))) if not vd.is_clairvoyant(p, scenarios[0])]
    generalist = ab.best_generalist(vd.tuning_rewards(rules, scenarios, seeds), scenarios)
    files = sorted(p.as_posix() for p in TUNED_DIR.glob("*/*.yaml"))
    if not files:
        raise ConfigError(f"no tuned settings under {TUNED_DIR} (run scaling-env tune first)")
    cells = vd.tuning_episodes([generalist, *files], scenarios, seeds, ("reward", "slo_violation_share"))
    mean = {k: {m: float(np.mean(v)) for m, v in c.items()} for k, c in cells.items()}
    lines = [
        f"| setting, tuning seeds: reward minus {generalist}'s (its row: its own), SLO share | "
        + " | ".join(scenarios)
        + " |",
        "|---|" + "---:|" * len(scenarios),
        f"| {generalist} | "
        + " | ".join(
            f"{mean[(s, generalist)]['reward']:.1f} ({mean[(s, generalist)]['slo_violation_share']:.2%})"
            for s in scenarios
        )
        + " |",
    ]
    for f in files:
        row = []
        for s in scenarios:
            a, b = mean[(s, f)], mean[(s, generalist)]
            diff = a["reward"] - b["reward"]
            win = "*" if vd.beats_at_slo(diff, a["slo_violation_share"], b["slo_violation_share"]) else ""
            row.append(f"{diff:+.1f} ({a['slo_violation_share']:.2%}){win}")
        lines.append(f"| {Path(f).relative_to(TUNED_DIR).with_suffix('').as_posix()} | " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0-19", help="first-last or a comma list (default: the tuning seeds 0-19)")
    parser.add_argument("--all", action="store_true", help="every tuned setting, with SLO shares (see above)")
    args = parser.parse_args()
    try:
        seeds = parse_seeds(args.seeds)
    except ConfigError as exc:
        raise SystemExit(f"error: {exc}") from None
    try:
        print(all_tuned_table(seeds) if args.all else cross_table(seeds))
    except ConfigError as exc:
        raise SystemExit(f"error: {exc}") from None


if __name__ == "__main__":
    main()
