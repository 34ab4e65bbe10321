"""The planning oracle: plans on copies, knows what it says it knows, and beats every policy on a short scenario."""

from __future__ import annotations

import math

import numpy as np
import pytest

from agents import POLICIES, PolicyConfigError, make_policy
from agents.registry import PLATFORM_POLICIES, with_tuned
from scaling_env import EnvConfig, ServerlessScalingVectorEnv
from scaling_env.rollout import rollout
from scaling_env.scenarios import load_scenario

# the flash crowd in 12 minutes: 300 requests/s, 10x for 3 minutes from minute 6
SHORT_FLASH = load_scenario("flash_crowd").config.with_updates(
    {"episode_steps": 48, "workload": {"shape": {"start_seconds": 360.0, "duration_seconds": 180.0}}}
)
SMALL = {"utilizations": [0.8, 0.95], "offsets": [0, 6], "futures": 3, "horizon_steps": 8}


def mean_reward(
    config: EnvConfig, spec: str, seeds: list[int], overrides: dict | None = None, scenario: str | None = None
) -> float:
    run = rollout(config, make_policy(spec, config, overrides, scenario=scenario), seeds, parallel=False)
    return float(np.mean([m["reward"] for m in run.metrics]))


def test_the_bound_and_the_planner_beat_every_other_policy_on_a_short_flash_crowd():
    # every registered policy, static_peak, and the rules with flash_crowd's tuned and the generalist settings
    # (which the planner's rule plans read too: scenario="flash_crowd"). The bound (hindsight: the planner
    # clairvoyant of the random draws) is at least all of them and the sampled-futures planner.
    seeds = [1000, 1001, 1002]
    hindsight = mean_reward(SHORT_FLASH, "hindsight", seeds, scenario="flash_crowd")
    planner = mean_reward(SHORT_FLASH, "planner", seeds, scenario="flash_crowd")
    specs = with_tuned([*sorted(set(POLICIES) - {"planner"} - PLATFORM_POLICIES), "static_peak"])
    assert "predictive@tuned" in specs and "hpa@generalist" in specs
    others = {p: mean_reward(SHORT_FLASH, p, seeds, scenario="flash_crowd") for p in specs}
    best = max(others, key=others.get)
    assert planner >= others[best], f"planner {planner:.2f} < {best} {others[best]:.2f} ({others})"
    assert hindsight >= planner, f"hindsight {hindsight:.2f} < planner {planner:.2f}"


def test_planning_leaves_the_real_clusters_untouched_and_is_independent_of_the_batch():
    config = SHORT_FLASH.with_updates({"episode_steps": 12})
    env = ServerlessScalingVectorEnv(num_envs=2, config=config, parallel=False)
    obs, info = env.reset(seed=[5, 6])
    policy = make_policy("planner", config, SMALL)
    policy.reset(num_envs=2)
    policy.bind(env)
    before = env.sim.get_state()
    policy.act_batch(obs, info)
    after = env.sim.get_state()
    for name, rows in before.arrays.items():
        assert np.array_equal(rows, after.arrays[name]), name
    # cluster seeded 6 plans the same alone as beside cluster 5: its futures hash its own state, not its index
    pair = rollout(config, make_policy("planner", config, SMALL), [5, 6], parallel=False)
    alone = rollout(config, make_policy("planner", config, SMALL), [6], parallel=False)
    assert pair.metrics[1] == alone.metrics[0]


@pytest.mark.parametrize("clairvoyant", [False, True])
def test_planner_sees_the_random_draws_only_when_told(clairvoyant: bool):
    config = load_scenario("failure_storm").config.with_updates({"episode_steps": 10})
    env = ServerlessScalingVectorEnv(num_envs=1, config=config, parallel=False)
    obs, info = env.reset(seed=3)
    policy = make_policy("planner", config, {**SMALL, "horizon_steps": 1, "know_random_draws": clairvoyant})
    policy.reset(num_envs=1)
    policy.bind(env)
    action = policy.act_batch(obs, info)
    env.step(action)
    plan = policy._plan  # the private copies after their one planned step
    k = policy.n_futures
    copy = int(policy.last_choice[0]) * k  # the first future of the chosen plan
    arrivals = env.sim.metrics[0].copy(), plan.metrics[copy].copy()
    same = np.array_equal(arrivals[0], arrivals[1])
    assert same == clairvoyant  # the same Poisson draws and crashes only on the cluster's own stream
    if not clairvoyant:
        assert k == 3 and len({int(r) for r in plan.rng[copy : copy + k]}) == k  # distinct sampled futures


def test_planner_params_are_checked():
    with pytest.raises(PolicyConfigError, match="utilizations"):
        make_policy("planner", EnvConfig(), {"utilizations": [80]})
    with pytest.raises(RuntimeError, match="bind"):
        make_policy("planner", EnvConfig()).act_batch(np.zeros((1, 19)), {})


