"""The metric tables of every command (benchmark, evaluate, simulate) and of ``summary.md``: one list of columns,
their headers (with units) and formats, and the summaries over seeds they show.

A table row is a mapping with ``scenario``, optionally ``policy``, and the metrics of
``scaling_env.episode_stats`` (per episode, or means over seeds with ``reward_ci95``). The terminal table shows the
:data:`NARROW` columns by default, so that it fits 80 columns; ``wide=True`` shows all of them. :func:`legend` says
what the columns mean and their units.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from rich import box
from rich.table import Table

from scaling_env.episode_stats import METRIC_NAMES

# Student's t quantile t(0.975, df) for df = 1..30 (standard table, e.g. NIST/SEMATECH e-Handbook 1.3.6.7.2);
# above 30, the Cornish-Fisher expansion in 1/df (Abramowitz & Stegun 26.7.5), within 0.01 % there.
# fmt: off
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
    2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)
# fmt: on


def ci95(values: np.ndarray) -> float:
    """Half-width of the 95 % confidence interval of the mean (Student's t); 0 for fewer than two values."""
    n = len(values)
    if n < 2:
        return 0.0
    df = n - 1
    if df <= len(_T975):
        t = _T975[df - 1]
    else:
        z = 1.959964
        t = z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)
    return float(t * np.std(values, ddof=1) / math.sqrt(n))


def summarise_episodes(per_episode: Sequence[dict[str, float]]) -> dict[str, float]:
    """Mean of every metric over episodes, the reward's standard deviation and its 95 % CI half-width."""
    out = {name: float(np.mean([e[name] for e in per_episode])) for name in METRIC_NAMES}
    rewards = np.array([e["reward"] for e in per_episode])
    out["reward_std"] = float(np.std(rewards))
    out["reward_ci95"] = ci95(rewards)
    return out


