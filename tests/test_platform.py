"""The request-driven serverless platform mode (issue 17; docs/model.md section 12): hand-computed steps, the AWS
documentation's worked examples of the scaling limits, conservation with throttling over random configs,
the env checkers, determinism and snapshot/restore."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from conftest import merge
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_invariants import check_step

from scaling_env import EnvConfig, ServerlessScalingEnv
from scaling_env.config import ConfigError
from scaling_env.sim.simulator import BatchSimulator

GB_S = 0.0000166667  # on-demand price per GB-second (cost.gb_second_usd)
PROV_GB_S = 0.0000041667  # provisioned price per GB-second (platform.provisioned_gb_second_usd)

# a Lambda-like function: one request per instance, 10 s steps, deterministic arrivals, no jitter
LAMBDA: dict = {
    "step_seconds": 10.0,
    "episode_steps": 8,
    "workload": {"shape": {"kind": "constant", "rate_rps": 0.0}, "arrival_process": "deterministic"},
    "instances": {"concurrency": 1, "service_seconds": 0.1, "cold_start_seconds": 2.0, "cold_start_jitter": 0.0},
    "scaling": {"min_instances": 0, "max_instances": 100, "initial_instances": 0, "scale_steps": [-1, 0, 1, 2]},
    "failures": {"mtbf_seconds": None},
    "platform": {"enabled": True, "max_concurrency": 100, "keep_alive_seconds": 600.0},
}
ZERO = 1  # index of the 0 scale step in LAMBDA


def run(over: dict, actions: list[int] | None = None, steps: int | None = None) -> list[dict]:
    """The infos of a single env on LAMBDA merged with ``over`` (action ZERO unless given)."""
    cfg = EnvConfig.from_dict(merge(LAMBDA, over))
    env = ServerlessScalingEnv(cfg)
    env.reset(seed=0)
    n = steps or cfg.episode_steps
    acts = actions or [ZERO] * n
    return [env.step(acts[k])[4] for k in range(n)]


def burst(requests_per_step: list[float], dt: float) -> dict:
    """A trace of whole requests per step, replayed exactly (deterministic arrivals)."""
    return {"kind": "trace", "counts": requests_per_step, "interval_seconds": dt, "loop": False}


# ------------------------------------------------------------------------------------------ hand-computed
def test_a_request_to_zero_instances_waits_exactly_the_cold_start():
    # one request per 10 s step; nothing warm at the start: it starts an instance and waits its 2 s cold start
    infos = run({"workload": {"shape": {"kind": "constant", "rate_rps": 0.1}}}, steps=3)
    first = infos[0]
    assert (first["arrivals"], first["served"], first["cold_starts"], first["cold_start_waits"]) == (1, 1, 1, 1)
    assert first["latency_mean_s"] == pytest.approx(2.0 + 0.1, abs=1e-12)  # cold start + service
    # the next request finds the instance warm: no wait
    assert infos[1]["cold_starts"] == 0 and infos[1]["latency_mean_s"] == pytest.approx(0.1, abs=1e-12)


def test_a_cold_start_longer_than_the_step_holds_its_request_until_it_ends():
    infos = run({"workload": {"shape": burst([1, 0, 0, 0], 10.0)}, "instances": {"cold_start_seconds": 25.0}}, steps=4)
    assert [i["backlog"] for i in infos] == [1, 1, 0, 0]
    assert [i["served"] for i in infos] == [0, 0, 1, 0]
    assert infos[2]["latency_mean_s"] == pytest.approx(25.0 + 0.1, abs=1e-12)  # exactly the cold start
    assert infos[1]["latency_mean_s"] == pytest.approx(20.0 + 0.1, abs=1e-12)  # not served yet: waited 20 s


def test_a_burst_above_the_scaling_rate_is_throttled_by_the_expected_count():
    # each request holds an instance for the whole 10 s step; the platform may start 5 instances per 10 s (a
    # bucket of 5, refilled at 0.5/s); 12 requests a step from zero instances, one each 1/1.2 s, each needing its
    # own instance, and each launch takes a token at its need's time (platform.spread_launches):
    # step 0: the 12th need comes at 10 * 11/12 = 9.17 s, when 5 + 0.5 * 9.17 = 9.58 tokens have come: 9 start,
    #   3 throttled (the last start took a refilled token 8 s in: the bucket refills 2 s to 1 token);
    # step 1: 9 warm + 3 new (1 token, the 3rd need at 6.67 s finds 1 + 3.33 = 4.33); step 2: 12 warm
    infos = run(
        {
            "workload": {"shape": {"kind": "constant", "rate_rps": 1.2}},
            "instances": {"service_seconds": 10.0},
            "platform": {"scale_rate_instances": 5, "scale_rate_period_seconds": 10.0},
        },
        steps=4,
    )
    assert [i["throttled"] for i in infos] == [3, 0, 0, 0]
    assert [i["cold_starts"] for i in infos] == [9, 3, 0, 0]
    assert [i["served"] for i in infos] == [9, 12, 12, 12]
    assert infos[0]["throttled_share"] == pytest.approx(3 / 12)
    assert infos[0]["reward_components"]["throttled"] == pytest.approx(-10.0 * 3 / 12)  # weight 10
    assert infos[0]["dropped"] == infos[0]["failed"] == 0  # its own outcome, not a drop


def test_a_bucket_that_refills_slowly_gives_only_what_it_holds():
    # the same burst, with the 5 tokens refilled over a day: no whole token comes within a step, so 5 start and
    # 7 are throttled; the next step starts with 10 s * 5 / 86400 = 0.0006 tokens: the 5 warm take 5 requests,
    # the 7 others find no token and are throttled
    infos = run(
        {
            "workload": {"shape": {"kind": "constant", "rate_rps": 1.2}},
            "instances": {"service_seconds": 10.0},
            "platform": {"scale_rate_instances": 5, "scale_rate_period_seconds": 86400.0},
        },
        steps=2,
    )
    assert [i["cold_starts"] for i in infos] == [5, 0]
    assert [i["throttled"] for i in infos] == [7, 7]


def test_the_concurrency_limit_throttles_what_it_cannot_hold():
    infos = run(
        {
            "workload": {"shape": {"kind": "constant", "rate_rps": 1.2}},
            "instances": {"service_seconds": 10.0},
            "platform": {"max_concurrency": 8},
        },
        steps=3,
    )
    assert [i["throttled"] for i in infos] == [4, 4, 4]  # 12 requests, 8 instances at most
    assert [i["instances_warm"] for i in infos] == [8, 8, 8]


def test_an_idle_instance_is_reclaimed_at_exactly_the_keep_alive_and_billed_until_then():
    # one request in step 0 (it ends at t = 10 s); keep-alive 25 s: reclaimed at t = 35 s, in step 3
    infos = run(
        {"workload": {"shape": burst([1, 0, 0, 0, 0], 10.0)}, "platform": {"keep_alive_seconds": 25.0}}, steps=5
    )
    assert [i["instance_seconds"] for i in infos] == [10.0, 10.0, 10.0, 5.0, 0.0]
    assert [i["instances_reclaimed"] for i in infos] == [0, 0, 0, 1, 0]
    assert [i["instances_warm"] for i in infos] == [1, 1, 1, 0, 0]  # scaled to zero
    assert infos[3]["cost_usd"] == pytest.approx(5.0 * 1.0 * GB_S, rel=1e-12)  # 1 GB instance, 5 s
    assert infos[1]["keep_alive_seconds"] == 25.0


def test_a_used_instance_stays_warm_and_the_next_request_after_reclaim_cold_starts_again():
    infos = run(
        {"workload": {"shape": burst([1, 1, 0, 0, 1], 10.0)}, "platform": {"keep_alive_seconds": 15.0}}, steps=5
    )
    assert [i["instances_reclaimed"] for i in infos] == [0, 0, 0, 1, 0]  # idle from t = 20 s: gone at 35 s
    assert [i["cold_starts"] for i in infos] == [1, 0, 0, 0, 1]


def test_provisioned_capacity_is_billed_at_its_price_when_idle():
    # no traffic at all: 3 provisioned instances (1 GB) cost 3 * 10 s * 1 GB * the provisioned price each step
    infos = run({"platform": {"initial_provisioned": 3}}, steps=2)
    for info in infos:
        assert info["provisioned"] == 3 and info["instances_warm"] == 3
        assert info["instance_seconds"] == 0.0  # nothing on demand
        assert info["provisioned_cost_usd"] == pytest.approx(3 * 10.0 * PROV_GB_S, rel=1e-12)
        assert info["cost_usd"] == pytest.approx(3 * 10.0 * PROV_GB_S, rel=1e-12)
        assert info["provisioned_utilization"] == 0.0 and info["instances_reclaimed"] == 0


def test_the_action_sets_the_provisioned_count_and_on_demand_spills_over_above_it():
    # 2 provisioned instances take 2 of the 5 one-step requests, 3 on-demand instances start for the rest
    over = {
        "workload": {"shape": {"kind": "constant", "rate_rps": 0.5}},
        "instances": {"service_seconds": 10.0},
        "platform": {"initial_provisioned": 2},
        "scaling": {"scale_out_cooldown_seconds": 0.0},
    }
    infos = run(over, actions=[ZERO, ZERO, 3, ZERO], steps=4)
    assert infos[0]["cold_starts"] == 3 and infos[0]["provisioned_utilization"] == 1.0
    busy = 2 * 10.0 * 1.0  # provisioned instance-seconds in use, GB-s
    assert infos[0]["provisioned_cost_usd"] == pytest.approx(2 * 10.0 * PROV_GB_S + busy * 0.0000097222, rel=1e-12)
    assert infos[0]["instance_seconds"] == 30.0  # the 3 on-demand instances, booting and serving
    # action +2: provisioned 4, two new provisioned instances boot (no scaling tokens needed)
    assert infos[2]["provisioned"] == 4 and infos[2]["instances_controlled"] == 4 and infos[2]["cold_starts"] == 2
    assert infos[2]["scale_applied"] == 2


def test_the_reset_info_shows_the_provisioned_count_and_the_keep_alive():
    cfg = EnvConfig.from_dict(
        merge(LAMBDA, {"scaling": {"initial_instances": 2}, "platform": {"initial_provisioned": 3}})
    )
    env = ServerlessScalingEnv(cfg)
    _, info = env.reset(seed=0)
    assert info["instances_warm"] == 5  # 3 provisioned + 2 on demand
    assert info["instances_controlled"] == info["provisioned"] == 3 and info["keep_alive_seconds"] == 600.0
    masks = env.action_masks()
    assert masks.all()  # no cooldown yet, and every step stays within [0, 100]


def test_action_masks_match_what_the_platform_step_applies():
    over = {"scaling": {"scale_out_cooldown_seconds": 30.0, "scale_in_cooldown_seconds": 60.0, "max_instances": 6}}
    cfg = EnvConfig.from_dict(merge(LAMBDA, {**over, "platform": {"max_concurrency": 4, "initial_provisioned": 1}}))
    env = ServerlessScalingEnv(cfg)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    for _ in range(cfg.episode_steps):
        masks = env.action_masks()
        a = int(rng.integers(0, env.action_space.n))
        info = env.step(a)[4]
        assert bool(info["blocked_by_cooldown"]) == (not masks[a])
        assert info["provisioned"] <= 4  # the concurrency limit bounds the provisioned count


def test_keep_alive_control_changes_the_keep_alive():
    infos = run(
        {"platform": {"control": "keep_alive", "keep_alive_seconds": 120.0, "keep_alive_step_seconds": 60.0}},
        actions=[3, 0, 0, 0],
        steps=4,
    )
    assert [i["keep_alive_seconds"] for i in infos] == [240.0, 180.0, 120.0, 60.0]
    assert [i["provisioned"] for i in infos] == [0, 0, 0, 0]


def test_the_activator_buffers_what_would_be_throttled_and_serves_it_next_step():
    over = {
        "workload": {"shape": burst([12, 0, 0], 10.0)},
        "instances": {"service_seconds": 10.0},
        "platform": {
            "scale_rate_instances": 5,
            "scale_rate_period_seconds": 86400.0,  # (no refill within the step: 5 tokens in all)
            "activator": True,
            "activator_capacity": 4,
        },
    }
    infos = run(over, steps=3)
    # step 0: 5 start, 4 of the other 7 buffered, 3 throttled; step 1: the 4 buffered on the 5 warm instances
    assert [i["throttled"] for i in infos] == [3, 0, 0]
    assert [i["activator_buffered"] for i in infos] == [4, 0, 0]
    assert [i["served"] for i in infos] == [5, 4, 0]
    assert infos[0]["backlog"] == 4
    # buffered on average from the middle of step 0 (t = 5 s), served first when step 1 starts (t = 10 s)
    assert infos[1]["latency_mean_s"] == pytest.approx(10.0 + 5.0, abs=1e-12)


# ------------------------------------------------------------------------------------------ AWS worked examples
def test_lambda_scaling_rate_1000_per_10_s_or_10000_rps_per_10_s():
    """AWS Lambda Developer Guide, "Lambda scaling behavior" (docs.aws.amazon.com/lambda/latest/dg/
    scaling-behavior.html): each function can scale by 1,000 execution environments every 10 seconds, "or
    accommodate 10,000 additional requests per second" (100 ms requests), refilled continuously and never more
    than 1,000 at once. A jump from 0 to 20,000 requests/s of 100 ms requests (no cold start), each launch taking
    its token when it is needed (``platform.spread_launches``): the full bucket's 1,000 at once, then one per 10 ms
    of refill, so the last of the 2,000 instances the step needs (at 9.995 s) finds floor(1,000 + 999.5) = 1,999
    tokens; the bucket is empty at the last launch (9.99 s) and holds 1 at the step's end, which step 1 uses."""
    infos = run(
        {
            "workload": {"shape": {"kind": "constant", "rate_rps": 20_000.0}},
            "instances": {"cold_start_seconds": 0.0},
            "scaling": {"max_instances": 3000},
            "platform": {"max_concurrency": 3000},
        },
        steps=3,
    )
    assert [i["cold_starts"] for i in infos] == [1999, 1, 0]
    # admitted in step 0: each new instance's first request, then 10/s from its launch + 0.1 s to the step end:
    # 1,000 x (1 + 99) + sum over j = 1..999 of (1 + max(99 - j / 10, 0)) = 100,000 + 49,954.5, rounded down
    assert [i["served"] for i in infos] == [149_954, 200_000, 200_000]
    assert [i["throttled"] for i in infos] == [50_046, 0, 0]


