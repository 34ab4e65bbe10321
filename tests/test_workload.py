"""Workload rate functions and the per-step integrals the core draws arrivals from."""

from __future__ import annotations

import numpy as np
import pytest

from scaling_env import EnvConfig
from scaling_env.workload import Workload

SHAPES = [
    {"kind": "constant", "rate_rps": 123.0},
    {"kind": "diurnal", "trough_rps": 100.0, "peak_rps": 900.0, "peak_time_seconds": 500.0},
    {"kind": "spike", "base_rps": 50.0, "peak_rps": 800.0, "start_seconds": 107.0, "duration_seconds": 61.0},
    {"kind": "ramp", "start_rps": 10.0, "end_rps": 400.0, "duration_seconds": 333.0},
]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: s["kind"])
def test_expected_arrivals_are_the_integral_of_the_rate(shape):
    cfg = EnvConfig.from_dict(
        {
            "episode_steps": 60,
            "step_seconds": 15.0,
            "workload": {"shape": shape, "day_seconds": 900.0, "random_phase": True, "scale_jitter": 0.3},
        }
    )
    ep = Workload(cfg).sample_episode(np.random.default_rng(0))
    expected = ep.expected_arrivals()
    fine = np.arange(0.0, 900.0, 0.001) + 0.0005  # midpoint rule with 1 ms cells
    per_step = ep.rate(fine).reshape(60, -1).sum(axis=1) * 0.001
    np.testing.assert_allclose(expected, per_step, rtol=2e-4, atol=1e-6)


def test_random_walk_uses_each_step_once_with_fractional_step_lengths():
    cfg = EnvConfig.from_dict(
        {"episode_steps": 50, "step_seconds": 0.7, "workload": {"shape": {"kind": "random_walk", "volatility": 0.5}}}
    )
    ep = Workload(cfg).sample_episode(np.random.default_rng(1))
    np.testing.assert_allclose(ep.expected_arrivals(), ep.walk * 0.7)
    np.testing.assert_allclose(ep.rate(np.arange(50) * 0.7), ep.walk)


def test_random_phase_and_scale_come_from_the_generator():
    cfg = EnvConfig.from_dict({"workload": {"random_phase": True, "scale_jitter": 0.5}})
    wl = Workload(cfg)
    a = wl.sample_episode(np.random.default_rng(3))
    b = wl.sample_episode(np.random.default_rng(3))
    c = wl.sample_episode(np.random.default_rng(4))
    assert (a.clock_start_seconds, a.scale) == (b.clock_start_seconds, b.scale)
    assert (a.clock_start_seconds, a.scale) != (c.clock_start_seconds, c.scale)
    assert 0.5 <= a.scale <= 1.5 and 0.0 <= a.clock_start_seconds < cfg.workload.day_seconds
