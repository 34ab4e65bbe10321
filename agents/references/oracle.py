"""``oracle``: a clairvoyant reference that reads the episode's future arrival rates from the simulator."""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import numpy as np
from pydantic import Field

from scaling_env.sim.instances import BOOTING, WARM
from scaling_env.sim.load_balancer import ALGORITHMS, balancer_queue
from scaling_env.sim.queueing import RHO_CAP, response_p95
from scaling_env.sim.simulator import BatchSimulator

from ..actions import action_for_target, controlled_count
from ..base import PolicyBase, PolicyParams
from .sim_access import find_simulator

_EPS = 1e-9


class OracleParams(PolicyParams):
    latency_margin: float = Field(0.8, gt=0.0, le=1.0, description="plan for p95 <= this x the SLO")
    poisson_z: float = Field(
        3.0, ge=0.0, le=10.0, description="capacity per step >= expected arrivals + z x their standard deviation"
    )


def _p95(n: int, rate: float, conc: int, svc: float, cv: float, maxq: float, dt: float, algo: str) -> float:
    """p95 response time of the env's stationary queue for ``n`` instances in the pool all step at ``rate``
    requests/s, with the routing of the config (``scaling_env.sim.load_balancer.balancer_queue``, the rule the
    simulator uses; docs/model.md section 6.2)."""
    w, p_wait, _ = balancer_queue(ALGORITHMS.index(algo), rate, n, float(n), float(n), conc, svc, cv * cv, float(maxq))
    return response_p95(svc, cv, min(w, dt), p_wait)


@lru_cache(maxsize=32)
def sustainable_rates(
    max_instances: int, conc: int, svc: float, cv: float, maxq: float, dt: float, algo: str, p95_limit: float
) -> np.ndarray:
    """``rates[n]``: the highest arrival rate (requests/s) at which ``n`` instances keep the p95 response time at
    or below ``p95_limit``, for n = 0..max_instances (0 for n = 0 or if even a light load misses it)."""
    rates = np.zeros(max_instances + 1)
    cap = conc / svc
    for n in range(1, max_instances + 1):
        hi = n * cap * RHO_CAP
        if _p95(n, hi, conc, svc, cv, maxq, dt, algo) <= p95_limit:
            rates[n] = hi
            continue
        lo = 0.0
        if _p95(n, hi * 1e-6, conc, svc, cv, maxq, dt, algo) > p95_limit:
            continue
        for _ in range(50):
            mid = 0.5 * (lo + hi)
            if _p95(n, mid, conc, svc, cv, maxq, dt, algo) <= p95_limit:
                lo = mid
            else:
                hi = mid
        rates[n] = lo
    return np.maximum.accumulate(rates)  # more instances never sustain less


