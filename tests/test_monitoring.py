"""Metrics as a monitoring system delivers them (issue 17): a metric with period P and delay D shows at time t the
value of the period that ended at t - D (the latest period [e - P, e) with e a multiple of P and e <= t - D; the
time-weighted mean of the steps for most metrics, the max for cpu_max, memory_max and latency_p95_s; before the
episode start the steady state of the initial fleet). The simulation runs on the true state."""

from __future__ import annotations

import numpy as np
import pytest

from agents.registry import make_policy
from agents.rules.metrics import metric_values, read_metric
from scaling_env import ConfigError, EnvConfig, ServerlessScalingVectorEnv
from scaling_env.fields import INFO_NAMES, O_CPU_MEAN, OBSERVED_NAMES
from scaling_env.sim.simulator import BatchSimulator

# a ramp so that every step's values differ; deterministic arrivals; 4 instances at first
BASE = {
    "episode_steps": 16,
    "workload": {
        "shape": {"kind": "ramp", "start_rps": 200.0, "end_rps": 1400.0, "duration_seconds": 240.0},
        "arrival_process": "deterministic",
    },
    "scaling": {"initial_instances": 4},
    "failures": {"mtbf_seconds": None},
}
COL = {name: INFO_NAMES.index(name) for name in INFO_NAMES}


def run(metrics: dict | None, steps: int = 16, action: int = 3):
    """(true metrics per step, observed metrics per step, obs per step, prior) of one cluster holding ``action``."""
    cfg = EnvConfig.from_dict({**BASE, **({"metrics": metrics} if metrics else {})})
    sim = BatchSimulator(cfg, num_envs=1, parallel=False)
    sim.seed([5])
    sim.reset()
    rows, obs = [], []
    for _ in range(steps):
        sim.step(np.array([action]))
        rows.append(sim.metrics[0].copy())
        obs.append(sim.obs[0].copy())
    return np.array(rows), np.array(obs), sim.monitor.prior[0].copy()


def source(period, delay, names=("arrivals", "cpu_utilization", "latency_p95_s")):
    return {"sources": {"cw": {"period_seconds": period, "delay_seconds": delay, "metrics": list(names)}}}


def test_one_minute_periods_delivered_a_minute_late_by_hand():
    rows, _, prior = run(source(60.0, 60.0))
    k_prior = {n: OBSERVED_NAMES.index(n) for n in OBSERVED_NAMES}

    def true(name, steps):
        return rows[steps, COL[name]]

    def seen(name, k):  # after step k (t = 15 (k + 1))
        return rows[k, COL["observed_" + name]]

    # t = 15 .. 105: t - 60 < 60, no period has ended by then but [-60, 0), the steady state before the episode
    for k in range(7):
        assert seen("cpu_utilization", k) == prior[k_prior["cpu_utilization"]]
    # the steady state at the first step's mean rate, 200 + 1200 * 7.5 / 240 = 237.5 req/s, on 4 x 100 req/s
    assert prior[k_prior["cpu_utilization"]] == pytest.approx(237.5 / 400.0)
    # t = 120 .. 165: the period [0, 60) = steps 0..3: mean for CPU and arrivals (per step), max for p95
    for k in (7, 8, 9, 10):
        assert seen("cpu_utilization", k) == pytest.approx(true("cpu_utilization", slice(0, 4)).mean(), rel=1e-12)
        assert seen("arrivals", k) == pytest.approx(true("arrivals", slice(0, 4)).sum() / 4, rel=1e-12)
        assert seen("latency_p95_s", k) == true("latency_p95_s", slice(0, 4)).max()
    # t = 180: [60, 120) = steps 4..7
    assert seen("cpu_utilization", 11) == pytest.approx(true("cpu_utilization", slice(4, 8)).mean(), rel=1e-12)
    assert seen("latency_p95_s", 11) == true("latency_p95_s", slice(4, 8)).max()
    # metrics of no source are delivered as measured
    assert np.array_equal(rows[:, COL["observed_memory_utilization"]], rows[:, COL["memory_utilization"]])


