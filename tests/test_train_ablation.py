"""The ablation command's config and its judging of a candidate (synthetic episodes with known differences)."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from agents.experiments import ablation
from scaling_env.config import ConfigError

SCENARIOS = ["a", "b"]
SEEDS = list(range(1000, 1010))


def rows(policy: str, offset: float, slo: float = 0.01, cost: float = 1.0, noise: float = 0.5) -> list[dict]:
    rng = np.random.default_rng(zlib.crc32(policy.encode()))  # fixed noise per policy
    return [
        {
            "policy": policy,
            "scenario": s,
            "seed": k,
            "reward": -50.0 + offset + noise * rng.standard_normal(),
            "slo_violation_share": slo,
            "cost_usd": cost,
        }
        for s in SCENARIOS
        for k in SEEDS
    ]


def test_judge_finds_known_wins_losses_and_cost_ratios():
    rules = rows("oracle", 10.0, cost=1.0) + rows("hpa@tuned", 0.0, cost=1.2) + rows("hpa@generalist", -5.0, cost=1.3)
    tuning = {(s, p): v for s in SCENARIOS for p, v in (("hpa@tuned", -50.0), ("hpa@generalist", -55.0))}
    # better than both rules by 2 on a, worse by 3 on b (before the generalist's -5)
    cand = [dict(r, reward=r["reward"] + (2.0 if r["scenario"] == "a" else -3.0)) for r in rows("ppo:x", 0.0, cost=1.1)]
    bound = {(s, k): 0.5 for s in SCENARIOS for k in SEEDS}  # the hindsight planner's cost, not the oracle's
    out = ablation.judge(rules, cand, "ppo:x", tuning, bound)
    per = {x["scenario"]: x for x in out["per_scenario"]}
    assert per["a"]["rule"] == "hpa@tuned"
    assert per["a"]["test"].mean_diff == pytest.approx(2.0, abs=0.6) and per["a"]["test"].p_value < 0.05
    assert per["b"]["test"].mean_diff == pytest.approx(-3.0, abs=0.6) and per["b"]["test"].p_value < 0.05
    assert out["generalist"] == "hpa@generalist"
    gen = {x["scenario"]: x["test"].mean_diff for x in out["vs_generalist"]}
    assert gen["a"] == pytest.approx(7.0, abs=0.6) and gen["b"] == pytest.approx(2.0, abs=0.6)
    assert out["cost"]["a"] == {"candidate": pytest.approx(2.2), "rule": pytest.approx(2.4)}
    text = ablation.markdown([{"variant": "v", **out}], {}, SCENARIOS, {})
    assert "| `v` |" in text and "1/0/1" in text and "2/0/0" in text  # W/T/L vs per-scenario and generalist


def test_a_win_needs_an_slo_share_not_higher():
    rules = rows("oracle", 10.0) + rows("hpa@tuned", 0.0, slo=0.01)
    tuning = {(s, "hpa@tuned"): -50.0 for s in SCENARIOS}
    bound = {(s, k): 1.0 for s in SCENARIOS for k in SEEDS}
    out = ablation.judge(rules, rows("ppo:x", 3.0, slo=0.02), "ppo:x", tuning, bound)
    assert "0/2/0" in ablation.markdown([{"variant": "v", **out}], {}, SCENARIOS, {})


def test_bad_ablation_configs_are_named(tmp_path):
    path = tmp_path / "a.yaml"
    path.write_text("variants: [{name: a, set: {}}, {name: a}]\n")
    with pytest.raises(ConfigError, match="repeated names"):
        ablation.load_ablation_config(path)
    path.write_text("variants: [{name: 'a b'}]\ntotal_timesteps: 0\n")
    with pytest.raises(ConfigError, match="total_timesteps") as exc:
        ablation.load_ablation_config(path)
    assert "variants.0.name" in str(exc.value)
    assert [v.name for v in ablation.load_ablation_config(ablation.Path("configs/train/ablation.yaml")).variants][
        0
    ] == ("baseline")


def test_the_bound_comes_from_the_planner_cache_or_the_command_is_named(tmp_path, monkeypatch):
    from agents.experiments import bound as bd

    cache = tmp_path / "cache.json"
    with pytest.raises(ConfigError, match="perf/bench_planner.py --scenarios steady"):
        ablation.bound_rows(["steady"], cache)
    from scaling_env.scenarios import load_scenario

    config = load_scenario("steady").config
    key = bd.cache_key("steady", config, bd.planner_params(config), bd.code_version())
    bd.store(cache, key, [{"seed": s, "reward": -1.0, "cost_usd": 0.25 + s} for s in ablation.SEEDS], 1.0)
    rows = ablation.bound_rows(["steady"], cache)
    assert [(r["policy"], r["seed"], r["cost_usd"]) for r in rows[:2]] == [
        ("hindsight", 1000, 1000.25),
        ("hindsight", 1001, 1001.25),
    ]
