"""``planner``: a receding-horizon planning oracle that searches with the env's own simulator.

**Not deployable.** At every decision it copies each cluster's exact state (``BatchSimulator.get_state``) into a
private simulator of the same config, rolls out a set of candidate plans there over the next ``horizon_steps``
decisions, many at once as one batch, and takes the first action of the plan with the highest mean summed reward.

What it knows (the bound is only as good as this list is honest):

- the **future arrival rates**: each step's expected arrivals (``sim.expected_arrivals()``, the Poisson means the
  simulator draws from) and the scheduled outages of the config;
- the **exact hidden state** of the cluster: boot timers, crashed instances the health check has not found yet,
  queues, cooldowns (a real autoscaler sees metrics only);
- the **model**: it plans with the simulator itself, so its predictions have no model error.

What it does not know (by default): the **future random draws**. Each candidate is rolled out on ``futures``
sampled futures whose random streams are fresh (SplitMix64 states hashed from the cluster's state, the future's
index and ``sample_seed``; they are not the cluster's own stream), the same futures for every candidate (common
random numbers, so candidates are compared on the same luck). With ``know_random_draws: true`` the copies keep the
cluster's own stream instead (one future): that planner also sees the coming crashes and arrival counts as long as
its plan draws as the real run does, and is clairvoyant of the random draws, not only of the rates.

Candidate plans: policy switching over a set of base policies (Chang, Givan & Chong, "Parallel rollout for
online solution of partially observable Markov decision processes", Discrete Event Dynamic Systems 14, 2004:
choosing, at each state, the base policy whose simulated return from that state is highest does at least as well
as each of them, up to estimation error and horizon; so the base set decides what the planner bounds). The base
policies:

- ``(u, o)`` plans (clairvoyant): for each future step, ``ceil(expected arrivals / (u x one instance's requests
  per step)) + o`` instances, launched early enough that capacity added at the later scale-out opportunities
  (every ``ceil(scale_out_cooldown / step)`` steps, at most ``max(scale_steps)`` at a time) arrives one cold start
  before it is needed; it scales in when the need over that look-ahead falls. CPU targets ``utilizations`` x extra
  instances ``offsets`` (a fleet margin against crashes pays on failure-heavy scenarios, a thin one on steady load);
- window plans (clairvoyant): capacity at CPU target ``u`` (``window_utilizations``) for the highest expected rate
  of the next ``window`` steps (the longest cold start), i.e. what an instance launched now would face when warm;
- rule plans: the rule policies of ``rule_plans`` (by default every rule with the setting tuned for the scenario,
  ``<name>@tuned``), each continuing from the state it has on the real cluster (a shadow copy of the rule follows
  the real clusters' metrics; its windows, forecasts and alarms are copied into the planning copies);
- the heuristic ``oracle``.

The **reference plan** is the base plan with the best mean reward when followed for whole episodes on the
``calibration_seeds`` (100..119: below the benchmark's 1000.., apart from the tuner's 0..19); another plan
replaces it at a decision only where the lower confidence bound of its paired gain over the reference is positive.
With ``max_plans`` only the reference and the plans best on the calibration seeds are rolled out (the cost is
linear in the plans). Why this and not CEM over raw action sequences: with cooldowns, most of the 9^H sequences are
the same sequence (blocked actions are no-ops), and a plan that must anticipate a burst 20 steps ahead is one point
in a huge space; closed-loop base plans are all feasible, cover the sensible fleets, and make a few dozen rollouts
enough.

It acts through the env like every policy: one index into ``scale_steps`` per decision, subject to the same bounds
and cooldowns. Decisions where every allowed action changes the fleet the same way (both cooldowns running, or the
bounds) are not planned.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field, field_validator

from scaling_env import EnvConfig
from scaling_env.envs.info import batch_info
from scaling_env.rollout import rollout
from scaling_env.sim.simulator import BatchSimulator

from ..base import PolicyConfigError, PolicyParams, validate_params
from ..rules.base import RulePolicy
from .oracle import OraclePolicy
from .sim_access import find_simulator

_EPS = 1e-9
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_NOT_STATE = (EnvConfig, PolicyParams, np.random.Generator, type)  # objects copy_rows does not descend into


class PlannerParams(PolicyParams):
    horizon_steps: int = Field(64, ge=1, le=1000, description="decisions each candidate plan is rolled out over")
    futures: int = Field(8, ge=1, le=256, description="sampled random futures per candidate (common to all)")
    utilizations: tuple[float, ...] = Field(
        (0.9, 0.95), min_length=1, description="CPU targets of the base plans (fractions, 0 < u <= 1)"
    )
    offsets: tuple[int, ...] = Field((0, 3, 14), min_length=1, description="extra instances of the base plans")
    window_utilizations: tuple[float, ...] = Field(
        (0.9, 0.95), description="CPU targets of the window plans (capacity for the next cold start's peak rate)"
    )
    know_random_draws: bool = Field(False, description="roll out on the cluster's own random stream (clairvoyant)")
    sample_seed: int = Field(0, ge=0, description="salt of the sampled futures' random streams")
    with_oracle: bool = Field(True, description="the heuristic oracle (its default parameters) is one more plan")
    switch_z: float = Field(
        2.0, ge=0.0, le=10.0, description="leave the reference plan only if a plan beats it by z standard errors"
    )
    reference: Literal["calibrated", "oracle"] = Field(
        "calibrated",
        description="the reference plan: the base plan with the best whole-episode mean reward on the calibration "
        "seeds, or the heuristic oracle",
    )
    calibration_seeds: tuple[int, int] = Field(
        (100, 20),
        description="(first, count): the seeds that choose the reference plan; below the benchmark's 1000 and "
        "apart from the tuner's 0..19",
    )
    rule_plans: tuple[str, ...] = Field(
        tuple(f"{r}@tuned" for r in ("threshold", "step_scaling", "target_tracking", "hpa", "kpa", "predictive")),
        description="rule policies (specs, e.g. predictive@tuned: the setting tuned for the scenario) that are base "
        "plans too; one whose setting does not exist for the scenario is left out",
    )
    max_plans: int = Field(
        9, ge=0, description="roll out only the reference and the plans best on the calibration seeds (0: all)"
    )
    threads: bool = Field(False, description="step the planning batch with the threaded kernel")

    @field_validator("utilizations", "window_utilizations")
    @classmethod
    def _fractions(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        bad = [u for u in v if not 0.0 < u <= 1.0]
        if bad:
            raise ValueError(f"each utilization must be in (0, 1] (a fraction, not percent), got {bad}")
        return v

    @field_validator("calibration_seeds")
    @classmethod
    def _below_benchmark(cls, v: tuple[int, int]) -> tuple[int, int]:
        first, count = v
        if first < 0 or count < 1 or first + count > 1000:
            raise ValueError(f"(first, count) must give seeds in 0..999 (the benchmark's start at 1000), got {v}")
        return v


def mix64(z: np.ndarray) -> np.ndarray:
    """SplitMix64's output function (Steele, Lea & Flood 2014) over a uint64 array: a hash of each value."""
    with np.errstate(over="ignore"):
        z = z.astype(np.uint64) + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _MIX1
        z = (z ^ (z >> np.uint64(27))) * _MIX2
        return z ^ (z >> np.uint64(31))