def test_period_and_delay_that_are_not_multiples_of_the_step_by_hand():
    """P = 20 s, D = 10 s, steps of 15 s: a period cut by a step boundary weighs each step by its overlap."""
    rows, _, prior = run(source(20.0, 10.0))
    x = rows[:, COL["cpu_utilization"]]
    p95 = rows[:, COL["latency_p95_s"]]

    def seen(name, k):
        return rows[k, COL["observed_" + name]]

    # t = 15: t - D = 5, the last period that ended is [-20, 0): the prior
    assert seen("cpu_utilization", 0) == prior[OBSERVED_NAMES.index("cpu_utilization")]
    # t = 30 and t = 45: t - D = 20 and 35 -> [0, 20): all of step 0 (15 s) and 5 s of step 1
    for k in (1, 2):
        assert seen("cpu_utilization", k) == pytest.approx((x[0] * 15 + x[1] * 5) / 20, rel=1e-12)
        assert seen("latency_p95_s", k) == max(p95[0], p95[1])
    # t = 60: t - D = 50 -> [20, 40): 10 s of step 1 (15..30) and 10 s of step 2 (30..45)
    assert seen("cpu_utilization", 3) == pytest.approx((x[1] + x[2]) / 2, rel=1e-12)
    assert seen("latency_p95_s", 3) == max(p95[1], p95[2])
    # t = 75: t - D = 65 -> [40, 60): 5 s of step 2 and all of step 3
    assert seen("cpu_utilization", 4) == pytest.approx((x[2] * 5 + x[3] * 15) / 20, rel=1e-12)


def test_the_simulation_runs_on_the_true_state_and_the_observation_shows_the_delivered_metrics():
    plain, plain_obs, _ = run(None)
    late, late_obs, _ = run(source(60.0, 60.0))
    true_cols = [COL[n] for n in INFO_NAMES if not n.startswith("observed_")]
    assert np.array_equal(plain[:, true_cols], late[:, true_cols])  # same actions, same true trajectory
    assert not np.array_equal(plain_obs[:, O_CPU_MEAN], late_obs[:, O_CPU_MEAN])
    np.testing.assert_array_equal(
        late_obs[:, O_CPU_MEAN], np.minimum(late[:, COL["observed_cpu_utilization"]], 1.0).astype(np.float32)
    )
    # default: every observed column is its true column, bit for bit
    for name in OBSERVED_NAMES:
        assert np.array_equal(plain[:, COL["observed_" + name]], plain[:, COL[name]]), name


def test_bad_sources_are_refused_naming_the_field():
    with pytest.raises(ConfigError, match=r"metrics\.sources\.cw\.period_seconds"):
        EnvConfig.from_dict({"metrics": source(0.0, 60.0)})
    with pytest.raises(ConfigError, match=r"metrics\.sources\.cw\.delay_seconds"):
        EnvConfig.from_dict({"metrics": source(60.0, -1.0)})
    with pytest.raises(ConfigError, match=r"metrics\.sources\.cw\.metrics"):
        EnvConfig.from_dict({"metrics": source(60.0, 0.0, ["cpu_utilisation"])})
    with pytest.raises(ConfigError, match="spans more than"):
        EnvConfig.from_dict({"step_seconds": 1.0, "metrics": source(86400.0, 86400.0)})


def test_rules_read_the_delivered_metrics():
    info = {"cpu_utilization": np.array([0.9]), "observed_cpu_utilization": np.array([0.2])}
    assert metric_values(info, "cpu", 15.0)[0] == 0.2
    assert read_metric({"arrivals": np.array([7.0])}, "arrivals")[0] == 7.0  # a hand-made info without observed_*
    assert read_metric({"instances_warm": np.array([3.0])}, "instances_warm")[0] == 3.0

    def episode(metrics):
        cfg = EnvConfig.from_dict({**BASE, "episode_steps": 40, **({"metrics": metrics} if metrics else {})})
        env = ServerlessScalingVectorEnv(num_envs=2, config=cfg, parallel=False)
        policy = make_policy("hpa", cfg)
        policy.reset(num_envs=2)
        obs, info = env.reset(seed=3)
        counts = []
        for _ in range(40):
            obs, _, _, _, info = env.step(policy.act_batch(obs, info))
            counts.append(info["instances_controlled"].copy())
        return np.array(counts)

    late = source(60.0, 60.0, ("cpu_utilization",))
    assert not np.array_equal(episode(None), episode(late))  # the rule scales later on late CPU
