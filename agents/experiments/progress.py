"""The training progress bar: env steps over all clusters, up to the steps that will really run.

SB3 collects whole rollouts (``n_envs * n_steps`` env steps each) and stops after the rollout that reaches the
total asked for, so its own bar can read ``32,768/20,000``. This bar's total is the total rounded up to whole
rollouts, and its description says so when the two differ.
"""

from __future__ import annotations

import math

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from stable_baselines3.common.callbacks import BaseCallback

from .console import console


def steps_to_run(asked: int, done: int, rollout: int) -> int:
    """Env steps SB3 will run when ``asked`` more are asked for after ``done``: whole rollouts of ``rollout``."""
    remaining = max(asked - done, 0)
    return math.ceil(remaining / rollout) * rollout


class StepProgress(BaseCallback):
    """A rich progress bar of env steps (all clusters), advanced at every vector step; ``stop``: where training
    stops if before the end of SB3's ``learn`` (``StopAt``)."""

    def __init__(self, stop: int | None = None) -> None:
        super().__init__()
        self.stop = stop
        self._bar: Progress | None = None
        self._task = 0
        self._start = 0

    def _on_training_start(self) -> None:
        rollout = self.model.n_envs * self.model.n_steps
        asked = int(self.locals["total_timesteps"])  # SB3's learn() target, counted from num_timesteps 0
        if self.stop is not None:
            asked = min(asked, self.stop)
        self._start = self.model.num_timesteps
        total = steps_to_run(asked, self._start, rollout)
        what = "env steps"
        if total != asked - self._start:
            what += f" ({asked - self._start:,} asked, whole rollouts of {rollout:,})"
        self._bar = Progress(
            TextColumn(what),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
        )
        self._task = self._bar.add_task("train", total=total)
        self._bar.start()

    def _on_step(self) -> bool:
        assert self._bar is not None
        self._bar.update(self._task, completed=self.model.num_timesteps - self._start)
        return True

    def _on_training_end(self) -> None:
        if self._bar is not None:
            self._bar.refresh()
            self._bar.stop()
