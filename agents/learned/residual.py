"""Residual policy learning on top of a rule (Silver et al. 2018, "Residual Policy Learning", arXiv:1812.06298;
Johannink et al., "Residual Reinforcement Learning for Robot Control", ICRA 2019): the agent does not choose the
scale step itself but a correction of the step a rule policy proposes.

With ``residual: {policy: "predictive@generalist", max_offset: K}`` the agent's action space is ``Discrete(2K+1)``;
action ``a`` moves the rule's chosen step by ``a - K`` places in the env's ``scaling.scale_steps`` ordered by
change (clipped to the first and last step), so action ``K`` ("zero correction") applies exactly the rule's step.
The agent observes the env's observation followed by the one-hot of the rule's proposed step (in the order of
``scale_steps``). The rule runs per cluster beside the env: :class:`ResidualVecEnv` in training (it wraps the
native VecEnv), :class:`ResidualPolicy` in evaluation and the benchmark (it wraps the loaded model).

Gating (``residual: {experts: [...]}``): the agent also chooses WHICH rule to follow, among ``policy`` (expert 0)
and the ``experts`` (a mixture of experts with a hard gate; Jacobs et al. 1991). Every expert runs every step (its
windows see every step, followed or not); the action space is ``Discrete(E (2K+1))`` for E experts, action ``a``
follows expert ``a // (2K+1)`` corrected by ``a % (2K+1) - K`` places, and the observation is followed by the
one-hot of each expert's proposal. With no ``experts`` this is exactly the residual above (E = 1); action ``K`` is
expert 0's step, unchanged. ``max_offset: 0`` is a pure gate (``Discrete(E)``: action ``e`` plays expert ``e``).

Holding a choice (``residual: {hold: k}``): the agent decides every k env steps and its choice (expert and
correction) acts for k steps, each step on the experts' fresh proposals (they still see every step); training sees
one transition per k steps with the k rewards summed (a semi-MDP with a fixed option length: Sutton, Precup and
Singh, "Between MDPs and semi-MDPs", Artificial Intelligence 1999; "action repeat" in Mnih et al. 2015). A per-step
gate that deviates from expert 0 for one step is undone by expert 0 on the next (one rule's scale-in is the next
one's scale-out), so its exploration sees little of what following another rule for a while would give.

Syncing the experts that did not act (``residual: {sync: true}``): a rule that keeps its own desired count between
steps (step scaling adds its adjustment to it, threshold waits for the fleet to reach it; Amazon EC2 Auto Scaling,
"Step and simple scaling policies": the adjustment applies to the *current* capacity) drifts from the real fleet while
another expert acts: on the tuning seeds of steady the flash-crowd step-scaling expert's desired count was 41
instances off the real fleet when shadowing (28 even while acting, from earlier shadowing). With ``sync`` every expert
whose proposal was not the applied step is told the count the applied step reaches (its ``desired``, and its memory of
a coarser step accepted earlier is dropped), as if it had decided that step itself. KPA/HPA-style rules recompute
their count from the metrics each step and are unchanged by it.

A paired baseline in training (``residual: {paired_base: true}``): the agent's reward each env step is its own minus
what expert 0 alone earns on a copy of the same clusters (:class:`PairedBase`: the same configs and seeds, so every
episode draws the same settings at reset, and the same random numbers until the two fleets first differ). Expert 0's
reward does not depend on the agent's actions, so the policy gradient's expectation is unchanged (a baseline that
does not depend on the action; Williams 1992, Greensmith, Bartlett and Baxter 2004), while the variance of returns
shared by both runs (when a flash crowd or a failure burst hits, drawn per episode) cancels: the paired comparison
the verdict makes (per-seed reward differences), made per step in training. Evaluation and the benchmark use the
env's own reward; the training's episode returns (VecMonitor) become the gains over expert 0.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.vec_env import VecEnvWrapper

from scaling_env.config import ConfigError, EnvConfig
from scaling_env.envs.info import batch_info
from scaling_env.envs.sb3 import ServerlessScalingVecEnv

from ..actions import controlled_count, counts_reached
from ..base import PolicyBase, PolicyParams


def step_order(config: EnvConfig) -> tuple[np.ndarray, np.ndarray]:
    """(rank of each action index in the scale steps sorted by change, action index of each rank)."""
    by_change = np.argsort(np.asarray(config.scaling.scale_steps), kind="stable")
    rank = np.empty_like(by_change)
    rank[by_change] = np.arange(len(by_change))
    return rank, by_change


def corrected(rule_actions: np.ndarray, offsets: np.ndarray, config: EnvConfig, max_offset: int) -> np.ndarray:
    """The applied action indices: each rule action moved by ``offset - max_offset`` places in the ordered steps."""
    rank, by_change = step_order(config)
    moved = np.clip(rank[rule_actions] + np.asarray(offsets, dtype=np.int64) - max_offset, 0, len(rank) - 1)
    return by_change[moved].astype(np.int64)


def with_proposal(obs: np.ndarray, rule_actions: np.ndarray, n_actions: int) -> np.ndarray:
    """The observation followed by the one-hot of the rule's proposed action (``rule_actions`` of shape (n,)), or
    of each expert's (shape (n, E): E one-hots, expert 0's first)."""
    proposals = np.asarray(rule_actions, dtype=np.int64).reshape(len(obs), -1)
    onehot = np.zeros((len(obs), proposals.shape[1], n_actions), dtype=np.float32)
    onehot[np.arange(len(obs))[:, None], np.arange(proposals.shape[1])[None, :], proposals] = 1.0
    return np.concatenate([np.asarray(obs, dtype=np.float32), onehot.reshape(len(obs), -1)], axis=1)


def gated(proposals: np.ndarray, actions: np.ndarray, config: EnvConfig, max_offset: int) -> np.ndarray:
    """The applied action indices: action ``a`` follows expert ``a // (2 max_offset + 1)`` (a column of
    ``proposals``, shape (n, E)) moved by ``a % (2 max_offset + 1) - max_offset`` places (:func:`corrected`)."""
    width = 2 * max_offset + 1
    actions = np.asarray(actions, dtype=np.int64).reshape(-1)
    proposals = np.asarray(proposals, dtype=np.int64).reshape(len(actions), -1)
    followed = proposals[np.arange(len(actions)), actions // width]
    return corrected(followed, actions % width, config, max_offset)


def sync_experts(
    rules: list[Any], proposals: np.ndarray, applied: np.ndarray, current: np.ndarray, config: EnvConfig
) -> None:
    """Tell each rule whose proposal (a column of ``proposals``, shape (n, E)) is not the ``applied`` action the
    count that action reaches from ``current`` (module docstring, ``sync``): its ``desired`` becomes that count and
    its memory of a coarser step (``rounded_from``) is dropped. Rules without a ``desired`` array are left alone."""
    reached = counts_reached(np.asarray(current, dtype=np.int64), config, np.asarray(applied, dtype=np.int64))
    for e, rule in enumerate(rules):
        accept_counts(rule, proposals[:, e] != applied, reached)


def accept_counts(rule: Any, mask: np.ndarray, counts: np.ndarray) -> None:
    """Make ``counts`` (one per cluster) the decision of ``rule`` in the clusters of ``mask``: its ``desired``
    becomes that count and its memory of a coarser step (``rounded_from``) is dropped. Rules without a ``desired``
    array (one per cluster) are left alone."""
    desired = getattr(rule, "desired", None)
    if not isinstance(desired, np.ndarray) or desired.shape != counts.shape:
        return
    desired[mask] = counts[mask]
    rounded_from = getattr(rule, "rounded_from", None)
    if isinstance(rounded_from, np.ndarray):
        rounded_from[mask] = -1


def make_rule(spec: str, config: EnvConfig, scenario: str | None = None) -> Any:
    """The rule of an expert spec: a registry spec or policy file, optionally ``"... with redundancy from n"``
    (redundancy.py: the rule with a redundancy floor)."""
    from ..registry import make_policy
    from .redundancy import RedundancyFloor, split_spec

    rule, start = split_spec(spec)
    policy = make_policy(rule, config, scenario=scenario)
    return policy if start is None else RedundancyFloor(policy, config, start)


RULES_RECORD = "rules.json"  # in a run folder: the parameters each of its rules played on each scenario at training


def rule_settings(specs: list[str], scenarios: dict[str, EnvConfig]) -> dict[str, dict[str, Any]]:
    """``{scenario: {spec: params}}``: the parameters each rule spec plays on each scenario, as a run records them
    when it starts. A spec without a setting for a scenario (``@tuned`` on a training family) is left out."""
    from ..base import PolicyConfigError

    out: dict[str, dict[str, Any]] = {}
    for name, config in scenarios.items():
        got = {}
        for spec in dict.fromkeys(specs):
            try:
                got[spec] = make_rule(spec, config, scenario=name).params.model_dump(mode="json")
            except (PolicyConfigError, ConfigError):
                continue
        out[name] = got
    return out


def _recorded(record: dict[str, Any], scenario: str | None, spec: str) -> dict[str, Any] | None:
    """The recorded parameters of ``spec`` on ``scenario`` (a name, or a YAML path: its stem), or, for a spec that
    reads the same file on every scenario (not ``@tuned``), on any recorded scenario."""
    for key in (scenario or "", Path(scenario or "").stem):
        if spec in record.get(key, {}):
            return record[key][spec]
    if "@tuned" not in spec:
        return next((entry[spec] for entry in record.values() if spec in entry), None)
    return None


def check_rule_settings(run_dir: Path | None, scenario: str | None, rules: dict[str, Any]) -> None:
    """ConfigError if a rule of ``rules`` (``{spec: policy}``, as built now for ``scenario``) plays other parameters
    than the run in ``run_dir`` recorded at training (:data:`RULES_RECORD`): a re-tune rewrites a tuned file under
    the same path, and the trained gate would silently follow other experts. The recorded parameters are read
    through the rule's parameter model, so a parameter added since with its default is no change. Runs without a
    record pass."""
    path = None if run_dir is None else Path(run_dir) / RULES_RECORD
    if path is None or not path.is_file():
        return
    try:
        record = json.loads(path.read_text())
        if not isinstance(record, dict) or not all(isinstance(v, dict) for v in record.values()):
            raise ValueError
    except ValueError:
        raise ConfigError(f"{path}: not a rules record (a JSON object of scenarios)") from None
    for spec, policy in rules.items():
        had = _recorded(record, scenario, spec)
        if had is None:
            continue
        now = policy.params.model_dump(mode="json")
        try:
            had = type(policy.params).model_validate(had).model_dump(mode="json")
        except ValueError:
            pass  # a parameter since removed or renamed: compared as recorded, so it shows as a change
        if had != now:
            changed = ", ".join(
                f"{k}: {had.get(k)!r} -> {now.get(k)!r}" for k in sorted({*had, *now}) if had.get(k) != now.get(k)
            )
            name, _, kind = spec.partition("@")
            folder = "generalist" if kind == "generalist" else Path(scenario or "").stem
            where = f" (configs/policies/tuned/{folder}/{name}.yaml)" if kind else ""
            raise ConfigError(
                f"{run_dir} was trained with other settings of {spec}{where} on {scenario or 'its scenarios'} "
                f"({changed}; recorded in {path.name}): the rules were re-tuned since. Train the run again, or "
                "restore the old settings"
            )


class ResidualVecEnv(VecEnvWrapper):
    """The native VecEnv (``base``, possibly under a reward wrapper ``venv``) with a rule per training scenario
    proposing each cluster's step; the agent's action corrects it (module docstring)."""

    def __init__(
        self,
        base: ServerlessScalingVecEnv,
        spec: str,
        max_offset: int,
        venv: Any = None,
        names: list[str] | None = None,
        experts: tuple[str, ...] | list[str] = (),
        hold: int = 1,
        sync: bool = False,
        paired: PairedBase | None = None,
    ) -> None:
        inner = base if venv is None else venv
        self.hold = int(hold)
        self.sync = bool(sync)
        for config, name in zip(base.configs, names or [None] * len(base.configs)):
            if config.episode_steps % self.hold:
                raise ValueError(
                    f"residual.hold ({self.hold}) must divide the episode's steps ({config.episode_steps}, "
                    f"scenario {name}): a held choice would run into the next episode"
                )
        n_obs = int(base.observation_space.shape[0])
        self.n_actions = int(base.action_space.n)
        specs = (spec, *experts)
        width = len(specs) * self.n_actions
        low = np.concatenate([base.observation_space.low, np.zeros(width, dtype=np.float32)])
        high = np.concatenate([base.observation_space.high, np.ones(width, dtype=np.float32)])
        super().__init__(
            inner,
            observation_space=spaces.Box(low, high, shape=(n_obs + width,), dtype=np.float32),
            action_space=spaces.Discrete(len(specs) * (2 * max_offset + 1)),
        )
        self.base = base
        self.max_offset = int(max_offset)
        names = names or [None] * len(base.configs)
        # per training scenario, its rules: expert 0 (``spec``) first
        self.rules = [[make_rule(x, c, scenario=n) for x in specs] for c, n in zip(base.configs, names)]
        self.rule_actions = np.zeros((base.num_envs, len(specs)), dtype=np.int64)
        self.current = np.zeros(base.num_envs, dtype=np.int64)  # each cluster's fleet when the rules proposed
        # called after each env step inside a held choice but the last (which the caller sees itself): e.g. the
        # training's per-episode metrics, which read the native env's step arrays
        self.inner_step_hooks: list[Any] = []
        self.paired = paired  # expert 0 alone on a copy of the clusters: its rewards are subtracted (docstring)

    def _propose(self, obs: np.ndarray, fresh: np.ndarray | None) -> np.ndarray:
        # the rules read the simulators' own state: after an autoreset, the new episode's first info
        for rules, sim, sl, config in zip(self.rules, self.base.sims, self.base.slices, self.base.configs):
            info = batch_info(sim.metrics, sim.reward_parts)
            self.current[sl] = controlled_count(info, config)
            for e, rule in enumerate(rules):
                if fresh is not None and fresh[sl].all():
                    rule.reset(num_envs=sl.stop - sl.start)
                self.rule_actions[sl, e] = rule.act_batch(obs[sl], info)
        return with_proposal(obs, self.rule_actions, self.n_actions)

    def seed(self, seed: Any = None) -> Any:
        seeds = self.venv.seed(seed)
        if self.paired is not None:  # the copy gets the very seeds the clusters got (None would draw others)
            self.paired.seed(list(seeds))
        return seeds

    def reset(self) -> np.ndarray:
        obs = self.venv.reset()
        if self.paired is not None:
            self.paired.reset()
        for rules, sl in zip(self.rules, self.base.slices):
            for rule in rules:
                rule.reset(num_envs=sl.stop - sl.start)
        return self._propose(obs, None)

    def _apply(self, actions: np.ndarray) -> None:
        applied = np.empty(len(self.rule_actions), dtype=np.int64)
        for config, sl in zip(self.base.configs, self.base.slices):
            applied[sl] = gated(self.rule_actions[sl], np.asarray(actions)[sl], config, self.max_offset)
        if self.sync:
            for rules, config, sl in zip(self.rules, self.base.configs, self.base.slices):
                sync_experts(rules, self.rule_actions[sl], applied[sl], self.current[sl], config)
        self.venv.step_async(applied)

    def step_async(self, actions: np.ndarray) -> None:
        self.actions = np.asarray(actions).copy()
        self._apply(self.actions)

    def _inner_step(self) -> Any:
        obs, rewards, dones, infos = self.venv.step_wait()
        if self.paired is not None:
            rewards = np.asarray(rewards, dtype=np.float64) - self.paired.step(dones)
        return obs, rewards, dones, infos

    def step_wait(self) -> Any:
        obs, rewards, dones, infos = self._inner_step()
        if self.hold > 1:  # the same choice for hold steps, on the experts' fresh proposals; rewards summed
            total = np.asarray(rewards, dtype=np.float64).copy()
            for _ in range(self.hold - 1):
                if dones.any():
                    raise RuntimeError("residual.hold: an episode ended inside a held choice")
                for hook in self.inner_step_hooks:  # the step just taken, not the choice's last
                    hook()
                self._propose(obs, None)
                self._apply(self.actions)
                obs, rewards, dones, infos = self._inner_step()
                total += rewards
            rewards = total
        rewards = np.asarray(rewards).astype(np.float32)  # as the native VecEnv returns them
        for i in np.flatnonzero(dones):
            infos[i]["terminal_observation"] = with_proposal(
                infos[i]["terminal_observation"][None], self.rule_actions[i : i + 1], self.n_actions
            )[0]
        return self._propose(obs, dones), rewards, dones, infos


class PairedBase:
    """Expert 0 (``spec``) alone on a copy of ``base``'s clusters, stepped beside them: :meth:`step` returns its
    step rewards, which the paired baseline subtracts from the agent's (module docstring). ``wrap``: the reward
    wrapper the training env has (e.g. FlapPenalty), applied to the copy too, so both rewards are the same sum.
    ``parallel``: the simulator's kernel choice, as for the training env (bit-identical either way)."""

    def __init__(
        self,
        base: ServerlessScalingVecEnv,
        spec: str,
        names: list[str] | None = None,
        wrap: Any = None,
        parallel: bool | None = None,
    ):
        counts = [sl.stop - sl.start for sl in base.slices]
        self.env = ServerlessScalingVecEnv(counts, base.configs, parallel=parallel)
        self.venv = self.env if wrap is None else wrap(self.env)
        names = names or [None] * len(base.configs)
        self.rules = [make_rule(spec, c, scenario=n) for c, n in zip(base.configs, names)]
        self.obs: np.ndarray | None = None

    def seed(self, seeds: Any) -> None:
        self.env.seed(seeds)

    def reset(self) -> None:
        self.obs = self.venv.reset()
        for rule, sl in zip(self.rules, self.env.slices):
            rule.reset(num_envs=sl.stop - sl.start)

    def step(self, dones: np.ndarray) -> np.ndarray:
        """Expert 0's rewards (float64) for one env step; ``dones``, the training clusters' episode ends this step,
        must be the copy's too (both run episodes of the same fixed length from the same resets)."""
        if self.obs is None:
            raise RuntimeError("paired_base: step before reset")
        actions = np.empty(self.env.num_envs, dtype=np.int64)
        for rule, sim, sl in zip(self.rules, self.env.sims, self.env.slices):
            actions[sl] = rule.act_batch(self.obs[sl], batch_info(sim.metrics, sim.reward_parts))
        self.venv.step_async(actions)
        self.obs, rewards, ends, _ = self.venv.step_wait()
        if not np.array_equal(ends, dones):
            raise RuntimeError("paired_base: the copy's episodes ended at other steps than the training clusters'")
        for rule, sl in zip(self.rules, self.env.slices):
            if ends[sl].all():
                rule.reset(num_envs=sl.stop - sl.start)
        return np.asarray(rewards, dtype=np.float64)


