"""The batched simulation: B independent clusters of one configuration, stepped by one compiled call.

This module imports neither gymnasium nor stable-baselines3. The single env, the Gymnasium vector env and the
SB3 VecEnv are thin adapters over :class:`BatchSimulator`. The step itself, phase by phase, is in ``kernel.py``;
the layout of the state (named columns, the ``State`` and ``Outputs`` records) in ``state.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..config import EnvConfig, TraceWorkload, draw_ranges
from ..fields import N_METRICS, N_REWARD, REWARD_NAMES
from ..workload import EpisodeWorkload, Workload
from .instances import BOOTING, F_TIMER, I_STATE, N_INST_F, N_INST_I, bounded_changes, counted_array
from .kernel import reset_clusters, step_batch_parallel
from .load_balancer import ALGORITHMS
from .monitoring import Monitoring
from .state import (  # noqa: F401  (P_DAY, P_HAZARD: re-exported, tests read these columns)
    ARRIVAL_PARTS,
    E_CD_IN,
    E_CD_OUT,
    E_PF_PROV,
    E_STEP,
    N_ENV_STATE,
    P_CLOCK0,
    P_DAY,
    P_HAZARD,
    Outputs,
    State,
    param_row,
)
from .threads import AutoKernel, choose_kernel

_EPS = 1e-9


def config_params(config: EnvConfig) -> np.ndarray:
    """The parameter row of one cluster (all but the per-episode clock start), from the config by column name."""
    c = config
    dt = c.step_seconds
    mtbf = c.failures.mtbf_seconds
    price_inst_s = c.instances.instance_memory_gb * c.cost.gb_second_usd
    price_req = c.cost.request_usd_per_million * 1e-6
    shape = c.workload.shape
    # reward scale: the cost of max_instances serving at full concurrency for one step (1 if all prices are 0)
    full_rps = c.instances.concurrency / c.instances.service_seconds
    ref_cost = c.scaling.max_instances * dt * (price_inst_s + full_rps * price_req)
    values = {
        "dt": dt,
        "min": c.scaling.min_instances,
        "max": c.scaling.max_instances,
        "conc": c.instances.concurrency,
        "maxq": c.instances.max_queue,
        "svc": c.instances.service_seconds,
        "svc_cv": c.instances.service_cv,
        "boot_mean": c.instances.cold_start_seconds,
        "boot_jitter": c.instances.cold_start_jitter,
        "mem_limit": c.instances.instance_memory_gb * 1024.0,
        "mem_base": c.instances.memory_base_mb,
        "mem_req": c.instances.memory_mb_per_request,
        "dereg": c.instances.deregistration_delay_seconds,
        "cd_out": c.scaling.scale_out_cooldown_seconds,
        "cd_in": c.scaling.scale_in_cooldown_seconds,
        "algo": ALGORITHMS.index(c.load_balancer.algorithm),
        "hc_interval": c.load_balancer.health_check_interval_seconds,
        "hc_threshold": c.load_balancer.unhealthy_threshold,
        "hazard": 0.0 if mtbf is None else -math.expm1(-dt / mtbf),
        "mem_crash": float(c.failures.memory_crash),
        "replace": float(c.failures.replace_unhealthy),
        "termination": c.failures.termination_seconds,
        "price_inst_s": price_inst_s,
        "price_req": price_req,
        "slo": c.reward.slo_p95_seconds,
        "slo_lost": c.reward.slo_max_lost_share,
        "poisson": float(c.workload.arrival_process == "poisson"),
        # a trace's clock runs at its own compressed pace: a trace day lasts 86400 / time_compression seconds
        "day": 86400.0 / shape.time_compression if isinstance(shape, TraceWorkload) else c.workload.day_seconds,
        "episode_steps": c.episode_steps,
        "ref_cost": ref_cost if ref_cost > 0.0 else 1.0,
        "max_step": max(max(abs(s) for s in c.scaling.scale_steps), 1),
        "max_rps": c.scaling.max_instances * c.instances.concurrency / c.instances.service_seconds,
        "clock0": 0.0,
        **platform_params(c),
    }
    for name in REWARD_NAMES:  # one weight per reward term, named like it
        values["weight_" + name] = getattr(c.reward.weights, name)
    return param_row(values)


def platform_params(config: EnvConfig) -> dict[str, float]:
    """The platform mode's parameter columns (``pf_*``; docs/model.md section 12)."""
    pf = config.platform
    provisioned_price_s = config.instances.instance_memory_gb * pf.provisioned_gb_second_usd
    burst = pf.scale_rate_instances if pf.scale_burst_instances is None else pf.scale_burst_instances
    return {
        "platform": float(pf.enabled),
        "pf_limit": pf.max_concurrency,
        "pf_rate": pf.scale_rate_instances / pf.scale_rate_period_seconds,
        "pf_burst": burst,
        "pf_keep_alive": pf.keep_alive_seconds,
        "pf_price_prov_s": provisioned_price_s,
        "pf_price_prov_busy_s": pf.provisioned_duration_gb_second_usd,
        "pf_control": float(pf.control == "keep_alive"),
        "pf_ka_step": pf.keep_alive_step_seconds,
        "pf_ka_max": pf.max_keep_alive_seconds,
        "pf_activator": float(pf.activator),
        "pf_buffer": pf.activator_capacity,
        "pf_initial_prov": initial_provisioned(config),
    }


