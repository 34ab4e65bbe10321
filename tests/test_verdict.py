"""The verdict tool (agents/experiments/verdict.py): textbook answers of its statistics, and its rules."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from agents.experiments import verdict as v


def test_paired_t_test_textbook_example() -> None:
    # differences 1, 2, 3, 4, 5: mean 3, sd sqrt(2.5), se sqrt(0.5); t = 3 / sqrt(0.5) = 4.2426 with 4 df,
    # two-sided p = 0.01324; 95 % CI 3 +- t(0.975, 4) * sqrt(0.5) = 3 +- 2.7764 * 0.70711 = [1.0368, 4.9632].
    # Wilcoxon signed-rank, exact: all 5 ranks positive, p = 2 / 2^5 = 0.0625.
    test = v.paired_test(np.array([2.0, 3, 4, 5, 6]), np.array([1.0, 1, 1, 1, 1]))
    assert test.n == 5 and test.mean_diff == pytest.approx(3.0)
    assert test.p_value == pytest.approx(0.013236, abs=1e-6)
    assert (test.ci_low, test.ci_high) == pytest.approx((1.03676, 4.96324), abs=1e-5)
    assert test.wilcoxon_p == pytest.approx(0.0625)
    assert test.verdict("A", "B") == "A beats B"
    assert v.paired_test(np.array([1.0, 2, 3, 4, 5]), np.array([2.0, 3, 4, 5, 6])).verdict("A", "B") == "B beats A"
    noisy = v.paired_test(np.array([1.0, -1, 2, -2, 0.5]), np.zeros(5))
    assert noisy.p_value > 0.5 and noisy.verdict("A", "B") == "no significant difference"


def test_iqm_is_the_mean_of_the_middle_half() -> None:
    assert v.iqm(np.arange(1.0, 9.0)) == pytest.approx(4.5)  # 3, 4, 5, 6
    assert v.iqm(np.array([0.0, 0, 0, 0, 1, 1, 1, 100])) == pytest.approx(0.5)  # 0, 0, 1, 1: the outlier is cut


def test_bootstrap_of_a_mean_matches_the_normal_interval() -> None:
    x = np.random.default_rng(1).normal(size=400)
    point, lo, hi = v.stratified_bootstrap([x[None, :]], lambda xs: xs[0][0].mean(axis=-1), n_resamples=4000)
    half = 1.959964 * x.std(ddof=1) / np.sqrt(len(x))  # the textbook CI of a mean, large n
    assert point == pytest.approx(x.mean())
    assert lo == pytest.approx(x.mean() - half, abs=0.02) and hi == pytest.approx(x.mean() + half, abs=0.02)


def test_bootstrap_is_stratified_and_keeps_pairs() -> None:
    # stratum a: 200 runs all 10.0 (no spread); stratum b: 200 runs of -1 and +1. The mean over both strata
    # is (mean_a + mean_b) / 2; stratified, only b varies: se = 0.5 * 1 / sqrt(200) = 0.0354, half-width 0.069.
    # Pooling the 400 values and resampling them together would give se = sqrt(25.5 / 400) = 0.25.
    a = np.full(200, 10.0)
    b = np.tile([-1.0, 1.0], 100)
    point, lo, hi = v.stratified_bootstrap(
        [a[None, :], b[None, :]], lambda xs: (xs[0][0].mean(axis=-1) + xs[1][0].mean(axis=-1)) / 2, n_resamples=4000
    )
    assert point == pytest.approx(5.0)
    assert (hi - lo) / 2 == pytest.approx(1.959964 * 0.5 / np.sqrt(200), rel=0.12)
    # paired rows of a stratum are drawn together: a constant difference has no spread at all
    x = np.random.default_rng(2).normal(size=50)
    pair = np.stack([x + 1.0, x])
    _, lo, hi = v.stratified_bootstrap([pair], lambda xs: xs[0][0].mean(axis=-1) - xs[0][1].mean(axis=-1))
    assert lo == pytest.approx(1.0) and hi == pytest.approx(1.0)


def write_csv(path: Path, table: dict[tuple[str, str], list[float]], first_seed: int = 1000) -> Path:
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["policy", "scenario", "seed", "reward", "slo_violation_share"])
        w.writeheader()
        for (policy, scenario), rewards in table.items():
            for i, r in enumerate(rewards):
                w.writerow(
                    {
                        "policy": policy,
                        "scenario": scenario,
                        "seed": first_seed + i,
                        "reward": r,
                        "slo_violation_share": 0.01,
                    }
                )
    return path


def _table() -> dict[tuple[str, str], list[float]]:
    rng = np.random.default_rng(0)
    noise = rng.normal(size=8)
    t: dict[tuple[str, str], list[float]] = {}
    for sc in ("a", "b"):
        t[("static", sc)] = list(-200 + noise)
        t[("oracle", sc)] = list(-10 + noise)  # clairvoyant: best of all, never a rule
        t[("static_peak", sc)] = list(-12 + noise)  # clairvoyant too
        t[("hpa", sc)] = list(-40 + noise)  # best rule on the evaluation seeds ...
        t[("kpa", sc)] = list(-45 + noise)  # ... but kpa is best on the tuning seeds
        t[("ppo:run", sc)] = list(-42 + noise + rng.normal(scale=0.1, size=8))
    return t


def test_best_rule_is_chosen_on_tuning_seeds_and_references_never_count(tmp_path: Path) -> None:
    csv_path = write_csv(tmp_path / "episodes.csv", _table())
    tuning = {
        (sc, p): {"hpa": -50.0, "kpa": -41.0, "static": -300.0}[p] for sc in "ab" for p in ("hpa", "kpa", "static")
    }
    st = v.setup(v.read_episodes(csv_path), None)
    assert st.candidate == "ppo:run" and set(st.references) == {"oracle", "static_peak"}
    assert set(st.rules) == {"static", "hpa", "kpa"}
    rows = v.scenario_rows(st, tuning)
    assert [r["rule"] for r in rows] == ["kpa", "kpa"]  # not hpa, the best on the evaluation seeds
    assert rows[0]["test"].mean_diff == pytest.approx(3.0, abs=0.2) and rows[0]["verdict"] == "ppo:run beats kpa"
    agg, overall = v.aggregate_rows(st, tuning)
    by = {r["policy"]: r for r in agg}
    assert by["oracle"]["iqm"] == pytest.approx(1.0, abs=0.02) and by["static"]["iqm"] == pytest.approx(0.05, abs=0.01)
    assert by["oracle"]["kind"] == "reference" and by["ppo:run"]["kind"] == "candidate"
    assert len(overall) == 1 and overall[0]["rule"] == "kpa" and overall[0]["iqm_diff_low"] > 0
    text = v.run_verdict(csv_path, tuning=tuning, out=tmp_path / "out")
    assert "**ppo:run beats kpa**" in text and (tmp_path / "out" / "verdict.png").stat().st_size > 1000


def test_evaluation_seeds_overlapping_tuning_seeds_are_refused(tmp_path: Path) -> None:
    csv_path = write_csv(tmp_path / "episodes.csv", _table(), first_seed=15)
    with pytest.raises(v.VerdictError, match="include tuning seeds"):
        v.run_verdict(csv_path, tuning={})


def test_missing_reference_or_policy_is_a_clear_error(tmp_path: Path) -> None:
    t = _table()
    del t[("oracle", "b")]
    csv_path = write_csv(tmp_path / "episodes.csv", t)
    tuning = {(sc, p): -1.0 for sc in "ab" for p in ("hpa", "kpa", "static")}
    with pytest.raises(v.VerdictError, match="oracle missing on b"):
        v.run_verdict(csv_path, tuning=tuning)
    with pytest.raises(v.VerdictError, match="--policy 'ppo:other' is not in the CSV"):
        v.run_verdict(csv_path, policy="ppo:other", tuning=tuning)


def test_single_setting_pool_excludes_per_scenario_tuned_rules(tmp_path: Path) -> None:
    t = _table()
    for sc in ("a", "b"):
        t[("hpa@tuned", sc)] = list(np.array(t[("hpa", sc)]) + 1.0)
    csv_path = write_csv(tmp_path / "episodes.csv", t)
    scores = {"hpa": -50.0, "kpa": -41.0, "static": -300.0, "hpa@tuned": -30.0}
    tuning = {(sc, p): score for sc in "ab" for p, score in scores.items()}
    st = v.setup(v.read_episodes(csv_path), None)
    assert "hpa@tuned" in st.rules
    _, overall = v.aggregate_rows(st, tuning)
    assert [o["rule"] for o in overall] == ["hpa@tuned", "kpa"]  # best of all rules; best single setting
