"""The training configuration: one YAML file per algorithm setup, validated like the env config.

A ``TrainConfig`` holds what a run needs besides the env: the algorithm, the scenarios to train and evaluate on,
the budget, the seeds, how often to evaluate and checkpoint, observation/reward normalisation and the PPO
hyperparameters. Unknown keys and bad values are errors naming the field. ``load_train_config`` applies
``--set key=value`` overrides (dotted keys, values parsed as YAML) before validation, so an override is
checked exactly like the file.

Schedules (``learning_rate``, ``clip_range``) are a number or a mapping such as
``{schedule: linear, start: 3.0e-4, end: 0.0}``; they become SB3 schedule objects (callables of the remaining
progress, 1 at the start of training and 0 at the end), never evaluated strings.

This module does not import torch: ``policy_kwargs()`` maps activation names to torch classes when asked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Union

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from scaling_env.config import ConfigError, deep_merge, format_validation_error, read_yaml_mapping

# the benchmark's first seed (agents.experiments.benchmark.DEFAULT_SEED): training seeds stay below it, so
# that no training cluster starts from an episode the benchmark evaluates on
FIRST_BENCHMARK_SEED = 1000
# seeds kept for benchmark episodes (the benchmark's default is 1000..1019): model selection never sees them
BENCHMARK_SEEDS_END = 1_000_000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class LinearSchedule(_Strict):
    """From ``start`` at the beginning of training to ``end`` after ``end_fraction`` of it, then flat."""

    schedule: Literal["linear"]
    start: float = Field(ge=0.0)
    end: float = Field(0.0, ge=0.0)
    end_fraction: float = Field(1.0, gt=0.0, le=1.0, description="share of training over which it moves")


ScheduleValue = Union[Annotated[float, Field(gt=0.0)], LinearSchedule]


def make_schedule(value: ScheduleValue) -> Any:
    """An SB3 schedule object (picklable) for a constant or a linear schedule."""
    from stable_baselines3.common.utils import ConstantSchedule
    from stable_baselines3.common.utils import LinearSchedule as SB3Linear

    if isinstance(value, LinearSchedule):
        return SB3Linear(value.start, value.end, value.end_fraction)
    return ConstantSchedule(float(value))


class NetArch(_Strict):
    """Hidden layer sizes of the policy (pi) and value (vf) networks."""

    pi: tuple[int, ...] = Field((64, 64), max_length=8)
    vf: tuple[int, ...] = Field((64, 64), max_length=8)


class PolicyKwargs(_Strict):
    net_arch: NetArch = Field(default_factory=NetArch)
    activation_fn: Literal["tanh", "relu", "elu", "leaky_relu", "gelu", "silu"] = "tanh"
    ortho_init: bool = True

    @model_validator(mode="before")
    @classmethod
    def _net_arch_list(cls, data: Any) -> Any:
        # net_arch: [64, 64] is shorthand for the same layers in both networks, as in SB3
        if isinstance(data, dict) and isinstance(data.get("net_arch"), (list, tuple)):
            layers = list(data["net_arch"])
            data = {**data, "net_arch": {"pi": layers, "vf": layers}}
        return data


class PPOParams(_Strict):
    """PPO hyperparameters (the names and meanings of stable-baselines3's ``PPO``)."""

    learning_rate: ScheduleValue = Field(
        default_factory=lambda: LinearSchedule(schedule="linear", start=3e-4),
        description="a number or {schedule: linear, start, end}",
    )
    n_steps: int = Field(128, ge=1, le=100_000, description="steps per cluster per rollout")
    batch_size: int = Field(2048, ge=2, le=10_000_000, description="minibatch size")
    n_epochs: int = Field(10, ge=1, le=1000)
    gamma: float = Field(0.99, gt=0.0, le=1.0)
    gae_lambda: float = Field(0.95, ge=0.0, le=1.0)
    clip_range: ScheduleValue = Field(0.2, description="a number or {schedule: linear, start, end}")
    clip_range_vf: float | None = Field(None, gt=0.0)
    normalize_advantage: bool = True
    ent_coef: float = Field(0.001, ge=0.0)
    vf_coef: float = Field(0.5, ge=0.0)
    max_grad_norm: float = Field(0.5, gt=0.0)
    target_kl: float | None = Field(None, gt=0.0)
    policy_kwargs: PolicyKwargs = Field(default_factory=PolicyKwargs)


class NormalizeConfig(_Strict):
    """VecNormalize: running mean/std of observations and of the discounted return."""

    obs: bool = True
    reward: bool = True
    clip_obs: float = Field(10.0, gt=0.0)
    clip_reward: float = Field(10.0, gt=0.0)
    reward_per_family: bool = Field(
        False, description="the return's scale kept per training scenario (agents/learned/family_normalize.py)"
    )

    @model_validator(mode="after")
    def _per_family_needs_reward(self) -> NormalizeConfig:
        if self.reward_per_family and not self.reward:
            raise ValueError("reward_per_family needs reward: true (it is how the reward is normalised)")
        return self


class RecurrentConfig(_Strict):
    """The LSTM of sb3-contrib's ``RecurrentPPO`` (``MlpLstmPolicy``; names as its ``policy_kwargs``)."""

    lstm_hidden_size: int = Field(64, ge=1, le=4096)
    n_lstm_layers: int = Field(1, ge=1, le=8)
    shared_lstm: bool = Field(False, description="one LSTM for the policy and the value network")
    enable_critic_lstm: bool = Field(True, description="a separate LSTM for the value network")

    @model_validator(mode="after")
    def _one_critic_lstm(self) -> RecurrentConfig:
        if self.shared_lstm and self.enable_critic_lstm:
            raise ValueError("shared_lstm and enable_critic_lstm cannot both be true (sb3-contrib's rule)")
        return self


class SloLagrangian(_Strict):
    """A per-scenario SLO penalty that adapts during training (a Lagrange multiplier per training scenario; the
    penalty form of PPO-Lagrangian: Ray, Achiam and Amodei, "Benchmarking Safe Exploration in Deep Reinforcement
    Learning", 2019). The constraint is the verdict's "no higher SLO share" against expert 0 of a paired residual:
    on each training scenario, the agent's share of SLO-violating steps at most ``(1 - margin)`` times what expert
    0 alone has on the paired copy of the same clusters. At the start of every rollout each scenario's penalty
    becomes ``clip(penalty + lr * gap, 0, max)``, the gap in percentage points over the previous rollout's env steps
    (agents/learned/shaping.py, :func:`lagrange_step`); it starts at ``reward_shaping.slo_violation``."""

    lr: float = Field(gt=0.0, le=1000.0, description="penalty change per percentage point of share gap, per rollout")
    max: float = Field(30.0, gt=0.0, le=100.0, description="largest penalty per SLO-violating step")
    margin: Annotated[float, Field(ge=0.0, lt=1.0)] | dict[str, Annotated[float, Field(ge=0.0, lt=1.0)]] = Field(
        0.0,
        description="aim below expert 0's share by this fraction of it (0: at most equal); or per training "
        "scenario, {scenario: margin}, 0 for the scenarios not named",
    )

    def margins(self, names: list[str]) -> np.ndarray:
        """The margin of each training scenario in ``names``."""
        if isinstance(self.margin, dict):
            return np.array([self.margin.get(n, 0.0) for n in names], dtype=np.float64)
        return np.full(len(names), float(self.margin))


class RewardShaping(_Strict):
    """Penalties added to the env's reward during training only, against flapping (the periodic evaluation, the
    benchmark and the verdict use the env's reward). Each is in the env's reward units, per step.

    ``blocked``: the action asked for a change that a cooldown blocked (``info['blocked_by_cooldown']``); the env
    charges nothing for it (``reward.weights.scaling`` scales the *applied* change), so without this a policy can
    ask to scale in on every step at no cost. ``reversal``: the applied change goes the other way from the
    cluster's previous applied change in the episode (out after in, or in after out). ``slo_violation``: the step
    violated the SLO (``info['slo_violated']``), on top of the env's own ``reward.weights.slo_violation``.
    ``slo_violation_from``: the SLO penalty starts once training has taken this many agent steps (the unit of
    ``total_timesteps``); before, it is 0, so the policy first learns the env's own reward (issue 15, rl34)."""

    blocked: float = Field(0.0, ge=0.0, le=100.0, description="penalty per blocked request")
    reversal: float = Field(0.0, ge=0.0, le=100.0, description="penalty per direction reversal of applied changes")
    slo_violation: float = Field(0.0, ge=0.0, le=100.0, description="penalty per SLO-violating step (extra)")
    slo_violation_from: int = Field(0, ge=0, description="agent steps of training before the SLO penalty starts")
    slo_lagrangian: SloLagrangian | None = Field(
        None, description="adapt the SLO penalty per training scenario to keep the SLO share at expert 0's"
    )

    @model_validator(mode="after")
    def _from_needs_a_penalty(self) -> RewardShaping:
        if self.slo_violation_from > 0 and self.slo_violation == 0:
            raise ValueError("slo_violation_from is set but slo_violation is 0: there is no penalty to start")
        if self.slo_lagrangian is not None and self.slo_violation > self.slo_lagrangian.max:
            raise ValueError(
                f"slo_violation ({self.slo_violation}) is above slo_lagrangian.max ({self.slo_lagrangian.max}): the "
                "adaptive penalty starts at slo_violation and never exceeds max"
            )
        if self.slo_violation_from > 0 and self.slo_lagrangian is not None:
            raise ValueError(
                "slo_violation_from and slo_lagrangian: choose one (the adaptive penalty sets itself from the start)"
            )
        return self

    @property
    def active(self) -> bool:
        return self.blocked > 0 or self.reversal > 0 or self.slo_violation > 0 or self.slo_lagrangian is not None


class ResidualConfig(_Strict):
    """Residual policy learning (agents/learned/residual.py): the agent corrects the step a rule proposes.

    ``policy``: the rule (a registry spec, e.g. ``predictive@generalist``; ``@tuned`` needs a tuned file per
    training scenario). ``max_offset``: the agent moves the rule's step by -max_offset..+max_offset places in the
    scale steps ordered by change. ``zero_bias``: added to the zero-correction logit of the fresh policy, so that
    early training follows the rule (3.0: about 83 % zero correction with max_offset 2). ``experts``: more rules
    the agent may follow instead of ``policy`` (a gate: it chooses one rule per step and corrects its step; the
    zero-correction action follows ``policy``). ``max_offset: 0`` with ``experts`` is a pure gate: the agent only
    chooses which rule acts.

    ``policy: best_generalist`` and ``experts: auto`` are chosen by the ablation (agents/experiments/ablation.py,
    ``resolve_rules``) from the rules' rewards on the tuning seeds 0-19: the best one-setting rule, and every
    evaluation scenario's best rule; ``experts: auto_at_slo`` takes every scenario's best rule among those whose SLO
    share there is no higher than ``policy``'s (the verdict's "win at no higher SLO share"), and
    ``auto_at_slo_robust`` adds each scenario's best rule that beats ``policy`` at a significantly lower SLO share
    (paired tests on the tuning seeds). A training run needs them resolved to rules."""

    policy: str = Field("predictive@generalist", min_length=1, description="the rule whose steps are corrected")
    max_offset: int = Field(
        2, ge=0, le=16, description="largest correction, in places of the ordered scale steps (0: a pure gate)"
    )
    zero_bias: float = Field(3.0, ge=0.0, le=20.0, description="initial bias of the zero-correction logit")
    experts: tuple[str, ...] = Field(
        (), max_length=16, description="other rules (specs or policy files) the agent may choose to follow instead"
    )
    hold: int = Field(
        1, ge=1, le=60, description="the agent decides every hold env steps; its choice acts for all of them"
    )
    sync: bool = Field(
        False, description="tell the experts that did not act the count the applied step reaches (residual.py)"
    )
    paired_base: bool = Field(
        False,
        description="train on the reward minus what the rule alone earns on a copy of the same clusters (residual.py)",
    )

    @field_validator("policy")
    @classmethod
    def _resolved_policy(cls, value: str) -> str:
        if value == AUTO_GENERALIST:
            raise ValueError(
                f"'{AUTO_GENERALIST}' is chosen from the rules' rewards on the tuning seeds by the ablation "
                "(python -m agents.experiments.ablation); a training run needs a rule here (e.g. kpa@generalist)"
            )
        return value

    @field_validator("experts", mode="before")
    @classmethod
    def _resolved_experts(cls, value: Any) -> Any:
        if value in (AUTO_EXPERTS, AUTO_EXPERTS_AT_SLO, AUTO_EXPERTS_AT_SLO_ROBUST):
            raise ValueError(
                f"'{value}' is chosen from the rules' rewards (and SLO shares) on the tuning seeds by the ablation "
                "(python -m agents.experiments.ablation); a training run needs a list of rules here"
            )
        return value

    @model_validator(mode="after")
    def _something_to_choose(self) -> ResidualConfig:
        if self.max_offset == 0 and not self.experts:
            raise ValueError("max_offset 0 without experts leaves the agent nothing to choose (give experts)")
        return self

    @field_validator("experts")
    @classmethod
    def _distinct(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        specs = (info.data.get("policy"), *value)
        if len(set(specs)) != len(specs):
            raise ValueError(f"the rules to follow must be distinct (policy and experts: {list(specs)})")
        return value


ALGOS = ("ppo", "maskable_ppo", "recurrent_ppo")
# residual rules the ablation chooses on the tuning seeds (agents.experiments.ablation.resolve_rules)
AUTO_GENERALIST = "best_generalist"
AUTO_EXPERTS = "auto"
AUTO_EXPERTS_AT_SLO = "auto_at_slo"
AUTO_EXPERTS_AT_SLO_ROBUST = "auto_at_slo_robust"


class TrainConfig(_Strict):
    """Everything a training run needs besides the env configs (which come from the scenarios)."""

    algo: Literal["ppo", "maskable_ppo", "recurrent_ppo"] = Field(
        "ppo",
        description="ppo (SB3), maskable_ppo (sb3-contrib: the env's action masks exclude actions a cooldown or "
        "the bounds would block), recurrent_ppo (sb3-contrib: an LSTM policy, options in `recurrent`)",
    )
    frame_stack: int = Field(
        1, ge=1, le=64, description="the policy sees the last k observations (SB3 VecFrameStack; 1: no stacking)"
    )
    recurrent: RecurrentConfig | None = Field(None, description="LSTM options of recurrent_ppo (default sizes)")
    reward_shaping: RewardShaping = Field(default_factory=RewardShaping)
    residual: ResidualConfig | None = Field(None, description="correct a rule's steps instead of choosing them")
    env_overrides: dict[str, Any] = Field(
        default_factory=dict,
        description="env config values merged into every training and evaluation scenario (e.g. observation "
        "options); a model trained with them is only evaluated on configs that include them",
    )
    scenarios: tuple[str, ...] = Field(
        ("train_diurnal", "train_flash_crowd", "train_failures", "train_cold_start", "train_memory", "train_trace"),
        min_length=1,
        description="training scenarios (names or YAML paths); n_envs is split evenly among them",
    )
    eval_scenarios: tuple[str, ...] | None = Field(
        ("steady", "diurnal", "flash_crowd", "failure_storm", "cold_start_heavy", "memory_pressure", "noisy_trace"),
        min_length=1,
        description="evaluation scenarios (default: the training ones)",
    )
    n_envs: int = Field(128, ge=1, le=65536, description="clusters stepped together")
    total_timesteps: int = Field(4_000_000, ge=1, description="env steps over all clusters")
    schedule_timesteps: int | None = Field(
        None,
        ge=1,
        description="env steps the schedules (learning_rate, clip_range) run over, when training stops before "
        "they end, at total_timesteps: the run is then the first part of a schedule_timesteps run, step for step "
        "(default: total_timesteps)",
    )
    seed: int = Field(0, ge=0, description="training cluster i is seeded seed + i (below the benchmark's seeds)")
    n_eval_episodes: int = Field(20, ge=1, le=100_000, description="evaluation episodes per scenario")
    eval_seed: int = Field(
        1_000_000, ge=0, le=2**31, description="evaluation episode j is seeded eval_seed + j (disjoint from training)"
    )
    eval_freq: int = Field(100_000, ge=0, description="env steps between evaluations (0: never)")
    eval_workers: int = Field(
        2,
        ge=1,
        le=64,
        description="processes that share each evaluation's scenarios, this one included (1: all here); the "
        "rows are the same for any number, only the wall time differs (agents/experiments/eval_split.py)",
    )
    eval_at_start: bool = Field(
        False,
        description="evaluate the untrained model too, before the first update (a row at step 0 of "
        "evaluations.csv), so that it competes for the best model; with residual and a zero_bias above the untrained "
        "head's logits (at most 0.01 x sqrt(the last layer's width): 0.08 for 64) the untrained model plays "
        "residual.policy, so the run keeps a model only where one scored above its rule on the "
        "evaluation episodes (training is unchanged: the evaluation draws nothing from the training's streams)",
    )
    select_by: Literal["reward", "wins_vs_base"] = Field(
        "reward",
        description="which evaluation keeps the best model: the highest mean reward over the evaluation "
        "scenarios, or (wins_vs_base, with residual) the most scenarios where the mean reward beats the "
        "residual's rule on the same episodes at no higher SLO share, ties by mean reward",
    )
    checkpoint_freq: int = Field(500_000, ge=0, description="env steps between checkpoints (0: only the last)")
    normalize: NormalizeConfig = Field(default_factory=NormalizeConfig)
    ppo: PPOParams = Field(default_factory=PPOParams)
    torch_threads: int = Field(1, ge=1, le=256, description="torch intra-op threads")
    sim_threads: bool = Field(
        False,
        description="step each training scenario's clusters with the simulator's threaded kernel (numba prange) "
        "even when they are fewer than 256: bit-identical results, faster while a CPU is free, slower when the "
        "machine is busy (default: the simulator's choice, serial below 256 clusters)",
    )
    device: Literal["cpu", "cuda", "auto"] = "cpu"

    @field_validator("scenarios", "eval_scenarios", mode="before")
    @classmethod
    def _one_name(cls, value: Any) -> Any:
        return (value,) if isinstance(value, (str, Path)) else value

    @field_validator("n_envs")
    @classmethod
    def _enough_clusters(cls, value: int, info: ValidationInfo) -> int:
        scenarios = info.data.get("scenarios") or ()
        if value < len(scenarios):
            raise ValueError(f"n_envs ({value}) must be at least the number of scenarios ({len(scenarios)})")
        return value

    @field_validator("seed")
    @classmethod
    def _below_benchmark(cls, value: int, info: ValidationInfo) -> int:
        n_envs = info.data.get("n_envs", 1)
        if value + n_envs > FIRST_BENCHMARK_SEED:
            raise ValueError(
                f"training seeds [{value}, {value + n_envs - 1}] (seed, n_envs) must stay below the "
                f"benchmark's seeds, which start at {FIRST_BENCHMARK_SEED}"
            )
        return value

    @field_validator("eval_seed")
    @classmethod
    def _unseen_seeds(cls, value: int, info: ValidationInfo) -> int:
        if not {"seed", "n_envs", "n_eval_episodes"} <= info.data.keys():
            return value  # another field is already at fault
        train = range(info.data["seed"], info.data["seed"] + info.data["n_envs"])
        evals = range(value, value + info.data["n_eval_episodes"])
        if train.start < evals.stop and evals.start < train.stop:
            raise ValueError(
                f"evaluation seeds [{evals.start}, {evals.stop - 1}] (eval_seed, n_eval_episodes) "
                f"overlap the training seeds [{train.start}, {train.stop - 1}] (seed, n_envs)"
            )
        if evals.start < BENCHMARK_SEEDS_END and FIRST_BENCHMARK_SEED < evals.stop:
            raise ValueError(
                f"evaluation seeds [{evals.start}, {evals.stop - 1}] (eval_seed, n_eval_episodes) "
                f"overlap the seeds kept for the benchmark [{FIRST_BENCHMARK_SEED}, "
                f"{BENCHMARK_SEEDS_END - 1}]: the best model would be picked on benchmark episodes"
            )
        return value

    @model_validator(mode="after")
    def _memory_options(self) -> TrainConfig:
        if self.recurrent is not None and self.algo != "recurrent_ppo":
            raise ValueError(f"recurrent: LSTM options need algo: recurrent_ppo (algo is {self.algo})")
        if self.algo == "recurrent_ppo" and self.frame_stack > 1:
            raise ValueError(
                f"frame_stack ({self.frame_stack}) with algo: recurrent_ppo: both give the policy a memory; "
                "choose one (frame_stack: 1, or algo: ppo / maskable_ppo)"
            )
        return self

    @model_validator(mode="after")
    def _residual_algo(self) -> TrainConfig:
        if self.residual is not None and self.algo == "maskable_ppo":
            raise ValueError("residual with algo: maskable_ppo: the env's masks are over steps, not corrections")
        return self

    @model_validator(mode="after")
    def _selection_needs_a_base(self) -> TrainConfig:
        if self.select_by == "wins_vs_base" and self.residual is None:
            raise ValueError(
                "select_by: wins_vs_base needs residual: the base it counts wins against is residual.policy"
            )
        if self.eval_at_start and not self.eval_freq:
            raise ValueError("eval_at_start with eval_freq 0: there is no periodic evaluation to start early")
        if self.select_by == "wins_vs_base" and not self.eval_freq:
            raise ValueError("select_by: wins_vs_base with eval_freq 0: there is no evaluation to select by")
        return self

    @model_validator(mode="after")
    def _lagrangian_needs_a_pair(self) -> TrainConfig:
        if self.reward_shaping.slo_lagrangian is not None and (self.residual is None or not self.residual.paired_base):
            raise ValueError(
                "reward_shaping.slo_lagrangian needs residual: {paired_base: true}: its constraint is expert 0's SLO "
                "share on the paired copy of the training clusters"
            )
        lag = self.reward_shaping.slo_lagrangian
        if lag is not None and isinstance(lag.margin, dict):
            from scaling_env.scenarios import scenario_path

            names = [scenario_path(s).stem for s in self.scenarios]  # as load_scenario names them in training
            unknown = [n for n in lag.margin if n not in names]
            if unknown:
                raise ValueError(
                    f"reward_shaping.slo_lagrangian.margin names {unknown[0]!r}, which is not a training scenario "
                    f"(scenarios: {', '.join(names)})"
                )
        return self

    @model_validator(mode="after")
    def _env_overrides_valid(self) -> TrainConfig:
        from scaling_env.config import EnvConfig

        if self.env_overrides:
            try:  # checked on the defaults here; on each scenario when the run starts
                EnvConfig.model_validate(deep_merge(EnvConfig().model_dump(mode="json"), self.env_overrides))
            except ValidationError as exc:
                lines = format_validation_error(exc, "env_overrides", EnvConfig).splitlines()[1:]
                raise ValueError("; ".join("env_overrides." + line.strip() for line in lines)) from None
        return self

    @model_validator(mode="after")
    def _schedule_covers_training(self) -> TrainConfig:
        if self.schedule_timesteps is not None and self.schedule_timesteps < self.total_timesteps:
            raise ValueError(
                f"schedule_timesteps ({self.schedule_timesteps:,}) is below total_timesteps "
                f"({self.total_timesteps:,}): the schedules would end before training does; raise it or leave it "
                "unset (the schedules then run over total_timesteps)"
            )
        return self

    @property
    def horizon(self) -> int:
        """The env steps the schedules run over (``schedule_timesteps``, else ``total_timesteps``)."""
        return self.schedule_timesteps or self.total_timesteps

    @model_validator(mode="after")
    def _penalty_starts_in_training(self) -> TrainConfig:
        start = self.reward_shaping.slo_violation_from
        if start >= self.total_timesteps:
            raise ValueError(
                f"reward_shaping.slo_violation_from ({start:,}) is not below total_timesteps "
                f"({self.total_timesteps:,}): the SLO penalty would never start"
            )
        return self

    @model_validator(mode="after")
    def _rollout_size(self) -> TrainConfig:
        rollout = self.ppo.n_steps * self.n_envs
        if rollout < 2:
            raise ValueError(f"a rollout of ppo.n_steps x n_envs = {rollout} step is too short for PPO (at least 2)")
        if self.ppo.batch_size > rollout:
            raise ValueError(
                f"ppo.batch_size ({self.ppo.batch_size}) is larger than a rollout, ppo.n_steps x n_envs = {rollout}"
            )
        return self

    @property
    def evaluation_scenarios(self) -> tuple[str, ...]:
        return self.eval_scenarios or self.scenarios

    def policy_kwargs(self) -> dict[str, Any]:
        """SB3 ``policy_kwargs`` with the activation name mapped to its torch class."""
        from torch import nn

        classes = {
            "tanh": nn.Tanh,
            "relu": nn.ReLU,
            "elu": nn.ELU,
            "leaky_relu": nn.LeakyReLU,
            "gelu": nn.GELU,
            "silu": nn.SiLU,
        }
        pk = self.ppo.policy_kwargs
        return {
            "net_arch": {"pi": list(pk.net_arch.pi), "vf": list(pk.net_arch.vf)},
            "activation_fn": classes[pk.activation_fn],
            "ortho_init": pk.ortho_init,
        }

    def algo_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of SB3's ``PPO`` / sb3-contrib's ``MaskablePPO`` / ``RecurrentPPO`` (schedules as
        callables; the LSTM options in ``policy_kwargs``)."""
        p = self.ppo
        policy_kwargs = self.policy_kwargs()
        if self.algo == "recurrent_ppo":
            policy_kwargs.update((self.recurrent or RecurrentConfig()).model_dump())
        return {
            "learning_rate": make_schedule(p.learning_rate),
            "n_steps": p.n_steps,
            "batch_size": p.batch_size,
            "n_epochs": p.n_epochs,
            "gamma": p.gamma,
            "gae_lambda": p.gae_lambda,
            "clip_range": make_schedule(p.clip_range),
            "clip_range_vf": p.clip_range_vf,
            "normalize_advantage": p.normalize_advantage,
            "ent_coef": p.ent_coef,
            "vf_coef": p.vf_coef,
            "max_grad_norm": p.max_grad_norm,
            "target_kl": p.target_kl,
            "policy_kwargs": policy_kwargs,
        }

    @property
    def policy_name(self) -> str:
        """The SB3 policy class name for ``algo``."""
        return "MlpLstmPolicy" if self.algo == "recurrent_ppo" else "MlpPolicy"

    def to_yaml(self) -> str:
        data = self.model_dump(mode="json")
        if data["eval_workers"] == type(self).model_fields["eval_workers"].default:
            # wall time only, not part of a run's identity: runs saved before the option compare equal
            del data["eval_workers"]
        if not data["eval_at_start"]:  # how every run before the option was trained: those runs compare equal
            del data["eval_at_start"]
        return yaml.safe_dump(data, sort_keys=False)


# --------------------------------------------------------------------------------------------- loading


def parse_overrides(items: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """``["ppo.n_steps=128", "scenarios=[a, b]"]`` -> a nested dict; values are parsed as YAML."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise ConfigError(f"--set {item!r}: expected key=value with a dotted key, e.g. ppo.n_steps=128")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {key}: the value {raw!r} is not valid YAML ({exc})") from None
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {key}: {part!r} is set to a value and used as a section")
            node = child
        node[parts[-1]] = value
    return out


def load_train_config(
    path: str | Path | None = None, overrides: dict[str, Any] | None = None, sets: list[str] | tuple[str, ...] = ()
) -> TrainConfig:
    """The file (or the defaults), then ``overrides`` (a nested dict), then ``--set`` items; validated once.

    Errors (``ConfigError``) name the file, the ``--set`` items and every field at fault.
    """
    data = read_yaml_mapping(path, "training config") if path is not None else {}
    data = deep_merge(data, overrides or {})
    data = deep_merge(data, parse_overrides(sets))
    source = str(path) if path is not None else "training config"
    if sets:
        source += " with --set " + " ".join(sets)
    try:
        return TrainConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source, TrainConfig)) from None
