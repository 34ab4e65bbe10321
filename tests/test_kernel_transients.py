"""Transients inside a step, with numbers that follow on paper (docs/model.md 3 and 5): a crash at its time, and
a least-outstanding balancer's ties with a crashed member. Deterministic 100 req/s, concurrency 10, 0.1 s service
(conftest.QUIET)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import action_for, quiet_config, started

from scaling_env.envs.vector import ServerlessScalingVectorEnv
from scaling_env.sim.load_balancer import failed_tie_share


def _infos(cfg, steps: int) -> list[dict]:
    env = started(cfg)
    hold = action_for(cfg, 0)
    return [env.step(hold)[4] for _ in range(steps)]


def test_outage_inside_a_step_fails_only_the_requests_after_it():
    # 2 instances, round robin, one crashes at t = 10 s of the first 15 s step. Each gets 750 requests in the
    # step; the crashed one serves those of the first 10 s (500) and fails the last 5 s (250). Checks at 30 and
    # 60 s, threshold 2: it leaves the pool at t = 60, so steps 1-3 fail its full 750. (Moved to the step start,
    # as before, step 0 failed 750.)
    cfg = quiet_config(
        load_balancer={"algorithm": "round_robin", "health_check_interval_seconds": 30.0, "unhealthy_threshold": 2},
        failures={"mtbf_seconds": None, "outages": [{"time_seconds": 10.0, "fraction": 0.5}]},
        scaling={"min_instances": 2, "initial_instances": 2},
    )
    infos = _infos(cfg, 5)
    assert [i["failed"] for i in infos] == [250, 750, 750, 750, 0]
    assert infos[0]["served"] == 1250 and infos[0]["crashes"] == 1
    assert [i["instances_failed"] for i in infos] == [1, 1, 1, 0, 0]


def test_health_checks_count_from_the_crash_not_from_the_step_start():
    # One instance crashes at t = 25 s (step 1 = [15, 30)); checks every 20 s, threshold 1. The check at t = 20
    # precedes the crash; the one at t = 40 finds it: out of the pool 10 s into step 2. Step 1: 1000 served
    # (before the crash), 500 failed. Step 2: 1000 arrive while it is still in the pool and fail, the other
    # 500 find the pool empty and are dropped.
    cfg = quiet_config(
        load_balancer={"health_check_interval_seconds": 20.0, "unhealthy_threshold": 1},
        failures={
            "mtbf_seconds": None,
            "outages": [{"time_seconds": 25.0, "fraction": 1.0}],
            "replace_unhealthy": False,
        },
        scaling={"min_instances": 1, "initial_instances": 1},
    )
    infos = _infos(cfg, 3)
    assert [i["failed"] for i in infos] == [0, 500, 1000]
    assert [i["served"] for i in infos] == [1500, 1000, 0]
    assert infos[2]["dropped"] == 500


def test_a_crash_inside_a_step_serves_its_queue_until_the_crash_as_far_as_capacity_allows():
    # One instance, 150 req/s into 100 req/s: 750 queued after step 0. It crashes at t = 20 s (5 s into step 1):
    # until then it completes 5 s x 100 = 500 requests, out of the 750 queued plus the 750 that arrived in those
    # 5 s; the other 1000 queued or arrived before the crash, and the 1500 after it... 2250 arrivals, 750 queued:
    # 3000 - 500 = 2500 fail.
    cfg = quiet_config(
        workload={"shape": {"kind": "constant", "rate_rps": 150.0}},
        load_balancer={"health_check_interval_seconds": 30.0, "unhealthy_threshold": 1},
        failures={
            "mtbf_seconds": None,
            "outages": [{"time_seconds": 20.0, "fraction": 1.0}],
            "replace_unhealthy": False,
        },
        scaling={"min_instances": 1, "initial_instances": 1},
    )
    infos = _infos(cfg, 2)
    assert infos[0]["backlog"] == 750
    assert infos[1]["served"] == 500
    assert infos[1]["failed"] == 2500


def test_failed_tie_share_by_hand():
    # one failed, one healthy member at 1 Erlang: a^2 + a - 1 = 0, a = (sqrt 5 - 1) / 2; the healthy one completes
    # a / (1 + a) = 0.382 requests per service time, the failed one gets the rest: 1 - 0.382 = 0.618
    a = (math.sqrt(5.0) - 1.0) / 2.0
    assert failed_tie_share(1, 1, 1.0) == pytest.approx(1.0 - a / (1.0 + a), rel=1e-12)
    assert failed_tie_share(1, 1, 1.0) == pytest.approx(0.6180339887, rel=1e-9)
    # 2 of 4 failed at 30 Erlangs (the fidelity report's outage): 2 a^2 - 26 a - 30 = 0, a = (26 + sqrt 916) / 4
    a = (26.0 + math.sqrt(916.0)) / 4.0
    assert failed_tie_share(2, 2, 30.0) == pytest.approx(1.0 - 2.0 * a / ((1.0 + a) * 30.0), rel=1e-12)
    assert failed_tie_share(2, 2, 30.0) == pytest.approx(0.9378, abs=1e-4)
    # no load: the even share; no healthy member: all of it
    assert failed_tie_share(1, 3, 1e-9) == pytest.approx(0.25, rel=1e-6)
    assert failed_tie_share(2, 0, 5.0) == 1.0
    assert failed_tie_share(0, 4, 5.0) == 0.0


def test_least_outstanding_sends_a_crashed_member_what_its_ties_win():
    # 2 instances, least outstanding, one crashed at t = 0: 100 req/s x 0.1 s = 10 Erlangs, one failed, one
    # healthy: a^2 - 8 a - 10 = 0, a = 4 + sqrt 26; the failed member gets 1 - a / (10 (1 + a)) of the 1500
    # requests (round robin: half of them).
    a = 4.0 + math.sqrt(26.0)
    share = 1.0 - a / (10.0 * (1.0 + a))
    cfg = quiet_config(
        load_balancer={"algorithm": "least_outstanding", "health_check_interval_seconds": 30.0},
        failures={"mtbf_seconds": None, "outages": [{"time_seconds": 0.0, "fraction": 0.5}]},
        scaling={"min_instances": 2, "initial_instances": 2},
    )
    info = _infos(cfg, 1)[0]
    assert info["failed"] == math.floor(1500 * share) == 1364
    assert info["served"] == 1500 - 1364


def test_a_spontaneous_crash_takes_effect_at_a_time_drawn_in_the_step():
    # mtbf = the step (15 s): one warm instance crashes in step 0 with p = 1 - 1/e; given that, the part f of the
    # step before the crash has CDF (1 - e^-f) / (1 - 1/e): mean (1 - 2/e) / (1 - 1/e) = 0.418, and
    # P(f < 0.15) = (1 - e^-0.15) / (1 - 1/e) = 0.220. It serves the 1500 f requests before the crash (100 req/s,
    # capacity 100 req/s) and fails the rest, so a step loses more than 85 % with probability 0.220. (At mid-step,
    # as before, every crash step served 750 and none lost 85 %: the request backend's crash steps break the 5 %
    # SLO of failure_storm 16.5 % of the time, mid-step never.) 4000 clusters: about 2530 crash; 4 sd bounds.
    cfg = quiet_config(
        failures={"mtbf_seconds": 15.0, "replace_unhealthy": False},
        scaling={"min_instances": 1, "initial_instances": 1},
    )
    n = 4000
    vec = ServerlessScalingVectorEnv(num_envs=n, config=cfg, autoreset_mode="same_step")
    vec.reset(seed=list(range(n)))
    info = vec.step(np.full(n, action_for(cfg, 0)))[4]
    vec.close()
    crashed = info["crashes"] == 1
    p = 1.0 - math.exp(-1.0)
    assert abs(crashed.mean() - p) < 4.0 * math.sqrt(p * (1.0 - p) / n)
    f = info["served"][crashed] / 1500.0
    assert np.all(info["served"][crashed] + info["failed"][crashed] == 1500)
    k = crashed.sum()
    mean = (1.0 - 2.0 / math.e) / p
    sd = math.sqrt((2.0 - 5.0 / math.e) / p - mean**2)  # E f^2 = (2 - 5/e) / (1 - 1/e)
    assert abs(f.mean() - mean) < 4.0 * sd / math.sqrt(k)
    q = (1.0 - math.exp(-0.15)) / p
    assert abs((f < 0.15).mean() - q) < 4.0 * math.sqrt(q * (1.0 - q) / k)


def test_a_member_in_the_pool_all_step_takes_its_arrivals_at_two_rates_around_a_late_join():
    # 150 req/s, one instance (100 req/s), waiting room 800. Step 0: a scale-out starts a 20 s cold start; the
    # queue grows 50 req/s to 750. Step 1 ([15, 30)): the new instance joins at 5 s. Round robin: the old one
    # gets all 150 req/s for 5 s, then 75 req/s (its share 5/15 + 10/15 / 2 = 2/3: 1500 requests, 750 of them in
    # the first 5 s). Its queue: 750 -> 800 after 1 s, full (50 req/s dropped) until 5 s: 200 dropped; then it
    # drains at 25 req/s for 10 s: 550 left. (Its arrivals spread evenly, 100 req/s, would drop none.) The new
    # one serves its 750 requests at 75 req/s, below its 100.
    cfg = quiet_config(
        workload={"shape": {"kind": "constant", "rate_rps": 150.0}},
        instances={"cold_start_seconds": 20.0, "max_queue": 800},
        load_balancer={"algorithm": "round_robin"},
        scaling={"min_instances": 1, "initial_instances": 1, "scale_out_cooldown_seconds": 0.0},
    )
    env = started(cfg)
    info0 = env.step(action_for(cfg, 1))[4]
    # (the fluid queue drops none in step 0; the room, which the queue's fluctuations reach before the fluid does
    # (750 +- 61 requests at 15 s), turns away the finite-buffer flow's blocking: 2 of 2,250, docs/model.md 6.2.3)
    assert info0["backlog"] == 750 and info0["dropped"] <= 0.002 * 2250
    info1 = env.step(action_for(cfg, 0))[4]
    assert info1["dropped"] == 200
    assert info1["backlog"] == 550
    assert info1["served"] == 750 + 2250 - 200 - 550