class ResidualPolicy(PolicyBase):
    """A batched policy: ``rule`` proposes each cluster's step, ``agent`` (a policy acting on the observation
    followed by the proposal's one-hot, whose actions are corrections) moves it (module docstring)."""

    name = "residual"
    Params = PolicyParams

    def __init__(
        self,
        env_config: Any,
        *,
        rule: Any,
        agent: Any,
        max_offset: int,
        experts: tuple[Any, ...] | list = (),
        hold: int = 1,
        sync: bool = False,
    ) -> None:
        super().__init__(env_config)
        self.sync = bool(sync)  # tell the experts that did not act what the applied step reaches (module docstring)
        self.rule = rule
        self.experts = [rule, *experts]  # the gate's choices, expert 0 the rule
        self.agent = agent
        self.max_offset = int(max_offset)
        self.n_actions = len(self.env_config.scaling.scale_steps)
        self.hold = int(hold)  # the agent decides every hold steps (module docstring)
        self.steps = 0
        self.actions: np.ndarray | None = None

    def bind(self, env: Any) -> None:
        for p in (*self.experts, self.agent):
            if hasattr(p, "bind"):
                p.bind(env)

    def reset(self, seed: int | None = None, num_envs: int = 1) -> None:
        super().reset(seed, num_envs)
        for rule in self.experts:
            rule.reset(seed, num_envs)
        self.agent.reset(seed, num_envs)
        self.steps, self.actions = 0, None

    def act_batch(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        proposed = np.stack([np.asarray(r.act_batch(obs, info), dtype=np.int64) for r in self.experts], axis=1)
        if self.actions is None or self.steps % self.hold == 0:
            self.actions = np.asarray(self.agent.act_batch(with_proposal(obs, proposed, self.n_actions), info))
        self.steps += 1
        applied = gated(proposed, self.actions, self.env_config, self.max_offset)
        if self.sync:
            sync_experts(self.experts, proposed, applied, controlled_count(info, self.env_config), self.env_config)
        return applied


def prefer_zero_correction(model: Any, max_offset: int, bias: float) -> None:
    """Add ``bias`` to the zero-correction logit of a fresh PPO policy's action head, so that early training
    follows the rule (the head's weights start near 0: SB3 initialises it with gain 0.01)."""
    import torch

    if bias:
        with torch.no_grad():
            model.policy.action_net.bias[max_offset] += float(bias)
