"""The benchmark: every policy on every scenario over the same seeds, side by side.

``scaling-env benchmark`` (or ``python -m agents.experiments.benchmark``) runs policies x scenarios x seeds. Each
(scenario, policy) pair is one job: its episodes run as one batch, one seed per cluster, so a job's numbers
depend only on its seeds, never on which worker process ran it or how many there were. It writes into the output
folder (``--out``; by default a new ``results/benchmark/<timestamp>``; an existing non-empty one is refused unless
``--overwrite``, and a folder another benchmark is writing is refused), filled under a temporary name and renamed
when complete, so it never holds a partial or mixed result:

- ``episodes.csv`` and ``episodes.json``: one row per policy x scenario x seed with the metrics of
  ``scaling_env.episode_stats`` and ``cost_ratio_to_oracle`` (the episode's cost / the oracle's on the same
  scenario and seed);
- ``summary.md``: the table (means over seeds; the reward with a 95 % confidence interval);
- ``load_vs_capacity_<scenario>.png``: the workload rate and each policy's warm capacity over the first seed's
  episode; ``cost_vs_slo.png``: mean cost against SLO violation share, for every policy and scenario.
"""

from __future__ import annotations

import csv
import json
import math
import multiprocessing as mp
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Optional

import numpy as np
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from scaling_env.config import ConfigError
from scaling_env.episode_stats import METRIC_NAMES
from scaling_env.files import OutputExistsError, OutputLock, atomic_dir, output_lock
from scaling_env.scenarios import Scenario, load_scenarios
from scaling_env.traces import TraceError

DEFAULT_POLICIES = (
    "static",
    "static_peak",
    "threshold",
    "step_scaling",
    "target_tracking",
    "hpa",
    "kpa",
    "predictive",
    "oracle",
)
DEFAULT_SCENARIOS = (
    "steady",
    "diurnal",
    "flash_crowd",
    "failure_storm",
    "cold_start_heavy",
    "memory_pressure",
    "noisy_trace",
)
DEFAULT_SEED = 1000  # benchmark seeds start here; training seeds are kept below it (agents/experiments/train_config.py)
DEFAULT_EPISODES = 20
DEFAULT_OUT_BASE = Path("results/benchmark")  # without --out, each run writes a new timestamped folder here

# Student's t quantile t(0.975, df) for df = 1..30 (standard table, e.g. NIST/SEMATECH e-Handbook 1.3.6.7.2);
# above 30, the Cornish-Fisher expansion in 1/df (Abramowitz & Stegun 26.7.5), within 0.01 % there.
_T975 = (
    12.706,
    4.303,
    3.182,
    2.776,
    2.571,
    2.447,
    2.365,
    2.306,
    2.262,
    2.228,
    2.201,
    2.179,
    2.160,
    2.145,
    2.131,
    2.120,
    2.110,
    2.101,
    2.093,
    2.086,
    2.080,
    2.074,
    2.069,
    2.064,
    2.060,
    2.056,
    2.052,
    2.048,
    2.045,
    2.042,
)

TABLE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("reward", "reward (95 % CI)"),
    ("cost_usd", "cost USD"),
    ("cost_ratio_to_oracle", "cost / oracle"),
    ("slo_violation_share", "SLO viol."),
    ("p95_s", "p95 s"),
    ("dropped_share", "dropped"),
    ("failed_share", "failed"),
    ("scale_actions", "scalings"),
    ("cold_starts", "cold starts"),
    ("mean_instances", "instances"),
)


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


@dataclass(frozen=True)
class Job:
    scenario: str  # a scenario name or YAML path
    policy: str  # a policy name, YAML path or ppo:RUN_DIR
    seeds: tuple[int, ...]
    traces_dir: str | None


def run_job(job: Job) -> dict[str, Any]:
    """Run one (scenario, policy) pair over its seeds; returns its rows and the first seed's load/capacity."""
    from agents.registry import make_policy
    from scaling_env.rollout import rollout
    from scaling_env.scenarios import load_scenario

    scenario = load_scenario(job.scenario, job.traces_dir)
    policy = make_policy(job.policy, scenario.config)
    t = time.perf_counter()
    # serial kernel: the parallelism is across worker processes, and threads would compete with them
    run = rollout(scenario.config, policy, list(job.seeds), record=("arrivals", "instances_warm"), parallel=False)
    seconds = time.perf_counter() - t
    rows = [
        {"policy": job.policy, "scenario": scenario.name, "seed": seed, **m} for seed, m in zip(job.seeds, run.metrics)
    ]
    cfg = scenario.config
    capacity = cfg.instances.concurrency / cfg.instances.service_seconds
    return {
        "rows": rows,
        "rate_rps": run.traces["rate_rps"][0].tolist(),
        "warm_capacity_rps": (run.traces["instances_warm"][0] * capacity).tolist(),
        "seconds": seconds,
    }


