"""Verdicts that hold up: a policy against the best rule policy, from a benchmark's per-episode CSV.

    scaling-env verdict results/benchmark/episodes.csv [--policy ppo:runs/ppo_final] [--out DIR]

The rules of the comparison:

- **The best rule is chosen on tuning seeds, never on the evaluation seeds.** Every rule policy in the CSV (default,
  ``@tuned`` and ``@generalist`` settings alike) is run again on the tuning seeds (default 0-19, the tuner's;
  the CSV's evaluation seeds must not overlap them), and the one with the highest mean reward there is the
  scenario's best rule. It is then judged on the CSV's evaluation seeds. Picking the best of ten rules on the
  seeds it is judged on would flatter the rules (a winner's curse), as picking PPO's checkpoint on them would.
- **Clairvoyant references never count as rules**: ``oracle`` and ``static`` with ``instances: peak``
  (``static_peak``) read the future; they are shown for scale only. Learned policies (``ppo:...``) are not rules.
- **"A beats B" only with a paired test on common seeds**: the per-seed differences A - B on the seeds both ran,
  a paired t-test (``scipy.stats.ttest_rel``): its two-sided p-value and the 95 % confidence interval of the mean
  difference; "A beats B" when p < 0.05 and the difference is positive, "B beats A" when p < 0.05 and negative,
  else "no significant difference". The Wilcoxon signed-rank p-value (``scipy.stats.wilcoxon``) is shown beside it
  as a check that does not assume normal differences.
- **Over all scenarios, normalised scores and the interquartile mean (IQM) with stratified-bootstrap CIs**, as
  rliable (Agarwal et al., "Deep RL at the edge of the statistical precipice", NeurIPS 2021) does: an episode's
  score is ``R_oracle / reward`` with ``R_oracle`` the scenario's mean oracle reward (rewards are penalties, all
  negative: 1 = the oracle's penalty, 0.5 = twice it; see :func:`normalised` for why not min-max); the IQM
  is the mean of the middle 50 % of all (scenario, seed) scores (``scipy.stats.trim_mean(x, 0.25)``); its 95 % CI
  comes from a percentile bootstrap that resamples seeds within each scenario (stratified), with
  ``scipy.stats.bootstrap`` (each scenario one sample, resampled independently). rliable itself is not used: its
  1.2.0 release installs from PyPI but fails on import here (arch 7.2.0 with pandas 3.x: ``deprecate_kwarg()``
  TypeError), and it would bring arch, statsmodels, pandas and seaborn for two functions scipy has.

Outputs: a Markdown report (per-scenario table, aggregate table) on stdout or in ``<out>/verdict.md``, and with
``--out`` the picture ``<out>/verdict.png``: per-scenario paired differences with their 95 % CIs.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats

TUNING_SEEDS = "0-19"
CONFIDENCE = 0.95
ALPHA = 0.05
HIGH_REF = "oracle"
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0


def beats_at_slo(reward_diff: float, slo: float, rule_slo: float) -> bool:
    """A higher reward at an SLO share no higher than the rule's: what a win is, before the paired test that the
    verdict adds (issue 15: "beats ... at no higher SLO share")."""
    return reward_diff > 0 and slo <= rule_slo


class VerdictError(Exception):
    """The CSV cannot support a verdict (no such policy, missing references, seeds overlapping the tuning seeds)."""


# ------------------------------------------------------------------------------------------ statistics
@dataclass(frozen=True)
class PairedTest:
    """A - B on common seeds: mean difference, its CI, the paired t-test's and Wilcoxon's two-sided p-values."""

    n: int
    mean_diff: float
    ci_low: float
    ci_high: float
    p_value: float
    wilcoxon_p: float

    def verdict(self, a: str, b: str) -> str:
        if self.p_value < ALPHA and self.mean_diff > 0:
            return f"{a} beats {b}"
        if self.p_value < ALPHA and self.mean_diff < 0:
            return f"{b} beats {a}"
        return "no significant difference"


def paired_test(a: np.ndarray, b: np.ndarray, confidence: float = CONFIDENCE) -> PairedTest:
    """Paired t-test of ``a - b`` (same seeds, same order) with the ``confidence`` CI of the mean difference."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or len(a) < 2:
        raise VerdictError(
            f"a paired test needs two equal-length samples of at least 2 seeds, got {a.shape}, {b.shape}"
        )
    d = a - b
    mean = float(d.mean())
    if np.allclose(d, d[0], rtol=0.0, atol=1e-12):  # no spread: the t statistic is undefined
        p = 1.0 if mean == 0 else 0.0
        return PairedTest(len(d), mean, mean, mean, p, p)
    res = stats.ttest_rel(a, b)
    ci = res.confidence_interval(confidence)
    nonzero = d[d != 0]
    wil = float(stats.wilcoxon(nonzero).pvalue) if len(nonzero) >= 1 else 1.0
    return PairedTest(len(d), mean, float(ci.low), float(ci.high), float(res.pvalue), wil)