def test_lambda_unused_scaling_rate_does_not_accrue():
    """Same page: "if you don't use any of your 1,000 concurrency units in a 10-second interval, you won't accrue
    1,000 additional units in the next 10-second interval". After 60 s idle, a burst needing 3,000 new
    environments gets the full bucket's 1,000 and the refill as it comes (the 3,000th need at 9.997 s finds
    1,000 + 999.7 tokens: 1,999), not 6,000; the next step starts with the 1 token refilled after the last launch
    and takes the refill as the 1,001 needs come (the last at 9.99 s: floor(1 + 999.0) = 1,000)."""
    infos = run(
        {
            "workload": {"shape": burst([0, 0, 0, 0, 0, 0, 3000, 3000], 10.0)},
            "instances": {"service_seconds": 10.0},
            "scaling": {"max_instances": 4000},
            "platform": {"max_concurrency": 4000},
        },
        steps=8,
    )
    assert infos[6]["cold_starts"] == 1999 and infos[6]["throttled"] == 1001
    assert infos[7]["cold_starts"] == 1000 and infos[7]["throttled"] == 1


# AWS Lambda Operator Guide, "On-demand scaling example" (serverlessland.com/content/service/lambda/guides/
# aws-lambda-operator-guide/on-demand-scaling): 10,000 synchronous requests, the old burst model (3,000 new
# instances at once, then 500 per minute), each request holding an execution environment for its minute. The
# guide reads every request as arriving at the start of its minute (1: 3,000 served, 7,000 throttled); here a
# minute's requests arrive over it and each launch takes its token when its request comes (refilled at 500/60 per
# s: ``platform.spread_launches``), so the first minute also gets the refill up to its last request: 3,000 +
# 500 x 59.994 / 60 = 3,499.95 -> 3,499. The concurrency limit there is 10,000; scaling.max_instances stops at
# 4,096, which the examples never reach.
OPERATOR_GUIDE = {
    "step_seconds": 60.0,
    "instances": {"service_seconds": 60.0},
    "scaling": {"max_instances": 4096},
    "platform": {
        "max_concurrency": 4096,
        "scale_burst_instances": 3000,
        "scale_rate_instances": 500,
        "scale_rate_period_seconds": 60.0,
    },
}