def summarise(rows: Iterable[dict]) -> list[dict]:
    """Means over seeds per (scenario, policy) of episode rows, in first-seen order, with ``episodes``, the
    reward's 95 % CI half-width and, when the rows have it, the mean ``cost_ratio_to_oracle``."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["scenario"], r["policy"]), []).append(r)
    out = []
    for (scenario, policy), rs in groups.items():
        s: dict[str, Any] = {"scenario": scenario, "policy": policy, "episodes": len(rs)}
        s.update(summarise_episodes(rs))
        if "cost_ratio_to_oracle" in rs[0]:
            s["cost_ratio_to_oracle"] = float(np.mean([r["cost_ratio_to_oracle"] for r in rs]))
        out.append(s)
    return out


# ------------------------------------------------------------------------------------------------ columns


def _reward(row: dict) -> str:
    ci = row.get("reward_ci95")
    return f"{row['reward']:.1f}" if ci is None else f"{row['reward']:.1f} ± {ci:.1f}"


def _ratio(row: dict) -> str:
    v = row["cost_ratio_to_oracle"]
    return "-" if math.isnan(v) else f"{v:.2f}"


def _signed(key: str, digits: int) -> Callable[[dict], str]:
    def cell(row: dict) -> str:
        v = row[key]
        return "-" if math.isnan(v) else f"{v:+.{digits}f}"

    return cell


@dataclass(frozen=True)
class Column:
    key: str  # the row's key
    header: str  # with its unit
    cell: Callable[[dict], str]
    narrow: bool  # shown in the default (80-column) terminal table
    meaning: str  # for the legend


COLUMNS: tuple[Column, ...] = (
    Column("reward", "reward ± CI", _reward, True, "episode reward, mean ± 95 % CI half-width over seeds"),
    Column("cost_usd", "cost $", lambda r: f"{r['cost_usd']:.3f}", True, "USD per episode"),
    Column("cost_ratio_to_oracle", "cost / oracle", _ratio, True, "episode cost / the oracle's on the same seed"),
    Column(
        "slo_violation_share",
        "SLO viol. %",
        lambda r: f"{100 * r['slo_violation_share']:.1f}",
        True,
        "% of steps with p95 above the SLO or over 5 % of requests lost",
    ),
    Column("p95_s", "p95 s", lambda r: f"{r['p95_s']:.2f}", False, "p95 latency over the episode, seconds"),
    Column("dropped_share", "dropped %", lambda r: f"{100 * r['dropped_share']:.2f}", False, "% of requests"),
    Column("failed_share", "failed %", lambda r: f"{100 * r['failed_share']:.2f}", False, "% of requests"),
    Column("mean_instances", "instances", lambda r: f"{r['mean_instances']:.1f}", True, "mean count over the episode"),
    Column("scale_actions", "scalings /ep", lambda r: f"{r['scale_actions']:.1f}", False, "scale actions per episode"),
    Column("cold_starts", "cold starts /ep", lambda r: f"{r['cold_starts']:.1f}", False, "per episode"),
    # present when the benchmark has a bound for a scenario (agents/experiments/bound.py)
    Column(
        "reward_gap_to_bound",
        "reward - bound",
        _signed("reward_gap_to_bound", 1),
        False,  # with the bound row, the 80-column table would cut numbers
        "mean reward minus the planning oracle's (the bound; negative: below it)",
    ),
    Column(
        "cost_gap_to_bound",
        "cost - bound $",
        _signed("cost_gap_to_bound", 3),
        False,
        "mean cost minus the planning oracle's, USD per episode",
    ),
)
NARROW: tuple[str, ...] = tuple(c.key for c in COLUMNS if c.narrow)


def columns_for(rows: Sequence[dict], wide: bool) -> list[Column]:
    """The columns to show: the narrow ones (or all), those the rows have."""
    return [c for c in COLUMNS if (wide or c.narrow) and all(c.key in r for r in rows)]


def oracle_missing(rows: Sequence[dict]) -> bool:
    return any("cost_ratio_to_oracle" in r and math.isnan(r["cost_ratio_to_oracle"]) for r in rows)


def legend(rows: Sequence[dict], wide: bool) -> str:
    """One line per shown column with its meaning and unit; says why ``cost / oracle`` is ``-``."""
    lines = []
    for c in columns_for(rows, wide):
        meaning = c.meaning
        if c.key == "cost_ratio_to_oracle" and oracle_missing(rows):
            meaning += " (- : the oracle was not run on it; add -p oracle)"
        if c.key == "reward_gap_to_bound" and any(math.isnan(r[c.key]) for r in rows):
            meaning += " (- : no bound for the scenario, see below)"
        lines.append(f"  {c.header}: {meaning}")
    if not wide:
        hidden = [c.header for c in COLUMNS if not c.narrow and all(c.key in r for r in rows)]
        if hidden:
            lines.append(f"  --wide adds: {', '.join(hidden)}")
    return "\n".join(lines)


def short_policy(name: str, limit: int | None = None) -> str:
    """A policy label: ``ppo:runs/.../RUN`` becomes ``ppo:…/RUN`` and a YAML path its file name; with ``limit``,
    a longer label keeps its start and end around a ``…``."""
    prefix, sep, rest = name.partition(":")
    if sep and "/" in rest:
        name = f"{prefix}:…/{rest.rstrip('/').rsplit('/', 1)[-1]}"
    elif "/" in name:
        name = f"…/{name.rstrip('/').rsplit('/', 1)[-1]}"
    if limit is None or len(name) <= limit:
        return name
    head = (limit - 1) // 2
    return f"{name[:head]}…{name[-(limit - 1 - head) :]}"


def rich_table(rows: Sequence[dict], title: str | None = None, wide: bool = False) -> Table:
    """The rows as a terminal table. Rows that name their policy are grouped under a line per scenario (so the
    names take one column); others show their scenario in the first column."""
    cols = columns_for(rows, wide)
    with_policy = any("policy" in r for r in rows)
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1), title_justify="left")
    table.add_column("scenario\n  policy" if with_policy else "scenario", overflow="fold", min_width=12)
    for c in cols:
        table.add_column(c.header.replace(" ", "\n", 1), justify="right", no_wrap=True)
    last = None
    for r in rows:
        if not with_policy:
            table.add_row(r["scenario"], *(c.cell(r) for c in cols))
            continue
        if r["scenario"] != last:
            table.add_row(r["scenario"], style="bold")
            last = r["scenario"]
        table.add_row(f"  {short_policy(r.get('policy', ''))}", *(c.cell(r) for c in cols))
    return table


def markdown_table(rows: Sequence[dict], wide: bool = True) -> str:
    """The rows as a Markdown table (all columns by default), then the legend."""
    cols = columns_for(rows, wide)
    with_policy = any("policy" in r for r in rows)
    names = ["scenario", *(["policy"] if with_policy else [])]
    lines = [
        "| " + " | ".join([*names, *(c.header for c in cols)]) + " |",
        "|" + "---|" * len(names) + "---:|" * len(cols),
    ]
    for r in rows:
        cells = [r["scenario"], *([r.get("policy", "")] if with_policy else [])]
        lines.append("| " + " | ".join([*cells, *(c.cell(r) for c in cols)]) + " |")
    return "\n".join(lines) + "\n\n" + legend(rows, wide).replace("  ", "- ", 1).replace("\n  ", "\n- ")


def metric_list(row: dict, title: str | None = None) -> Table:
    """One row (one episode) as a list: a line per metric with its value and meaning (fits any terminal)."""
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1), title_justify="left")
    table.add_column("metric", no_wrap=True)
    table.add_column("value", justify="right", no_wrap=True)
    table.add_column("meaning")
    for c in columns_for([row], wide=True):
        if c.key == "reward" and "reward_ci95" not in row:
            table.add_row("reward", c.cell(row), "episode reward (sum over steps)")
        else:
            table.add_row(c.header, c.cell(row), c.meaning)
    return table
