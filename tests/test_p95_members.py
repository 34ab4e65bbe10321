"""The p95 of the step's pooled completions of round robin's members near capacity with a large waiting room
(``queueing.members_tail`` / ``members_wait_p95``): the order statistic's tail share by hand, its limits, a
simulated pool of members, and the fidelity grid's cell it was made for."""

import math
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from scaling_env.sim.queueing import members_tail, members_wait_p95, transient_wait_p95


def test_tail_by_hand():
    # 8 members far apart: the pooled p95 is the top member's level (r = ceil(7.6) = 8), Blom's (8 - 3/8) / 8.25
    assert members_tail(8.0, 1.0, 0.0) == pytest.approx(1.0 - 7.625 / 8.25, rel=1e-12)
    # one member: its level is the step's (median of the law: Blom's 0.625 / 1.25)
    assert members_tail(1.0, 1.0, 0.0) == pytest.approx(0.5, rel=1e-12)
    # 40 members: r = 38, (37.625) / 40.25
    assert members_tail(40.0, 1.0, 0.0) == pytest.approx(1.0 - 37.625 / 40.25, rel=1e-12)
    # within-step movement as large as the law's spread: the law's own p95; half of it: half-way
    assert members_tail(8.0, 1.0, 1.0) == 0.05
    assert members_tail(8.0, 1.0, 0.5) == pytest.approx(0.05 + 0.5 * (1.0 - 7.625 / 8.25 - 0.05), rel=1e-12)
    assert members_tail(0.0, 1.0, 0.0) == 0.05


def test_driftless_members_far_apart_by_hand():
    # deterministic service s, a room far beyond the queue, no movement within the step (window 0): the half-normal
    # law read at the tail 1 - 7.625 / 8.25, i.e. mean * z(1 - tail / 2) / sqrt(2 / pi)
    svc, mean_wait, tail = 0.1, 1.0, 1.0 - 7.625 / 8.25
    p95 = members_wait_p95(svc, 0.0, mean_wait, 1, 1e6, 0.0, 20.0, 8.0, 0.0)
    z = stats.norm.ppf(1.0 - tail / 2.0)
    assert p95 == pytest.approx(svc + mean_wait * z / math.sqrt(2.0 / math.pi), rel=1e-4)


def test_members_moving_over_the_law_keep_the_law():
    # a window whose within-step variance var h / 6 exceeds the law's: the law's own p95 (``transient_wait_p95``)
    args = (0.1, 1.0, 0.5, 10, 1000.0, 0.0, 112.5)
    assert members_wait_p95(*args, 8.0, 1e6) == pytest.approx(transient_wait_p95(*args), rel=1e-9)
    assert members_wait_p95(0.1, 1.0, 0.2, 1, 100.0, -1.0, 2.0, 8.0, 15.0) == -1.0  # no age fits, as transient


def test_simulated_pool_of_members():
    """8 members at independent half-normal levels (a driftless queue from empty), each a point mass over the
    step: the mean over 40,000 steps of the pooled completions' 95th percentile (the top member's level) against
    the law read at ``members_tail``'s share (deterministic service, waits in units of s)."""
    rng = np.random.default_rng(3)
    sigma, svc = 100.0, 0.1  # levels in requests; c = 1 slot, so a level of j waits j s
    levels = np.abs(rng.normal(0.0, sigma, size=(40_000, 8)))
    pooled = np.quantile(np.repeat(levels, 50, axis=1), 0.95, axis=1, method="inverted_cdf").mean() * svc
    mean_wait = sigma * math.sqrt(2.0 / math.pi) * svc
    model = members_wait_p95(svc, 0.0, mean_wait, 1, 1e6, 0.0, 1.0, 8.0, 0.0) - svc
    assert model == pytest.approx(pooled, rel=0.01)
    # the law's own p95 (what the model read before) is 10 % above it
    assert transient_wait_p95(svc, 0.0, mean_wait, 1, 1e6, 0.0, 1.0) - svc > 1.08 * pooled


def test_grid_cell_round_robin_room_1000_at_capacity():
    """The fidelity grid's cell (round robin, utilisation 1.00, c = 10, cv 1, room 1,000): the fast p95 over seeds
    1-8 within 15 % of the request backend's 3.542 s (seeds 1-64, half-width +-5.7 %: the grid's reference run,
    ``python perf/fidelity.py --sweep waiting``). The law's p95 gave 4.185 s (+18 %); the members' gives 3.99 s."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "perf"))
    import fidelity

    p95 = []
    for seed in range(1, 9):
        config = fidelity.stationary_config("fast", "round_robin", 1.0, 10, 1.0, 1000, 48)
        p95.append(fidelity.summarise(fidelity.run_rows(config, seed)[4:])["p95"])
    assert abs(np.mean(p95) / 3.542 - 1.0) <= 0.15