class OraclePolicy(PolicyBase):
    """Clairvoyant oracle: the reference. **Not a deployable policy**: it reads the future. Its SLO margins make it
    conservative (a tighter oracle can be a few % cheaper at the same SLO share), so it is a near-best reference,
    not the exact optimum.

    ``bind(env)`` takes the env's :class:`scaling_env.sim.simulator.BatchSimulator`. At each decision it reads,
    for each cluster, the expected arrivals of every future step of the current episode
    (``sim.expected_arrivals()[b, k:]``, the Poisson means the simulator draws from; ``k = sim.step_index()``)
    and provisions the fewest instances that meet the SLO, using the project's own queueing model
    (``scaling_env.sim.queueing.stationary_wait`` and ``response_p95``, with the config's routing: round robin as
    GI/G/c with Erlang-n arrivals, random as M/G/c, least outstanding as one pooled queue). For step ``j`` it
    needs the larger of

    - the fewest ``n`` whose p95 at the expected rate is at most ``latency_margin`` (0.8) x the SLO, and
    - the fewest ``n`` whose capacity over the step, ``n * concurrency / service_seconds * step_seconds``, covers
      the expected arrivals plus ``poisson_z`` (3) standard deviations of the Poisson count (so that the random
      count rarely overflows into a fluid backlog).

    Timing, within the same bounds and cooldowns as every policy: an instance launched at step ``o`` is counted
    from step ``o`` (it joins the pool a cold start, at most ``cold_start_seconds * (1 + jitter)``, into it) and
    is fully in the pool from step ``o + lead``, ``lead = ceil(longest cold start / step_seconds)``. Scale-outs
    are possible every ``ceil(scale_out_cooldown_seconds / step_seconds)`` steps. So the count chosen now must
    cover the demand until capacity launched at the next opportunity is fully in: one cold start ahead of the next
    opportunity. With ``scale_steps`` that limit how much one action adds (``S``), demand further ahead counts
    minus what the later opportunities can add (``S`` each). The oracle reads the env's cooldown state
    (``sim.cooldowns_remaining()``) and does not ask for a change a running cooldown would block. It
    scales in only when the smaller fleet still covers every step until capacity could be added back.

    Action mapping: it rounds *up*: the smallest available change at least as large as needed (or the largest,
    if none is), and for a scale-in the most negative step that does not go below the need
    (``agents.actions.action_for_target`` with ``rounding="up"``). It plans afresh at every decision from the
    simulator's state, so it keeps no windows and no desired count between decisions.
    """

    name = "oracle"
    Params = OracleParams

    def _setup(self) -> None:
        cfg = self.env_config
        ins, sc = cfg.instances, cfg.scaling
        self.sim: BatchSimulator | None = None
        self.rates = sustainable_rates(
            sc.max_instances,
            ins.concurrency,
            ins.service_seconds,
            ins.service_cv,
            float(ins.max_queue),
            self.dt,
            cfg.load_balancer.algorithm,
            self.params.latency_margin * cfg.reward.slo_p95_seconds,
        )
        self.step_capacity = ins.concurrency / ins.service_seconds * self.dt  # requests one instance serves per step
        boot = ins.cold_start_seconds * (1.0 + ins.cold_start_jitter)
        self.lead = math.ceil(boot / self.dt - _EPS) if boot > 0 else 0
        self.out_every = max(1, math.ceil(sc.scale_out_cooldown_seconds / self.dt - _EPS))
        self.step_out = max(max(sc.scale_steps), 0)
        reach = math.ceil(sc.max_instances / self.step_out) if self.step_out > 0 else 1
        self.horizon = min(cfg.episode_steps, self.out_every * (reach + 1) + self.lead + 1)

    def bind(self, env: Any) -> None:
        """Take the env's simulator (it must have this policy's step length and scale steps)."""
        sim = find_simulator(env, "oracle")
        c = sim.config
        if c.step_seconds != self.dt or c.scaling.scale_steps != self.env_config.scaling.scale_steps:
            raise ValueError("oracle: the env's step_seconds or scale_steps differ from the policy's env_config")
        self.sim = sim

    def need(self, expected_arrivals: np.ndarray) -> np.ndarray:
        """Instances needed for steps with these expected arrival counts (any shape)."""
        lam = np.maximum(np.asarray(expected_arrivals, dtype=np.float64), 0.0)
        by_slo = np.searchsorted(self.rates, lam / self.dt, side="left")
        by_count = np.ceil((lam + self.params.poisson_z * np.sqrt(lam)) / self.step_capacity - _EPS)
        return np.minimum(np.maximum(by_slo, by_count), self.env_config.scaling.max_instances).astype(np.int64)

    def supply(self) -> np.ndarray:
        """(B, horizon): instances fully in the pool at steps k .. k+H-1 without any new action: the warm ones,
        plus the booting ones from the step after their cold start ends. Crashed (failed, unhealthy) instances
        serve nothing, even while the autoscaler still counts them."""
        sim = self.sim
        state = sim.slot_states()
        booting = state == BOOTING
        ready = np.clip(np.ceil(sim.boot_remaining() / self.dt - _EPS), 0, self.horizon).astype(np.int64)
        hist = np.zeros((self.num_envs, self.horizon + 1), dtype=np.int64)
        rows, slots = np.nonzero(booting)
        np.add.at(hist, (rows, ready[rows, slots]), 1)
        warm = (state == WARM).sum(axis=1)
        return warm[:, None] + np.cumsum(hist, axis=1)[:, : self.horizon]

    def act_batch(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        """One decision for each of B clusters: the action that reaches :meth:`plan`'s count, rounded up."""
        self._batch_size(np.asarray(obs))
        current = controlled_count(info, self.env_config)
        return action_for_target(self.plan(current), current, self.env_config, rounding="up")

    def plan(self, current: np.ndarray) -> np.ndarray:
        """(B,) the instance count to have now, from the controlled count ``current`` (B,) and the simulator."""
        if self.sim is None:
            raise RuntimeError("oracle: call bind(env) before acting (it reads the simulator)")
        sim = self.sim
        if sim.num_envs != self.num_envs:
            raise ValueError(f"oracle: bound to {sim.num_envs} clusters, acting for {self.num_envs}")
        expected = sim.expected_arrivals()
        steps = expected.shape[1]
        k = sim.step_index()
        j = np.arange(self.horizon)[None, :]
        idx = k[:, None] + j
        lam = np.where(idx < steps, expected[np.arange(self.num_envs)[:, None], np.minimum(idx, steps - 1)], 0.0)
        short = self.need(lam) - self.supply()  # (B, H): instances missing at steps k .. k+H-1
        s = self.step_out
        # scaling out now: later opportunities at k + out_every * i (i >= 1), fully in lead steps after
        later = np.maximum((j - self.lead) // self.out_every, 0)
        add = (short - s * later).max(axis=1)
        # scaling in now: capacity can come back at the first scale-out step after this one
        cd_out, cd_in = sim.cooldowns_remaining()
        wait = np.maximum(np.ceil(cd_out / self.dt - _EPS).astype(np.int64), 1)
        back = np.maximum((j - wait[:, None] - self.lead) // self.out_every + 1, 0)
        spare = (s * back - short).min(axis=1)
        out_ok = cd_out <= _EPS
        in_ok = cd_in <= _EPS
        grow = out_ok & (add > 0)
        shrink = in_ok & ~grow & (add < 0) & (spare > 0)
        target = current.copy()
        target[grow] += add[grow]
        target[shrink] -= np.minimum(spare, -add)[shrink]
        return target
