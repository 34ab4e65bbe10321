"""The episode dashboard: six panels of one episode's per-step traces (matplotlib, no pyplot state).

Panels: request rate against warm capacity; instances by state; CPU and memory; p95 latency against the SLO;
dropped and failed requests; cumulative cost. ``dashboard_figure`` builds the figure from a dict of per-step
arrays (``rollout.DASHBOARD_KEYS`` plus ``rate_rps``), ``save_dashboard`` writes a PNG, ``dashboard_rgb``
returns an (H, W, 3) uint8 image (the env's ``render_mode="rgb_array"`` frame).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .config import EnvConfig
from .files import atomic_path

STATE_COLOURS = {
    "instances_warm": ("warm", "#2ca02c"),
    "instances_booting": ("booting (cold start)", "#1f77b4"),
    "instances_failed": ("crashed, not yet detected", "#d62728"),
    "instances_unhealthy": ("unhealthy (out of rotation)", "#ff7f0e"),
    "instances_draining": ("draining", "#9467bd"),
}


def dashboard_figure(
    trace: dict[str, np.ndarray],
    config: EnvConfig,
    title: str = "",
    size: tuple[float, float] = (13.0, 9.0),
    dpi: int = 100,
) -> Figure:
    """The six-panel figure of one episode. ``trace[key]`` holds one value per step taken so far."""
    dt = config.step_seconds
    n = len(trace["arrivals"])
    minutes = (np.arange(n) + 1.0) * dt / 60.0  # end of each step
    fig = Figure(figsize=size, dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(3, 2)
    fig.suptitle(title or "scaling-env episode")
    capacity_rps = config.instances.concurrency / config.instances.service_seconds

    ax = axes[0, 0]
    ax.plot(minutes, trace["arrivals"] / dt, color="#444444", lw=1.0, label="arrivals")
    if "rate_rps" in trace:
        ax.plot(minutes, trace["rate_rps"][:n], color="#000000", lw=1.0, ls=":", label="workload rate (lambda)")
    ax.plot(
        minutes, trace["instances_warm"] * capacity_rps, color="#2ca02c", lw=1.5, label="warm capacity (at 100 % CPU)"
    )
    ax.set_title("Request rate and warm capacity")
    ax.set_ylabel("requests/s")
    ax.legend(loc="best", fontsize="small")

    ax = axes[0, 1]
    keys = list(STATE_COLOURS)
    ax.stackplot(
        minutes,
        *[trace[k] for k in keys],
        labels=[STATE_COLOURS[k][0] for k in keys],
        colors=[STATE_COLOURS[k][1] for k in keys],
        step="pre",
        alpha=0.85,
    )
    ax.set_title("Instances by state")
    ax.set_ylabel("instances")
    ax.legend(loc="best", fontsize="small")

    ax = axes[1, 0]
    ax.plot(minutes, trace["cpu_utilization"], color="#1f77b4", lw=1.2, label="CPU mean")
    ax.plot(minutes, trace["cpu_max"], color="#1f77b4", lw=0.8, ls="--", label="CPU max")
    ax.plot(minutes, trace["memory_utilization"], color="#8c564b", lw=1.2, label="memory mean")
    ax.plot(minutes, trace["memory_max"], color="#8c564b", lw=0.8, ls="--", label="memory max")
    ax.axhline(1.0, color="#d62728", lw=0.8, ls=":", label="memory limit")
    ax.set_title("CPU and memory of serving instances")
    ax.set_ylabel("share of capacity / limit")
    ax.legend(loc="best", fontsize="small", ncol=2)

    ax = axes[1, 1]
    slo = config.reward.slo_p95_seconds
    p95 = np.maximum(trace["latency_p95_s"], 1e-3)
    ax.plot(minutes, p95, color="#1f77b4", lw=1.2, label="p95 latency")
    ax.axhline(slo, color="#d62728", lw=1.0, ls="--", label=f"SLO {slo:g} s")
    violated = trace["slo_violated"] > 0.5
    if violated.any():
        ax.scatter(
            minutes[violated],
            p95[violated],
            s=8,
            color="#d62728",
            label="SLO violated (p95, or too many lost)",
            zorder=3,
        )
    ax.set_yscale("log")
    ax.set_title("p95 latency against the SLO")
    ax.set_ylabel("seconds (log)")
    ax.legend(loc="best", fontsize="small")

    ax = axes[2, 0]
    ax.plot(minutes, trace["dropped"] / dt, color="#ff7f0e", lw=1.2, label="dropped")
    ax.plot(minutes, trace["failed"] / dt, color="#d62728", lw=1.2, label="failed")
    crash = trace["crashes"] > 0
    if crash.any():
        ax.scatter(minutes[crash], np.zeros(crash.sum()), marker="x", color="#000000", s=20, label="crash", zorder=3)
    ax.set_title("Dropped and failed requests")
    ax.set_ylabel("requests/s")
    ax.legend(loc="best", fontsize="small")

    ax = axes[2, 1]
    ax.plot(minutes, np.cumsum(trace["cost_usd"]), color="#2ca02c", lw=1.5, label="cumulative cost")
    ax.set_title("Cost")
    ax.set_ylabel("USD")
    ax.legend(loc="best", fontsize="small")
    for a in axes.flat:
        a.set_xlabel("minutes since episode start")
        a.grid(alpha=0.3)
        a.set_xlim(0.0, config.episode_steps * dt / 60.0)
    return fig


def save_dashboard(trace: dict[str, np.ndarray], config: EnvConfig, path: str | Path, title: str = "") -> Path:
    """Write the dashboard of one episode as a PNG; returns the path."""
    path = Path(path)
    with atomic_path(path) as tmp:  # a reader never sees half a PNG
        dashboard_figure(trace, config, title).savefig(tmp, format=path.suffix.lstrip(".") or "png")
    return path


def dashboard_rgb(
    trace: dict[str, np.ndarray],
    config: EnvConfig,
    title: str = "",
    size: tuple[float, float] = (9.6, 6.4),
    dpi: int = 100,
) -> np.ndarray:
    """The dashboard as an (H, W, 3) uint8 image."""
    fig = dashboard_figure(trace, config, title, size=size, dpi=dpi)
    canvas = fig.canvas
    assert isinstance(canvas, FigureCanvasAgg)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[:, :, :3].copy()