def initial_provisioned(config: EnvConfig) -> int:
    """Provisioned instances at reset: ``platform.initial_provisioned`` within the bounds the action has."""
    if not config.platform.enabled:
        return 0
    hi = min(config.scaling.max_instances, config.platform.max_concurrency)
    return min(max(config.platform.initial_provisioned, config.scaling.min_instances), hi)


def initial_instances(config: EnvConfig) -> int:
    """Warm instances at reset: ``scaling.initial_instances`` clipped to the scaling bounds; in platform mode
    the provisioned ones plus ``scaling.initial_instances`` on-demand ones, at most the concurrency limit."""
    sc = config.scaling
    if config.platform.enabled:
        return min(initial_provisioned(config) + sc.initial_instances, config.platform.max_concurrency)
    return min(max(sc.initial_instances, sc.min_instances), sc.max_instances)


def arrival_row(episode: EpisodeWorkload) -> np.ndarray:
    """A cluster's row of ``State.expected``: the expected arrivals of every step, then the time of the rate
    change inside each step and the part of its arrivals before it (``state.ARRIVAL_PARTS``)."""
    split, early = episode.rate_splits()
    return np.concatenate([episode.expected_arrivals(), split, early])


def outage_table(config: EnvConfig) -> np.ndarray:
    """(n, 2) rows of (time_seconds, fraction) of the config's outages; a row of -1 when there are none."""
    table = np.full((max(len(config.failures.outages), 1), 2), -1.0)
    for o, outage in enumerate(config.failures.outages):
        table[o] = (outage.time_seconds, outage.fraction)
    return table


@dataclass(frozen=True)
class FinalStep:
    """What clusters ``ids`` showed at the last step of their episode, before the autoreset."""

    ids: np.ndarray
    obs: np.ndarray
    metrics: np.ndarray
    reward_parts: np.ndarray


