"""The latency of a step whose arrival rate changes inside it (issue 16; docs/model.md 6.2.1, "A rate change inside
a step"): the env reports the mean response time of the requests that complete in the step, so the followed
queue's wait is weighted by what each part of the step serves, not by what it admits."""

from __future__ import annotations

import pytest
from conftest import action_for, quiet_config, started


def test_a_rate_change_inside_a_step_weighs_the_waits_of_the_requests_it_serves():
    # 4 instances x 10 slots of 0.1 s (capacity 400 req/s), a room of 100 each, round robin, deterministic
    # arrivals; the rate goes 200 -> 600 req/s at t = 157.5 s, 7.5 s into step 10 = [150, 165). By hand (the fluid
    # picture): the first 7.5 s serve their 1,500 requests at once (0.1 s). After the change each instance gets
    # 150 req/s for 100 it serves: its queue fills at 50/s, full after 2 s, and from then on it turns 50/s away.
    # It serves 100/s x 7.5 s = 750 in the step: the 300 admitted while it filled (waits 0 -> 1 s, mean 0.5 s),
    # then 450 admitted at a full room (1 s each); the 100 admitted last are still queued at the step's end.
    # Mean response time: (1,500 x 0.1 + 3,000 x (0.1 + 0.8)) / 4,500 = 0.6333 s (an exact event simulation with
    # Poisson arrivals: 0.614 s, `python perf/rate_change_des.py`). Weighted by what each part admits (the 400
    # still queued counted), it was 0.691 s.
    cfg = quiet_config(
        episode_steps=12,
        workload={
            "shape": {
                "kind": "spike",
                "base_rps": 200.0,
                "peak_rps": 600.0,
                "duration_seconds": 1e5,
                "start_seconds": 157.5,
            }
        },
        instances={"concurrency": 10, "max_queue": 100, "service_seconds": 0.1},
        load_balancer={"algorithm": "round_robin"},
        scaling={"min_instances": 4, "max_instances": 8, "initial_instances": 4},
    )
    env = started(cfg)
    hold = action_for(cfg, 0)
    infos = [env.step(hold)[4] for _ in range(11)]
    step = infos[10]
    assert step["served"] == pytest.approx(4_500, abs=10)
    assert step["dropped"] == pytest.approx(1_100, abs=10)  # 4 x 50/s x 5.5 s
    assert step["latency_mean_s"] == pytest.approx(0.6333, abs=0.02)
    assert infos[9]["latency_mean_s"] == pytest.approx(0.1, abs=0.001)  # before the change: no queue
