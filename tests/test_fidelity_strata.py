"""The fidelity report's stratified scenario rows (perf/fidelity.py, ``stratified_mean`` and ``prefix_scaled_out``).

memory_pressure's episodes under target tracking either escape the crash spiral or not, so the report weighs two
strata (the rule scaled out within the first 13 steps, or not) by their shares in many cheap episode prefixes. Here:
the estimator on a case computed by hand, its bias and variance against a simulation with a known answer, and the
prefix being the episode's own first steps.
"""

from __future__ import annotations

import numpy as np
import pytest


def test_stratified_mean_by_hand(fidelity):
    # strata weights from the population: 3 of 4 in stratum 0, 1 in stratum 1 -> 0.75, 0.25
    # stratum means 1 and 12 -> mean 0.75 * 1 + 0.25 * 12 = 3.75
    # variance: 0.75^2 * s0^2 / 2 + 0.25^2 * s1^2 / 2 with s0^2 = 2 and s1^2 = 8 -> 0.5625 + 0.25 = 0.8125,
    # plus the weights' (0.75 * 1 + 0.25 * 144 - 3.75^2) / 4 = 22.6875 / 4 = 5.671875 -> 6.484375
    mean, var = fidelity.stratified_mean(
        np.array([0.0, 2.0, 10.0, 14.0]), np.array([0, 0, 1, 1]), np.array([0, 0, 0, 1])
    )
    assert mean == pytest.approx(3.75)
    assert var == pytest.approx(6.484375)


def test_stratified_mean_needs_two_values_per_stratum(fidelity):
    with pytest.raises(ValueError, match="fewer than two"):
        fidelity.stratified_mean(np.array([0.0, 2.0, 10.0]), np.array([0, 0, 1]), np.array([0, 1]))


def test_stratified_mean_is_unbiased_and_its_variance_holds(fidelity):
    # a bimodal episode reward like memory_pressure's: escape (p 0.22, about -400) or not (about -2,600), the
    # stratum predicting the escape 93 % of the time; 200 full episodes, 2,000 prefixes, 2,000 repetitions
    rng = np.random.default_rng(7)
    p, n, big, reps = 0.22, 200, 2000, 2000

    def draw(size):
        stratum = rng.random(size) < p
        escape = np.where(stratum, rng.random(size) < 0.93, rng.random(size) < 0.02)
        return stratum, np.where(escape, -400.0, -2600.0) + rng.normal(0.0, 100.0, size)

    truth = p * (0.93 * -400 + 0.07 * -2600) + (1 - p) * (0.02 * -400 + 0.98 * -2600)
    est, var, plain = [], [], []
    for _ in range(reps):
        stratum, values = draw(n)
        population = rng.random(big) < p
        m, v = fidelity.stratified_mean(values, stratum, population)
        est.append(m)
        var.append(v)
        plain.append(values.mean())
    est = np.array(est)
    assert abs(est.mean() - truth) < 4 * est.std() / np.sqrt(reps)  # unbiased
    # the formula's variance matches the estimates' spread (without the weights' term it is 32 % low here)
    assert np.mean(var) == pytest.approx(est.var(), rel=0.1)
    assert est.var() < 0.5 * np.var(plain)  # and it is what the strata buy over the plain mean


def test_prefix_is_the_episodes_own_first_steps(fidelity):
    from agents.registry import make_policy
    from scaling_env.rollout import rollout
    from scaling_env.scenarios import load_scenario

    config = load_scenario("memory_pressure").config
    seeds = list(range(1000, 1040))
    steps = 13
    full = rollout(config, make_policy("target_tracking", config), seeds, record=("scale_applied",), parallel=False)
    expected = (full.traces["scale_applied"][:, :steps] > 0).any(axis=1)
    got = fidelity.prefix_scaled_out(config, "target_tracking", seeds, steps)
    assert got.dtype == bool and np.array_equal(got, expected)
    assert 0 < got.sum() < len(seeds)  # both strata occur on these seeds
    # a seed's prefix does not depend on the batch it runs in
    assert np.array_equal(fidelity.prefix_scaled_out(config, "target_tracking", seeds[::-1], steps), got[::-1])