class BatchSimulator:
    """B independent clusters of one configuration, stepped together.

    State is a handful of numpy arrays; ``step`` is one compiled call for the whole batch. Randomness comes
    from one SplitMix64 state per cluster, drawn at reset from the numpy ``Generator`` the adapter passes in
    (the env's seeded ``np_random``), so cluster b's trajectory does not depend on the batch size.
    """

    def __init__(self, config: EnvConfig, num_envs: int = 1, parallel: bool | None = None) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.config = config
        self.num_envs = num_envs
        self.workload = Workload(config)
        self.n_slots = 2 * config.scaling.max_instances
        # with ranges in the config, each reset writes its cluster's drawn parameters; until then, any draw
        base = config_params(draw_ranges(config, np.random.default_rng(0)))
        self.params = np.tile(base, (num_envs, 1))
        self.env_state = np.zeros((num_envs, N_ENV_STATE))
        self.inst_f = np.zeros((num_envs, self.n_slots, N_INST_F))
        self.inst_i = np.zeros((num_envs, self.n_slots, N_INST_I), dtype=np.int64)
        self.rng = np.zeros(num_envs, dtype=np.uint64)
        # with no per-episode randomness every episode has the same rate function: draw it once, and keep one
        # row of arrival means for all clusters (the kernel reads row 0), not B copies (long episodes at large B)
        self._static_workload = self.workload.static
        self._static_episode: EpisodeWorkload | None = None
        # per step: [expected arrivals | time of the rate change inside it, s | part of its arrivals before that]
        # (the kernel's sub-step profile, ``EpisodeWorkload.rate_splits``); ``expected`` shows the first part
        steps = config.episode_steps
        self._arrival_table = np.zeros((1 if self._static_workload else num_envs, ARRIVAL_PARTS * steps))
        if self._static_workload:
            self.expected = np.broadcast_to(self._arrival_table[:, :steps], (num_envs, steps))
        else:
            self.expected = self._arrival_table[:, :steps]
        n_out = max(len(config.failures.outages), 1)
        self.outages = np.full((num_envs, n_out, 2), -1.0)
        if not self.workload.randomised:
            self.outages[:] = outage_table(config)
        self.scale_steps = np.asarray(config.scaling.scale_steps, dtype=np.float64)
        # what monitoring delivers and the observation's history (after every step, on its metrics row)
        self.monitoring = Monitoring(config, num_envs)
        self.monitor = self.monitoring.record
        self.obs = np.zeros((num_envs, self.monitoring.n_obs), dtype=np.float32)
        self.metrics = np.zeros((num_envs, N_METRICS))
        self.rewards = np.zeros(num_envs)
        self.reward_parts = np.zeros((num_envs, N_REWARD))
        self.truncated = np.zeros(num_envs, dtype=np.bool_)
        self._all = np.ones(num_envs, dtype=np.bool_)
        self.episodes: list[EpisodeWorkload | None] = [None] * num_envs
        self.generators: list[np.random.Generator] = [np.random.default_rng() for _ in range(num_envs)]
        # threads pay off only for large batches and free CPUs: by default, measured (threads.choose_kernel)
        self._kernel = choose_kernel(num_envs, parallel)
        # the kernel's view of the arrays above (the same objects: they are only ever changed in place)
        self.state = State(
            self.params,
            self.env_state,
            self.inst_f,
            self.inst_i,
            self.rng,
            self._arrival_table,
            self.outages,
            self.scale_steps,
        )
        self.outputs = Outputs(self.obs, self.metrics, self.rewards, self.reward_parts, self.truncated)
        self._initial = initial_instances(config)
        # simulator: request (issue 16): the request-level backend steps the same tables (sim/request)
        self.backend = None
        if config.simulator == "request":
            from .request.backend import RequestBackend

            self.backend = RequestBackend(self, parallel)

    @property
    def parallel(self) -> bool:
        """Whether the threaded kernel steps the batch now (with ``parallel=None`` and B >= 256 this is the
        current choice of ``threads.AutoKernel``, which may change as it measures)."""
        kernel = self._kernel
        return kernel.threads if isinstance(kernel, AutoKernel) else kernel is step_batch_parallel

    @property
    def num_actions(self) -> int:
        return len(self.scale_steps)

    def seed(self, seeds: list[int | None]) -> None:
        """Give cluster i a fresh generator seeded with ``seeds[i]`` (None: from OS entropy)."""
        if len(seeds) != self.num_envs:
            raise ValueError(f"expected {self.num_envs} seeds, got {len(seeds)}")
        self.generators = [np.random.default_rng(s) for s in seeds]

    def reset(self, ids: np.ndarray | list[int] | None = None) -> None:
        """Start a new episode in clusters ``ids`` (all if None); each draws from its own generator."""
        ids = np.arange(self.num_envs) if ids is None else np.asarray(ids, dtype=np.int64)
        for b in ids.tolist():
            gen = self.generators[b]
            if self._static_workload:
                if self._static_episode is None:
                    self._static_episode = self.workload.sample_episode(gen)
                    self._arrival_table[0] = arrival_row(self._static_episode)
                episode = self._static_episode
            else:
                episode = self.workload.sample_episode(gen)
                self._arrival_table[b] = arrival_row(episode)
            self.episodes[b] = episode
            if self.workload.randomised:  # this episode's draws of the config's ranges
                self.params[b] = config_params(episode.config)
                self.outages[b] = outage_table(episode.config)
            self.params[b, P_CLOCK0] = episode.clock_start_seconds
            self.rng[b] = np.uint64(gen.integers(0, 2**63 - 1, dtype=np.int64))
        initial = np.full(len(ids), self._initial, dtype=np.int64)
        reset_clusters(ids, initial, *self.state, *self.outputs)
        if self.backend is not None:
            self.backend.reset(ids)
        self.monitoring.after_reset(ids, self.params, self._arrival_table, self.metrics, self.obs)
        self.rewards[ids] = 0.0
        self.reward_parts[ids] = 0.0
        self.truncated[ids] = False

    def step(self, actions: np.ndarray, active: np.ndarray | None = None) -> None:
        """Advance the clusters by one decision step. ``actions`` must be valid int64 indices; with ``active``
        (bool, (B,)) only those clusters step, the others keep their state and outputs."""
        active = self._all if active is None else active
        if self.backend is not None:
            self.backend.step(actions, active)
        else:
            self._kernel(actions, active, *self.state, *self.outputs)
        # history and delivered metrics are computed from any backend's metrics row
        self.monitoring.after_step(active, self.params, self.env_state, self.metrics, self.obs)

    def step_autoreset(self, actions: np.ndarray) -> FinalStep | None:
        """Step, then start new episodes where one ended (same-step autoreset).

        Returns the last observation, metrics and reward parts of the clusters that ended, or None.
        ``obs`` then holds the first observation of their new episodes; rewards and truncation flags are
        those of the final step.
        """
        self.step(actions)
        if not self.truncated.any():
            return None
        ids = np.flatnonzero(self.truncated)
        final = FinalStep(ids, self.obs[ids].copy(), self.metrics[ids].copy(), self.reward_parts[ids].copy())
        truncated = self.truncated.copy()
        rewards = self.rewards.copy()
        self.reset(ids)
        self.truncated[:] = truncated
        self.rewards[:] = rewards
        return final

    # ---- public read-only views of the state (for policies that read the simulator, planners and tests)
    def step_index(self) -> np.ndarray:
        """(B,) int64: decision steps taken in each cluster's current episode."""
        return self.env_state[:, E_STEP].astype(np.int64)

    def cooldowns_remaining(self) -> tuple[np.ndarray, np.ndarray]:
        """Seconds left of the scale-out and of the scale-in cooldown, each (B,) (0: that direction is allowed)."""
        return self.env_state[:, E_CD_OUT].copy(), self.env_state[:, E_CD_IN].copy()

    def slot_states(self) -> np.ndarray:
        """(B, n_slots) int64: each slot's state (codes of ``scaling_env.sim.instances.STATE_NAMES``)."""
        return self.inst_i[:, :, I_STATE].copy()

    def boot_remaining(self) -> np.ndarray:
        """(B, n_slots): seconds until each booting instance's cold start ends (0 for slots not booting)."""
        booting = self.inst_i[:, :, I_STATE] == BOOTING
        return np.where(booting, self.inst_f[:, :, F_TIMER], 0.0)

    def expected_arrivals(self) -> np.ndarray:
        """(B, episode_steps): the Poisson mean of each step's arrivals in each cluster's current episode (what
        the simulator draws from; a clairvoyant reference reads the future from it). Read-only; when every episode
        has the same rates, a view of one shared row."""
        return self.expected

    def action_masks(self) -> np.ndarray:
        """(B, n_actions) bool: actions whose bounded change is not blocked by a cooldown.

        An action that changes nothing (0, or a change the bounds cancel) is always valid.
        """
        live = self.controlled_counts()
        lo, hi = self.config.scaling.min_instances, self.config.scaling.max_instances
        if self.config.platform.enabled:
            if self.config.platform.control == "keep_alive":  # no bounds or cooldowns on the keep-alive
                return np.ones((self.num_envs, self.num_actions), dtype=np.bool_)
            hi = min(hi, self.config.platform.max_concurrency)
        change = bounded_changes(live[:, None], self.scale_steps[None, :].astype(np.int64), lo, hi)
        out_ok = self.env_state[:, E_CD_OUT] <= _EPS
        in_ok = self.env_state[:, E_CD_IN] <= _EPS
        return (change == 0) | ((change > 0) & out_ok[:, None]) | ((change < 0) & in_ok[:, None])

    def controlled_counts(self) -> np.ndarray:
        """(B,) instances the autoscaler controls: booting, warm, undetected failed, and unhealthy ones that are
        kept until their replacement starts (the count an action changes; ``instances.counted``). The same count
        is ``info["instances_controlled"]`` after each step. In platform mode: the provisioned count."""
        if self.config.platform.enabled:
            return self.env_state[:, E_PF_PROV].astype(np.int64)
        return counted_array(self.inst_i[:, :, I_STATE], self.inst_f[:, :, F_TIMER]).sum(axis=1)

    def states(self, b: int = 0) -> np.ndarray:
        """Slot states of cluster b (codes of ``instances.STATE_NAMES``)."""
        return self.inst_i[b, :, I_STATE].copy()

    # ---- snapshot and restore (scaling_env.sim.snapshot): for planners, search and tests
    def get_state(self, ids: np.ndarray | list[int] | None = None, generators: bool = True):
        """A :class:`~scaling_env.sim.snapshot.SimSnapshot` (a copy) of clusters ``ids`` (all if None): every
        per-cluster array of ``self.state``/``self.outputs``, the episodes' workloads and (``generators``) the
        states of the clusters' numpy generators."""
        from .snapshot import get_state

        self._refuse_snapshot()
        return get_state(self, ids, generators)

    def set_state(self, snapshot, ids: np.ndarray | list[int] | None = None) -> None:
        """Restore a snapshot of this or another simulator of the same config into clusters ``ids`` (default:
        the ones it was taken from; a one-cluster snapshot is copied into every id). Stepping on with the same
        actions reproduces the original trajectory bit for bit."""
        from .snapshot import set_state

        self._refuse_snapshot()
        set_state(self, snapshot, ids)

    def fork(self, src_id: int, dst_ids: np.ndarray | list[int]) -> None:
        """Copy cluster ``src_id``'s state into clusters ``dst_ids`` (e.g. to roll out several plans from it)."""
        from .snapshot import fork

        self._refuse_snapshot()
        fork(self, src_id, dst_ids)

    def _refuse_snapshot(self) -> None:
        """Snapshots cover the fast model's tables only: the request-level backend's requests in flight (its heap
        and waiting rooms) are not part of them, so a restore would silently lose them."""
        if self.backend is not None:
            from .snapshot import SnapshotError

            raise SnapshotError(
                "snapshot/restore/fork is not supported with simulator: request (its requests in service and "
                "waiting are not in the snapshot tables); use simulator: fast for planning"
            )

    def latency_by_arrival(self) -> np.ndarray:
        """simulator: request only. (B, episode_steps, 2): for the requests that arrived in each step of the current
        episode and have completed so far, (count, mean response time s, NaN if none): latency by the step a
        request arrived in, beside info's latency by the step it completed in."""
        if self.backend is None:
            raise ValueError("latency_by_arrival needs simulator: request (the fast model has no requests)")
        return self.backend.latency_by_arrival()