def test_planner_runs_a_full_episode_in_the_single_env():
    from scaling_env import ServerlessScalingEnv

    config = SHORT_FLASH.with_updates({"episode_steps": 30})
    env = ServerlessScalingEnv(config)
    policy = make_policy("planner", config, SMALL)
    obs, info = env.reset(seed=1)
    policy.reset(seed=1)
    policy.bind(env)
    truncated = False
    while not truncated:
        a = policy.act(obs, info)
        assert isinstance(a, int) and 0 <= a < env.action_space.n
        obs, _, _, truncated, info = env.step(a)
    assert env.sim.step_index()[0] == 30


def test_planner_refuses_an_env_of_another_config():
    env = ServerlessScalingVectorEnv(num_envs=1, config=SHORT_FLASH, max_episode_steps=20)
    with pytest.raises(ValueError, match="config differs"):
        make_policy("planner", SHORT_FLASH).bind(env)


def test_the_reference_plan_is_the_base_plan_best_over_whole_episodes_on_the_calibration_seeds():
    config = SHORT_FLASH.with_updates({"episode_steps": 30})
    policy = make_policy("planner", config, {**SMALL, "calibration_seeds": [100, 4]})
    scores = policy.calibrate()
    assert scores.shape == (policy.n_candidates,)
    # the last candidate is the heuristic oracle: its score is the oracle's own mean over seeds 100..103
    assert scores[-1] == pytest.approx(mean_reward(config, "oracle", [100, 101, 102, 103]), abs=1e-9)
    assert policy.reference_plan() == int(np.argmax(scores))
    assert make_policy("planner", config, {**SMALL, "reference": "oracle"}).reference_plan() == policy.n_candidates - 1
    with pytest.raises(PolicyConfigError, match="calibration_seeds"):
        make_policy("planner", config, {"calibration_seeds": [990, 20]})  # would reach the benchmark's seeds


def test_a_window_plan_provisions_for_the_highest_rate_of_the_next_cold_start():
    # 300 requests/s for 6 minutes, then 3000/s; 15 s steps, cold starts of at most 2 x 15 s: a window of 2 steps
    config = SHORT_FLASH.with_updates(
        {"instances": {"cold_start_seconds": 20.0, "cold_start_jitter": 0.5}, "scaling": {"initial_instances": 4}}
    )
    env = ServerlessScalingVectorEnv(num_envs=1, config=config, parallel=False)
    env.reset(seed=0)
    policy = make_policy("planner", config)
    policy.bind(env)
    assert policy.window == 2
    one = np.ones(1)
    per_step = 10 / 0.1 * 15  # requests one instance serves per 15 s step at full concurrency
    for k, rate in ((21, 300.0), (22, 3000.0)):  # decisions before steps 22 and 23; the burst starts at step 24
        while env.sim.step_index()[0] < k:
            env.step(np.array([4]))  # scale step 0
        want = math.ceil(rate * 15 / (0.9 * per_step))  # 4, then 34
        current = int(env.sim.controlled_counts()[0])
        action = policy.base_actions(env.sim, 1, 0.9 * one, 0 * one, np.ones(1, np.bool_))[0]
        reached = current + config.scaling.scale_steps[action]
        assert reached == min(want, current + max(config.scaling.scale_steps)), (k, current, action)
        assert env.sim.expected_arrivals()[0, k + 2] == pytest.approx(rate * 15)  # the window's last step


@pytest.mark.parametrize("spec", ["predictive", "target_tracking", "hpa", "kpa", "step_scaling", "threshold"])
def test_a_rule_plan_continues_from_the_copied_state_of_the_real_cluster(spec: str):
    from agents.references.planner import copy_policy, copy_rows

    config = load_scenario("diurnal").config.with_updates({"episode_steps": 60})
    env = ServerlessScalingVectorEnv(num_envs=2, config=config, parallel=False)
    obs, info = env.reset(seed=[3, 4])
    rule = make_policy(spec, config)
    rule.reset(num_envs=2)
    for _ in range(25):  # windows, forecasts, alarms and cooldown timers fill up
        obs, _, _, _, info = env.step(rule.act_batch(obs, info))
    rows = np.array([1, 1, 0])
    copy = copy_policy(rule)
    copy.reset(num_envs=3)
    copy_rows(rule, copy, rows)
    for _ in range(30):  # the copy, fed the same metrics, decides as the original does
        actions = rule.act_batch(obs, info)
        picked = {k: np.asarray(v)[rows] for k, v in info.items() if np.ndim(v) == 1}
        assert np.array_equal(copy.act_batch(obs[rows], picked), actions[rows])
        obs, _, _, _, info = env.step(actions)
