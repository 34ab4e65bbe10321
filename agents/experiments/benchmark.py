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
- ``summary.md``: the table (means over seeds; the reward with a 95 % confidence interval; where the planning
  oracle's results for these seeds and code are cached, or it ran, the bound and each policy's gap to it,
  ``agents/experiments/bound.py``);
- ``load_vs_capacity_<scenario>.png``: the workload rate and each policy's warm capacity over the first seed's
  episode; ``cost_vs_slo.png``: mean cost against SLO violation share, for every policy and scenario.
"""

from __future__ import annotations

import csv
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Optional

import numpy as np
import typer
from rich.console import Console

from scaling_env.config import ConfigError
from scaling_env.episode_stats import METRIC_NAMES
from scaling_env.files import OutputExistsError, OutputLock, atomic_dir, output_lock
from scaling_env.scenarios import Scenario, load_scenarios
from scaling_env.traces import TraceError

from .bound import DEFAULT_CACHE, add_bounds
from .console import console, fail, parse_seeds, task_bar, warn
from .execution import ExecutionError, Executor, make_executor, run_all
from .tables import ci95, legend, markdown_table, rich_table, short_policy, summarise

__all__ = ["ci95", "markdown_table", "plot_results", "run_benchmark", "summarise", "write_results"]

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
    # serverless platform mode (issue 17): they run on the platform scenarios only (agents.rules.provisioned.runs_on)
    "provisioned_tracking",
    "scheduled",
    "fixed_keep_alive",
    "hybrid_histogram",
)
# the pool scenarios: the policy scales a pool of instances. The rule baselines are tuned on them
# (``scaling-env tune --all``) and the learned policy's targets are measured on them.
EVALUATION_SCENARIOS = (
    "steady",
    "diurnal",
    "flash_crowd",
    "failure_storm",
    "cold_start_heavy",
    "memory_pressure",
    "noisy_trace",
)
DEFAULT_SCENARIOS = EVALUATION_SCENARIOS + (
    # the diurnal load with CloudWatch-like late metrics (issue 17)
    "diurnal_delayed_metrics",
    # serverless platform mode (issue 17)
    "sparse_bursts",
    "daily_provisioned",
    "scaling_rate_burst",
)
DEFAULT_SEED = 1000  # benchmark seeds start here; training seeds are kept below it (agents/experiments/train_config.py)
DEFAULT_EPISODES = 20
DEFAULT_OUT_BASE = Path("results/benchmark")  # without --out, each run writes a new timestamped folder here
PLOT_LABEL_LIMIT = 32  # characters of a policy's name in a plot legend


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
    policy = make_policy(job.policy, scenario.config, scenario=scenario.name)  # scenario: for "<name>@tuned"
    t = time.perf_counter()
    # serial kernel: the parallelism is across worker processes, and threads would compete with them
    # a learned policy may run on the scenario with its training's env_overrides (its env_config)
    config = policy.env_config if job.policy.startswith("ppo:") else scenario.config
    run = rollout(config, policy, list(job.seeds), record=("arrivals", "instances_warm"), parallel=False)
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
    executor: Executor | None = None,
) -> tuple[list[dict], dict[str, dict]]:
    """Run every policy on every scenario; returns (episode rows in a fixed order, plot data by scenario).
    The jobs run on ``executor`` (default: ``workers`` local processes)."""
    tdir = str(Path(traces_dir).resolve()) if traces_dir else None  # absolute: a Ray worker has its own cwd
    jobs = [
        Job(str(Path(sc.path).resolve()), p, tuple(seeds), tdir) for sc in scenarios for p in policies if fits(p, sc)
    ]
    results: list[dict[str, Any] | None] = [None] * len(jobs)
    with task_bar(disable=not progress, transient=False) as bar:
        task = bar.add_task("benchmark", total=len(jobs))
        own = executor is None
        executor = executor or Executor(workers)
        try:
            results = run_all(executor, run_job, jobs, on_done=lambda i, res: bar.advance(task))
        finally:
            if own:
                executor.close()
    rows: list[dict] = []
    plots: dict[str, dict] = {}
    for job, res in zip(jobs, results):
        assert res is not None
        rows.extend(res["rows"])
        name = res["rows"][0]["scenario"]
        plot = plots.setdefault(
            name, {"rate_rps": res["rate_rps"], "capacity": {}, "seed": job.seeds[0], "episodes": len(job.seeds)}
        )
        plot["capacity"][job.policy] = res["warm_capacity_rps"]
    add_oracle_ratio(rows)
    return rows, plots


def fits(policy: str, scenario: Scenario) -> bool:
    """Whether the policy spec can control the scenario's env (``agents.rules.provisioned.runs_on``: the platform
    baselines run on the platform scenarios, the instance-count policies everywhere else too); other pairs are
    left out of the benchmark."""
    from agents.registry import make_policy
    from agents.rules.provisioned import runs_on

    return runs_on(make_policy(policy, scenario.config, scenario=scenario.name), scenario.config)


def why_none(scenarios: list[Scenario]) -> str:
    """Why no policy given runs on these scenarios (:func:`fits`), from their platform settings."""
    controls = sorted({sc.config.platform.control for sc in scenarios if sc.config.platform.enabled})
    if controls:
        return f"platform mode with control {', '.join(controls)}: only the policies that set it run there"
    return "not in platform mode: the platform baselines do not run there"


def add_oracle_ratio(rows: list[dict]) -> None:
    """``cost_ratio_to_oracle`` of each row: its cost / the oracle's on the same scenario and seed (NaN without
    an oracle row)."""
    oracle = {(r["scenario"], r["seed"]): r["cost_usd"] for r in rows if r["policy"] == "oracle"}
    for r in rows:
        ref = oracle.get((r["scenario"], r["seed"]))
        r["cost_ratio_to_oracle"] = r["cost_usd"] / ref if ref else float("nan")


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
    """Save ``load_vs_capacity_<scenario>.png`` for each scenario and ``cost_vs_slo.png``; returns their paths."""
    paths = []
    for scenario, data in plots.items():
        path = out / f"load_vs_capacity_{scenario}.png"
        load_capacity_figure(scenario, data, step_seconds[scenario]).savefig(path, dpi=100, bbox_inches="tight")
        paths.append(path)
    path = out / "cost_vs_slo.png"
    cost_slo_figure(summary).savefig(path, dpi=100, bbox_inches="tight")  # nothing cut off by a wide legend
    paths.append(path)
    return paths


def load_capacity_figure(scenario: str, data: dict, step_seconds: float) -> Any:
    """The workload rate and each policy's warm capacity over one episode (the first seed), as a Figure."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    minutes = (np.arange(len(data["rate_rps"])) + 1) * step_seconds / 60.0
    ax.plot(minutes, data["rate_rps"], color="black", lw=2.0, label="workload rate (lambda)")
    # policies with the same capacity curve share one line (and one legend entry) instead of hiding each other
    same: dict[tuple[float, ...], list[str]] = {}
    for policy, cap in data["capacity"].items():
        same.setdefault(tuple(cap), []).append(short_policy(policy, PLOT_LABEL_LIMIT))
    styles = ("-", "--", "-.", ":")
    for i, (cap, names) in enumerate(same.items()):
        rows = [" = ".join(names[j : j + 3]) for j in range(0, len(names), 3)]
        label = "warm capacity: " + " =\n    ".join(rows)
        ax.step(minutes, cap, where="pre", lw=1.4, ls=styles[i % len(styles)], color=f"C{i % 10}", label=label)
    episodes = data.get("episodes", 1)
    ax.set_title(
        f"{scenario}: request rate and each policy's warm capacity (100 % CPU)\n"
        f"one episode: seed {data['seed']}"
        + (f" (the first of {episodes} seeds)" if episodes > 1 else "")
        + ("; policies with identical curves share a line" if len(same) < len(data["capacity"]) else "")
    )
    ax.set_xlabel("minutes")
    ax.set_ylabel("requests/s")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def cost_slo_figure(summary: list[dict]) -> Any:
    """Mean cost against SLO violation share, a marker per (policy, scenario), as a Figure."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

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
        ax.scatter([], [], color=colours[i], marker="o", label=f"policy: {short_policy(p, PLOT_LABEL_LIMIT)}")
    for j, sc in enumerate(scenarios):
        ax.scatter(
            [], [], facecolors="none", edgecolors="black", marker=markers[j % len(markers)], label=f"scenario: {sc}"
        )
    ax.set_xlabel("SLO violation share (% of steps with p95 above the SLO\nor more than 5 % of requests lost)")
    ax.set_ylabel("episode cost (USD, mean over seeds)")
    ax.set_title("Cost vs SLO violations, every policy and scenario\n(means over seeds; lower left is better)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", ncol=2, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


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
            f"default: {', '.join(DEFAULT_POLICIES)}",
            show_default=False,
        ),
    ] = None,
    scenarios: Annotated[
        Optional[list[str]],
        typer.Option(
            "--scenarios",
            "-s",
            help=f"scenario names or YAML paths, comma-separated or repeated; default: {', '.join(DEFAULT_SCENARIOS)}",
            show_default=False,
        ),
    ] = None,
    episodes: Annotated[int, typer.Option(min=1, help="episodes (seeds) per policy and scenario")] = DEFAULT_EPISODES,
    seed: Annotated[int, typer.Option(min=0, help="first seed; episode i uses seed + i")] = DEFAULT_SEED,
    seeds: Annotated[
        Optional[str],
        typer.Option(help="explicit comma-separated seeds (overrides --episodes and --seed)", show_default=False),
    ] = None,
    workers: Annotated[int, typer.Option(min=1, help="worker processes (Ray: tasks at once)")] = 2,
    backend: Annotated[str, typer.Option(help="where jobs run: local (processes) or ray")] = "local",
    address: Annotated[
        Optional[str], typer.Option(help="Ray cluster address (with --backend ray; default: start a local Ray)")
    ] = None,
    out: Annotated[
        Optional[Path],
        typer.Option(help="output folder (default: a new results/benchmark/<timestamp>); an existing one is refused"),
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="replace the --out folder's old contents as a whole")] = False,
    traces_dir: Annotated[
        Optional[Path],
        typer.Option(
            help="folder of your own trace CSVs (searched first; the shipped scenarios' traces come with the package)",
            show_default=False,
        ),
    ] = None,
    wide: Annotated[
        bool, typer.Option("--wide", help="every metric column (the default table fits 80 columns)")
    ] = False,
    progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
    bound_cache: Annotated[
        Path,
        typer.Option(help="the planning oracle's cached results (perf/bench_planner.py): the bound and gaps to it"),
    ] = DEFAULT_CACHE,
    tuned: Annotated[
        bool,
        typer.Option(
            "--tuned",
            help="beside each rule policy, its tuned settings: <name>@generalist and <name>@tuned (per scenario, "
            "configs/policies/tuned; see `scaling-env tune`)",
        ),
    ] = False,
) -> None:
    """Run every policy on every scenario over the same seeds and print the comparison table."""
    policy_list = split_list(policies, DEFAULT_POLICIES)
    if tuned:
        from agents.registry import with_tuned

        policy_list = with_tuned(policy_list)
    scenario_list = split_list(scenarios, DEFAULT_SCENARIOS)
    seed_list = parse_seeds(seeds) if seeds else [seed + i for i in range(episodes)]
    tdir = str(traces_dir) if traces_dir else None
    try:
        loaded, skipped = load_scenarios(scenario_list, tdir)
        # every policy spec is built on every scenario (fits builds it) before any work starts
        empty = [sc for sc in loaded if not [p for p in policy_list if fits(p, sc)]]
    except (ConfigError, TraceError) as exc:
        fail(str(exc))
    if empty and len(empty) == len(loaded):  # an explicit pair that cannot run is named, not left out in silence
        names = ", ".join(sc.name for sc in empty)
        fail(f"none of the policies ({', '.join(policy_list)}) runs on {names}: {why_none(empty)}")
    skipped += [f"skipped: scenario {sc.name} (none of the policies runs on it: {why_none([sc])})" for sc in empty]
    for msg in skipped:
        warn(msg)
    if not loaded:
        fail("no scenario left to run")
    try:  # one writer per output folder: a second benchmark into the same --out is refused, never mixed in
        out, lock = claim_output(out, overwrite)
    except ConfigError as exc:
        fail(str(exc))
    try:
        executor = make_executor(backend, workers, address)
    except ExecutionError as exc:
        lock.release()
        fail(str(exc))
    t = time.perf_counter()
    with executor:
        rows, plots = run_benchmark(policy_list, loaded, seed_list, workers, tdir, progress, executor)
    seconds = time.perf_counter() - t
    summary = summarise(rows)
    try:
        bound_notes = add_bounds(summary, rows, {sc.name: sc.config for sc in loaded}, seed_list, bound_cache)
    except ValueError as exc:
        bound_notes = [str(exc)]
    title = (
        f"{len(policy_list)} policies x {len(loaded)} scenarios x {len(seed_list)} seeds "
        f"({seed_list[0]}..{seed_list[-1]}), {workers} worker(s)"
        f"{' on Ray' if backend == 'ray' else ''}, {seconds:.1f} s"
    )
    header = f"Benchmark: {title}.\n\n" + "\n".join(f"- {n}" for n in bound_notes)
    if skipped:
        header += "\n\n" + "\n".join(f"- {m}" for m in skipped)
    try:
        paths = write_results(
            out, rows, summary, plots, header, {sc.name: sc.config.step_seconds for sc in loaded}, overwrite
        )
    except ConfigError as exc:
        fail(str(exc))
    print_summary(summary, title, wide)
    for note in bound_notes:
        console.print(note, soft_wrap=True, markup=False)
    console.print(f"wrote {', '.join(str(p) for p in paths[:3])} and {len(paths) - 3} plots in {out}", soft_wrap=True)
    console.print(
        final_line(len(loaded) - len(empty), skipped, seconds), style="yellow" if skipped else None, soft_wrap=True
    )
    lock.release()


def print_summary(summary: list[dict], title: str, wide: bool) -> None:
    """The table and its legend; a wide table is not cut to a narrow terminal when the output is a file."""
    table = rich_table(summary, title, wide)
    if wide:  # at its natural width, wider than the terminal if need be: every digit, never an ellipsis
        table.title = None
        console.print(title)
        width = Console(width=400).measure(table).maximum
        Console(file=console.file, width=max(width, console.width), markup=False, highlight=False).print(table)
    else:
        console.print(table)
    console.print(legend(summary, wide))


def final_line(ran: int, skipped: list[str], seconds: float) -> str:
    """The last line: how many scenarios ran, and which were skipped (their messages scroll away above)."""
    line = f"done: {ran} scenario(s) in {seconds:.1f} s"
    if not skipped:
        return line + "; nothing skipped"
    names = [m.removeprefix("skipped: ").removeprefix("scenario ").split(" ", 1)[0] for m in skipped]
    return line + f"; SKIPPED {len(skipped)}: {', '.join(names)} (see the messages above)"


def main() -> None:
    typer.run(benchmark)


if __name__ == "__main__":
    main()
