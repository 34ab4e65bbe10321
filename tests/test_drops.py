"""Drops near and above capacity (issue 16, docs/model.md 6.2 "No waiting room" and 6.2.1): hand-computed
blocking of the loss systems, whose load is not capped at RHO_CAP (a loss system has a steady state at any load)."""

from __future__ import annotations

import pytest

from scaling_env.sim.queueing import erlang_arrivals_wait, stationary_wait


@pytest.mark.parametrize("rho", [0.5, 1.02, 1.3, 3.0])
def test_one_slot_without_a_room_loses_a_over_one_plus_a(rho):
    # M/M/1/1 (Erlang B with one server): P(busy) = a / (1 + a), a = lambda / mu, at any load
    w, p_wait, p_block = stationary_wait(1, 10.0 * rho, 0.1, 1.0, 1.0, 0.0)
    assert (w, p_wait) == (0.0, 0.0)
    assert p_block == pytest.approx(rho / (1.0 + rho), rel=1e-12)


def test_erlang_b_above_capacity_is_insensitive_to_the_service_law():
    # M/G/2/2 at a = 2.6 (utilisation 1.3): B = (a^2 / 2) / (1 + a + a^2 / 2) = 3.38 / 6.98, whatever cs2
    for cs2 in (0.25, 1.0, 9.0):
        assert stationary_wait(2, 26.0, 0.1, 1.0, cs2, 0.0)[2] == pytest.approx(3.38 / 6.98, rel=1e-12)


@pytest.mark.parametrize("rho", [0.7, 1.3])
def test_erlang_arrivals_one_slot_without_a_room_lose_the_gap_shorter_than_the_service(rho):
    # E_2/M/1/1: an arrival is turned away if the one request in service has not finished since the last arrival
    # (which found the slot free or was itself admitted: the slot is busy right after every admitted arrival, and
    # after a turned-away one as well), so P_block = P(service > gap) = A*(mu) = (2 lambda / (2 lambda + mu))^2
    lam = 10.0 * rho
    expected = (2.0 * lam / (2.0 * lam + 10.0)) ** 2
    assert erlang_arrivals_wait(2, 1, lam, 0.1, 1.0, 0.0)[2] == pytest.approx(expected, rel=1e-9)


def test_above_capacity_a_loss_system_turns_away_more_than_the_fluid_excess():
    # conservation: a loss system serves at most c mu, so above capacity it turns away at least 1 - 1/rho; Erlang B
    # (and Takacs's GI/M/c/c) exceed it, since the slots are not always all busy
    for rho in (1.02, 1.3):
        excess = 1.0 - 1.0 / rho
        assert stationary_wait(10, 100.0 * rho, 0.1, 1.0, 1.0, 0.0)[2] > excess
        assert erlang_arrivals_wait(8, 10, 100.0 * rho, 0.1, 1.0, 0.0)[2] > excess


@pytest.mark.parametrize("rho", [0.5, 1.0, 1.3])
def test_mmck_blocking_is_the_product_form(rho):
    from scaling_env.sim.nonstationary import mmck_blocking

    # M/M/1/2 (one slot, one place): P(2 in system) = rho^2 / (1 + rho + rho^2)
    assert mmck_blocking(1, rho, 1.0) == pytest.approx(rho**2 / (1.0 + rho + rho**2), rel=1e-12)


def test_above_capacity_a_full_room_turns_away_at_least_the_excess():
    from scaling_env.sim.nonstationary import mmck_blocking

    # conservation: M/M/c/K serves at most c mu, so P_K >= 1 - 1/rho; c = 10, K = 100 at 1.02: 0.0224 > 0.0196
    assert mmck_blocking(10, 1.02, 100.0) > 1.0 - 1.0 / 1.02
    assert mmck_blocking(10, 1.02, 100.0) == pytest.approx(0.0224, abs=5e-4)
