"""``scaling-env sweep`` on the local backend (agents/experiments/sweep.py): the grid, resuming, and bad input;
the execution layer's option errors. The Ray backend is in tests/test_distributed.py."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from agents.experiments.execution import ExecutionError, make_executor
from agents.experiments.sweep import plan, sweep_command

runner = CliRunner()
app = typer.Typer()
app.command()(sweep_command)

GRID = """\
seeds: [0, 1]
scenarios: [train_diurnal]
set:
  n_envs: 4
  total_timesteps: 512
  eval_scenarios: [steady]
  n_eval_episodes: 2
  eval_freq: 256
  checkpoint_freq: 256
  ppo.n_steps: 64
  ppo.batch_size: 64
  ppo.n_epochs: 1
"""


def _sweep(grid: Path, out: Path, *extra: str):
    return runner.invoke(app, [str(grid), "--out", str(out), *extra])


def test_sweep_skips_finished_runs_resumes_unfinished_and_restarts_unstarted(tmp_path: Path) -> None:
    grid = tmp_path / "grid.yaml"
    grid.write_text(GRID)
    out = tmp_path / "sweep"
    res = _sweep(grid, out, "--workers", "2")
    assert res.exit_code == 0, res.output
    a, b = out / "seed0_train_diurnal", out / "seed1_train_diurnal"
    final_a = (a / "final_model.zip").read_bytes()
    # b was stopped after its first checkpoint; a third run was killed before its first checkpoint
    (b / "final_model.zip").unlink()
    (b / "checkpoints" / "rl_model_512_steps.zip").unlink()
    grid.write_text(GRID.replace("seeds: [0, 1]", "seeds: [0, 1, 2]"))
    c = out / "seed2_train_diurnal"
    c.mkdir()
    shutil.copy(a / "config.yaml", c / "config.yaml")
    (c / "config.yaml").write_text((a / "config.yaml").read_text().replace("seed: 0", "seed: 2"))
    (c / "command.txt").write_text("scaling-env sweep (run seed2_train_diurnal)\n")
    res = _sweep(grid, out, "--dry-run")
    assert res.exit_code == 0, res.output
    assert "1 finished, 1 resume, 1 restart" in res.output
    res = _sweep(grid, out)
    assert res.exit_code == 0, res.output
    assert "seed0_train_diurnal: finished" in res.output
    assert "seed1_train_diurnal: resumed" in res.output and "seed2_train_diurnal: trained" in res.output
    assert (a / "final_model.zip").read_bytes() == final_a  # a finished run is not touched
    assert "--resume" not in (b / "command.txt").read_text() and (b / "command.txt").read_text().count("sweep") == 2
    for run in (a, b, c):
        assert (run / "final_model.zip").is_file() and (run / "checkpoints" / "rl_model_512_steps.zip").is_file()
    rows = (out / "sweep.csv").read_text().splitlines()
    assert len(rows) == 4 and ",finished," in rows[1] and ",resumed," in rows[2] and ",trained," in rows[3]


def test_a_folder_holding_another_run_is_not_touched(tmp_path: Path) -> None:
    grid = tmp_path / "grid.yaml"
    grid.write_text(GRID.replace("seeds: [0, 1]", "seeds: [0]"))
    out = tmp_path / "sweep"
    mine = out / "seed0_train_diurnal"
    mine.mkdir(parents=True)
    (mine / "config.yaml").write_text("algo: ppo\nseed: 0\n")
    res = _sweep(grid, out)
    assert res.exit_code == 2 and "hold other runs" in res.output
    assert (mine / "config.yaml").read_text() == "algo: ppo\nseed: 0\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("seeds: []\n", "seeds"),
        ("seedz: [0]\n", "seedz"),
        ("grid: {ppo.gamma: []}\n", "ppo.gamma: give at least one value"),
        ("grid: {ppo.gamma: [2.0]}\n", "run seed=0, ppo.gamma=2.0"),
        ("config: missing.yaml\n", "missing.yaml does not exist"),
    ],
)
def test_bad_grid_names_file_and_field(tmp_path: Path, text: str, message: str) -> None:
    grid = tmp_path / "grid.yaml"
    grid.write_text(text)
    res = _sweep(grid, tmp_path / "out")
    assert res.exit_code == 2 and message in res.output and str(grid) in res.output, res.output
    assert "Traceback" not in res.output


def test_grid_is_every_combination_with_distinct_folders(tmp_path: Path) -> None:
    grid = tmp_path / "grid.yaml"
    grid.write_text(
        "seeds: [0, 5]\nscenarios: [train_diurnal, [train_diurnal, train_flash_crowd]]\n"
        "grid: {ppo.gamma: [0.9, 0.99], ppo.ent_coef: [0.0, 0.01]}\nset: {total_timesteps: 1000}\n"
    )
    runs = plan(grid, tmp_path / "out")
    assert len(runs) == 2 * 2 * 2 * 2 and len({r.run_dir for r in runs}) == 16
    assert {(r.config.seed, r.config.ppo.gamma, r.config.ppo.ent_coef) for r in runs} == {
        (s, g, e) for s in (0, 5) for g in (0.9, 0.99) for e in (0.0, 0.01)
    }
    assert all(r.config.total_timesteps == 1000 for r in runs)


def test_backend_options_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ExecutionError, match="--backend"):
        make_executor("dask", 2)
    with pytest.raises(ExecutionError, match="--address"):
        make_executor("local", 2, "auto")
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed: import ray raises ImportError
    with pytest.raises(ExecutionError, match=r"Ray is not installed; pip install \"scaling-env\[ray\]\""):
        make_executor("ray", 2)


def test_scenario_paths_are_made_absolute_for_workers_elsewhere(tmp_path: Path, monkeypatch) -> None:
    """A Ray worker runs in another directory: the grid's scenario paths (relative to the grid file) and the
    config's (relative to the working directory, as train reads them) reach it as absolute paths."""
    from scaling_env.resources import config_dir

    (tmp_path / "grids").mkdir()
    shutil.copy(config_dir("scenarios") / "steady.yaml", tmp_path / "mine.yaml")
    grid = tmp_path / "grids" / "grid.yaml"
    grid.write_text("scenarios: [../mine.yaml]\nset: {eval_scenarios: [mine.yaml, steady]}\n")
    monkeypatch.chdir(tmp_path)
    (run,) = plan(grid, Path("out"))
    assert run.config.scenarios == (str(tmp_path / "mine.yaml"),)
    assert run.config.eval_scenarios == (str(tmp_path / "mine.yaml"), "steady")
    assert Path(run.run_dir).is_absolute()