class PlannerPolicy:
    """Receding-horizon planning oracle (module docstring). ``bind(env)`` before acting."""

    name: ClassVar[str] = "planner"
    Params: ClassVar[type[PolicyParams]] = PlannerParams

    takes_scenario: ClassVar[bool] = True  # make_policy passes the scenario (for the rule plans' tuned settings)

    def __init__(
        self,
        env_config: EnvConfig | dict | str | None,
        params: PolicyParams | dict | None = None,
        scenario: str | None = None,
    ) -> None:
        self.env_config = EnvConfig.coerce(env_config)
        self.params: PlannerParams = validate_params(self.Params, params, f"{self.name} policy params")
        cfg, p = self.env_config, self.params
        self.dt = float(cfg.step_seconds)
        self.num_envs = 0
        self.sim: BatchSimulator | None = None
        self._plan: BatchSimulator | None = None
        sc, ins = cfg.scaling, cfg.instances
        self.steps = np.asarray(sc.scale_steps, dtype=np.int64)
        self.step_capacity = ins.concurrency / ins.service_seconds * self.dt  # requests one instance serves per step
        boot = ins.cold_start_seconds * (1.0 + ins.cold_start_jitter)
        self.lead = math.ceil(boot / self.dt - _EPS) if boot > 0 else 0
        self.out_every = max(1, math.ceil(sc.scale_out_cooldown_seconds / self.dt - _EPS))
        self.step_out = max(int(self.steps.max()), 0)
        reach = math.ceil(sc.max_instances / self.step_out) if self.step_out > 0 else 1
        self.window = max(self.lead, 1)  # the window plans' look-ahead: one cold start
        self.look = min(cfg.episode_steps, self.lead + self.out_every * (reach + 1) + 1)  # base plans' look-ahead
        self.look = max(self.look, self.window + 1)
        j = np.arange(self.look)
        self.later = self.step_out * np.maximum((j - self.lead) // self.out_every, 0)  # what later chances add
        u, o = np.meshgrid(np.asarray(p.utilizations, float), np.asarray(p.offsets, float), indexing="ij")
        wu = np.asarray(p.window_utilizations, float)
        self.cand_u = np.concatenate([u.ravel(), wu])
        self.cand_o = np.concatenate([o.ravel(), np.zeros(len(wu))])
        self.cand_w = np.concatenate([np.zeros(u.size, np.bool_), np.ones(len(wu), np.bool_)])  # window plans
        self.oracle = OraclePolicy(cfg) if p.with_oracle else None
        self.rules, self.rule_names, self.left_out = rule_plans(cfg, p.rule_plans, scenario)
        self.shadows = [copy_policy(r) for r in self.rules]  # follow the real clusters, to copy their state from
        self._plan_rules: list[RulePolicy] = []
        # candidates: the (u, o) family, the window plans, the rule plans, the oracle (last)
        self.n_candidates = len(self.cand_u) + len(self.rules) + (1 if p.with_oracle else 0)
        self.plans = np.arange(self.n_candidates)  # the candidates rolled out (all, or the best max_plans)
        self.n_futures = 1 if p.know_random_draws else p.futures
        self.last_choice = np.zeros(0, dtype=np.int64)  # the candidate each cluster's last plan chose (-1: none)
        self.reference: int | None = None  # index of the reference plan, chosen at the first plan
        self.calibration: np.ndarray | None = None  # each candidate's mean whole-episode reward on the calibration
        self.planned_clusters = 0  # decisions planned, for the cost report
        self.rollout_steps = 0  # cluster-steps simulated while planning

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.params!r})"

    # ---- the Policy interface
    def reset(self, seed: int | None = None, num_envs: int = 1) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.num_envs = int(num_envs)
        self.last_choice = np.full(num_envs, -1, dtype=np.int64)
        for r in self.shadows:
            r.reset(seed=seed, num_envs=self.num_envs)

    def bind(self, env: Any) -> None:
        sim = find_simulator(env, "planner")
        c = sim.config
        if c is not self.env_config and c != self.env_config:
            # its look-ahead (cold starts, cooldowns, episode length) is derived from the policy's config
            raise ValueError("planner: the env's config differs from the policy's env_config; make both from one")
        self.sim = sim

    def act(self, obs: np.ndarray, info: dict[str, Any]) -> int:
        """One decision for a single env (bound with ``bind``)."""
        return int(self.act_batch(np.asarray(obs)[None], {})[0])

    def act_batch(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        """(B,) action indices for the bound simulator's clusters; ``obs`` and ``info`` are not read (the planner
        reads the simulator's state)."""
        if self.sim is None:
            raise RuntimeError("planner: call bind(env) before acting (it plans with the env's simulator)")
        sim = self.sim
        b = sim.num_envs
        if np.asarray(obs).shape[0] != b:
            raise ValueError(f"planner: bound to {b} clusters, got a batch of {np.asarray(obs).shape[0]}")
        if self.num_envs != b:
            self.reset(num_envs=b)
        if self.shadows:  # the rule plans' state on the real clusters (their windows, forecasts, alarms)
            real_info = batch_info(sim.metrics, sim.reward_parts)
            for r in self.shadows:
                r.act_batch(sim.obs, real_info)
        current = sim.controlled_counts()
        lo, hi = self.env_config.scaling.min_instances, self.env_config.scaling.max_instances
        change = bounded(current, self.steps, lo, hi)
        masks = sim.action_masks()
        effective = np.where(masks, change, 0)
        left = self.env_config.episode_steps - sim.step_index()
        # a real choice: two allowed actions change the fleet differently, and the episode goes on
        choice = (effective.max(axis=1) != effective.min(axis=1)) & (left > 0)
        actions = np.argmin(np.abs(self.steps))[None].repeat(b)  # the smallest step: no change where none is allowed
        actions = np.where(masks[np.arange(b), actions], actions, np.argmax(masks, axis=1))
        if choice.any():  # every cluster is planned (a fixed batch), the plans are used where there is a choice
            actions[choice] = self._plan_actions()[choice]
        return actions.astype(np.int64)

    # ---- planning
    def _planning_sim(self, clusters: int) -> BatchSimulator:
        if self._plan is None or self._plan.num_envs != clusters or self._plan.config is not self.sim.config:
            self._plan = BatchSimulator(self.sim.config, num_envs=clusters, parallel=self.params.threads)
            if self.oracle is not None:
                self.oracle.bind(_Bound(self._plan))
            self._plan_rules = [copy_policy(r) for r in self.rules]
            for r in self._plan_rules:
                r.reset(num_envs=clusters)
        return self._plan

    def base_actions(
        self, sim: BatchSimulator, n: int, u: np.ndarray, o: np.ndarray, w: np.ndarray | None = None
    ) -> np.ndarray:
        """Actions of base policies ``(u, o)`` (one per cluster) for clusters 0..n-1 of ``sim``; where ``w``, the
        window plan of CPU target ``u`` instead: capacity for the highest rate of the next ``window`` steps."""
        cfg = self.env_config
        lo, hi = cfg.scaling.min_instances, cfg.scaling.max_instances
        current = sim.controlled_counts()[:n]
        expected = sim.expected_arrivals()[:n]  # (n, steps), possibly a broadcast view of one shared row
        steps = expected.shape[1]
        idx = sim.step_index()[:n, None] + np.arange(self.look)[None, :]
        lam = np.where(idx < steps, np.take_along_axis(expected, np.minimum(idx, steps - 1), axis=1), 0.0)
        need = np.ceil(lam / (self.step_capacity * u[:, None]) - _EPS) + o[:, None]
        desired = (need - self.later[None, :]).max(axis=1)
        if w is not None and w.any():
            desired = np.where(w, need[:, 1 : self.window + 1].max(axis=1), desired)
        desired = np.clip(desired, lo, hi).astype(np.int64)
        return action_up(desired - current, current, self.steps, lo, hi)

    def candidate_actions(
        self, sim: BatchSimulator, cand: np.ndarray, oracle: OraclePolicy | None, rules: list[RulePolicy]
    ) -> np.ndarray:
        """Actions of candidate plan ``cand[i]`` for cluster i of ``sim`` (i < len(cand) = its number of clusters):
        the ``(u, o)`` and window plans, then the rule plans (``rules``, reset for the batch), then the heuristic
        oracle (``oracle``, bound to ``sim``)."""
        n_family = len(self.cand_u)
        fam = np.minimum(cand, n_family - 1)
        acts = self.base_actions(sim, len(cand), self.cand_u[fam], self.cand_o[fam], self.cand_w[fam])
        others = cand >= n_family
        if others.any():
            info = batch_info(sim.metrics, sim.reward_parts)
            for j, rule in enumerate(rules):
                mine = cand == n_family + j
                if mine.any():
                    acts[mine] = rule.act_batch(sim.obs, info)[mine]
            by_oracle = cand == n_family + len(rules)
            if oracle is not None and by_oracle.any():
                acts[by_oracle] = oracle.act_batch(sim.obs, info)[by_oracle]
        return acts

    def calibrate(self) -> np.ndarray:
        """(candidates,) each candidate plan's mean episode reward when it is followed for whole episodes (closed
        loop, no planning) on the ``calibration_seeds`` of the config, all in one batch."""
        first, count = self.params.calibration_seeds
        seeds = list(range(first, first + count))
        c = self.n_candidates
        runner = _Candidates(self, np.repeat(np.arange(c), len(seeds)))
        res = rollout(self.env_config, runner, seeds * c, parallel=self.params.threads)
        return np.array([m["reward"] for m in res.metrics]).reshape(c, len(seeds)).mean(axis=1)

    def reference_plan(self) -> int:
        """Index of the reference plan: the oracle (or the first plan without it), or with ``reference:
        calibrated`` the plan with the best whole-episode mean reward on the calibration seeds (``calibrate``;
        the first on ties). Policy switching does at least about as well as its reference (Chang et al.), so the
        reference is the base plan that does best over whole episodes, chosen on seeds the benchmark does not
        use."""
        if self.reference is None:
            m = self.params.max_plans
            if (self.params.reference == "calibrated" or 0 < m < self.n_candidates) and self.n_candidates > 1:
                self.calibration = self.calibrate()
            if self.params.reference == "calibrated" and self.calibration is not None:
                self.reference = int(np.argmax(self.calibration))
            else:
                self.reference = self.n_candidates - 1 if self.oracle is not None else 0
            if self.calibration is not None and 0 < m < self.n_candidates:
                order = [int(i) for i in np.argsort(-self.calibration, kind="stable") if i != self.reference]
                self.plans = np.array(sorted([self.reference, *order[: m - 1]]))
        return self.reference

    def _plan_actions(self) -> np.ndarray:
        """The first action of the best plan of every cluster of the bound simulator."""
        real = self.sim
        ref = self.reference_plan()
        c, k = len(self.plans), self.n_futures
        per = c * k
        n = real.num_envs
        ids = np.arange(n)
        total = n * per
        plan = self._planning_sim(total)
        plan.set_state(real.get_state(ids, generators=False).select(np.repeat(ids, per)), np.arange(total))
        if not self.params.know_random_draws:
            # fresh streams: future f of cluster i is the same for every candidate (common random numbers)
            salt = mix64(np.full(1, self.params.sample_seed, dtype=np.uint64))
            base = mix64(real.rng[ids] ^ salt)
            fut = mix64(base[:, None] + np.arange(1, k + 1, dtype=np.uint64)[None, :] * _MIX1)  # (n, k)
            plan.rng[:total] = np.broadcast_to(fut[:, None, :], (n, c, k)).reshape(-1)
        cand = np.broadcast_to(self.plans[None, :, None], (n, c, k)).reshape(-1)
        if self.oracle is not None:
            self.oracle.reset(num_envs=total)
        rows = np.repeat(ids, per)
        for shadow, rule in zip(self.shadows, self._plan_rules):
            copy_rows(shadow, rule, rows)
        active = np.zeros(plan.num_envs, dtype=np.bool_)
        acts = np.zeros(plan.num_envs, dtype=np.int64)
        returns = np.zeros(total)
        episode = self.env_config.episode_steps
        horizon = int(min(self.params.horizon_steps, (episode - real.step_index()[ids]).max()))
        first = None
        for _ in range(horizon):
            acts[:total] = self.candidate_actions(plan, cand, self.oracle, self._plan_rules)
            if first is None:
                first = acts[:total].copy()
            live = plan.step_index()[:total] < episode
            active[:total] = live
            plan.step(acts, active)
            returns += np.where(live, plan.rewards[:total], 0.0)
        self.planned_clusters += n
        self.rollout_steps += total * horizon
        best = self.choose(returns.reshape(n, c, k), int(np.searchsorted(self.plans, ref)))
        self.last_choice[:] = self.plans[best]
        assert first is not None
        return first.reshape(n, c, k)[ids, best, 0]

    def choose(self, returns: np.ndarray, ref: int) -> np.ndarray:
        """The chosen plan of each cluster from ``returns`` (n, plans, futures), as an index into the plans.

        ``ref`` is the reference plan (``reference_plan``). Another plan is chosen only where
        the lower confidence bound of its paired gain over the reference (mean over the futures minus
        ``switch_z`` standard errors) is positive, the plan with the highest such bound: the maximum of many
        noisy estimates favours a lucky plan (the winner's curse), and the paired differences on common random
        futures are far less noisy than the returns themselves."""
        n, c, k = returns.shape
        gain = returns - returns[:, ref : ref + 1, :]
        mean = gain.mean(axis=2)
        if k > 1 and self.params.switch_z > 0:
            mean = mean - self.params.switch_z * gain.std(axis=2, ddof=1) / math.sqrt(k)
        mean[:, ref] = 0.0
        best = np.argmax(mean, axis=1)  # ties: the first candidate (the leanest CPU target, fewest extra)
        return np.where(mean[np.arange(n), best] > 0.0, best, ref)


class _Candidates:
    """Candidate plans followed for whole episodes: cluster i follows ``cand[i]`` (the planner's calibration)."""

    def __init__(self, planner: PlannerPolicy, cand: np.ndarray) -> None:
        self.planner, self.cand = planner, cand
        self.oracle = OraclePolicy(planner.env_config) if planner.oracle is not None else None
        self.rules = [copy_policy(r) for r in planner.rules]
        self.sim: BatchSimulator | None = None

    def reset(self, seed: int | None = None, num_envs: int = 1) -> None:
        if self.oracle is not None:
            self.oracle.reset(seed=seed, num_envs=num_envs)
        for r in self.rules:
            r.reset(seed=seed, num_envs=num_envs)

    def bind(self, env: Any) -> None:
        self.sim = find_simulator(env, "planner")
        if self.oracle is not None:
            self.oracle.bind(env)

    def act_batch(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        assert self.sim is not None
        return self.planner.candidate_actions(self.sim, self.cand, self.oracle, self.rules)


class _Bound:
    """What ``bind`` looks for: an object whose ``.sim`` is the simulator (the oracle reads the planning copies)."""

    def __init__(self, sim: BatchSimulator) -> None:
        self.sim = sim


def bounded(current: np.ndarray, steps: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """(B, n_actions): the change each step applies to ``current`` within [lo, hi] (the env's rule,
    ``min(max(current + step, lo), hi) - current``, before cooldowns)."""
    current = np.asarray(current, dtype=np.int64)[:, None]
    return np.clip(current + steps[None, :], lo, hi) - current


def action_up(want: np.ndarray, current: np.ndarray, steps: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Index into ``steps`` of the smallest effective change (after the bounds) at least ``want``, or of the largest
    one if none reaches it; among equal effective changes the smallest |step| (as the ``oracle`` rounds)."""
    eff = bounded(current, steps, lo, hi)
    gap = eff - want[:, None]
    big = 4 * (hi + int(np.abs(steps).max()) + 1)
    primary = np.where(gap >= 0, gap, big - gap)
    m = int(np.abs(steps).max())
    return np.argmin(primary * (m + 1) + np.abs(steps)[None, :], axis=1).astype(np.int64)


def rule_plans(
    config: EnvConfig, specs: tuple[str, ...], scenario: str | None
) -> tuple[list[RulePolicy], list[str], list[str]]:
    """(the rule policies of ``specs`` on ``config``, their specs, the specs left out): a spec whose setting does
    not exist (``<name>@tuned`` without a scenario or without a tuned file for it) is left out; a policy that is
    not a rule policy is refused."""
    from agents.registry import make_policy  # the registry imports this module

    rules, names, left = [], [], []
    for spec in specs:
        try:
            policy = make_policy(spec, config, scenario=scenario)
        except PolicyConfigError:
            left.append(spec)
            continue
        if not isinstance(policy, RulePolicy):
            raise PolicyConfigError(f"planner: rule_plans: {spec} is not a rule policy (its state cannot be copied)")
        rules.append(policy)
        names.append(spec)
    return rules, names, left


def copy_policy(rule: RulePolicy) -> RulePolicy:
    """A new rule policy of the same class, config and parameters (its own state)."""
    return type(rule)(rule.env_config, rule.params)


def copy_rows(src: Any, dst: Any, rows: np.ndarray) -> None:
    """``dst`` (a rule policy reset for ``len(rows)`` clusters) takes the per-cluster state of ``src``'s clusters
    ``rows``: every numpy array whose first axis is the cluster (``src.num_envs`` long in ``src``,
    ``dst.num_envs`` in ``dst``), also in its parts (alarms, data points), as whole-array fancy indexing."""
    _copy_arrays(src, dst, rows, src.num_envs, dst.num_envs, 0)


def _copy_arrays(src: Any, dst: Any, rows: np.ndarray, n: int, m: int, depth: int) -> None:
    for name, v in vars(src).items():
        w = getattr(dst, name, None)
        if isinstance(v, np.ndarray):
            if v.ndim and isinstance(w, np.ndarray) and v.shape[0] == n and w.shape == (m, *v.shape[1:]):
                setattr(dst, name, v[rows].copy())
        elif depth < 3 and type(v) is type(w) and hasattr(v, "__dict__") and not isinstance(v, _NOT_STATE):
            _copy_arrays(v, w, rows, n, m, depth + 1)
