"""The redundancy floor of a gate's expert (agents/learned/redundancy.py): the fleet in which one crash cannot by
itself violate the SLO, hand-computed; the spec's syntax and its errors; the floor's actions on hand-picked fleets;
sync reaching the wrapped rule; and, on a scenario, that the floor removes the violations it is for."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from agents.actions import counts_reached
from agents.learned.redundancy import RedundancyFloor, redundant_count, split_spec
from agents.learned.residual import make_rule, sync_experts
from agents.registry import make_policy
from scaling_env import EnvConfig
from scaling_env.config import ConfigError
from scaling_env.rollout import rollout
from scaling_env.scenarios import load_scenario


@pytest.mark.parametrize(("share", "count"), [(0.05, 21), (0.1, 11), (0.25, 5), (0.3, 4), (1.0, 2)])
def test_the_redundant_count_is_the_smallest_fleet_where_one_instance_is_below_the_lost_share(share, count):
    config = EnvConfig.from_dict({"reward": {"slo_max_lost_share": share}})
    assert redundant_count(config) == count
    assert 1.0 / count < share <= 1.0 / (count - 1)  # one instance fewer: its share reaches the limit


def test_no_lost_share_allowed_has_no_redundant_count():
    with pytest.raises(ConfigError, match="slo_max_lost_share > 0"):
        redundant_count(EnvConfig.from_dict({"reward": {"slo_max_lost_share": 0.0}}))


def test_the_spec_names_the_rule_and_where_the_floor_starts():
    assert split_spec("hpa@tuned") == ("hpa@tuned", None)
    assert split_spec("configs/policies/tuned/cold_start_heavy/hpa.yaml with redundancy from 11") == (
        "configs/policies/tuned/cold_start_heavy/hpa.yaml",
        11,
    )
    for bad in ("hpa with redundancy from 0", "hpa with redundancy from eleven", "hpa with redundancy from -3"):
        with pytest.raises(ConfigError, match=f"expert '{bad}'"):
            split_spec(bad)


class Fixed:
    """A rule that asks for one action index per cluster, with a desired count for sync to set."""

    def __init__(self, actions: list[int]) -> None:
        self.actions = np.asarray(actions)
        self.desired = np.zeros(len(actions), dtype=np.int64)

    def reset(self, seed=None, num_envs=1) -> None:
        pass

    def act_batch(self, obs, info):
        return self.actions.copy()


STEPS = [-4, -1, 0, 1, 4]  # index 0..4


def floor_on(current: list[int], actions: list[int]) -> list[int]:
    config = EnvConfig.from_dict({"scaling": {"scale_steps": STEPS, "max_instances": 64, "min_instances": 1}})
    floor = RedundancyFloor(Fixed(actions), config, start=11)
    info = {"instances_controlled": np.asarray(current, dtype=np.float64)}
    out = floor.act_batch(np.zeros((len(current), 1)), info)
    return counts_reached(np.asarray(current), config, out).tolist()


def test_the_floor_lifts_a_fleet_the_rule_keeps_between_its_start_and_21():
    # the rule's counts: 12 -> 13 (+1), 5 -> 6 (+1), 22 -> 21 (-1), 22 -> 18 (-4), 10 -> 10 (0), 18 -> 18 (0),
    # 10 -> 11 (+1), 19 -> 19 (0)
    reached = floor_on([12, 5, 22, 22, 10, 18, 10, 19], [3, 3, 1, 0, 2, 2, 3, 2])
    # 13 is in [11, 21): the largest step up (+4; none reaches 21 from 12); 6 is below the start: kept; 21 is not
    # below 21: kept; 18 is: the scale-in becomes the step that reaches 21 (-1); 10 below the start: kept; 18 held:
    # +4 (22), the smallest step that reaches 21; 11 is the start: lifted (+4); 19 held: +4 (23), not +1 (20, the
    # nearest count, which a crash would still cost the SLO)
    assert reached == [16, 6, 21, 21, 10, 22, 14, 23]


def test_the_rule_takes_the_lifted_count_as_its_decision():
    # a rule that keeps its desired count between steps (step scaling, threshold) would otherwise ask to walk the
    # fleet back from 21 at its next decision
    config = EnvConfig.from_dict({"scaling": {"scale_steps": STEPS, "max_instances": 64}})
    rule = Fixed([3, 3])
    rule.desired[:] = [13, 6]
    rule.rounded_from = np.array([7, 7])
    RedundancyFloor(rule, config, start=11).act_batch(np.zeros((2, 1)), {"instances_controlled": np.array([12.0, 5.0])})
    assert rule.desired.tolist() == [16, 6] and rule.rounded_from.tolist() == [-1, 7]  # only the lifted cluster


def test_a_floor_that_could_never_act_is_an_error():
    config = EnvConfig.from_dict({"scaling": {"scale_steps": STEPS, "max_instances": 15}})
    with pytest.raises(ConfigError, match="starts at 15 instances, not below the fleet it lifts to"):
        RedundancyFloor(Fixed([2]), config, start=15)


def test_the_floor_is_clipped_to_the_fleets_upper_bound():
    config = EnvConfig.from_dict({"scaling": {"scale_steps": STEPS, "max_instances": 15}})
    floor = RedundancyFloor(Fixed([3]), config, start=11)
    assert floor.floor == 15
    out = floor.act_batch(np.zeros((1, 1)), {"instances_controlled": np.array([14.0])})
    assert counts_reached(np.array([14]), config, out).tolist() == [15]


def test_an_expert_spec_with_redundancy_is_the_rule_with_the_floor_and_sync_reaches_the_rule():
    config = load_scenario("cold_start_heavy").config
    rule = make_rule("hpa@tuned with redundancy from 11", config, scenario="cold_start_heavy")
    plain = make_rule("hpa@tuned", config, scenario="cold_start_heavy")
    assert isinstance(rule, RedundancyFloor) and rule.start == 11 and rule.floor == 21
    assert type(rule.rule) is type(plain) and rule.rule.params == plain.params
    rule.reset(num_envs=2)
    inner = Fixed([2, 2])
    floor = RedundancyFloor(inner, config, start=11)
    proposals = np.array([[3, 2], [2, 2]])  # expert 1 (the floor) did not act in cluster 0
    sync_experts([Fixed([3, 2]), floor], proposals, np.array([3, 2]), np.array([9, 9]), config)
    assert floor.desired is inner.desired
    assert inner.desired[0] == counts_reached(np.array([9]), config, np.array([3]))[0] and inner.desired[1] == 0


def test_on_cold_start_heavy_the_floor_removes_the_crash_violations_it_is_for():
    # one crash in a fleet below 21 loses > 5 % of the requests until the health check: a violation whatever the
    # capacity. With the floor from 11 the rule's fleet spends fewer instance-steps below 21 in the ramps and has
    # fewer such violations than the rule alone, on the same seeds
    sc = load_scenario("cold_start_heavy")
    seeds = list(range(900, 916))
    keys = ("slo_violated", "failed", "arrivals", "instances_warm")
    plain = rollout(sc.config, make_policy("hpa@tuned", sc.config, scenario=sc.name), seeds, record=keys)
    floored = rollout(sc.config, make_rule("hpa@tuned with redundancy from 11", sc.config, sc.name), seeds, record=keys)

    def crash_violations(r) -> int:
        t = r.traces
        return int(((t["slo_violated"] > 0.5) & (t["failed"] > 0.05 * t["arrivals"])).sum())

    def below_21(r) -> float:
        n = r.traces["instances_warm"]
        return float((n * (n < 21)).sum())

    assert below_21(floored) < 0.8 * below_21(plain)
    assert crash_violations(floored) < crash_violations(plain)
    cost = [np.mean([m["cost_usd"] for m in r.metrics]) for r in (plain, floored)]
    assert cost[0] < cost[1] < 1.3 * cost[0]  # the floor costs, but far less than the generalist rule's 1.24x


def test_a_gate_run_names_its_floored_experts(tmp_path):
    from agents.experiments.ablation import run_experts

    experts = ["configs/policies/tuned/diurnal/hpa.yaml with redundancy from 14", "kpa with redundancy from 11"]
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"residual": {"experts": experts}}))
    assert run_experts(tmp_path) == [
        ("hpa@tuned with redundancy from 14", experts[0]),
        ("kpa with redundancy from 11", experts[1]),
    ]
