"""PPO against the best rule policy of each scenario, from a benchmark's per-episode CSV, as a Markdown table.

    scaling-env verdict results/ppo_bench/episodes.csv [--ppo ppo:runs/ppo_final]

For each scenario: the PPO policy's mean reward (95 % CI) and SLO violation share, the best rule policy by mean
reward (every policy but the oracle and the PPO one counts as a rule policy, static_peak included), its reward
and SLO share, the oracle's reward, the paired difference PPO - rule over the same seeds (mean, 95 % CI), and
the verdict: "PPO wins" if PPO has the higher mean reward and an SLO violation share not higher than the rule's,
"reward only" if it has the higher reward but a higher SLO share, else "rule wins".

Then the same over all scenarios together: each policy's mean episode reward over the scenarios (per seed, then
over seeds), its mean SLO violation share, and the paired difference PPO - policy over the seeds (95 % CI).
"""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import numpy as np

from .benchmark import ci95


def read_episodes(path: Path) -> dict[tuple[str, str], dict[int, tuple[float, float]]]:
    """{(scenario, policy): {seed: (reward, slo_violation_share)}} and the scenarios in file order."""
    out: dict[tuple[str, str], dict[int, tuple[float, float]]] = defaultdict(dict)
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            out[(row["scenario"], row["policy"])][int(row["seed"])] = (
                float(row["reward"]),
                float(row["slo_violation_share"]),
            )
    return out


def verdict_rows(path: Path, ppo: str | None = None) -> list[dict]:
    episodes = read_episodes(path)
    policies = list(dict.fromkeys(p for _, p in episodes))
    scenarios = list(dict.fromkeys(s for s, _ in episodes))
    if ppo is None:
        found = [p for p in policies if p.startswith("ppo")]
        if len(found) != 1:
            raise SystemExit(f"{path}: name the PPO policy with --ppo (found {found or 'none'})")
        ppo = found[0]
    rows = []
    for scenario in scenarios:
        mine = episodes[(scenario, ppo)]
        rules = {p: episodes[(scenario, p)] for p in policies if p not in ("oracle", ppo) and (scenario, p) in episodes}
        if not rules:
            raise SystemExit(f"{path}: no rule policy on scenario {scenario}: benchmark PPO together with the rules")
        best = max(rules, key=lambda p: np.mean([r for r, _ in rules[p].values()]))
        seeds = sorted(set(mine) & set(rules[best]))
        reward = np.array([mine[s][0] for s in seeds])
        rule_reward = np.array([rules[best][s][0] for s in seeds])
        slo, rule_slo = np.mean([mine[s][1] for s in seeds]), np.mean([rules[best][s][1] for s in seeds])
        oracle = episodes.get((scenario, "oracle"), {})
        diff = reward - rule_reward
        wins_reward = reward.mean() > rule_reward.mean()
        slo_ok = slo <= rule_slo + 1e-12
        rows.append(
            {
                "scenario": scenario,
                "reward": reward.mean(),
                "reward_ci": ci95(reward),
                "slo": slo,
                "rule": best,
                "rule_reward": rule_reward.mean(),
                "rule_slo": rule_slo,
                "oracle": np.mean([r for r, _ in oracle.values()]) if oracle else float("nan"),
                "diff": diff.mean(),
                "diff_ci": ci95(diff),
                "wins_reward": wins_reward,
                "slo_ok": slo_ok,
                "verdict": "PPO wins" if wins_reward and slo_ok else ("reward only" if wins_reward else "rule wins"),
            }
        )
    return rows


def overall_rows(path: Path, ppo: str | None = None) -> list[dict]:
    """Every policy over all scenarios: mean reward (the per-seed mean over scenarios, averaged over seeds), mean
    SLO violation share, and PPO - policy paired by seed; best first."""
    episodes = read_episodes(path)
    policies = list(dict.fromkeys(p for _, p in episodes))
    scenarios = list(dict.fromkeys(s for s, _ in episodes))
    if ppo is None:
        ppo = next(p for p in policies if p.startswith("ppo"))
    seeds = sorted(set.intersection(*(set(episodes[(s, p)]) for s in scenarios for p in policies)))

    def per_seed(p: str) -> np.ndarray:
        return np.array([np.mean([episodes[(s, p)][seed][0] for s in scenarios]) for seed in seeds])

    mine = per_seed(ppo)
    rows = []
    for p in policies:
        r = per_seed(p)
        diff = mine - r
        rows.append(
            {
                "policy": p,
                "reward": r.mean(),
                "reward_ci": ci95(r),
                "slo": np.mean([episodes[(s, p)][seed][1] for s in scenarios for seed in seeds]),
                "diff": diff.mean(),
                "diff_ci": ci95(diff),
            }
        )
    return sorted(rows, key=lambda r: -r["reward"])


def overall_markdown(rows: list[dict]) -> str:
    lines = [
        "| policy | mean reward over the scenarios (95 % CI) | mean SLO viol. | PPO - policy, same seeds (95 % CI) |",
        "|---|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['policy']} | {r['reward']:.1f} ± {r['reward_ci']:.1f} | {r['slo']:.2%} | "
            f"{r['diff']:+.1f} ± {r['diff_ci']:.1f} |"
        )
    return "\n".join(lines)


def markdown(rows: list[dict]) -> str:
    lines = [
        "| scenario | PPO reward (95 % CI) | PPO SLO viol. | best rule policy | its reward | its SLO viol. | "
        "oracle reward | PPO - rule, same seeds (95 % CI) | higher reward? | SLO share not higher? | verdict |",
        "|---|---:|---:|---|---:|---:|---:|---:|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['scenario']} | {r['reward']:.1f} ± {r['reward_ci']:.1f} | {r['slo']:.2%} | {r['rule']} | "
            f"{r['rule_reward']:.1f} | {r['rule_slo']:.2%} | {r['oracle']:.1f} | "
            f"{r['diff']:+.1f} ± {r['diff_ci']:.1f} | {'yes' if r['wins_reward'] else 'no'} | "
            f"{'yes' if r['slo_ok'] else 'no'} | **{r['verdict']}** |"
        )
    return "\n".join(lines)


def main() -> None:
    """``python -m`` runs ``scaling-env verdict`` (the command line lives in ``agents/experiments/cli.py``)."""
    import sys

    from .cli import app

    app(["verdict", *sys.argv[1:]])


if __name__ == "__main__":
    main()
