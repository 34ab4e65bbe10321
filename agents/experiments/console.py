"""The command line's one console and its error exit.

Everything printed goes through :data:`console`, which takes text as plain text (``markup=False``): user-supplied
text such as ``--set 'eval_scenarios=[steady]'`` or a scenario named ``[/bold]`` is printed as typed, never read
as rich markup. Styles are given with ``style=``.
"""

from __future__ import annotations

from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

console = Console(markup=False, highlight=False, emoji=False)


def fail(message: str) -> NoReturn:
    """Print a user error in red and exit with status 2."""
    console.print(message, style="red", soft_wrap=True)
    raise typer.Exit(2)


def warn(message: str) -> None:
    console.print(message, style="yellow", soft_wrap=True)


def parse_seeds(text: str, option: str = "--seeds") -> list[int]:
    """Comma-separated non-negative integer seeds, or a clear error naming the option."""
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        fail(f"{option} must be comma-separated non-negative integers, got {text!r}")
    if not seeds:
        fail(f"{option} names no seed")
    negative = [s for s in seeds if s < 0]
    if negative:
        fail(f"{option}: seeds must be non-negative integers, got {', '.join(map(str, negative))}")
    return seeds


def task_bar(disable: bool = False, **kwargs: Any) -> Progress:
    """The progress bar of the batch commands (benchmark, tune): description, bar, done/total, time elapsed."""
    columns = (TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn())
    return Progress(*columns, TimeElapsedColumn(), disable=disable, **kwargs)