def run_benchmark(
    policies: list[str],
    scenarios: list[Scenario],
    seeds: list[int],
    workers: int = 1,
    traces_dir: str | None = None,
    progress: bool = True,
) -> tuple[list[dict], dict[str, dict]]:
    """Run every policy on every scenario; returns (episode rows in a fixed order, plot data by scenario)."""
    jobs = [Job(str(sc.path), p, tuple(seeds), traces_dir) for sc in scenarios for p in policies]
    results: list[dict[str, Any] | None] = [None] * len(jobs)
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        disable=not progress,
        transient=False,
    ) as bar:
        task = bar.add_task("benchmark", total=len(jobs))
        if workers <= 1:
            for i, job in enumerate(jobs):
                results[i] = run_job(job)
                bar.advance(task)
        else:
            # spawn: a clean interpreter per worker (no inherited OpenMP or torch threads)
            with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as pool:
                futures = {pool.submit(run_job, job): i for i, job in enumerate(jobs)}
                for fut in as_completed(futures):
                    results[futures[fut]] = fut.result()
                    bar.advance(task)
    rows: list[dict] = []
    plots: dict[str, dict] = {}
    for job, res in zip(jobs, results):
        assert res is not None
        rows.extend(res["rows"])
        name = res["rows"][0]["scenario"]
        plot = plots.setdefault(name, {"rate_rps": res["rate_rps"], "capacity": {}, "seed": job.seeds[0]})
        plot["capacity"][job.policy] = res["warm_capacity_rps"]
    add_oracle_ratio(rows)
    return rows, plots


def add_oracle_ratio(rows: list[dict]) -> None:
    """``cost_ratio_to_oracle`` of each row: its cost / the oracle's on the same scenario and seed (NaN without
    an oracle row)."""
    oracle = {(r["scenario"], r["seed"]): r["cost_usd"] for r in rows if r["policy"] == "oracle"}
    for r in rows:
        ref = oracle.get((r["scenario"], r["seed"]))
        r["cost_ratio_to_oracle"] = r["cost_usd"] / ref if ref else float("nan")