def iqm(values: np.ndarray, axis: int = -1) -> np.ndarray | float:
    """Interquartile mean along ``axis``: the mean of the middle 50 % (25 % trimmed from each end)."""
    out = stats.trim_mean(np.asarray(values, dtype=float), 0.25, axis=axis)
    return float(out) if np.ndim(out) == 0 else out


def stratified_bootstrap(
    strata: Sequence[np.ndarray],
    statistic: Callable[[list[np.ndarray]], np.ndarray | float],
    n_resamples: int = BOOTSTRAP_RESAMPLES,
    confidence: float = CONFIDENCE,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float, float]:
    """``(point, low, high)``: ``statistic(strata)`` and its percentile-bootstrap CI, resampling the runs (seeds,
    the last axis) of each stratum (scenario) independently. A stratum is an array ``(k, n_i)``: k paired values
    per run (e.g. two policies on the same seed), kept together when the run is drawn. ``statistic`` gets arrays
    ``(k, ..., n_i)`` and reduces the last axis (it is called on a batch of resamples at once)."""
    strata = [np.atleast_2d(np.asarray(s, dtype=float)) for s in strata]
    indices = [np.arange(s.shape[1]) for s in strata]

    def stat(*idx: np.ndarray, axis: int = -1) -> np.ndarray:
        return statistic([s[:, i] for s, i in zip(strata, idx)])  # s[:, i]: (k, batch, n_i)

    res = stats.bootstrap(
        indices,
        stat,
        n_resamples=n_resamples,
        confidence_level=confidence,
        method="percentile",
        paired=False,  # each sample (stratum) resampled on its own: a stratified bootstrap
        vectorized=True,
        rng=np.random.default_rng(seed),
    )
    return float(statistic(strata)), float(res.confidence_interval.low), float(res.confidence_interval.high)


# ------------------------------------------------------------------------------------------ data
Episodes = dict[tuple[str, str], dict[int, tuple[float, float]]]


def read_episodes(path: Path) -> Episodes:
    """{(scenario, policy): {seed: (reward, slo_violation_share)}} from a benchmark's episodes.csv."""
    out: Episodes = {}
    try:
        with Path(path).open(newline="") as f:
            for line, row in enumerate(csv.DictReader(f), start=2):
                try:
                    out.setdefault((row["scenario"], row["policy"]), {})[int(row["seed"])] = (
                        float(row["reward"]),
                        float(row["slo_violation_share"]),
                    )
                except (KeyError, TypeError, ValueError) as exc:
                    raise VerdictError(f"{path}, line {line}: not a benchmark episode row ({exc})") from None
    except OSError as exc:
        raise VerdictError(f"{path}: cannot read ({exc.strerror})") from None
    if not out:
        raise VerdictError(f"{path}: no episodes")
    return out


def is_learned(spec: str) -> bool:
    from agents.registry import LOADERS

    prefix, sep, _ = spec.partition(":")
    return bool(sep) and prefix in LOADERS


