"""The planning oracle: plans on copies, knows what it says it knows, and beats every policy on a short scenario."""

from __future__ import annotations

import numpy as np
import pytest

from agents import POLICIES, PolicyConfigError, make_policy
from agents.registry import PLATFORM_POLICIES
from scaling_env import EnvConfig, ServerlessScalingVectorEnv
from scaling_env.rollout import rollout
from scaling_env.scenarios import load_scenario

# the flash crowd in 12 minutes: 300 requests/s, 10x for 3 minutes from minute 6
SHORT_FLASH = load_scenario("flash_crowd").config.with_updates(
    {"episode_steps": 48, "workload": {"shape": {"start_seconds": 360.0, "duration_seconds": 180.0}}}
)
SMALL = {"utilizations": [0.8, 0.95], "offsets": [0, 6], "futures": 3, "horizon_steps": 8}


def mean_reward(config: EnvConfig, spec: str, seeds: list[int], overrides: dict | None = None) -> float:
    run = rollout(config, make_policy(spec, config, overrides), seeds, parallel=False)
    return float(np.mean([m["reward"] for m in run.metrics]))


def test_planner_beats_every_other_policy_on_a_short_flash_crowd():
    seeds = [1000, 1001, 1002]
    planner = mean_reward(SHORT_FLASH, "planner", seeds)
    pool = sorted(set(POLICIES) - {"planner"} - PLATFORM_POLICIES)  # (the platform baselines need platform mode)
    others = {p: mean_reward(SHORT_FLASH, p, seeds) for p in [*pool, "static_peak"]}
    best = max(others, key=others.get)
    assert planner >= others[best], f"planner {planner:.2f} < {best} {others[best]:.2f} ({others})"


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