def summarise(rows: list[dict]) -> list[dict]:
    """Means over seeds per (scenario, policy), in first-seen order, with the reward's 95 % CI half-width."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["scenario"], r["policy"]), []).append(r)
    out = []
    for (scenario, policy), rs in groups.items():
        s: dict[str, Any] = {"scenario": scenario, "policy": policy, "episodes": len(rs)}
        for key in (*METRIC_NAMES, "cost_ratio_to_oracle"):
            s[key] = float(np.mean([r[key] for r in rs]))
        s["reward_ci95"] = ci95(np.array([r["reward"] for r in rs]))
        out.append(s)
    return out


def format_cell(key: str, s: dict) -> str:
    v = s[key]
    if key == "reward":
        return f"{v:.1f} ± {s['reward_ci95']:.1f}"
    if key == "cost_usd":
        return f"{v:.3f}"
    if key == "cost_ratio_to_oracle":
        return "-" if math.isnan(v) else f"{v:.2f}"
    if key in ("slo_violation_share", "dropped_share", "failed_share"):
        return f"{v:.1%}" if key == "slo_violation_share" else f"{v:.2%}"
    if key == "p95_s":
        return f"{v:.2f}"
    return f"{v:.1f}"


def markdown_table(summary: list[dict]) -> str:
    head = "| scenario | policy | " + " | ".join(h for _, h in TABLE_COLUMNS) + " |"
    sep = "|---|---|" + "---:|" * len(TABLE_COLUMNS)
    lines = [head, sep]
    for s in summary:
        lines.append(
            f"| {s['scenario']} | {s['policy']} | " + " | ".join(format_cell(k, s) for k, _ in TABLE_COLUMNS) + " |"
        )
    return "\n".join(lines)


def rich_table(summary: list[dict], title: str) -> Table:
    table = Table(title=title)
    table.add_column("scenario")
    table.add_column("policy")
    for _, head in TABLE_COLUMNS:
        table.add_column(head, justify="right")
    last = None
    for s in summary:
        if last is not None and s["scenario"] != last:
            table.add_section()
        last = s["scenario"]
        table.add_row(s["scenario"], s["policy"], *(format_cell(k, s) for k, _ in TABLE_COLUMNS))
    return table


def write_results(
    out: Path,
    rows: list[dict],
    summary: list[dict],
    plots: dict[str, dict],
    header: str,
    step_seconds: dict[str, float],
    overwrite: bool = False,
) -> list[Path]:
    """Write the CSV, JSON, Markdown and PNG files into ``out``; returns their paths.

    The files are written into a temporary folder beside ``out`` that is renamed to ``out`` when complete, so
    ``out`` never holds a partial or mixed result. An existing non-empty ``out`` raises
    :class:`~scaling_env.files.OutputExistsError` unless ``overwrite`` (then it is replaced as a whole)."""
    with atomic_dir(out, overwrite=overwrite) as tmp:
        columns = ["policy", "scenario", "seed", *METRIC_NAMES, "cost_ratio_to_oracle"]
        names = ["episodes.csv", "episodes.json", "summary.md"]
        with open(tmp / names[0], "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)
        # NaN (no oracle to compare with) is not JSON: null
        clean = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()} for r in rows]
        (tmp / names[1]).write_text(json.dumps(clean, indent=1, allow_nan=False))
        (tmp / names[2]).write_text(header + "\n\n" + markdown_table(summary) + "\n")
        names += [p.name for p in plot_results(tmp, summary, plots, step_seconds)]
    return [out / name for name in names]


def claim_output(out: Path | None, overwrite: bool = False) -> tuple[Path, OutputLock]:
    """(the output folder, its held lock) before any work starts: ``out`` or a new timestamped folder; another
    benchmark writing ``out`` (:class:`~scaling_env.files.OutputBusyError`) or an existing non-empty ``out``
    without ``overwrite`` (:class:`~scaling_env.files.OutputExistsError`) is refused. Release the lock when
    the results are written (a dying process releases it too)."""
    if out is None:
        out = default_out_dir()
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"{out} exists and is not a folder; choose another --out")
    lock = output_lock(out, "benchmark result folder").acquire()
    if not overwrite and out.is_dir() and any(out.iterdir()):
        lock.release()
        raise OutputExistsError(
            f"{out} already exists and is not empty; choose another --out, or pass --overwrite to replace it"
        )
    return out, lock


def default_out_dir(base: Path = DEFAULT_OUT_BASE) -> Path:
    """A new folder ``<base>/<timestamp>`` (``-2``, ``-3``... if that second is taken), made empty now so that a
    benchmark started in the same second gets another one."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base.mkdir(parents=True, exist_ok=True)
    for i in range(1, 1000):
        path = base / (stamp if i == 1 else f"{stamp}-{i}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path
    raise ConfigError(f"{base}: no free folder name for {stamp}")


def plot_results(
    out: Path,
    summary: list[dict],
    plots: dict[str, dict],
    step_seconds: dict[str, float],
) -> list[Path]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    paths = []
    for scenario, data in plots.items():
        fig = Figure(figsize=(12, 5), layout="constrained")
        FigureCanvasAgg(fig)
        ax = fig.subplots()
        dt = step_seconds[scenario]
        minutes = (np.arange(len(data["rate_rps"])) + 1) * dt / 60.0
        ax.plot(minutes, data["rate_rps"], color="black", lw=2.0, label="workload rate (lambda)")
        for policy, cap in data["capacity"].items():
            ax.step(minutes, cap, where="pre", lw=1.1, label=f"warm capacity: {policy}")
        ax.set_title(f"{scenario}: request rate and each policy's warm capacity (100 % CPU), seed {data['seed']}")
        ax.set_xlabel("minutes")
        ax.set_ylabel("requests/s")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
        path = out / f"load_vs_capacity_{scenario}.png"
        fig.savefig(path, dpi=100)
        paths.append(path)

    fig = Figure(figsize=(10, 6.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    policies = list(dict.fromkeys(s["policy"] for s in summary))
    scenarios = list(dict.fromkeys(s["scenario"] for s in summary))
    markers = "osD^vP*Xh<>"
    colours = [f"C{i % 10}" for i in range(len(policies))]
    for s in summary:
        ax.scatter(
            s["slo_violation_share"] * 100.0,
            s["cost_usd"],
            s=45,
            color=colours[policies.index(s["policy"])],
            marker=markers[scenarios.index(s["scenario"]) % len(markers)],
            alpha=0.85,
        )
    for i, p in enumerate(policies):
        ax.scatter([], [], color=colours[i], marker="o", label=f"policy: {p}")
    for j, sc in enumerate(scenarios):
        ax.scatter(
            [], [], facecolors="none", edgecolors="black", marker=markers[j % len(markers)], label=f"scenario: {sc}"
        )
    ax.set_xlabel("SLO violation share (% of steps with p95 above the SLO or more than 5 % of requests lost)")
    ax.set_ylabel("episode cost (USD, mean over seeds)")
    ax.set_title("Cost vs SLO violations, every policy and scenario\n(means over seeds; lower left is better)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", ncol=2, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    path = out / "cost_vs_slo.png"
    fig.savefig(path, dpi=100)
    paths.append(path)
    return paths


def split_list(values: list[str] | None, default: tuple[str, ...]) -> list[str]:
    """Options given as repeated flags and/or comma lists."""
    if not values:
        return list(default)
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


def benchmark(
    policies: Annotated[
        Optional[list[str]],
        typer.Option(
            "--policies",
            "-p",
            help="policies (names, YAML files or ppo:RUN_DIR), comma-separated or repeated; "
            f"default: {','.join(DEFAULT_POLICIES)}",
        ),
    ] = None,
    scenarios: Annotated[
        Optional[list[str]],
        typer.Option(
            "--scenarios",
            "-s",
            help=f"scenario names or YAML paths, comma-separated or repeated; default: {','.join(DEFAULT_SCENARIOS)}",
        ),
    ] = None,
    episodes: Annotated[int, typer.Option(min=1, help="episodes (seeds) per policy and scenario")] = DEFAULT_EPISODES,
    seed: Annotated[int, typer.Option(help="first seed; episode i uses seed + i")] = DEFAULT_SEED,
    seeds: Annotated[
        Optional[str], typer.Option(help="explicit comma-separated seeds (overrides --episodes and --seed)")
    ] = None,
    workers: Annotated[int, typer.Option(min=1, help="worker processes")] = 2,
    out: Annotated[
        Optional[Path],
        typer.Option(help="output folder (default: a new results/benchmark/<timestamp>); an existing one is refused"),
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="replace the --out folder's old contents as a whole")] = False,
    traces_dir: Annotated[
        Optional[Path],
        typer.Option(help="folder of trace CSVs (default: $SCALING_ENV_TRACES, ./traces, shared/traces)"),
    ] = None,
    progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
) -> None:
    """Run every policy on every scenario over the same seeds and print the comparison table."""
    console = Console(width=200) if not Console().is_terminal else Console()
    policy_list = split_list(policies, DEFAULT_POLICIES)
    scenario_list = split_list(scenarios, DEFAULT_SCENARIOS)
    try:
        seed_list = [int(s) for s in seeds.split(",")] if seeds else [seed + i for i in range(episodes)]
    except ValueError:
        console.print(f"[red]--seeds must be comma-separated integers, got {seeds!r}[/red]")
        raise typer.Exit(2) from None
    tdir = str(traces_dir) if traces_dir else None
    try:
        loaded, skipped = load_scenarios(scenario_list, tdir)
        from agents.registry import make_policy

        for sc in loaded:  # check every policy spec on every scenario before any work starts
            for p in policy_list:
                make_policy(p, sc.config)
    except (ConfigError, TraceError) as exc:
        console.print(f"[red]{exc}[/red]", highlight=False)
        raise typer.Exit(2) from None
    for msg in skipped:
        console.print(f"[yellow]{msg}[/yellow]", highlight=False)
    if not loaded:
        console.print("[red]no scenario left to run[/red]")
        raise typer.Exit(2)
    try:  # one writer per output folder: a second benchmark into the same --out is refused, never mixed in
        out, lock = claim_output(out, overwrite)
    except ConfigError as exc:
        console.print(f"[red]{exc}[/red]", highlight=False)
        raise typer.Exit(2) from None
    t = time.perf_counter()
    rows, plots = run_benchmark(policy_list, loaded, seed_list, workers, tdir, progress)
    seconds = time.perf_counter() - t
    summary = summarise(rows)
    title = (
        f"{len(policy_list)} policies x {len(loaded)} scenarios x {len(seed_list)} seeds "
        f"({seed_list[0]}..{seed_list[-1]}), {workers} worker(s), {seconds:.1f} s"
    )
    header = f"Benchmark: {title}."
    if skipped:
        header += "\n\n" + "\n".join(f"- {m}" for m in skipped)
    try:
        paths = write_results(
            out, rows, summary, plots, header, {sc.name: sc.config.step_seconds for sc in loaded}, overwrite
        )
    except ConfigError as exc:
        console.print(f"[red]{exc}[/red]", highlight=False)
        raise typer.Exit(2) from None
    console.print(rich_table(summary, title))
    console.print(f"wrote {', '.join(str(p) for p in paths[:3])} and {len(paths) - 3} plots in {out}")
    lock.release()


def main() -> None:
    typer.run(benchmark)


if __name__ == "__main__":
    main()