def is_clairvoyant(spec: str, scenario: str | None = None) -> bool:
    """The oracle and a static fleet sized for the episode's peak read the future: never a rule."""
    if is_learned(spec):
        return False
    from agents.registry import read_policy_file, resolve_policy_file

    if spec.partition("@")[0] == "oracle":
        return True
    try:
        path = resolve_policy_file(spec, scenario)
    except Exception:  # an unresolvable spec is judged by its name
        return spec in ("oracle", "static_peak")
    if path is None:
        return spec == "oracle"
    name, params = read_policy_file(path)
    return name == "oracle" or (name == "static" and params.get("instances") == "peak")


def short(spec: str) -> str:
    """A short label: ``ppo:runs/ppo_final`` -> ``ppo:ppo_final``; other specs as they are."""
    if is_learned(spec):
        prefix, _, rest = spec.partition(":")
        return f"{prefix}:{Path(rest).name or rest}"
    return spec


def tuning_rewards(
    specs: list[str], scenarios: list[str], seeds: list[int], traces_dir: str | None = None, metric: str = "reward"
) -> dict[tuple[str, str], float]:
    """{(scenario, spec): mean episode reward (or another episode ``metric``, e.g. ``slo_violation_share``) on the
    tuning ``seeds``}, each (scenario, spec) one batch."""
    per_seed = tuning_episodes(specs, scenarios, seeds, (metric,), traces_dir)
    return {key: float(np.mean(values[metric])) for key, values in per_seed.items()}


def tuning_episodes(
    specs: list[str],
    scenarios: list[str],
    seeds: list[int],
    metrics: tuple[str, ...] = ("reward",),
    traces_dir: str | None = None,
) -> dict[tuple[str, str], dict[str, list[float]]]:
    """{(scenario, spec): {metric: its value per seed, in the order of ``seeds``}} on the tuning ``seeds``, each
    (scenario, spec) one batch: what a paired test on the tuning seeds needs."""
    from agents.learned.residual import make_rule  # a registry spec, or one with a redundancy floor
    from scaling_env.rollout import rollout
    from scaling_env.scenarios import load_scenario

    out = {}
    for name in scenarios:
        sc = load_scenario(name, traces_dir)
        for spec in specs:
            run = rollout(sc.config, make_rule(spec, sc.config, scenario=sc.name), seeds, parallel=False)
            out[(name, spec)] = {m: [float(e[m]) for e in run.metrics] for m in metrics}
    return out


@dataclass
class Setup:
    episodes: Episodes
    scenarios: list[str]
    policies: list[str]
    candidate: str
    rules: list[str]
    references: list[str]


def setup(episodes: Episodes, candidate: str | None) -> Setup:
    scenarios = list(dict.fromkeys(s for s, _ in episodes))
    policies = list(dict.fromkeys(p for _, p in episodes))
    if candidate is None:
        learned = [p for p in policies if is_learned(p)]
        if len(learned) != 1:
            raise VerdictError(
                f"name the policy to judge with --policy (learned policies in the CSV: {learned or 'none'})"
            )
        candidate = learned[0]
    if candidate not in policies:
        raise VerdictError(f"--policy {candidate!r} is not in the CSV (policies: {', '.join(policies)})")
    references = [p for p in policies if p != candidate and is_clairvoyant(p, scenarios[0])]
    rules = [p for p in policies if p != candidate and p not in references and not is_learned(p)]
    if not rules:
        raise VerdictError("no rule policy in the CSV: benchmark the policy together with the rules")
    for s in scenarios:
        if (s, candidate) not in episodes:
            raise VerdictError(f"{candidate} has no episode on scenario {s}")
    return Setup(episodes, scenarios, policies, candidate, rules, references)


def common_seeds(episodes: Episodes, pairs: list[tuple[str, str]]) -> list[int]:
    return sorted(set.intersection(*(set(episodes.get(k, {})) for k in pairs)))


