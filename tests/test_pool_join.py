"""Members that join the pool inside a step (``kernel.pool_join``): the balancer's followed queue takes the step in
two parts, the members before the join and then the whole pool, so a queue that drains after a scale-out is gone
by the next step. Hand-computed case: 2 instances (concurrency 10, service 0.1 s, room 100) at 300 req/s, two more
ordered at step 2 with a 40 s cold start, which join 10 s into step 4 (t = 70 s)."""

import numpy as np
import pytest

from scaling_env import EnvConfig
from scaling_env.fields import INFO_NAMES
from scaling_env.sim.simulator import BatchSimulator

COL = {name: i for i, name in enumerate(INFO_NAMES)}

CONFIG = {
    "step_seconds": 15.0,
    "episode_steps": 10,
    "workload": {"shape": {"kind": "constant", "rate_rps": 300.0}},
    "instances": {
        "concurrency": 10,
        "max_queue": 100,
        "service_seconds": 0.1,
        "memory_mb_per_request": 0.0,
        "cold_start_seconds": 40.0,
        "cold_start_jitter": 0.0,
    },
    "scaling": {"min_instances": 0, "max_instances": 16, "initial_instances": 2, "scale_in_cooldown_seconds": 0.0},
    "failures": {"mtbf_seconds": None, "memory_crash": False},
}


def rows(seed: int) -> np.ndarray:
    cfg = EnvConfig.from_dict(CONFIG)
    sim = BatchSimulator(cfg, 1, parallel=False)
    sim.seed([seed])
    sim.reset()
    steps = list(cfg.scaling.scale_steps)
    out = np.zeros((cfg.episode_steps, len(INFO_NAMES)))
    for k in range(cfg.episode_steps):
        sim.step(np.array([steps.index(2) if k == 2 else steps.index(0)]))
        out[k] = sim.metrics[0]
    return out


@pytest.mark.parametrize("seed", [1, 2])
def test_queue_drained_by_a_join_is_gone_the_next_step(seed):
    r = rows(seed)
    assert r[4, COL["instances_warm"]] == 4
    # the step after the join is the steady state of 4 instances at utilisation 0.75 (the request backend: 0.105 s
    # mean, 0.306 s p95; before the split the flow still held a full room: 0.282 s and 1.396 s)
    steady = r[7]
    assert r[5, COL["latency_mean_s"]] == pytest.approx(steady[COL["latency_mean_s"]], rel=0.02)
    assert r[5, COL["latency_p95_s"]] == pytest.approx(steady[COL["latency_p95_s"]], rel=0.02)
    assert r[5, COL["latency_mean_s"]] < 0.11


def test_join_step_latency_by_hand():
    """The join step, by hand (fluid, FIFO): the first 10 s the 2 full members complete 2,000 requests at the full
    room's latency (M/M/c/K above capacity holds K - 1/(rho - 1) = 98 waiting at rho = 1.5: 0.98 + 0.1 s); then
    each old member serves its 100 queued (1.08 s) and 300 new arrivals (75 req/s for 4 s) behind a queue that
    drains at 25 req/s (mean wait 0.5 s), the last second's 75 with none, and the 2 new members 750 with none:
    (2000 * 1.08 + 200 * 1.08 + 600 * 0.6 + 900 * 0.1) / 3,700 = 0.764 s (the request backend: 0.788 s; taking
    the step's members at their mean pool time gave 0.915 s)."""
    r = rows(1)
    assert r[4, COL["served"]] == pytest.approx(3700, rel=0.02)
    assert r[4, COL["latency_mean_s"]] == pytest.approx(0.764, rel=0.05)
