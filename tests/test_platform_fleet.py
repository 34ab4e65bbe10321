"""The platform mode's warm pool under Poisson arrivals (scaling_env/sim/warm_pool.py; docs/model.md section 12,
"Warm pool"): Erlang B's overflow and the instances a step uses by hand, the warm fleet of a long keep-alive
grows to the peak of the concurrency and not to its mean, and the fast step against the request-level backend."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import merge
from test_platform import LAMBDA, ZERO

from scaling_env import EnvConfig
from scaling_env.envs.vector import ServerlessScalingVectorEnv
from scaling_env.sim.warm_pool import (
    episode_rate,
    erlang_b_advance,
    instances_used,
    last_use_age,
    overflow_share,
    use_probability,
)

# 10 req/s of 100 ms requests (a = 1 erlang), Poisson arrivals, lognormal service with cv 1
POISSON: dict = merge(
    LAMBDA,
    {
        "episode_steps": 60,
        "workload": {"shape": {"kind": "constant", "rate_rps": 10.0}, "arrival_process": "poisson"},
        "instances": {"service_cv": 1.0},
    },
)


def erlang_b(n: int, a: float) -> float:
    """Erlang B from its definition, (a^n / n!) / sum_k a^k / k!."""
    return (a**n / math.factorial(n)) / sum(a**k / math.factorial(k) for k in range(n + 1))


def episodes(over: dict, seeds: int, backend: str = "fast", steps: int | None = None) -> dict[str, np.ndarray]:
    """Per-step infos (arrays [seed, step]) of ``seeds`` episodes of POISSON merged with ``over``, action ZERO."""
    cfg = EnvConfig.from_dict(merge(merge(POISSON, over), {"simulator": backend}))
    n = steps or cfg.episode_steps
    env = ServerlessScalingVectorEnv(num_envs=seeds, config=cfg)
    env.reset(seed=list(range(seeds)))
    keys = ("arrivals", "throttled", "cold_starts", "instances_warm")
    out = {k: np.zeros((seeds, n)) for k in keys}
    for k in range(n):
        info = env.step(np.full(seeds, ZERO))[4]
        for key in keys:
            out[key][:, k] = info[key]
    env.close()
    return out


# ------------------------------------------------------------------------------------------ hand-computed
def test_erlang_b_of_two_instances_at_one_erlang_is_a_fifth():
    # B(2, 1) = (1/2) / (1 + 1 + 1/2) = 0.2, whether as 2 instances of 1 slot or 1 instance of 2 slots
    assert overflow_share(2, 1, 10.0, 0.1) == pytest.approx(0.2, rel=1e-12)
    assert overflow_share(1, 2, 10.0, 0.1) == pytest.approx(0.2, rel=1e-12)
    assert overflow_share(0, 1, 10.0, 0.1) == 1.0  # no warm instance: every arrival starts one
    for n, a in ((3, 1.0), (5, 0.5), (10, 7.0)):
        assert overflow_share(n, 1, a / 0.1, 0.1) == pytest.approx(erlang_b(n, a), rel=1e-9)


def test_the_instances_a_step_uses_follow_the_overflow_episodes():
    # instance 3 serves if the first 2 overflow: full periods at lambda B(2, a) * 2 / a, each with an arrival with
    # probability a / (a + 2): nu = 10 * 0.2 * 2 / 3 per second
    nu = 10.0 * 0.2 * 2.0 / 3.0
    assert episode_rate(10.0, 1.0, 2, 0.2) == pytest.approx(nu, rel=1e-12)
    assert use_probability(2, 1, 10.0, 0.1, 0.1) == pytest.approx(1.0 - math.exp(-nu * 0.1), rel=1e-12)
    # by inversion: a uniform below P(M > j) uses instance j + 1 (a prefix of the hunting order)
    p3 = use_probability(2, 1, 10.0, 0.1, 0.1)
    p4 = use_probability(3, 1, 10.0, 0.1, 0.1)
    assert instances_used(10.0, 0.1, 0.1, 1, 0.5 * (p3 + p4)) == 3
    assert instances_used(10.0, 0.1, 0.1, 1, p4 * 0.5) >= 4
    assert instances_used(0.0, 0.1, 10.0, 1, 0.5) == 0
    assert instances_used(10.0, 0.1, 10.0, 1, 0.999999) >= 1  # something arrived: instance 1 served
    # the distribution of M matches P(M > j) (the same uniform grid through both)
    u = (np.arange(20_000) + 0.5) / 20_000
    m = np.array([instances_used(10.0, 0.1, 1.0, 1, x) for x in u])
    for j in range(1, 6):
        assert np.mean(m > j) == pytest.approx(use_probability(j, 1, 10.0, 0.1, 1.0), abs=1e-4)
    # a rarely used instance last served about half a step before its end, a busy one about 1/nu before it
    assert last_use_age(10.0, 0.1, 6, erlang_b(6, 1.0), 10.0) == pytest.approx(5.0, abs=0.05)
    assert last_use_age(10.0, 0.1, 0, 1.0, 10.0) == pytest.approx(0.1, rel=1e-3)
    # the hunting order walked one instance at a time gives Erlang B at each
    assert erlang_b_advance(erlang_b(2, 1.0), 2, 3, 1.0) == pytest.approx(erlang_b(5, 1.0), rel=1e-12)


def test_two_warm_instances_at_their_limit_throttle_erlang_b_of_the_arrivals():
    # 2 provisioned instances, no room for more (max_concurrency 2): the requests that find both busy are throttled,
    # B(2, 1) = 0.2 of the arrivals on average (the M/G/2/2 loss system); the old packing at the mean concurrency
    # (1 erlang on 2 instances) throttled none
    over = {"platform": {"initial_provisioned": 2, "max_concurrency": 2}}
    runs = episodes(over, seeds=8)
    share = runs["throttled"].sum() / runs["arrivals"].sum()
    assert share == pytest.approx(0.2, abs=0.005)
    assert runs["cold_starts"].sum() == 0


def test_room_for_one_more_instance_starts_it_then_throttles_erlang_b_of_three():
    # as above with room for a third: a 10 s step of 100 arrivals on 2 instances overflows for sure
    # (1 - exp(-13.3)), so the first step starts exactly the one instance the limit allows; then B(3, 1) = 1/16
    over = {"platform": {"initial_provisioned": 2, "max_concurrency": 3}}
    runs = episodes(over, seeds=8)
    assert np.all(runs["cold_starts"][:, 0] == 1) and runs["cold_starts"][:, 1:].sum() == 0
    share = runs["throttled"][:, 1:].sum() / runs["arrivals"][:, 1:].sum()
    assert share == pytest.approx(erlang_b(3, 1.0), abs=0.004)


# ------------------------------------------------------------------------------------------ peak, not mean
# 5 req/s of 100 ms with an hour's keep-alive and no cold-start time (a cold start's own fan-out, every arrival
# during it starting one more, would add its own peak)
PEAK: dict = {
    "workload": {"shape": {"kind": "constant", "rate_rps": 5.0}},
    "instances": {"cold_start_seconds": 0.0},
    "platform": {"keep_alive_seconds": 3600.0},
}


def expected_fleet(lam: float, svc: float, window: float) -> float:
    """Sum over k of P(the occupancy's running maximum over ``window`` s reaches instance k): the warm fleet of a
    keep-alive longer than the episode under ordered hunting (c = 1)."""
    a = lam * svc
    total = 1.0  # instance 1 serves (a step has arrivals for sure at these rates)
    for k in range(1, 40):
        total += 1.0 - math.exp(-lam * erlang_b(k, a) * k / (a + k) * window)
    return total


def test_the_warm_fleet_of_a_long_keep_alive_grows_to_the_peak_not_the_mean():
    # 5 req/s of 100 ms: 0.5 requests in service on average, so the mean-concurrency packing kept 1 instance;
    # over 600 s the occupancy peaks at 4-5, and with a keep-alive of an hour each instance it reached stays
    over = PEAK
    fast = episodes(over, seeds=16)
    fleet = fast["instances_warm"][:, -1]
    assert fleet.mean() == pytest.approx(expected_fleet(5.0, 0.1, 600.0), abs=0.35)
    assert fleet.min() >= 3
    # deterministic arrivals keep the packing at the mean concurrency: one instance
    even = episodes(merge(over, {"workload": {"arrival_process": "deterministic"}}), seeds=2)
    assert np.all(even["instances_warm"][:, -1] == 1)


# ------------------------------------------------------------------------------------------ against the request backend
def test_the_fleet_cold_starts_and_throttling_agree_with_the_request_backend():
    """One config, both backends, 12 seeds: a constant Poisson load with a long keep-alive (the fleet = the peak)
    and a concurrency limit that binds (the throttled share = Erlang B of the limit)."""
    over = PEAK
    fast, request = episodes(over, 12), episodes(over, 12, "request")
    assert fast["instances_warm"][:, -1].mean() == pytest.approx(request["instances_warm"][:, -1].mean(), rel=0.12)
    assert fast["cold_starts"].sum(1).mean() == pytest.approx(request["cold_starts"].sum(1).mean(), rel=0.15)
    over = {"platform": {"initial_provisioned": 2, "max_concurrency": 2}}
    fast, request = episodes(over, 12, steps=20), episodes(over, 12, "request", steps=20)
    fast_share = fast["throttled"].sum() / fast["arrivals"].sum()
    request_share = request["throttled"].sum() / request["arrivals"].sum()
    assert fast_share == pytest.approx(request_share, abs=0.01)
    assert request_share == pytest.approx(0.2, abs=0.01)  # insensitive to the lognormal service