def check_seeds_disjoint(episodes: Episodes, tuning: list[int]) -> None:
    seen = set().union(*(set(v) for v in episodes.values()))
    overlap = sorted(seen & set(tuning))
    if overlap:
        raise VerdictError(
            f"the CSV's evaluation seeds include tuning seeds {overlap[:5]}: a best rule chosen on them would be "
            "judged on them; benchmark on other seeds (default 1000-1019) or give other --tuning-seeds"
        )


# ------------------------------------------------------------------------------------------ verdicts
def scenario_rows(st: Setup, tuning: dict[tuple[str, str], float]) -> list[dict]:
    """Per scenario: the candidate against the rule with the best mean reward on the tuning seeds."""
    rows = []
    for s in st.scenarios:
        rules = [p for p in st.rules if (s, p) in st.episodes]
        best = max(rules, key=lambda p: tuning[(s, p)])
        seeds = common_seeds(st.episodes, [(s, st.candidate), (s, best)])
        a = np.array([st.episodes[(s, st.candidate)][k][0] for k in seeds])
        b = np.array([st.episodes[(s, best)][k][0] for k in seeds])
        test = paired_test(a, b)
        oracle = st.episodes.get((s, HIGH_REF))
        rows.append(
            {
                "scenario": s,
                "reward": float(a.mean()),
                "slo": float(np.mean([st.episodes[(s, st.candidate)][k][1] for k in seeds])),
                "rule": best,
                "rule_tuning": tuning[(s, best)],
                "rule_reward": float(b.mean()),
                "rule_slo": float(np.mean([st.episodes[(s, best)][k][1] for k in seeds])),
                "oracle": float(np.mean([r for r, _ in oracle.values()])) if oracle else float("nan"),
                "test": test,
                "verdict": test.verdict(short(st.candidate), best),
            }
        )
    return rows


def normalised(st: Setup) -> dict[tuple[str, str], dict[int, float]]:
    """Each episode's score ``R_oracle / reward``, with ``R_oracle`` the oracle's mean reward on the scenario.
    Rewards are penalties (negative), so 1 = the oracle's, 0.5 = twice its penalty, near 0 = far worse. A
    min-max score between two references was not used: the scenarios where a low reference (e.g. ``static``)
    happens to be near the oracle would get a tiny denominator and dominate any mean."""
    out = {}
    for s in st.scenarios:
        if (s, HIGH_REF) not in st.episodes:
            raise VerdictError(f"normalised scores need the {HIGH_REF} policy in the CSV ({HIGH_REF} missing on {s})")
        ref = float(np.mean([r for r, _ in st.episodes[(s, HIGH_REF)].values()]))
        for p in st.policies:
            if (s, p) not in st.episodes:
                continue
            rewards = {k: r for k, (r, _) in st.episodes[(s, p)].items()}
            if ref >= 0 or max(rewards.values()) >= 0:
                raise VerdictError(
                    f"scenario {s}: normalised scores need negative rewards ({p} or {HIGH_REF} has >= 0)"
                )
            out[(s, p)] = {k: ref / r for k, r in rewards.items()}
    return out


def one_setting(rules: Sequence[str]) -> list[str]:
    """The rules with one setting for every scenario (not ``@tuned``), as one learned generalist has."""
    return [p for p in rules if not p.endswith("@tuned")]


def best_over_scenarios(pool: Sequence[str], tuning: dict[tuple[str, str], float], scenarios: Sequence[str]) -> str:
    """The rule of ``pool`` with the best mean over ``scenarios`` of its mean reward on the tuning seeds."""
    return max(pool, key=lambda p: np.mean([tuning[(s, p)] for s in scenarios]))


