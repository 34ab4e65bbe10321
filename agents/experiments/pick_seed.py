"""Choose among trainings of one recipe with different seeds by the score that already chose each one's best
model (its periodic evaluation on the selection seeds 1,000,000+), and show what that choice gives on the
benchmark: the chosen run's verdict, and over every set of ``k`` of the runs, what choosing the best of ``k``
would have given (the distribution a recipe "train k seeds, keep the best on the selection seeds" has).

    python -m agents.experiments.pick_seed ARM_OUT [ARM_OUT ...] [--k 2]

Each ``ARM_OUT`` is an ablation folder holding one judged run (``python -m agents.experiments.ablation --only
<variant>_seed<N> --no-specialists --out ARM_OUT``): ``runs/<variant>/best_model.json`` gives the selection score
(``mean_reward``: the mean over the evaluation scenarios of the mean episode reward on the selection seeds; for runs
trained with ``select_by: wins_vs_base``, first the number of scenarios where it beat its base rule there) and
``episodes.csv`` the benchmark episodes of the run and of the rules. No episode is rolled out here and no
benchmark seed takes part in the choice: the benchmark's verdict only reports what the choice gave. The verdict is
the ablation's "vs best generalist" (paired t-test per scenario; a win needs p < 0.05, a higher mean reward and an
SLO share no higher than the rule's), against the best one-setting rule on the tuning seeds 0-19.
"""

from __future__ import annotations

import argparse
import itertools
import json
from collections import Counter
from pathlib import Path

from scaling_env.config import ConfigError

from . import verdict as vd
from .ablation import best_generalist, paired_vs, win_tie_loss
from .benchmark import EVALUATION_SCENARIOS


def arm_run(arm: Path) -> Path:
    """The one run folder of an ablation folder (``runs/<variant>``); ConfigError if there is none or several."""
    runs = sorted(p for p in (arm / "runs").glob("*") if p.is_dir()) if (arm / "runs").is_dir() else []
    if len(runs) != 1:
        raise ConfigError(f"{arm}: expected one run in {arm / 'runs'}, found {len(runs)}")
    return runs[0]


def recorded_score(run: Path) -> tuple[int, float] | float:
    """The run's best model's score on the selection seeds (``best_model.json``): ``mean_reward``, or, for a run
    trained with ``select_by: wins_vs_base``, (``wins_vs_base``, ``mean_reward``) as it chose its best model."""
    path = run / "best_model.json"
    try:
        values = json.loads(path.read_text())
        mean = float(values["mean_reward"])
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: missing (the run has no best model: not trained, or trained without eval)"
        ) from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: no mean_reward ({exc})") from None
    if "wins_vs_base" not in values:
        return mean
    wins = values["wins_vs_base"]
    if not isinstance(wins, int) or isinstance(wins, bool) or wins < 0:
        raise ConfigError(f"{path}: wins_vs_base is {wins!r}, not a count of scenarios")
    return wins, mean


def verdict_vs_generalist(arm: Path, run: Path, scenarios: list[str]) -> dict[str, dict]:
    """Per scenario: the run's paired comparison with the best generalist rule on the benchmark's episodes, and
    whether it is a win, a tie or a loss (as the ablation's table counts them)."""
    tuning_path = arm / "tuning_rewards.json"
    if not tuning_path.is_file():
        raise ConfigError(f"{tuning_path}: missing (the rules' tuning rewards the ablation cached)")
    try:
        tuning = {tuple(k.split("|")): v for k, v in json.loads(tuning_path.read_text()).items()}
    except (OSError, ValueError, AttributeError) as exc:
        raise ConfigError(f"{tuning_path}: not the rules' tuning rewards ({exc})") from None
    try:
        episodes = vd.read_episodes(arm / "episodes.csv")
    except vd.VerdictError as exc:
        raise ConfigError(str(exc)) from None
    label = run_label(episodes, run)
    if label is None:
        raise ConfigError(f"{arm / 'episodes.csv'}: no episodes of ppo:<...>/runs/{run.name} (judge the run first)")
    # the generalist as the ablation chose it: over every scenario the run was judged on
    judged = list(dict.fromkeys(s for s, p in episodes if p == label))
    generalist = best_generalist(tuning, judged)  # type: ignore[arg-type]
    out = {}
    for s in scenarios:
        x = paired_vs(episodes, s, label, generalist)
        outcome = win_tie_loss(x["test"], x["slo"], x["rule_slo"])
        out[s] = {"diff": x["test"].mean_diff, "slo": x["slo"], "rule_slo": x["rule_slo"], "outcome": outcome}
    return {"generalist": generalist, "scenarios": out}  # type: ignore[dict-item]


