"""Text rendering: one line per step (``render_mode="ansi"``)."""

from __future__ import annotations

import numpy as np

from ..fields import INFO_NAMES

_IDX = {name: i for i, name in enumerate(INFO_NAMES)}


def ansi_line(metrics: np.ndarray, reward: float, step: int) -> str:
    m = lambda key: metrics[_IDX[key]]  # noqa: E731
    return (
        f"step {step:5d} t={m('time_s'):7.0f}s | arr {m('arrivals'):7.0f} served {m('served'):7.0f} "
        f"drop {m('dropped'):5.0f} fail {m('failed'):5.0f} q {m('backlog'):5.0f} | "
        f"warm {m('instances_warm'):3.0f} boot {m('instances_booting'):2.0f} "
        f"unh {m('instances_unhealthy'):2.0f} drain {m('instances_draining'):2.0f} | "
        f"cpu {m('cpu_utilization'):4.0%} p95 {m('latency_p95_s'):6.3f}s{'!' if m('slo_violated') else ' '} | "
        f"scale {m('scale_requested'):+2.0f}->{m('scale_applied'):+2.0f}{'c' if m('blocked_by_cooldown') else ' '} "
        f"| ${m('cost_usd'):.5f} r {reward:+.3f}"
    )
