"""The gate specialists' redundancy floor (agents/experiments/floor_choice.py, ``gate_specialists.redundancy``): a
floor start is chosen per scenario on held-out seeds below the benchmark's, only where it beats the rule (more
reward at no higher SLO share), and joins the gate as expert 1."""

from __future__ import annotations

import numpy as np
import pytest

from agents.experiments import ablation
from agents.experiments.floor_choice import FloorResult, check_seeds, choose_floor, floor_results
from agents.learned.residual import make_rule
from scaling_env.config import ConfigError
from scaling_env.rollout import rollout
from scaling_env.scenarios import load_scenario


def test_the_choice_is_the_best_reward_among_the_floors_that_beat_the_rule():
    base = FloorResult(None, -50.0, 0.02)
    lower_share = FloorResult(8, -46.0, 0.01)
    best_but_worse_share = FloorResult(12, -40.0, 0.021)  # more reward, a higher SLO share: not a win
    same_share = FloorResult(14, -48.0, 0.02)  # no higher share counts
    assert choose_floor([base, lower_share, best_but_worse_share, same_share]) == lower_share
    assert choose_floor([base, same_share]) == same_share
    # equal rewards: the larger start (it acts on fewer fleets), whatever the order given
    tie = FloorResult(6, -46.0, 0.005)
    assert choose_floor([base, tie, lower_share]) == lower_share
    assert choose_floor([base, lower_share, tie]) == lower_share
    # nothing above the rule's reward (an equal reward is not a win): no floor
    assert choose_floor([base, FloorResult(4, -50.0, 0.0), best_but_worse_share]) is None
    assert choose_floor([base]) is None


def test_the_floor_is_chosen_on_seeds_below_the_benchmarks(tmp_path):
    check_seeds(list(range(900, 1000)), "f")
    for seeds, message in (([], "no seed"), ([3, 3], "twice"), ([999, 1000], "0-999.*got 1000"), ([-1], "got -1")):
        with pytest.raises(ConfigError, match=f"f: .*{message}" if message != "no seed" else "f: no seed"):
            check_seeds(seeds, "f")
    path = tmp_path / "ablation.yaml"
    path.write_text("variants: [{name: v}]\ngate_specialists: {redundancy: [8], redundancy_seeds: [998, 1003]}\n")
    with pytest.raises(ConfigError, match="redundancy_seeds"):
        ablation.load_ablation_config(path)
    path.write_text("variants: [{name: v}]\ngate_specialists: {redundancy: [0]}\n")
    with pytest.raises(ConfigError, match="gate_specialists.redundancy"):
        ablation.load_ablation_config(path)
    assert ablation.GateSpecialists().redundancy_seeds == list(range(900, 1000))  # the default: 900-999


def test_floor_results_are_the_rule_and_each_floored_rule_rolled_out_on_the_seeds():
    """noisy_trace's tuned kpa, alone and from 8 (where a crash in a fleet below 21 loses more than 5 % of a step's
    requests): each entry is its own rollout's mean reward and SLO share, the rule alone first."""
    seeds = [900, 901, 902]
    sc = load_scenario("noisy_trace")
    results = floor_results("noisy_trace", "kpa@tuned", [8, 20], seeds)
    assert [r.start for r in results] == [None, 8, 20]
    for r in results:
        spec = "kpa@tuned" if r.start is None else f"kpa@tuned with redundancy from {r.start}"
        run = rollout(sc.config, make_rule(spec, sc.config, scenario=sc.name), seeds, parallel=False)
        assert r.reward == pytest.approx(np.mean([m["reward"] for m in run.metrics]), abs=0, rel=1e-12)
        assert r.slo == pytest.approx(np.mean([m["slo_violation_share"] for m in run.metrics]), abs=0, rel=1e-12)
    assert results[1] != results[0]  # the floor from 8 acts on these episodes