def aggregate_rows(st: Setup, tuning: dict[tuple[str, str], float]) -> tuple[list[dict], list[dict]]:
    """Every policy's IQM of normalised scores over (scenario, seed) with its stratified-bootstrap CI, mean reward
    and SLO share; and the candidate against the best rule over all scenarios (best mean reward over the
    scenarios on the tuning seeds; once among all rules, once among those with one setting for every scenario,
    i.e. not ``@tuned``): the IQM difference with its CI, and a paired t-test on the per-seed mean normalised
    score."""
    scores = normalised(st)
    rows = []
    for p in st.policies:
        if not all((s, p) in scores for s in st.scenarios):
            continue
        strata = [np.array([list(scores[(s, p)].values())]) for s in st.scenarios]
        point, lo, hi = stratified_bootstrap(strata, lambda xs: iqm(np.concatenate([x[0] for x in xs], axis=-1)))
        rows.append(
            {
                "policy": p,
                "kind": "candidate"
                if p == st.candidate
                else ("reference" if p in st.references else ("rule" if p in st.rules else "learned")),
                "iqm": point,
                "iqm_low": lo,
                "iqm_high": hi,
                "reward": float(np.mean([np.mean([r for r, _ in st.episodes[(s, p)].values()]) for s in st.scenarios])),
                "slo": float(np.mean([np.mean([v for _, v in st.episodes[(s, p)].values()]) for s in st.scenarios])),
            }
        )
    full = [p for p in st.rules if all((s, p) in tuning for s in st.scenarios)]
    pools = [("any rule (per-scenario settings allowed)", full)]
    single = one_setting(full)
    if single and single != full:
        pools.append(("one rule setting for all scenarios", single))
    overall = []
    for pool_name, pool in pools:
        best = best_over_scenarios(pool, tuning, st.scenarios)
        seeds = common_seeds(st.episodes, [(s, p) for s in st.scenarios for p in (st.candidate, best)])
        strata = [
            np.array([[scores[(s, st.candidate)][k] for k in seeds], [scores[(s, best)][k] for k in seeds]])
            for s in st.scenarios
        ]
        diff, lo, hi = stratified_bootstrap(
            strata,
            lambda xs: (
                iqm(np.concatenate([x[0] for x in xs], axis=-1)) - iqm(np.concatenate([x[1] for x in xs], axis=-1))
            ),
        )
        per_seed_a = np.array([np.mean([scores[(s, st.candidate)][k] for s in st.scenarios]) for k in seeds])
        per_seed_b = np.array([np.mean([scores[(s, best)][k] for s in st.scenarios]) for k in seeds])
        test = paired_test(per_seed_a, per_seed_b)
        overall.append(
            {
                "pool": pool_name,
                "rule": best,
                "rule_tuning": float(np.mean([tuning[(s, best)] for s in st.scenarios])),
                "iqm_diff": diff,
                "iqm_diff_low": lo,
                "iqm_diff_high": hi,
                "test": test,
                "verdict": test.verdict(short(st.candidate), best),
            }
        )
    return sorted(rows, key=lambda r: -r["iqm"]), overall