@pytest.mark.parametrize(
    ("per_minute", "throttled"),
    [
        ([10_000], [6501]),  # 1. all in one minute: 3,499 new environments, 6,501 throttled (the guide: 7,000)
        # 2. over 2 minutes: 3,499 then (1 token left, the 1,501 needs of minute 2 get floor(1 + 500 x 1,500 /
        # 1,501) = 500) 3,499 reused + 500 new, 1,001 throttled (the guide: 2,000 and 1,500)
        ([5000, 5000], [1501, 1001]),
        ([3333, 3333, 3334], [0, 0, 0]),  # 3. over 3 minutes: 3,333 <= 3,499 (the guide: 333 in the first)
        ([2500, 2500, 2500, 2500], [0, 0, 0, 0]),  # 4. over 4 minutes: 2,500 new, then reused
    ],
)
def test_lambda_operator_guide_on_demand_scaling_example(per_minute, throttled):
    over = merge(OPERATOR_GUIDE, {"workload": {"shape": burst(per_minute, 60.0)}})
    infos = run(over, steps=len(per_minute))
    assert [i["throttled"] for i in infos] == throttled
    assert [i["arrivals"] for i in infos] == per_minute
    if per_minute[0] == 2500:
        assert [i["cold_starts"] for i in infos] == [2500, 0, 0, 0]  # "the same environments are reused"


