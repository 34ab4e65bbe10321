"""The Python side of the request-level backend: its tables, reset and step (``BatchSimulator`` dispatches here
when the config says ``simulator: request``)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from ...workload import EpisodeWorkload
from ..threads import MIN_THREADED_BATCH, usable_cpus
from .layout import HIST_BINS, MAX_SUB, N_GEN, N_SLOT_F, N_SLOT_I, SUB_SECONDS, ReqState
from .loop import step_batch, step_batch_parallel

if TYPE_CHECKING:
    from ..simulator import BatchSimulator

# the waiting rooms are preallocated (slots x max(max_queue, 1) arrival times per cluster); above this many the
# backend refuses with a clear error rather than exhaust memory
MAX_RING_ENTRIES = 200_000_000


class RequestBackend:
    """Request-level state of a :class:`~scaling_env.sim.simulator.BatchSimulator`'s clusters and its step."""

    def __init__(self, sim: BatchSimulator, parallel: bool | None) -> None:
        config = sim.config
        b, n_slots = sim.num_envs, sim.n_slots
        ring = max(config.instances.max_queue, 1)
        if b * n_slots * ring > MAX_RING_ENTRIES:
            raise ValueError(
                f"simulator: request preallocates every waiting room: num_envs ({b}) x 2 * scaling.max_instances "
                f"({n_slots}) x instances.max_queue ({ring}) = {b * n_slots * ring:,} requests, over the limit of "
                f"{MAX_RING_ENTRIES:,}; lower instances.max_queue, scaling.max_instances or the number of envs"
            )
        self.sim = sim
        dt = config.step_seconds
        self.sub = int(min(max(math.ceil(dt / SUB_SECONDS - 1e-9), 1), MAX_SUB))
        heap = n_slots * config.instances.concurrency
        self.slot_f = np.zeros((b, n_slots, N_SLOT_F))
        self.slot_i = np.zeros((b, n_slots, N_SLOT_I), dtype=np.int64)
        self.ring = np.zeros((b, n_slots, ring))
        self.heap_t = np.zeros((b, heap))
        self.heap_a = np.zeros((b, heap))
        self.heap_s = np.zeros((b, heap), dtype=np.int64)
        self.gen = np.zeros((b, N_GEN))
        self.hist = np.zeros((b, HIST_BINS), dtype=np.int64)
        self.by_arrival = np.zeros((b, config.episode_steps, 2))
        self.outage_done = np.zeros((b, sim.outages.shape[1]), dtype=np.uint8)
        pf = config.platform
        buffer = max(pf.activator_capacity, 1) if pf.enabled and pf.activator else 1
        if b * buffer > MAX_RING_ENTRIES:
            raise ValueError(
                f"simulator: request preallocates the activator's buffer: num_envs ({b}) x "
                f"platform.activator_capacity ({buffer}) = {b * buffer:,} requests, over the limit of "
                f"{MAX_RING_ENTRIES:,}; lower platform.activator_capacity or the number of envs"
            )
        self.act_ring = np.zeros((b, buffer))
        static = sim._static_workload
        self.fine = np.zeros((1 if static else b, config.episode_steps * self.sub))
        self._fine_done = False
        if parallel is None:
            parallel = b >= MIN_THREADED_BATCH and usable_cpus() >= 2
        self._kernel = step_batch_parallel if parallel else step_batch
        self.state = ReqState(
            self.slot_f, self.slot_i, self.ring, self.heap_t, self.heap_a, self.heap_s, self.gen, self.hist,
            self.by_arrival, self.outage_done, self.fine, self.sub,
            self.act_ring,
        )  # fmt: skip

    def fine_arrivals(self, episode: EpisodeWorkload) -> np.ndarray:
        """Expected arrivals of every sub-interval of the episode (the exact integral of lambda over it)."""
        return episode.sub_step_arrivals(self.sub)

    def reset(self, ids: np.ndarray) -> None:
        """Empty the request-level state of clusters ``ids`` (after the simulator reset them)."""
        sim = self.sim
        for b in ids.tolist():
            if sim._static_workload:
                if not self._fine_done:
                    self.fine[0] = self.fine_arrivals(sim.episodes[b])
                    self._fine_done = True
            else:
                self.fine[b] = self.fine_arrivals(sim.episodes[b])
        for table in (self.slot_f, self.slot_i, self.gen, self.hist, self.by_arrival, self.outage_done):
            table[ids] = 0

    def step(self, actions: np.ndarray, active: np.ndarray) -> None:
        self._kernel(actions, active, *self.sim.state, *self.sim.outputs, *self.state)

    def latency_by_arrival(self) -> np.ndarray:
        """(B, episode_steps, 2): for the requests that arrived in each step of the current episode and have
        completed so far, (count, mean response time s; NaN if none)."""
        count = self.by_arrival[:, :, 0]
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(count > 0, self.by_arrival[:, :, 1] / np.maximum(count, 1.0), np.nan)
        return np.stack([count, mean], axis=2)