def run_label(episodes: vd.Episodes, run: Path) -> str | None:
    """The episodes' policy label of ``run`` (``ppo:<the ablation's --out as typed>/runs/<name>``), matched by the
    folder it names, however the arm's path is spelled here."""
    for _, p in episodes:
        prefix, _, path = p.partition(":")
        if prefix == "ppo" and Path(path).name == run.name and Path(path).resolve() == run.resolve():
            return p
    return None


def wtl(v: dict) -> str:
    c = Counter(x["outcome"] for x in v["scenarios"].values())
    return f"{c['W']}/{c['T']}/{c['L']}"


def best_of(scores: dict[str, tuple[int, float] | float], arms: tuple[str, ...]) -> str:
    """The arm of ``arms`` with the highest selection score (the first listed on a tie)."""
    return max(arms, key=lambda a: (scores[a], -arms.index(a)))


def report(arms: list[Path], k: int, scenarios: list[str]) -> str:
    if len({a.resolve() for a in arms}) != len(arms):
        raise ConfigError("an arm is listed twice: " + ", ".join(str(a) for a in arms))
    if not 1 <= k <= len(arms):
        raise ConfigError(f"--k {k}: choose between 1 and the number of arms ({len(arms)})")
    runs = {str(a): arm_run(a) for a in arms}
    scores = {a: recorded_score(r) for a, r in runs.items()}
    if len({type(x) for x in scores.values()}) > 1:
        raise ConfigError(
            "the arms chose their best models by different scores (select_by reward and wins_vs_base): "
            + ", ".join(f"{a}: {scores[a]}" for a in scores)
        )
    verdicts = {a: verdict_vs_generalist(Path(a), r, scenarios) for a, r in runs.items()}
    generalists = {v["generalist"] for v in verdicts.values()}
    if len(generalists) != 1:
        raise ConfigError(f"the arms were judged against different generalist rules: {sorted(generalists)}")
    by_wins = isinstance(next(iter(scores.values())), tuple)
    lines = [
        f"Against `{generalists.pop()}` on the benchmark seeds; selection score: "
        + (
            "the number of scenarios where the run's best model beat its base rule, then its mean reward,"
            if by_wins
            else "the run's best model's mean reward"
        )
        + " on the selection seeds 1,000,000+ (its own periodic evaluation).",
        "",
        "| arm | run | selection score | " + " | ".join(scenarios) + " | W/T/L |",
        "|---|---|---:|" + "---:|" * len(scenarios) + "---|",
    ]
    for a in sorted(scores, key=lambda a: scores[a], reverse=True):
        cells = []
        for s in scenarios:
            x = verdicts[a]["scenarios"][s]
            cell = f"{x['diff']:+.1f} ({100 * x['slo']:.2f}%)"
            cells.append(f"**{cell}**" if x["outcome"] == "W" else f"*{cell}*" if x["outcome"] == "L" else cell)
        score = (
            f"{scores[a][0]} {'win' if scores[a][0] == 1 else 'wins'}, {scores[a][1]:.2f}"
            if by_wins
            else f"{scores[a]:.2f}"
        )
        lines.append(f"| {a} | {runs[a].name} | {score} | " + " | ".join(cells) + f" | {wtl(verdicts[a])} |")
    subsets = list(itertools.combinations(list(runs), k))
    chosen = Counter(best_of(scores, sub) for sub in subsets)
    outcomes = Counter()
    for a, n in chosen.items():
        outcomes[wtl(verdicts[a])] += n
    lines += [
        "",
        f"Best of {k} by selection score, over all {len(subsets)} sets of {k} of these {len(runs)} runs: "
        + ", ".join(f"{o} in {n}" for o, n in sorted(outcomes.items(), key=lambda x: -x[1]))
        + f"; the chosen run overall (best of all {len(runs)}): {best_of(scores, tuple(runs))} ("
        + wtl(verdicts[best_of(scores, tuple(runs))])
        + ").",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("arms", type=Path, nargs="+")
    parser.add_argument("--k", type=int, default=2, help="runs per set: the best of k (default 2)")
    parser.add_argument("--scenarios", default=",".join(EVALUATION_SCENARIOS))
    args = parser.parse_args()
    try:
        print(report(args.arms, args.k, args.scenarios.split(",")))
    except ConfigError as exc:
        raise SystemExit(f"error: {exc}") from None


if __name__ == "__main__":
    main()