# ------------------------------------------------------------------------------------------ config errors
def test_platform_config_errors_name_the_field():
    with pytest.raises(ConfigError, match="max_concurrency"):
        EnvConfig.from_dict({"platform": {"enabled": True, "max_concurrency": 100}, "failures": {"mtbf_seconds": None}})
    with pytest.raises(ConfigError, match="mtbf_seconds"):
        EnvConfig.from_dict({"platform": {"enabled": True, "max_concurrency": 64}})
    with pytest.raises(ConfigError, match="keep_alive_seconds"):
        EnvConfig.from_dict({"platform": {"keep_alive_seconds": 7200.0, "max_keep_alive_seconds": 3600.0}})
    with pytest.raises(ConfigError, match="control"):
        EnvConfig.from_dict({"platform": {"control": "memory"}})


# ------------------------------------------------------------------------------------------ invariants
rates = st.one_of(st.just(0.0), st.floats(0.0, 5.0), st.floats(5.0, 5000.0))


@st.composite
def platform_configs(draw) -> dict:
    max_i = draw(st.integers(1, 40))
    limit = draw(st.integers(1, max_i))
    min_i = draw(st.integers(0, max_i))
    return {
        "step_seconds": draw(st.sampled_from([1.0, 10.0, 15.0, 60.0])),
        "episode_steps": draw(st.integers(1, 30)),
        "workload": {
            "shape": draw(
                st.one_of(
                    st.builds(lambda r: {"kind": "constant", "rate_rps": r}, rates),
                    st.builds(
                        lambda b, p, s: {
                            "kind": "spike",
                            "base_rps": b,
                            "peak_rps": p,
                            "start_seconds": s,
                            "duration_seconds": 60.0,
                        },
                        rates,
                        rates,
                        st.floats(0, 300),
                    ),
                )
            ),
            "arrival_process": draw(st.sampled_from(["poisson", "deterministic"])),
        },
        "instances": {
            "concurrency": draw(st.integers(1, 20)),
            "service_seconds": draw(st.floats(0.005, 30.0)),
            "service_cv": draw(st.floats(0.0, 2.0)),
            "cold_start_seconds": draw(st.floats(0.0, 90.0)),
            "cold_start_jitter": draw(st.floats(0.0, 1.0)),
        },
        "scaling": {
            "min_instances": min_i,
            "max_instances": max_i,
            "initial_instances": draw(st.integers(0, 10)),
            "scale_steps": draw(st.lists(st.integers(-3, 3), min_size=1, max_size=5, unique=True)),
            "scale_out_cooldown_seconds": draw(st.floats(0.0, 60.0)),
            "scale_in_cooldown_seconds": draw(st.floats(0.0, 120.0)),
        },
        "failures": {"mtbf_seconds": None},
        "platform": {
            "enabled": True,
            "max_concurrency": limit,
            "scale_rate_instances": draw(st.integers(1, 50)),
            "scale_rate_period_seconds": draw(st.floats(1.0, 60.0)),
            "scale_burst_instances": draw(st.one_of(st.none(), st.integers(1, 50))),
            "keep_alive_seconds": draw(st.floats(0.0, 300.0)),
            "initial_provisioned": draw(st.integers(0, 10)),
            "control": draw(st.sampled_from(["provisioned", "keep_alive"])),
            "keep_alive_step_seconds": draw(st.floats(1.0, 120.0)),
            "max_keep_alive_seconds": 300.0,
            "activator": draw(st.booleans()),
            "activator_capacity": draw(st.integers(0, 1000)),
        },
    }


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=platform_configs(), seed=st.integers(0, 2**31 - 1), actions=st.lists(st.integers(0, 10), min_size=20))
def test_platform_invariants_hold_on_every_step(data, seed, actions):
    """previous backlog + arrivals = served + dropped + failed + throttled + backlog (check_step), and the
    platform's limits hold, on every step of random configs and actions."""
    cfg = EnvConfig.from_dict(data)
    env = ServerlessScalingEnv(cfg)
    env.reset(seed=seed)
    prev = 0.0
    first = None
    for k in range(cfg.episode_steps):
        obs, reward, _, _, info = env.step(actions[k % len(actions)] % env.action_space.n)
        if first is None and info["arrivals"] > 0:
            first = info["time_s"] - cfg.step_seconds
        check_step(env, prev, obs, reward, info, cfg, first if first is not None else info["time_s"])
        assert info["dropped"] == info["failed"] == 0  # the platform throttles; it does not drop or fail
        assert info["throttled"] >= 0 and 0.0 <= info["throttled_share"] <= 1.0
        assert info["instances_warm"] + info["instances_booting"] <= cfg.platform.max_concurrency
        assert info["provisioned"] <= min(cfg.scaling.max_instances, cfg.platform.max_concurrency)
        assert 0.0 <= info["provisioned_utilization"] <= 1.0 + 1e-12
        assert 0.0 <= info["keep_alive_seconds"] <= cfg.platform.max_keep_alive_seconds
        assert info["activator_buffered"] <= (cfg.platform.activator_capacity if cfg.platform.activator else 0)
        assert info["provisioned_cost_usd"] >= 0.0 and info["cost_usd"] >= info["provisioned_cost_usd"] - 1e-15
        prev = info["backlog"]


