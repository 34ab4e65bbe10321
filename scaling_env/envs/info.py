"""The ``info`` of a step, built in one place for the single env, the vector env and the SB3 VecEnv.

Every key of ``fields.INFO_FIELDS`` is one column of the simulator's metrics, and ``reward_components`` holds
the weighted reward terms (columns of ``fields.REWARD_COMPONENTS``). The adapters differ only in the shape:
one dict of floats per cluster (single env, SB3) or one dict of (B,) arrays (vector env, with Gymnasium's
``_key`` masks).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..fields import INFO_NAMES, REWARD_NAMES
from ..sim.simulator import FinalStep


def info_dict(metrics: np.ndarray | list[float], parts: np.ndarray | list[float]) -> dict[str, Any]:
    """The info of one cluster: a float per key, ``reward_components`` a dict of floats."""
    values = metrics.tolist() if isinstance(metrics, np.ndarray) else metrics
    terms = parts.tolist() if isinstance(parts, np.ndarray) else parts
    info: dict[str, Any] = dict(zip(INFO_NAMES, values))
    info["reward_components"] = dict(zip(REWARD_NAMES, terms))
    return info


def info_dicts(metrics: np.ndarray, parts: np.ndarray) -> list[dict[str, Any]]:
    """One info dict per cluster of (B, n_metrics) metrics and (B, n_terms) reward parts."""
    return [info_dict(row, prow) for row, prow in zip(metrics.tolist(), parts.tolist())]


def batch_info(metrics: np.ndarray, parts: np.ndarray, mask: np.ndarray | None = None) -> dict[str, Any]:
    """The info of a batch: a (B,) array per key (rows of one copy), ``reward_components`` a dict of (B,)
    arrays; with ``mask``, every key also gets Gymnasium's ``_key`` mask (the same read-only array)."""
    info: dict[str, Any] = dict(zip(INFO_NAMES, metrics.T.copy()))
    components: dict[str, Any] = dict(zip(REWARD_NAMES, parts.T.copy()))
    if mask is not None:
        for key in INFO_NAMES:
            info["_" + key] = mask
        for key in REWARD_NAMES:
            components["_" + key] = mask
    info["reward_components"] = components
    if mask is not None:
        info["_reward_components"] = mask
    return info


def overlay_final(metrics: np.ndarray, parts: np.ndarray, final: FinalStep | None) -> tuple[np.ndarray, np.ndarray]:
    """The step's metrics and reward parts, with the final step's values for the clusters whose episode ended
    (after a same-step autoreset the simulator already holds the next episode's first state). Copies if
    ``final`` is not None, the arrays themselves otherwise."""
    if final is None:
        return metrics, parts
    metrics, parts = metrics.copy(), parts.copy()
    metrics[final.ids] = final.metrics
    parts[final.ids] = final.reward_parts
    return metrics, parts