# ------------------------------------------------------------------------------------------ report
def _p(p: float) -> str:
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def scenario_markdown(rows: list[dict], candidate: str) -> str:
    lines = [
        f"| scenario | {candidate} reward | SLO viol. | best rule (on tuning seeds) | its reward | its SLO viol. | "
        f"oracle | {candidate} - rule, 95 % CI | paired t p | Wilcoxon p | verdict |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        t: PairedTest = r["test"]
        lines.append(
            f"| {r['scenario']} | {r['reward']:.1f} | {r['slo']:.2%} | {r['rule']} | {r['rule_reward']:.1f} | "
            f"{r['rule_slo']:.2%} | {r['oracle']:.1f} | {t.mean_diff:+.1f} [{t.ci_low:+.1f}, {t.ci_high:+.1f}] | "
            f"{_p(t.p_value)} | {_p(t.wilcoxon_p)} | **{r['verdict']}** |"
        )
    return "\n".join(lines)


def aggregate_markdown(rows: list[dict], overall: list[dict], candidate: str) -> str:
    lines = [
        "| policy | kind | IQM of normalised score (95 % stratified-bootstrap CI) | mean reward | mean SLO viol. |",
        "|---|---|---:|---:|---:|",
    ]
    for r in rows:
        name = f"**{short(r['policy'])}**" if r["kind"] == "candidate" else short(r["policy"])
        lines.append(
            f"| {name} | {r['kind']} | {r['iqm']:.3f} [{r['iqm_low']:.3f}, {r['iqm_high']:.3f}] | "
            f"{r['reward']:.1f} | {r['slo']:.2%} |"
        )
    for o in overall:
        t: PairedTest = o["test"]
        lines += [
            "",
            f"Over all scenarios, {candidate} against the best of {o['pool']} on the tuning seeds, **{o['rule']}**: "
            f"IQM difference {o['iqm_diff']:+.3f} [{o['iqm_diff_low']:+.3f}, {o['iqm_diff_high']:+.3f}] "
            f"(stratified bootstrap); per-seed mean normalised score {t.mean_diff:+.3f} "
            f"[{t.ci_low:+.3f}, {t.ci_high:+.3f}], paired t-test p {_p(t.p_value)} over {t.n} seeds: "
            f"**{o['verdict']}**.",
        ]
    return "\n".join(lines)


def plot_differences(rows: list[dict], candidate: str, path: Path) -> Path:
    """Per-scenario paired differences candidate - best rule with their 95 % CIs."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 0.5 * len(rows) + 1.8), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    y = np.arange(len(rows))[::-1]
    for yi, r in zip(y, rows):
        t: PairedTest = r["test"]
        colour = (
            "C2"
            if "beats" in r["verdict"] and r["verdict"].startswith(candidate)
            else ("C3" if "beats" in r["verdict"] else "C7")
        )
        ax.errorbar(
            t.mean_diff,
            yi,
            xerr=[[t.mean_diff - t.ci_low], [t.ci_high - t.mean_diff]],
            fmt="o",
            color=colour,
            capsize=4,
        )
    ax.axvline(0.0, color="black", lw=0.8)
    ax.set_yticks(y, [f"{r['scenario']}\nvs {r['rule']}" for r in rows], fontsize="small")
    ax.set_xlabel(f"episode reward: {candidate} - best rule (same seeds; mean and 95 % CI, paired t)")
    ax.set_title(
        "Paired differences per scenario (green: candidate wins, red: rule wins, grey: no significant difference)",
        fontsize="small",
    )
    ax.grid(alpha=0.3, axis="x")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path


def run_verdict(
    episodes_csv: Path,
    policy: str | None = None,
    tuning_seeds: str = TUNING_SEEDS,
    out: Path | None = None,
    traces_dir: str | None = None,
    tuning: dict[tuple[str, str], float] | None = None,
) -> str:
    """The Markdown report (and, with ``out``, verdict.md and verdict.png there). ``tuning`` gives the rules'
    tuning-seed rewards instead of running them (for tests)."""
    from .tune import parse_seeds

    episodes = read_episodes(Path(episodes_csv))
    seeds = parse_seeds(tuning_seeds)
    check_seeds_disjoint(episodes, seeds)
    st = setup(episodes, policy)
    if tuning is None:
        tuning = tuning_rewards(st.rules, st.scenarios, seeds, traces_dir)
    rows = scenario_rows(st, tuning)
    agg, overall = aggregate_rows(st, tuning)
    text = "\n\n".join(
        [
            f"Verdict for {st.candidate} ({Path(episodes_csv)}): best rule per scenario chosen on tuning seeds "
            f"{tuning_seeds}; clairvoyant references ({', '.join(st.references) or 'none'}) are not rules.",
            scenario_markdown(rows, short(st.candidate)),
            f"Normalised score of an episode: the {HIGH_REF}'s mean reward on the scenario / the episode's reward "
            "(1 = the oracle's penalty, 0.5 = twice it).",
            aggregate_markdown(agg, overall, short(st.candidate)),
        ]
    )
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "verdict.md").write_text(text + "\n\n![paired differences](verdict.png)\n")
        plot_differences(rows, short(st.candidate), out / "verdict.png")
    return text


def main() -> None:
    """``python -m`` runs ``scaling-env verdict`` (the command line lives in ``agents/experiments/cli.py``)."""
    import sys

    from .cli import app

    app(["verdict", *sys.argv[1:]])


if __name__ == "__main__":
    main()