# ------------------------------------------------------------------------------------------ env API
SPARSE = merge(
    LAMBDA,
    {
        "episode_steps": 12,
        "workload": {
            "shape": {"kind": "random_walk", "start_rps": 20.0, "volatility": 0.8, "min_rps": 0.0},
            "arrival_process": "poisson",
            "scale_jitter": 0.3,
        },
        "instances": {"cold_start_jitter": 0.5, "concurrency": 4},
        "scaling": {"max_instances": 30},
        "platform": {
            "max_concurrency": 30,
            "scale_rate_instances": 6,
            "keep_alive_seconds": 20.0,
            "initial_provisioned": 1,
            "activator": True,
        },
    },
)


@pytest.mark.parametrize("version", [0, 1])
def test_env_checkers_pass_in_platform_mode(version):
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    with warnings.catch_warnings():  # v0 is not the newest version: gym.make says so, and that is all it says
        warnings.filterwarnings("ignore", message=".*out of date.*", category=DeprecationWarning)
        env = gym.make(f"ServerlessScaling-v{version}", config=SPARSE)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped)
        sb3_check_env(ServerlessScalingEnv(SPARSE, version=version), warn=True)


def rollout(seed: int, actions: np.ndarray) -> list:
    env = ServerlessScalingEnv(SPARSE)
    env.reset(seed=seed)
    out = []
    for a in actions:
        obs, r, _, _, info = env.step(int(a))
        out.append((obs.copy(), r, info))
    return out


def test_platform_mode_same_seed_same_trajectory():
    actions = np.random.default_rng(0).integers(0, 4, 12)  # one episode
    a, b, c = rollout(3, actions), rollout(3, actions), rollout(4, actions)
    for (oa, ra, ia), (ob, rb, ib) in zip(a, b):
        np.testing.assert_array_equal(oa, ob)
        assert ra == rb and ia == ib
    assert any(x[2] != y[2] for x, y in zip(a, c))


def test_a_cluster_in_a_batch_follows_the_single_env():
    cfg = EnvConfig.from_dict(SPARSE)
    sim = BatchSimulator(cfg, num_envs=3, parallel=False)
    sim.seed([5, 6, 7])
    sim.reset()
    single = BatchSimulator(cfg, num_envs=1, parallel=False)
    single.seed([6])
    single.reset()
    acts = np.random.default_rng(1).integers(0, 4, size=(20, 3))
    for k in range(20):
        sim.step(acts[k])
        single.step(acts[k, 1:2])
        assert sim.metrics[1].tobytes() == single.metrics[0].tobytes()
