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