def test_a_chosen_floor_joins_the_gate_as_expert_1_and_only_where_chosen(tmp_path, monkeypatch):
    files = {("kpa@tuned", "a"): "a_kpa.yaml", ("hpa@tuned", "b"): "b_hpa.yaml", ("kpa@generalist", "a"): "g.yaml"}
    monkeypatch.setattr(ablation, "rule_file", lambda spec, s: files[(spec, s)])
    monkeypatch.setattr(ablation, "rule_identity", lambda path: (path, ""))
    tuning = {("a", "kpa@tuned"): -10.0, ("b", "hpa@tuned"): -11.0} | {(s, "kpa@generalist"): -20.0 for s in "ab"}
    gs = ablation.GateSpecialists(redundancy=[8, 12])
    sets, chosen = ablation.gate_specialist_sets(gs, tuning, ["a", "b"], ["a", "b"], {"a": 12})
    assert sets["a"]["residual"]["experts"] == ["a_kpa.yaml with redundancy from 12", "g.yaml", "b_hpa.yaml"]
    assert chosen["a"]["experts"][0] == ("kpa@tuned with redundancy from 12", "a_kpa.yaml with redundancy from 12")
    assert sets["b"]["residual"]["experts"] == ["g.yaml", "a_kpa.yaml"]  # no floor chosen for b
    plain, _ = ablation.gate_specialist_sets(gs, tuning, ["a", "b"], ["a", "b"])
    assert plain["a"]["residual"]["experts"] == ["g.yaml", "b_hpa.yaml"]

    # choose_floor_starts: each scenario's base rule (its file) on the configured seeds; a's floor beats its rule,
    # b's does not; every candidate is kept for the record
    asked: list[tuple[str, str]] = []

    def fake_results(s, spec, starts, seeds):
        asked.append((s, spec))
        assert starts == [8, 12] and list(seeds) == [905, 907, 909]
        if s == "a":
            return [FloorResult(None, -10.0, 0.02), FloorResult(8, -9.0, 0.03), FloorResult(12, -9.5, 0.01)]
        return [FloorResult(None, -11.0, 0.02), FloorResult(8, -12.0, 0.01), FloorResult(12, -11.0, 0.0)]

    monkeypatch.setattr(ablation, "floor_results", fake_results)
    said: list[str] = []
    odd = ablation.GateSpecialists(redundancy=[8, 12], redundancy_seeds=[909, 905, 907])
    starts, record = ablation.choose_floor_starts(odd, tuning, ["a", "b"], said.append)
    assert asked == [("a", "a_kpa.yaml"), ("b", "b_hpa.yaml")]
    assert starts == {"a": 12}
    assert record["a"]["chosen"] == 12 and record["b"]["chosen"] is None
    assert record["a"]["seeds"] == [905, 907, 909] and "on seeds 905,907,909" in said[0]
    assert [c["start"] for c in record["b"]["candidates"]] == [None, 8, 12]
    assert "from 12" in said[0] and "none beats the rule" in said[1] and "from 8: -1.00 at 1.000 %" in said[1]


def test_a_floor_joins_the_nearest_experts_too(tmp_path, monkeypatch):
    """With ``nearest`` k, the floored base rule is expert 1 and the k nearest rules follow it."""
    files = {("kpa@tuned", "a"): "a_kpa.yaml", ("hpa@tuned", "a"): "a_hpa.yaml", ("kpa@generalist", "a"): "g.yaml"}
    monkeypatch.setattr(ablation, "rule_file", lambda spec, s: files[(spec, s)])
    monkeypatch.setattr(ablation, "rule_identity", lambda path: (path, ""))
    tuning = {("a", "kpa@tuned"): -10.0, ("a", "hpa@tuned"): -11.0, ("a", "kpa@generalist"): -20.0}
    gs = ablation.GateSpecialists(nearest=1, generalist=False, redundancy=[8])
    sets, _ = ablation.gate_specialist_sets(gs, tuning, ["a"], ["a"], {"a": 8})
    assert sets["a"]["residual"]["experts"] == ["a_kpa.yaml with redundancy from 8", "a_hpa.yaml"]


def test_the_floors_candidates_are_distinct(tmp_path):
    path = tmp_path / "ablation.yaml"
    path.write_text("variants: [{name: v}]\ngate_specialists: {redundancy: [8, 12, 8]}\n")
    with pytest.raises(ConfigError, match="gate_specialists.redundancy.*appears twice"):
        ablation.load_ablation_config(path)
