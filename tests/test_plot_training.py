"""agents.experiments.plot_training: the training-curve PNG from a run folder's evaluations.csv and TensorBoard
scalars."""

from __future__ import annotations

import csv
from pathlib import Path

from agents.experiments.plot_training import best_rule_rewards, plot, read_evaluations, read_scalar

SCENARIOS = ("steady", "diurnal")


def fake_run(root: Path) -> Path:
    from torch.utils.tensorboard import SummaryWriter

    run = root / "run"
    (run / "tb").mkdir(parents=True)
    with (run / "evaluations.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["timesteps", "scenario", "reward"])
        writer.writeheader()
        for t in (100, 200, 300):
            for i, name in enumerate(SCENARIOS):
                writer.writerow({"timesteps": t, "scenario": name, "reward": -100.0 + t / 10 - i})
    writer = SummaryWriter(str(run / "tb"))
    for t in range(50, 301, 50):
        writer.add_scalar("episode/reward", -120.0 + t / 5, t)
    writer.close()
    return run


def test_plot_training(tmp_path: Path) -> None:
    run = fake_run(tmp_path)
    steps, per_scenario = read_evaluations(run / "evaluations.csv")
    assert steps.tolist() == [100, 200, 300]
    assert list(per_scenario) == list(SCENARIOS)
    assert per_scenario["diurnal"].tolist() == [-91.0, -81.0, -71.0]
    t, v = read_scalar(run / "tb", "episode/reward")
    assert t.tolist() == [50, 100, 150, 200, 250, 300] and v[-1] == -60.0

    bench = tmp_path / "episodes.csv"
    with bench.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["policy", "scenario", "reward"])
        writer.writeheader()
        for policy, reward in (("hpa", -50.0), ("kpa", -40.0), ("oracle", -30.0), ("ppo:x", -20.0)):
            for name in SCENARIOS:
                writer.writerow({"policy": policy, "scenario": name, "reward": reward})
    assert best_rule_rewards(bench) == {name: ("kpa", -40.0) for name in SCENARIOS}

    out = plot(run, tmp_path / "curve.png", reference=bench, title="test")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def write_episodes(path: Path, table: dict[tuple[str, str], list[tuple[float, float]]]) -> None:
    """A benchmark episodes.csv: (policy, scenario) -> [(reward, SLO share) for seeds 1, 2, ...]."""
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["policy", "scenario", "seed", "reward", "slo_violation_share"])
        writer.writeheader()
        for (policy, scenario), values in table.items():
            for seed, (reward, slo) in enumerate(values, start=1):
                writer.writerow(
                    {"policy": policy, "scenario": scenario, "seed": seed, "reward": reward, "slo_violation_share": slo}
                )


def test_rule_verdict(tmp_path: Path) -> None:
    from agents.experiments.verdict import markdown, verdict_rows

    bench = tmp_path / "episodes.csv"
    # (policy, scenario) -> (reward, SLO share) for seeds 1 and 2
    table = {
        ("ppo:run", "a"): [(-10.0, 0.1), (-12.0, 0.1)],
        ("hpa", "a"): [(-20.0, 0.0), (-22.0, 0.0)],
        ("oracle", "a"): [(-5.0, 0.0), (-5.0, 0.0)],
        ("ppo:run", "b"): [(-30.0, 0.0), (-30.0, 0.0)],
        ("hpa", "b"): [(-20.0, 0.2), (-20.0, 0.2)],
        ("kpa", "b"): [(-25.0, 0.0), (-25.0, 0.0)],
        ("ppo:run", "c"): [(-10.0, 0.0), (-10.0, 0.0)],
        ("kpa", "c"): [(-11.0, 0.0), (-11.0, 0.0)],
    }
    write_episodes(bench, table)
    rows = {r["scenario"]: r for r in verdict_rows(bench)}
    assert rows["a"]["rule"] == "hpa" and rows["a"]["diff"] == 10.0 and rows["a"]["verdict"] == "reward only"
    assert rows["b"]["rule"] == "hpa" and rows["b"]["verdict"] == "rule wins"
    assert rows["c"]["rule"] == "kpa" and rows["c"]["verdict"] == "PPO wins"
    assert "**PPO wins**" in markdown(list(rows.values()))


def test_rule_verdict_over_all_scenarios(tmp_path: Path) -> None:
    from agents.experiments.verdict import overall_markdown, overall_rows

    bench = tmp_path / "episodes.csv"
    # two scenarios, two seeds; every policy has every (scenario, seed)
    table = {
        ("ppo:run", "a"): [(-10.0, 0.1), (-12.0, 0.1)],
        ("ppo:run", "b"): [(-30.0, 0.0), (-34.0, 0.0)],
        ("hpa", "a"): [(-20.0, 0.0), (-22.0, 0.0)],
        ("hpa", "b"): [(-20.0, 0.2), (-20.0, 0.2)],
    }
    write_episodes(bench, table)
    rows = {r["policy"]: r for r in overall_rows(bench)}
    # per-seed means over the scenarios: ppo -20, -23 (mean -21.5); hpa -20, -21 (mean -20.5)
    assert rows["ppo:run"]["reward"] == -21.5 and rows["hpa"]["reward"] == -20.5
    assert rows["hpa"]["diff"] == -1.0 and rows["hpa"]["slo"] == 0.1 and rows["ppo:run"]["slo"] == 0.05
    assert "| hpa | -20.5" in overall_markdown(list(rows.values()))
