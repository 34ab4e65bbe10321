"""The shape of the policy package: a small ``Policy`` protocol, rule machinery only in ``RulePolicy``, and the
pieces rule policies share (the CloudWatch alarm pair, the metric-limit validator, declared per-cluster state)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from pydantic import Field

from agents import POLICIES, OraclePolicy, Policy, PolicyBase, PolicyConfigError, PolicyParams, RulePolicy
from agents.base import validate_params
from agents.learned.ppo import PPOPolicy
from agents.rules.cloudwatch import Alarm, AlarmPair
from agents.rules.metrics import METRIC_HELP, Metric, metric_limited
from scaling_env import EnvConfig, ServerlessScalingVectorEnv

RULE_HOOKS = ("_allocate", "_clear", "_decide", "_rounded", "_per_cluster")


# ------------------------------------------------------------------------------------------ the protocol
def test_every_policy_is_a_policy_and_only_rule_policies_carry_the_rule_machinery():
    for cls in POLICIES.values():
        assert isinstance(cls(EnvConfig()), Policy)
    for cls in (OraclePolicy, PPOPolicy):  # they compute their actions themselves: no empty rule hooks
        assert issubclass(cls, PolicyBase) and not issubclass(cls, RulePolicy)
        assert not any(hasattr(cls, hook) for hook in RULE_HOOKS), cls
    for name in ("threshold", "step_scaling", "target_tracking", "hpa", "kpa", "predictive", "static"):
        assert issubclass(POLICIES[name], RulePolicy)


def test_any_object_with_the_members_is_a_policy():
    class Hold:
        name = "hold"

        def reset(self, seed: int | None = None, num_envs: int = 1) -> None:
            self.n = num_envs

        def act_batch(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
            return np.full(len(obs), 2, dtype=np.int64)

        def act(self, obs: np.ndarray, info: dict[str, Any]) -> int:
            return 2

        def bind(self, env: Any) -> None:
            pass

    class NoActBatch:
        name = "broken"

        def reset(self, seed: int | None = None, num_envs: int = 1) -> None:
            pass

    assert isinstance(Hold(), Policy)
    assert not isinstance(NoActBatch(), Policy)


# ------------------------------------------------------------------------------------------ a new rule policy
class StepUpParams(PolicyParams):
    every: int = Field(3, ge=1)


class StepUpPolicy(RulePolicy):
    """Test policy: one more instance every ``every`` decisions of an episode (counted in declared state)."""

    name = "step_up"
    Params = StepUpParams

    def _setup(self) -> None:
        self._per_cluster("ticks", 0, np.int64)
        self._per_cluster("history", -1.0, width=2)

    def _decide(
        self, obs: np.ndarray, info: dict[str, Any], fresh: np.ndarray, current: np.ndarray, now: np.ndarray
    ) -> None:
        self.ticks += 1
        self.history[:, 1] = self.history[:, 0]
        self.history[:, 0] = now
        due = self.ticks % self.params.every == 0
        self.desired[due] = current[due] + 1


def test_a_new_rule_policy_is_params_setup_and_decide_and_its_state_restarts_with_each_episode():
    config = EnvConfig().with_updates({"episode_steps": 5, "scaling": {"scale_out_cooldown_seconds": 0.0}})
    policy = StepUpPolicy(config, {"every": 2})
    assert isinstance(policy, Policy)
    env = ServerlessScalingVectorEnv(num_envs=2, config=config, parallel=False)
    obs, info = env.reset(seed=0)
    policy.reset(seed=0, num_envs=2)
    assert policy.ticks.shape == (2,) and policy.history.shape == (2, 2) and (policy.history == -1.0).all()
    steps = np.asarray(config.scaling.scale_steps)
    changes = []
    for _ in range(6):  # 5 steps, then the autoreset step
        actions = policy.act_batch(obs, info)
        changes.append(int(steps[actions[0]]))
        obs, _, _, _, info = env.step(actions)
    assert changes == [0, 1, 0, 1, 0, 1]  # +1 every 2nd decision (the 6th's action is dropped by the autoreset)
    assert list(policy.ticks) == [6, 6]
    assert (info["time_s"] == 0).all()  # the clusters start over: the declared state is cleared before deciding
    policy.act_batch(obs, info)
    assert list(policy.ticks) == [1, 1]
    assert policy.history[0].tolist() == [0.0, -1.0]
    with pytest.raises(PolicyConfigError, match="every"):
        StepUpPolicy(config, {"every": 0})


# ------------------------------------------------------------------------------------------ alarm pair
def test_alarm_pair_averages_data_points_and_compares_as_each_alarm_says():
    # 15 s steps, 30 s periods: a data point every 2 decisions; high: > 0.5 for 2 points; low: <= 0.3 for 1
    pair = AlarmPair(30.0, 15.0, Alarm(0.5, ">", 2), Alarm(0.3, "<=", 1))
    pair.allocate(2)
    valid = np.array([True, True])
    highs, lows, points = [], [], []
    for values in ([0.5, 0.9], [0.5, 0.7], [0.4, 0.9], [0.8, 0.7], [0.3, 0.1], [0.3, 0.5]):
        high, low = pair.update(np.array(values), valid)
        highs.append(high.tolist())
        lows.append(low.tolist())
        points.append(pair.last.tolist())
    assert np.isnan(points[0]).all()
    # data points at decisions 2, 4, 6: (0.5, 0.8), (0.6, 0.8), (0.3, 0.3)
    assert points[1] == [0.5, 0.8] and points[3] == [0.6, 0.8] and points[5] == [0.3, 0.3]
    # 0.5 is not > 0.5, so cluster 0's high alarm never has two breaching points; cluster 1's has at decision 4
    assert highs == [[False, False]] * 3 + [[False, True]] + [[False, False]] * 2
    # 0.3 <= 0.3 breaches at once (1 data point); between data points no alarm acts
    assert lows == [[False, False]] * 5 + [[True, True]]
    pair.clear(np.array([True, False]))
    assert np.isnan(pair.last[0]) and pair.last[1] == 0.3


# ------------------------------------------------------------------------------------------ metric limits
class LimitedParams(PolicyParams):
    metric: Metric = Field("cpu", description=METRIC_HELP)
    target: float = 0.5
    ceiling: float = 0.9

    _limits = metric_limited("target", "ceiling")


def test_the_metric_limit_validator_is_reusable_on_any_params_model():
    assert validate_params(LimitedParams, {"target": 0.8}, "test").target == 0.8
    for field in ("target", "ceiling"):
        with pytest.raises(PolicyConfigError, match=rf"{field} = 80 .*fractions \(0\.8\), not percent \(80\)"):
            validate_params(LimitedParams, {field: 80}, "test")
    assert validate_params(LimitedParams, {"metric": "memory", "target": 1.5}, "test").target == 1.5
    assert validate_params(LimitedParams, {"metric": "requests_per_instance", "target": 80}, "test").target == 80
