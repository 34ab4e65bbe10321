"""The training ablation of issue 15 in one command: train each variant, judge it against the tuned rules.

    python -m agents.experiments.ablation [--config configs/train/ablation.yaml] [--out results/ablation]
        [--only baseline,masks] [--no-specialists] [--total-timesteps N] [--specialist-timesteps N]

For every variant of the ablation file (the default recipe with a few values set), one at a time:

1. **train** it (``agents.experiments.train.train``, in this process; skipped when its run folder already holds
   a final model) on the training scenarios and training seeds (< 1000); its best model is picked by the
   periodic evaluation on evaluation seeds 1,000,000+; wall time, CPU time and the load average are kept in
   ``<run>/timing.json``;
2. **evaluate** its best model on the 7 benchmark scenarios, seeds 1000-1019 (the env configs with the run's
   ``env_overrides``, e.g. observation options), as ``scaling-env benchmark`` does;
3. **judge** it with the verdict tool (``agents.experiments.verdict``) against every rule policy at its default,
   ``@generalist`` and ``@tuned`` settings, benchmarked once on the same seeds (``rules_episodes.csv``, cached):
   the best rule of each scenario and the best one-setting (generalist) rule are chosen on the tuning seeds 0-19,
   paired t-tests per scenario, IQM of normalised scores with stratified-bootstrap CIs over all scenarios.

The specialists (one training config per benchmark scenario, ``specialists`` folder) are trained each on its
family and judged together as one candidate (``ppo:<out>/specialists``: on each scenario its own specialist).
With ``residual_specialists`` set, each specialist config is also trained as a residual on top of its scenario's
best rule (chosen on the tuning seeds, as the verdict chooses it: :func:`best_rule`; a ``@tuned`` setting is read
from the scenario's tuned file, :func:`rule_file`) and judged as ``ppo:<out>/residual_specialists``, on the
scenarios trained (``--only residual_specialists --specialist-scenarios steady,diurnal``: a few of them).
With ``gate_specialists`` set, each specialist config is also trained as a gate (agents/learned/residual.py,
``max_offset: 0``; with ``gate_specialists.max_offset`` k, a gate that may also move its expert's step by up to k
places) whose expert 0 is its scenario's best rule (the rule the specialist is judged against, so a gate that
always holds its base plays exactly that rule) and whose other experts are the other scenarios' best rules and the
best generalist rule (:func:`gate_specialist_sets`), and judged as ``ppo:<out>/gate_specialists``
(``--only gate_specialists``, ``--specialist-scenarios`` as above).

The cost target ("cost within 1.1x of the bound") uses the bound, the ``hindsight`` planner
(``agents/experiments/bound.py``: clairvoyant of the episode's random draws), read from its cache
(``results/planner/cache.json``, made by ``nice -n 10 python perf/bench_planner.py --policies oracle``); without
it the ablation stops and names that command. The normalised scores stay the verdict tool's (over the ``oracle``
policy's mean reward, a clairvoyant heuristic). Outputs in ``--out``: ``episodes.csv`` (every episode, the
benchmark's columns: ``scaling-env verdict <out>/episodes.csv --policy ppo:<run>`` reproduces a verdict),
``ablation.md`` (the tables), ``ablation.json`` and ``runs/<variant>/`` (the run folders).
"""

from __future__ import annotations

import argparse
import csv
import json
import multiprocessing
import os
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from scaling_env.config import ConfigError, format_validation_error, read_yaml_mapping
from scaling_env.episode_stats import METRIC_NAMES

from ..learned.torch_kernels import pin_training_kernels
from . import verdict as vd
from .benchmark import EVALUATION_SCENARIOS, add_oracle_ratio
from .bound import BOUND_POLICY
from .floor_choice import HELD_OUT_SEEDS, check_seeds, choose_floor, floor_results

RULES = ("static", "static_peak", "threshold", "step_scaling", "target_tracking", "hpa", "kpa", "predictive", "oracle")
SEEDS = list(range(1000, 1020))  # the benchmark's
TUNING_SEEDS = list(range(0, 20))  # the tuner's, where the best rule is chosen
COLUMNS = ["policy", "scenario", "seed", *METRIC_NAMES, "cost_ratio_to_oracle"]


class Variant(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    set: dict[str, Any] = Field(default_factory=dict, description="training config values over the base")
    total_timesteps: int | None = Field(None, ge=1, description="this variant's budget (default: the ablation's)")
    seeds: list[Annotated[int, Field(ge=0, strict=True)]] = Field(
        default_factory=list, description="more training seeds: each adds the variant <name>_seed<N> with seed: N"
    )

    @field_validator("seeds")
    @classmethod
    def _distinct(cls, seeds: list[int]) -> list[int]:
        if len(set(seeds)) != len(seeds):
            raise ValueError("repeated seeds")
        return seeds

    @model_validator(mode="after")
    def _not_its_own_seed(self) -> Variant:
        if "seed" in self.set and self.set["seed"] in self.seeds:
            raise ValueError(f"seeds: {self.set['seed']} is the variant's own seed (set.seed)")
        return self

    def expanded(self) -> list[Variant]:
        """This variant, then one per extra training seed (its set with ``seed`` replaced), in the listed order."""
        more = [
            Variant(name=f"{self.name}_seed{s}", set={**self.set, "seed": s}, total_timesteps=self.total_timesteps)
            for s in self.seeds
        ]
        return [self.model_copy(update={"seeds": []}), *more]


class ResidualSpecialists(BaseModel):
    """Residual specialists: each scenario's specialist config (the ``specialists`` folder: its own training
    family) trained as a residual (agents/learned/residual.py) on top of that scenario's best rule, chosen on the
    tuning seeds as the verdict chooses it (:func:`best_rule`), never on the benchmark's seeds."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    max_offset: int = Field(2, ge=1, le=16, description="largest correction, in places of the ordered scale steps")
    zero_bias: float = Field(3.0, ge=0.0, le=20.0, description="initial bias of the zero-correction logit")
    timesteps: int = Field(1_000_000, ge=1, description="each residual specialist's budget")


class GateSpecialists(BaseModel):
    """Gate specialists: each scenario's specialist config trained as a gate over the tuned rules, expert 0 its
    scenario's best rule (chosen on the tuning seeds, :func:`best_rule`), the others every other scenario's best rule
    and (``generalist``) the best one-setting rule, without repeats (:func:`gate_specialist_sets`); with ``nearest``
    k > 0, the others are instead the scenario's own k next-best rules on the tuning seeds. ``own_scenario``: each
    trains on its evaluation scenario (other seeds than the benchmark's) instead of its family. ``hold``: the
    gate decides every ``hold`` env steps (residual.hold); ``timesteps`` is in env steps (the agent takes
    ``timesteps // hold``); ``set``: more training config values (e.g. the observation, the evaluation cadence and
    the rollout length, which count agent steps and so depend on ``hold``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    hold: int = Field(16, ge=1, le=60, description="the gate decides every hold env steps")
    max_offset: int = Field(
        0,
        ge=0,
        le=8,
        description="0: a pure gate; k: the chosen expert's step may also be moved by up to k places of the "
        "ordered scale steps (residual.max_offset), e.g. a scale-out ahead of a load the experts only react to",
    )
    zero_bias: float = Field(0.0, ge=0.0, le=20.0, description="initial bias of expert 0's logit (0: uniform)")
    timesteps: int = Field(1_000_000, ge=1, description="each gate specialist's budget in env steps")
    generalist: bool = Field(True, description="the best one-setting rule is one of the experts")
    nearest: int = Field(
        0, ge=0, le=16, description="0: the other scenarios' best rules; k: the scenario's k next-best rules instead"
    )
    paired_base: bool = Field(
        False, description="train on the reward minus expert 0's on a copy of the clusters (residual.paired_base)"
    )
    own_scenario: bool = Field(
        False,
        description="train each on its evaluation scenario itself (other seeds), not on its training family",
    )
    sync: bool = Field(
        False, description="tell the experts that did not act the count the applied step reaches (residual.sync)"
    )
    redundancy: list[Annotated[int, Field(ge=1)]] = Field(
        default_factory=list,
        description="candidate starts of a redundancy floor on expert 0's rule; the one chosen per scenario on "
        "redundancy_seeds (floor_choice.py) joins as expert 1; empty: no floored expert",
    )
    redundancy_seeds: list[Annotated[int, Field(ge=0)]] = Field(
        default_factory=lambda: list(HELD_OUT_SEEDS),
        description="the held-out seeds the floor is chosen on (below the benchmark's 1000)",
    )
    set: dict[str, Any] = Field(default_factory=dict, description="training config values over the specialist's")

    @field_validator("redundancy_seeds")
    @classmethod
    def _held_out(cls, seeds: list[int]) -> list[int]:
        check_seeds(seeds, "redundancy_seeds")
        return seeds

    @field_validator("redundancy")
    @classmethod
    def _distinct_starts(cls, starts: list[int]) -> list[int]:
        if len(set(starts)) != len(starts):
            raise ValueError("a start appears twice")
        return starts

    @model_validator(mode="after")
    def _no_residual_in_set(self) -> GateSpecialists:
        if "residual" in self.set:
            raise ValueError(
                "set: residual is made by the ablation (hold, zero_bias here; rules from the tuning seeds)"
            )
        if self.own_scenario and "scenarios" in self.set:
            raise ValueError("set: scenarios contradicts own_scenario (each specialist trains on its own scenario)")
        return self


class AblationConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    base: Path = Path("configs/train/ppo.yaml")
    total_timesteps: int = Field(2_000_000, ge=1)
    variants: list[Variant] = Field(min_length=1)
    specialists: Path | None = None
    specialist_timesteps: int = Field(1_000_000, ge=1)
    residual_specialists: ResidualSpecialists | None = None
    gate_specialists: GateSpecialists | None = None


def load_ablation_config(path: Path) -> AblationConfig:
    data = read_yaml_mapping(path, "ablation config")
    try:
        cfg = AblationConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, str(path), AblationConfig)) from None
    cfg = cfg.model_copy(update={"variants": [x for v in cfg.variants for x in v.expanded()]})
    names = [v.name for v in cfg.variants]
    if len(set(names)) != len(names):
        raise ConfigError(f"{path}: variants: repeated names {names}")
    return cfg


# ------------------------------------------------------------------------------------------ episodes
def write_rows(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def read_rows(path: Path) -> list[dict]:
    with path.open(newline="") as fh:
        return [
            {k: (v if k in ("policy", "scenario") else (int(v) if k == "seed" else float(v))) for k, v in r.items()}
            for r in csv.DictReader(fh)
        ]


RULES_VERSION = "rules_version.txt"  # the code version the cached rule episodes and tuning rewards were made with


def rules_cache_fresh(out: Path) -> bool:
    """Whether the cached rule episodes and tuning rewards in ``out`` were made with this code version (the bound's
    :func:`~agents.experiments.bound.code_version`: the simulator, the rules and their tuned settings); if not,
    they are removed (a re-tune or a model change makes them stale) and the version is written for the new ones."""
    from .bound import code_version

    path, version = out / RULES_VERSION, code_version()
    if path.is_file() and path.read_text().strip() == version:
        return True
    for name in ("rules_episodes.csv", "tuning_rewards.json", "tuning_slo.json", "tuning_seeds.json"):
        (out / name).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(version + "\n")
    return False


def rule_rows(out: Path, scenarios: list[str]) -> list[dict]:
    """Every rule (default, @generalist, @tuned) and the references on the benchmark's seeds (cached)."""
    from agents.registry import with_tuned
    from scaling_env.scenarios import load_scenario

    from .benchmark import run_benchmark

    path = out / "rules_episodes.csv"
    if rules_cache_fresh(out) and path.is_file():
        return read_rows(path)
    rows, _ = run_benchmark(with_tuned(list(RULES)), [load_scenario(s) for s in scenarios], SEEDS, progress=False)
    write_rows(path, rows)
    return rows


def _cached_tuning(path: Path, specs: list[str], scenarios: list[str], metric: str) -> dict[tuple[str, str], float]:
    """{(scenario, spec): mean ``metric`` on the tuning seeds}, read from ``path`` or computed and written there."""
    if path.is_file():
        return {tuple(k.split("|")): v for k, v in json.loads(path.read_text()).items()}  # type: ignore[misc]
    values = vd.tuning_rewards(specs, scenarios, TUNING_SEEDS, metric=metric)
    path.write_text(json.dumps({f"{s}|{p}": v for (s, p), v in values.items()}, indent=1))
    return values


def rule_tuning(out: Path, rows: list[dict], scenarios: list[str]) -> dict[tuple[str, str], float]:
    """The rules' mean rewards on the tuning seeds (cached), where the best rule is chosen."""
    specs = [p for p in dict.fromkeys(r["policy"] for r in rows) if not vd.is_clairvoyant(p, scenarios[0])]
    return _cached_tuning(out / "tuning_rewards.json", specs, scenarios, "reward")


def rule_tuning_slo(
    out: Path, tuning: dict[tuple[str, str], float], scenarios: list[str]
) -> dict[tuple[str, str], float]:
    """The same rules' mean SLO-violation shares on the tuning seeds (cached; computed only when a variant's experts
    are ``auto_at_slo``; ``auto_at_slo_robust`` takes them from :func:`rule_tuning_seeds`)."""
    specs = list(dict.fromkeys(p for _, p in tuning))
    return _cached_tuning(out / "tuning_slo.json", specs, scenarios, "slo_violation_share")


def rule_tuning_seeds(
    out: Path, tuning: dict[tuple[str, str], float], scenarios: list[str]
) -> dict[tuple[str, str], dict[str, list[float]]]:
    """The same rules' rewards and SLO-violation shares per tuning seed (cached in ``tuning_seeds.json``; computed
    only when a variant's experts are ``auto_at_slo_robust``, whose choice is a paired test)."""
    path = out / "tuning_seeds.json"
    if path.is_file():
        return {tuple(k.split("|", 1)): v for k, v in json.loads(path.read_text()).items()}  # type: ignore[misc]
    specs = list(dict.fromkeys(p for _, p in tuning))
    values = vd.tuning_episodes(specs, scenarios, TUNING_SEEDS, ("reward", "slo_violation_share"))
    path.write_text(json.dumps({f"{s}|{p}": v for (s, p), v in values.items()}, indent=1))
    return values


def bound_rows(scenarios: list[str], cache_path: Path, spec: str = BOUND_POLICY) -> list[dict]:
    """The bound's (``hindsight``) episodes on the benchmark's seeds from the planner cache, for this code version,
    or those of the planner variant ``spec`` with its shipped parameters (e.g. ``planner``, sampled futures);
    ConfigError with the command that computes them if any is missing."""
    from scaling_env.scenarios import load_scenario

    from .bound import cache_key, cached_episodes, code_version, load_cache, no_bound_line, planner_params

    cache, version = load_cache(cache_path), code_version()
    rows, missing = [], []
    for name in scenarios:
        config = load_scenario(name).config
        eps = cached_episodes(cache, cache_key(name, config, planner_params(config, spec), version), SEEDS)
        if eps is None:
            missing.append(name)
            continue
        rows += [{**e, "policy": spec, "scenario": name, "seed": s} for s, e in zip(SEEDS, eps)]
    if missing:
        raise ConfigError(no_bound_line(missing, SEEDS, cache_path, spec))
    return rows


def evaluate_run(run_dir: Path, scenarios: list[str], label: str, seeds: list[int] = SEEDS) -> list[dict]:
    """The run's best model on the benchmark's scenarios and seeds, or ``seeds`` (with the run's env_overrides)."""
    from agents.learned.ppo import apply_env_overrides, load_ppo_policy
    from scaling_env.rollout import rollout
    from scaling_env.scenarios import load_scenario

    overrides = read_yaml_mapping(run_dir / "config.yaml", "training config").get("env_overrides") or {}
    rows = []
    for name in scenarios:
        sc = load_scenario(name)
        config = apply_env_overrides(sc.config, overrides)
        run = rollout(config, load_ppo_policy(run_dir, config, scenario=sc.name), seeds, parallel=False)
        rows += [{"policy": label, "scenario": sc.name, "seed": s, **m} for s, m in zip(seeds, run.metrics)]
    return rows


def best_rule(tuning: dict[tuple[str, str], float], scenario: str) -> str:
    """The scenario's best rule: the highest mean reward on the tuning seeds (the verdict's choice, as in
    ``verdict.scenario_rows``; ``tuning`` holds only rules, no clairvoyant reference)."""
    rules = [p for s, p in tuning if s == scenario]
    if not rules:
        raise ConfigError(f"no rule has tuning rewards on scenario {scenario}")
    return max(rules, key=lambda p: tuning[(scenario, p)])


def best_rule_at_slo(
    tuning: dict[tuple[str, str], float],
    slo: dict[tuple[str, str], float],
    scenario: str,
    reference: str,
    word: str = "auto_at_slo",
) -> str:
    """The scenario's best rule (highest mean reward on the tuning seeds) among those whose mean SLO share there is
    no higher than ``reference``'s: the rule that would beat ``reference`` by the verdict's reading of a win (more
    reward at no higher SLO share), or ``reference`` itself if none earns more."""
    if (scenario, reference) not in slo:
        raise ConfigError(
            f"experts {word!r} compare SLO shares with residual.policy ({reference!r}), which has none on the "
            f"tuning seeds of {scenario} (give best_generalist or a rule spec such as predictive@generalist)"
        )
    limit = slo[(scenario, reference)]
    missing = [p for s, p in tuning if s == scenario and (s, p) not in slo]
    if missing:
        raise ConfigError(
            f"tuning_slo.json has no SLO share of {missing[0]} on {scenario} (it does not match tuning_rewards.json; "
            "delete both to recompute them)"
        )
    rules = [p for s, p in tuning if s == scenario and slo[(s, p)] <= limit]
    return max(rules, key=lambda p: tuning[(scenario, p)])


def best_rule_robust(
    per_seed: dict[tuple[str, str], dict[str, list[float]]],
    tuning: dict[tuple[str, str], float],
    scenario: str,
    reference: str,
) -> str | None:
    """The scenario's best rule (highest mean reward on the tuning seeds, the first of equals in ``tuning``'s order,
    as :func:`best_rule`) among those that beat ``reference`` there by the verdict's paired test (more reward,
    p < 0.05) at a significantly lower SLO share (the 95 % CI of the per-seed SLO-share difference wholly below 0), or
    None. A share lower by a hair on the tuning seeds (noisy_trace's ``hpa@tuned``: 2.19 % against 2.21 %) says
    little about other seeds; this choice asks for evidence. ``per_seed`` must hold every rule of ``tuning``."""
    missing = [p for s, p in tuning if s == scenario and (s, p) not in per_seed]
    if missing:
        raise ConfigError(
            f"tuning_seeds.json has no episodes of {missing[0]} on {scenario} (it does not match tuning_rewards.json; "
            "delete tuning_rewards.json, tuning_slo.json and tuning_seeds.json to recompute them)"
        )
    if (scenario, reference) not in per_seed:
        raise ConfigError(
            f"experts 'auto_at_slo_robust' compare with residual.policy ({reference!r}), which has no episodes on the "
            f"tuning seeds of {scenario} (give best_generalist or a rule spec such as predictive@generalist)"
        )
    ref = per_seed[(scenario, reference)]
    found: list[str] = []
    for s, p in tuning:
        if s != scenario or p == reference:
            continue
        v = per_seed[(s, p)]
        reward = vd.paired_test(np.asarray(v["reward"]), np.asarray(ref["reward"]))
        slo = vd.paired_test(np.asarray(v["slo_violation_share"]), np.asarray(ref["slo_violation_share"]))
        if reward.p_value < vd.ALPHA and reward.mean_diff > 0 and slo.ci_high < 0:
            found.append(p)
    return max(found, key=lambda p: tuning[(scenario, p)]) if found else None


def rule_file(spec: str, scenario: str) -> str:
    """``spec`` as the residual reads it on any training family: a ``@tuned`` or ``@generalist`` setting is its
    file (``@tuned``: the benchmark ``scenario``'s; a training family has no tuned files of its own), relative to
    the working directory where it is inside it; other specs as they are."""
    from agents.registry import resolve_policy_file

    if "@" not in spec:
        return spec
    path = resolve_policy_file(spec, scenario)
    assert path is not None  # a @ spec always has a file (or resolve_policy_file raised)
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def best_generalist(tuning: dict[tuple[str, str], float], scenarios: list[str]) -> str:
    """The best one-setting rule (not ``@tuned``): the best mean over ``scenarios`` of the mean rewards on the
    tuning seeds (the verdict's choice, as in ``verdict.aggregate_rows``)."""
    rules = [p for p in dict.fromkeys(p for _, p in tuning) if all((s, p) in tuning for s in scenarios)]
    pool = vd.one_setting(rules)
    if not pool:
        raise ConfigError(f"no one-setting rule has tuning rewards on every scenario ({', '.join(scenarios)})")
    return vd.best_over_scenarios(pool, tuning, scenarios)


def rule_identity(spec: str) -> tuple[str, str]:
    """What a rule spec or policy file plays: (policy name, its parameters as JSON) for a file, else the spec."""
    from agents.registry import read_policy_file

    if spec.endswith((".yaml", ".yml")):
        name, params = read_policy_file(spec)
        return name, json.dumps(params, sort_keys=True)
    return spec, ""


def resolve_rules(
    sets: dict[str, Any],
    tuning: dict[tuple[str, str], float],
    scenarios: list[str],
    slo: dict[tuple[str, str], float] | None = None,
    per_seed: dict[tuple[str, str], dict[str, list[float]]] | None = None,
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """``sets`` with ``residual.policy: best_generalist`` and ``residual.experts: auto`` replaced by the rules the
    tuning seeds choose (never the benchmark's): the best one-setting rule (:func:`best_generalist`), and every
    scenario's best rule (:func:`best_rule`, the residual specialists' choice), each read from its file
    (:func:`rule_file`), without repeats (two scenarios whose best rules play the same, or the base rule, give one
    expert). ``experts: auto_at_slo`` takes every scenario's best rule at no higher SLO share than the policy's
    (:func:`best_rule_at_slo`; ``slo``: the rules' SLO shares on the tuning seeds); ``auto_at_slo_robust`` adds,
    where one exists, the scenario's best rule that beats the policy at a significantly lower SLO share
    (:func:`best_rule_robust`; ``per_seed``: the rules' rewards and shares per tuning seed). Also what was chosen
    ({"policy": spec, "experts": [(spec, file, [scenarios])]}, and {"robust": {scenario: spec}}), or None when
    nothing was to be chosen."""
    from .train_config import (
        AUTO_EXPERTS,
        AUTO_EXPERTS_AT_SLO,
        AUTO_EXPERTS_AT_SLO_ROBUST,
        AUTO_GENERALIST,
        ResidualConfig,
    )

    residual = sets.get("residual")
    if not isinstance(residual, dict):
        return sets, None
    # an unset policy is the training config's default rule
    policy = residual.get("policy", ResidualConfig.model_fields["policy"].default)
    experts = residual.get("experts")
    auto = (AUTO_EXPERTS, AUTO_EXPERTS_AT_SLO, AUTO_EXPERTS_AT_SLO_ROBUST)
    if policy != AUTO_GENERALIST and experts not in auto:
        return sets, None
    chosen: dict[str, Any] = {}
    reference = policy
    if policy == AUTO_GENERALIST:
        spec = reference = best_generalist(tuning, scenarios)
        policy = rule_file(spec, scenarios[0])  # one setting: the same file for every scenario
        chosen["policy"] = spec
    if experts in auto:
        at_slo = experts in (AUTO_EXPERTS_AT_SLO, AUTO_EXPERTS_AT_SLO_ROBUST)
        if at_slo and slo is None:
            raise ConfigError(f"experts {experts!r} need the rules' SLO shares on the tuning seeds")
        if experts == AUTO_EXPERTS_AT_SLO_ROBUST and per_seed is None:
            raise ConfigError(f"experts {experts!r} need the rules' episodes per tuning seed")
        # a named one-setting policy plays what its file plays (not a second expert of the same rule)
        one_setting = policy.endswith("@generalist")
        seen = {rule_identity(rule_file(policy, scenarios[0]) if one_setting else policy): -1}
        found: list[tuple[str, str, list[str]]] = []
        robust: dict[str, str] = {}
        for s in scenarios:
            if at_slo:
                assert slo is not None
                picks = [best_rule_at_slo(tuning, slo, s, reference, experts)]
            else:
                picks = [best_rule(tuning, s)]
            if experts == AUTO_EXPERTS_AT_SLO_ROBUST:
                assert per_seed is not None
                extra = best_rule_robust(per_seed, tuning, s, reference)
                if extra is not None and seen.get(rule_identity(rule_file(extra, s))) != -1:  # not the base itself
                    robust[s] = extra
                    picks.append(extra)
            for spec in picks:
                path = rule_file(spec, s)
                key = rule_identity(path)
                if key not in seen:
                    seen[key] = len(found)
                    found.append((spec, path, []))
                if seen[key] >= 0 and s not in found[seen[key]][2]:
                    found[seen[key]][2].append(s)
        chosen["experts"] = found
        if at_slo:
            chosen["at_slo"] = True
        if experts == AUTO_EXPERTS_AT_SLO_ROBUST:
            chosen["robust"] = robust
        residual = {**residual, "experts": [path for _, path, _ in found]}
    return {**sets, "residual": {**residual, "policy": policy}}, chosen


def gate_specialist_sets(
    gs: GateSpecialists,
    tuning: dict[tuple[str, str], float],
    scenarios: list[str],
    trained: list[str],
    floors: dict[str, int] | None = None,
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """Per trained scenario, its gate specialist's training values (``gs.set`` with ``residual``) and what was
    chosen on the tuning seeds ({"policy": spec, "experts": [(spec, file)]}). Expert 0 (``residual.policy``, the
    zero action) is the scenario's best rule (:func:`best_rule`, read from its file: :func:`rule_file`); the other
    experts are the best one-setting rule (with ``gs.generalist``; :func:`best_generalist`) and every evaluation
    scenario's best rule, in the order of ``scenarios``, each once: a rule that plays what an earlier one plays
    (:func:`rule_identity`, e.g. two scenarios' identical tuned settings, or the base itself) is left out. With
    ``gs.nearest`` k > 0 the scenario's own rules take the place of the other scenarios' best ones: its k best rules
    on the tuning seeds after the base (the same order as :func:`best_rule`'s, each read from the scenario's file),
    distinct from the base and from each other (a smaller expert set, of the rules closest to the base). ``floors``:
    per scenario, the start of a redundancy floor on the base rule (:func:`choose_floor_starts`), which joins as
    expert 1."""
    sets: dict[str, dict[str, Any]] = {}
    chosen: dict[str, dict[str, Any]] = {}
    generalist = [(best_generalist(tuning, scenarios), scenarios[0])] if gs.generalist else []
    others = [(best_rule(tuning, s), s) for s in scenarios]
    for s in trained:
        spec = best_rule(tuning, s)
        policy = rule_file(spec, s)
        seen = {rule_identity(policy)}
        experts: list[tuple[str, str]] = []
        if gs.nearest:
            ranked = sorted((p for t, p in tuning if t == s), key=lambda p: -tuning[(s, p)])
            candidates, limit = generalist + [(p, s) for p in ranked], len(generalist) + gs.nearest
        else:
            candidates, limit = generalist + others, len(generalist) + len(others)
        for other, where in candidates:
            path = rule_file(other, where)
            key = rule_identity(path)
            if key not in seen and len(experts) < limit:
                seen.add(key)
                experts.append((other, path))
        if floors and floors.get(s) is not None:
            suffix = f" with redundancy from {floors[s]}"
            experts.insert(0, (spec + suffix, policy + suffix))
        residual = {
            "policy": policy,
            "max_offset": gs.max_offset,
            "zero_bias": gs.zero_bias,
            "experts": [path for _, path in experts],
            "hold": gs.hold,
        }
        if gs.paired_base:  # only when asked: a run folder trained before the option keeps its config
            residual["paired_base"] = True
        if gs.sync:
            residual["sync"] = True
        sets[s] = {**gs.set, "residual": residual}
        if gs.own_scenario:  # the rules' footing: tuned on this scenario (seeds 0-19), never on the benchmark's
            sets[s]["scenarios"] = [s]
        chosen[s] = {"policy": spec, "experts": experts}
    return sets, chosen


def choose_floor_starts(
    gs: GateSpecialists, tuning: dict[tuple[str, str], float], trained: list[str], log: Any
) -> tuple[dict[str, int], dict[str, dict[str, Any]]]:
    """Per trained scenario, the redundancy floor's start chosen for its base rule (:func:`best_rule`) among
    ``gs.redundancy`` on ``gs.redundancy_seeds`` (floor_choice.py; omitted where none beats the rule), and every
    candidate's mean reward and SLO share there (for the record)."""
    starts: dict[str, int] = {}
    record: dict[str, dict[str, Any]] = {}
    seeds = sorted(gs.redundancy_seeds)
    span = f"{seeds[0]}-{seeds[-1]}" if seeds == list(range(seeds[0], seeds[-1] + 1)) else ",".join(map(str, seeds))
    for s in trained:
        spec = rule_file(best_rule(tuning, s), s)
        results = floor_results(s, spec, list(gs.redundancy), seeds)
        pick = choose_floor(results)
        base = results[0]
        if pick is not None and pick.start is not None:
            starts[s] = pick.start
        record[s] = {
            "chosen": None if pick is None else pick.start,
            "seeds": seeds,
            "candidates": [{"start": r.start, "reward": r.reward, "slo": r.slo} for r in results],
        }
        shown = ", ".join(f"from {r.start}: {r.reward - base.reward:+.2f} at {100 * r.slo:.3f} %" for r in results[1:])
        log(
            f"gate specialist {s}: redundancy floor on {spec}: "
            + (f"from {pick.start}" if pick is not None else "none beats the rule")
            + f" (the rule alone {base.reward:.2f} at {100 * base.slo:.3f} % on seeds {span}; {shown})"
        )
    return starts, record


# ------------------------------------------------------------------------------------------ training
GATE_SHAPE = ("max_offset", "hold", "zero_bias")  # residual keys that make a trained gate another policy
SELECTION = {"eval_at_start": False, "select_by": "reward"}  # training keys that decide which model is kept


def stale_rules(run_dir: Path, sets: dict[str, Any], base_only: bool = False) -> str | None:
    """Why the run in ``run_dir`` was trained on other residual rules than ``sets`` asks for now (e.g. chosen on
    the tuning seeds before a re-tune), or as another gate (:data:`GATE_SHAPE`), or None. ``base_only``: only the
    base rule (expert 0) must agree, the experts and shape are the run's own (a folder assembled by ``pick_arm``
    from arms with other expert sets)."""
    path = run_dir / "config.yaml"
    want = sets.get("residual")
    if not isinstance(want, dict) or not path.is_file():
        return None
    had = read_yaml_mapping(path, "training config").get("residual") or {}
    old = (had.get("policy"), list(had.get("experts") or ()))
    new = (want.get("policy", old[0]), list(want.get("experts") or ()))
    if not (old == new or (base_only and old[0] == new[0])):
        return (
            f"{run_dir} was trained on the rules {old[0]} + experts {old[1]}, but the tuning seeds now choose "
            f"{new[0]} + experts {new[1]}: remove the folder (or use another --out) to train on them"
        )
    # the gate's shape: a folder trained as another gate is not this config's run (an assembled folder's runs
    # keep their arms' shapes)
    shape = [k for k in GATE_SHAPE if not base_only and k in want and had.get(k) != want[k]]
    if shape:
        diff = ", ".join(f"{k} {had.get(k)!r} (now {want[k]!r})" for k in shape)
        return f"{run_dir} was trained as another gate: {diff}; remove the folder (or use another --out) to train it"
    return None


def stale_selection(run_dir: Path, base: Path, sets: dict[str, Any]) -> str | None:
    """Why the run in ``run_dir`` kept its best model another way (:data:`SELECTION`) than ``base`` with ``sets``
    asks for now, or None (also when the folder holds no run). A folder whose best model was chosen another way
    holds another policy, whatever its training."""
    from .train_config import load_train_config

    path = run_dir / "config.yaml"
    if not path.is_file():
        return None
    run = read_yaml_mapping(path, "training config")
    want = load_train_config(base, overrides=sets)
    chosen = [(k, run.get(k, d), getattr(want, k)) for k, d in SELECTION.items() if run.get(k, d) != getattr(want, k)]
    if chosen:
        diff = ", ".join(f"{k} {had!r} (now {now!r})" for k, had, now in chosen)
        return f"{run_dir} kept its best model another way: {diff}; remove the folder (or use another --out)"
    return None


def not_reusable(run_dir: Path, base: Path, sets: dict[str, Any], base_only: bool = False) -> str | None:
    """Why the run in ``run_dir`` is not the one ``base`` with ``sets`` asks for (:func:`stale_rules`, then, unless
    ``base_only``, :func:`stale_selection`), or None."""
    return stale_rules(run_dir, sets, base_only) or (None if base_only else stale_selection(run_dir, base, sets))


def run_experts(run_dir: Path) -> list[tuple[str, str]]:
    """A trained gate's experts as (spec, file), read from its config: ``configs/policies/tuned/<s>/<name>.yaml``
    is ``<name>@tuned`` (``<name>@generalist`` from the generalist folder); another file is its own spec; a
    redundancy floor (agents/learned/redundancy.py) keeps its ``with redundancy from n``."""
    from agents.learned.redundancy import split_spec

    residual = read_yaml_mapping(run_dir / "config.yaml", "training config").get("residual") or {}
    out = []
    for path in residual.get("experts") or ():
        rule, start = split_spec(str(path))
        p = Path(rule)
        tuned = p.parent.parent.name == "tuned"
        spec = f"{p.stem}@{'generalist' if p.parent.name == 'generalist' else 'tuned'}" if tuned else rule
        out.append((spec if start is None else f"{spec} with redundancy from {start}", str(path)))
    return out


def train_variant(
    run_dir: Path, base: Path, sets: dict[str, Any], total_timesteps: int, base_only: bool = False
) -> dict[str, float]:
    """Train (unless ``run_dir`` already holds a final model); returns the timing kept in timing.json.
    ConfigError if the run there was trained on other residual rules (:func:`stale_rules`, with ``base_only``)."""
    from .train import train
    from .train_config import load_train_config

    timing_path = run_dir / "timing.json"
    stale = not_reusable(run_dir, base, sets, base_only)
    if stale:
        raise ConfigError(stale)
    if (run_dir / "final_model.zip").is_file() and timing_path.is_file():
        timing = json.loads(timing_path.read_text())
        if "env_steps" not in timing:  # written before env_steps was kept: the run's config says its hold
            residual = read_yaml_mapping(run_dir / "config.yaml", "training config").get("residual") or {}
            timing["env_steps"] = timing["timesteps"] * int(residual.get("hold", 1))
        return timing
    cfg = load_train_config(base, overrides={**sets, "total_timesteps": total_timesteps})
    train(cfg, run_dir, command=f"ablation: {base} with {sets}, total_timesteps={total_timesteps}", progress_bar=False)
    return json.loads(timing_path.read_text())  # written by train() (train.Stopwatch)


def _train_job(job: tuple[Path, Path, dict[str, Any], int, bool]) -> dict[str, float]:
    """:func:`train_variant` on one job, in a worker process of :func:`train_runs`."""
    return train_variant(*job)


def train_runs(jobs: list[tuple[Path, Path, dict[str, Any], int, bool]], workers: int = 1) -> list[dict[str, float]]:
    """Train each job (:func:`train_variant`'s arguments) and return their timings in the jobs' order. With
    ``workers`` > 1, up to that many train at once, each in a spawned process: the trainings are independent and
    seeded, so the run folders are those of one-by-one training (tests/test_train_ablation.py checks it); each
    one's wall time then includes the others' share of the machine. Before any training starts, every job's
    config and its folder's rules are checked here (ConfigError), and folders already trained are read here.
    A failed training (or Ctrl-C) stops new ones from starting; those running finish (Ctrl-C reaches them too, and
    they save a checkpoint), then the error is raised."""
    from .train_config import load_train_config

    if workers <= 1 or len(jobs) <= 1:
        return [train_variant(*job) for job in jobs]
    out: dict[int, dict[str, float]] = {}
    todo = []
    for i, (run_dir, base, sets, steps, base_only) in enumerate(jobs):
        if (run_dir / "final_model.zip").is_file() and (run_dir / "timing.json").is_file():
            out[i] = train_variant(run_dir, base, sets, steps, base_only)  # checks its rules, reads its timing
            continue
        stale = not_reusable(run_dir, base, sets, base_only)
        if stale:
            raise ConfigError(stale)
        load_train_config(base, overrides={**sets, "total_timesteps": steps})  # a bad config fails now
        todo.append(i)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(workers, max(len(todo), 1)), mp_context=context) as pool:
        running: dict[Any, int] = {}
        try:
            while todo or running:
                while todo and len(running) < workers:  # never more queued than can run
                    i = todo.pop(0)
                    running[pool.submit(_train_job, jobs[i])] = i
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    out[running.pop(future)] = future.result()
        except BaseException:
            todo.clear()
            wait(running)
            raise
    return [out[i] for i in range(len(jobs))]


def cartpole_steps_per_second(steps: int = 16384) -> float:
    """SB3 PPO on CartPole-v1 (8 envs, torch threads 1), env steps/s: the machine's speed at this moment."""
    import gymnasium as gym
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    torch.set_num_threads(1)
    model = PPO("MlpPolicy", make_vec_env(lambda: gym.make("CartPole-v1"), n_envs=8), n_steps=256, seed=0)
    t = time.perf_counter()
    model.learn(steps)
    return steps / (time.perf_counter() - t)


# ------------------------------------------------------------------------------------------ judging
def judge(
    rules: list[dict],
    cand: list[dict],
    label: str,
    tuning: dict[tuple[str, str], float],
    bound: dict[tuple[str, int], float],
) -> dict[str, Any]:
    """The verdict of ``label`` against the rules: per scenario against the best rule (tuning seeds) and against
    the best generalist rule, over all scenarios the IQM of normalised scores; costs over the bound's (``bound``:
    its cost by (scenario, seed))."""
    rows = rules + cand
    episodes: vd.Episodes = {}
    for r in rows:
        episodes.setdefault((r["scenario"], r["policy"]), {})[int(r["seed"])] = (
            float(r["reward"]),
            float(r["slo_violation_share"]),
        )
    st = vd.setup(episodes, label)
    per_scenario = vd.scenario_rows(st, tuning)
    agg, overall = vd.aggregate_rows(st, tuning)
    generalist = next((o["rule"] for o in overall if o["pool"].startswith("one rule")), overall[0]["rule"])

    def cost_ratio(s: str, p: str) -> float:  # nan without the bound (--no-bound)
        mine = [r for r in rows if r["scenario"] == s and r["policy"] == p]
        if any((s, int(r["seed"])) not in bound for r in mine):
            return float("nan")
        return float(np.mean([r["cost_usd"] / bound[(s, int(r["seed"]))] for r in mine]))

    cost = {
        s: {"candidate": cost_ratio(s, label), "rule": cost_ratio(s, x["rule"])}
        for s, x in zip(st.scenarios, per_scenario)
    }
    vs_general = [paired_vs(episodes, s, label, generalist) for s in st.scenarios]
    me = next(r for r in agg if r["policy"] == label)
    return {
        "label": label,
        "per_scenario": per_scenario,
        "overall": overall,
        "generalist": generalist,
        "vs_generalist": vs_general,
        "iqm": (me["iqm"], me["iqm_low"], me["iqm_high"]),
        "reward": me["reward"],
        "slo": me["slo"],
        "cost": cost,
    }


def paired_vs(episodes: vd.Episodes, scenario: str, label: str, rule: str) -> dict[str, Any]:
    """``label`` against ``rule`` on ``scenario``'s common seeds: the paired test of episode rewards and both mean
    SLO shares."""
    seeds = vd.common_seeds(episodes, [(scenario, label), (scenario, rule)])
    a = np.array([episodes[(scenario, label)][k][0] for k in seeds])
    b = np.array([episodes[(scenario, rule)][k][0] for k in seeds])
    slo_a = float(np.mean([episodes[(scenario, label)][k][1] for k in seeds]))
    slo_b = float(np.mean([episodes[(scenario, rule)][k][1] for k in seeds]))
    return {"scenario": scenario, "test": vd.paired_test(a, b), "slo": slo_a, "rule_slo": slo_b}


def win_tie_loss(test: vd.PairedTest, slo: float, rule_slo: float) -> str:
    """ "W" (p < 0.05, a positive difference, an SLO share not higher), "L" (p < 0.05, negative) or "T"."""
    if test.p_value < vd.ALPHA and vd.beats_at_slo(test.mean_diff, slo, rule_slo):
        return "W"
    return "L" if test.p_value < vd.ALPHA and test.mean_diff < 0 else "T"


def _ci_cells(comparisons: list[dict], scenarios: list[str]) -> list[str]:
    """Each scenario's paired comparison: mean difference [95 % CI], in bold where p < the verdict's alpha; "-"
    where the candidate was not judged (e.g. a specialist not trained)."""
    by = {x["scenario"]: x["test"] for x in comparisons}
    return ["-" if s not in by else f"**{_ci(by[s])}**" if by[s].p_value < vd.ALPHA else _ci(by[s]) for s in scenarios]


def _ci(t: vd.PairedTest, digits: int = 1) -> str:
    return f"{t.mean_diff:+.{digits}f} [{t.ci_low:+.{digits}f}, {t.ci_high:+.{digits}f}]"


def _wins(tests: list[tuple[vd.PairedTest, float, float]]) -> str:
    """wins / ties / losses; a win needs p < 0.05, a positive difference and an SLO share not higher."""
    calls = [win_tie_loss(*t) for t in tests]
    return f"{calls.count('W')}/{calls.count('T')}/{calls.count('L')}"


def markdown(results: list[dict], timings: dict[str, dict], scenarios: list[str], machine: dict) -> str:
    lines = [
        f"Benchmark seeds {SEEDS[0]}-{SEEDS[-1]}; best rules chosen on tuning seeds {TUNING_SEEDS[0]}-"
        f"{TUNING_SEEDS[-1]}; normalised score = oracle's mean reward / episode reward (the verdict tool's: the "
        "clairvoyant oracle heuristic); costs over the bound's, the `hindsight` planner's. "
        f"CartPole PPO reference at the start: {machine.get('cartpole_steps_s', float('nan')):,.0f}"
        " env-steps/s.",
        "",
        "| variant | env steps | train wall (CPU) | load | IQM [95 % CI] | IQM - best rule per scenario [CI] | "
        "IQM - best generalist rule [CI] | vs best rule per scenario: W/T/L | vs best generalist: W/T/L | "
        "mean reward | SLO viol. |",
        "|---|---:|---:|---:|---:|---:|---:|---|---|---:|---:|",
    ]
    for r in results:
        t = timings.get(r["variant"], {})
        steps = f"{t.get('env_steps', t.get('timesteps', 0)) / 1e6:.1f}M" if "timesteps" in t else "-"
        wall = f"{t['wall_s']:.0f} s ({t['cpu_s']:.0f} s)" if "wall_s" in t else "-"
        load = f"{t['load1_start']:.1f}-{t['load1_end']:.1f}" if "load1_start" in t else "-"
        o = {x["pool"].split(" ")[0]: x for x in r["overall"]}
        per = _wins([(x["test"], x["slo"], x["rule_slo"]) for x in r["per_scenario"]])
        gen = _wins([(x["test"], x["slo"], x["rule_slo"]) for x in r["vs_generalist"]])
        iqm = r["iqm"]
        cells = [
            f"`{r['variant']}`",
            steps,
            wall,
            load,
            f"{iqm[0]:.3f} [{iqm[1]:.3f}, {iqm[2]:.3f}]",
            _iqm_diff(o.get("any")),
            _iqm_diff(o.get("one")),
            per,
            gen,
            f"{r['reward']:.1f}",
            f"{100 * r['slo']:.2f}%",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "Per scenario: the variant minus the best rule of the scenario (chosen on the tuning seeds), mean of the "
        "paired per-seed differences in episode reward [95 % CI]; **bold** where p < 0.05.",
        "",
        "| variant | " + " | ".join(scenarios) + " |",
        "|---|" + "---:|" * len(scenarios),
    ]
    for r in results:
        lines.append(f"| `{r['variant']}` | " + " | ".join(_ci_cells(r["per_scenario"], scenarios)) + " |")
    best = {x["scenario"]: x["rule"] for r in results for x in r["per_scenario"]}
    lines.append("| best rule | " + " | ".join(f"`{best[s]}`" if s in best else "-" for s in scenarios) + " |")
    lines += [
        "",
        "Per scenario against the best generalist rule (one setting for every scenario, chosen on the tuning "
        "seeds), and cost over the bound's (the `hindsight` planner, same seeds; the rule: the scenario's best "
        "rule).",
        "",
        "| variant | generalist rule | " + " | ".join(scenarios) + " |",
        "|---|---|" + "---:|" * len(scenarios),
    ]
    for r in results:
        cells = _ci_cells(r["vs_generalist"], scenarios)
        lines.append(f"| `{r['variant']}` | `{r['generalist']}` | " + " | ".join(cells) + " |")
    lines += ["", "| variant: cost / bound | " + " | ".join(scenarios) + " |", "|---|" + "---:|" * len(scenarios)]
    for r in results:
        cost = r["cost"]
        lines.append(
            f"| `{r['variant']}` | "
            + " | ".join(_ratio(cost[s]["candidate"]) if s in cost else "-" for s in scenarios)
            + " |"
        )
    rule_cost = {s: c["rule"] for r in results for s, c in r["cost"].items()}
    lines.append(
        "| best rule | " + " | ".join(_ratio(rule_cost[s]) if s in rule_cost else "-" for s in scenarios) + " |"
    )
    for r in results:
        if r.get("chosen"):  # a residual's rules chosen on the tuning seeds (policy: best_generalist, experts: auto)
            c = r["chosen"]
            text = f"`{r['variant']}`: rules chosen on the tuning seeds:"
            if "policy" in c:
                text += f" base (expert 0) `{c['policy']}`" + (";" if "experts" in c else "")
            if "experts" in c:
                best = "best at no higher SLO share than expert 0" if c.get("at_slo") else "best"
                if "robust" in c:  # an expert may be a scenario's robust pick, not its best at no higher share
                    best = "chosen at no higher SLO share than expert 0"
                text += " experts " + ", ".join(
                    f"{i + 1}: `{spec}` ({best} on {', '.join(sc)})" for i, (spec, _, sc) in enumerate(c["experts"])
                )
                if c.get("robust"):
                    text += (
                        "; of these, the best with more reward at a significantly lower SLO share (paired tests): "
                        + ", ".join(f"{s}: `{spec}`" for s, spec in c["robust"].items())
                    )
            lines += ["", text]
        if r.get("rules"):  # the residual specialists' base rules, chosen on the tuning seeds
            lines += ["", f"`{r['variant']}` correct: " + ", ".join(f"{s}: `{p}`" for s, p in r["rules"].items())]
        if r.get("gates"):  # the gate specialists' rules, chosen on the tuning seeds
            lines += ["", f"`{r['variant']}`: rules chosen on the tuning seeds (expert 0 first):"]
            lines += [
                f"- {s}: `{g['policy']}`; " + ", ".join(f"`{expert_name(spec, path)}`" for spec, path in g["experts"])
                for s, g in r["gates"].items()
            ]
    for r in results:
        if r["variant"].endswith("specialists"):
            lines += ["", *detail_table(r)]
    return "\n".join(lines) + "\n"


def _ratio(x: float) -> str:
    """A cost over the bound, "-" without the bound."""
    return "-" if np.isnan(x) else f"{x:.2f}"


def expert_name(spec: str, path: str) -> str:
    """``kpa@tuned`` read from ``configs/policies/tuned/steady/kpa.yaml`` -> ``kpa@tuned (steady)``."""
    return f"{spec} ({Path(path).parent.name})" if spec.endswith("@tuned") else spec


def detail_table(r: dict) -> list[str]:
    """A specialist kind's scenarios against their best rules: reward difference [95 % CI], p, SLO shares and
    costs over the bound (candidate / rule), and the win rule's call (a win needs p < 0.05, a positive difference
    and an SLO share not higher)."""
    lines = [
        f"`{r['variant']}` against each scenario's best rule:",
        "",
        "| scenario | rule | reward diff [95 % CI] | p | SLO share (spec. / rule) | cost / bound (spec. / rule) "
        "| call |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for x in r["per_scenario"]:
        t, cost = x["test"], r["cost"].get(x["scenario"], {})
        call = {"W": "win", "L": "loss", "T": "tie"}[win_tie_loss(t, x["slo"], x["rule_slo"])]
        costs = f"{_ratio(cost['candidate'])} / {_ratio(cost['rule'])}" if cost else "-"
        lines.append(
            f"| {x['scenario']} | `{x['rule']}` | {_ci(t)} | {t.p_value:.3g} | {100 * x['slo']:.2f}% / "
            f"{100 * x['rule_slo']:.2f}% | {costs} | {call} |"
        )
    return lines


def _iqm_diff(o: dict | None) -> str:
    if o is None:
        return "-"
    text = f"{o['iqm_diff']:+.3f} [{o['iqm_diff_low']:+.3f}, {o['iqm_diff_high']:+.3f}] vs `{o['rule']}`"
    return f"**{text}**" if o["iqm_diff_low"] > 0 or o["iqm_diff_high"] < 0 else text


# ------------------------------------------------------------------------------------------ main
def train_specialists(
    out: Path,
    folder: Path,
    scenarios: list[str],
    kind: str,
    sets: dict[str, dict],
    cfg: AblationConfig,
    timings: dict[str, dict],
    log: Any,
    steps: int | None = None,
    workers: int = 1,
) -> tuple[list[dict], str]:
    """Train (unless done; ``workers`` at once, :func:`train_runs`) and evaluate one ``kind`` specialist per
    scenario (``folder/<scenario>.yaml`` with ``sets[scenario]``), each on its own scenario only; (their rows under
    one label, the label). In a folder assembled by ``pick_arm`` (``selection.json``) a run keeps its arm's
    experts: only its base rule is checked."""
    label, rows, wall, cpu, loads, env_steps = f"ppo:{out}/{kind}s", [], 0.0, 0.0, [], 0
    steps = steps or cfg.specialist_timesteps
    assembled = (out / "selection.json").is_file()
    jobs = []
    for s in scenarios:
        path = folder / f"{s}.yaml"
        if not path.is_file():
            raise ConfigError(f"{path}: no specialist config for scenario {s}")
        log(f"{kind} {s}: training {steps:,} steps")
        jobs.append((out / "runs" / f"{kind}_{s}", path, sets.get(s, {}), steps, assembled))
    for s, t in zip(scenarios, train_runs(jobs, workers)):
        run_dir = out / "runs" / f"{kind}_{s}"
        wall, cpu = wall + t["wall_s"], cpu + t["cpu_s"]
        env_steps += int(t.get("env_steps", t["timesteps"]))
        loads += [t["load1_start"], t["load1_end"]]
        timings[f"{kind}_{s}"] = t
        rows += [dict(r, policy=label) for r in evaluate_run(run_dir, [s], "x")]
    timings[f"{kind}s"] = {
        "timesteps": steps * len(scenarios),
        "env_steps": env_steps,
        "wall_s": wall,
        "cpu_s": cpu,
        "load1_start": min(loads),
        "load1_end": max(loads),
    }
    return rows, label


def run_ablation(
    cfg: AblationConfig,
    out: Path,
    only: list[str] | None = None,
    specialists: bool = True,
    log: Any = print,
    bound_cache: Path | None = Path("results/planner/cache.json"),
    specialist_scenarios: list[str] | None = None,
    workers: int = 1,
) -> str:
    from .train_config import AUTO_EXPERTS_AT_SLO, AUTO_EXPERTS_AT_SLO_ROBUST

    scenarios = list(EVALUATION_SCENARIOS)
    out.mkdir(parents=True, exist_ok=True)
    machine_path = out / "machine.json"
    machine = json.loads(machine_path.read_text()) if machine_path.is_file() else {}
    if "cartpole_steps_s" not in machine:
        machine = {"cartpole_steps_s": cartpole_steps_per_second(), "load1": os.getloadavg()[0], "cpus": os.cpu_count()}
        machine_path.write_text(json.dumps(machine, indent=1))
    log(f"rules on the benchmark seeds (cached in {out / 'rules_episodes.csv'})")
    rules = rule_rows(out, scenarios)
    tuning = rule_tuning(out, rules, scenarios)
    bounds = bound_rows(scenarios, bound_cache) if bound_cache is not None else []
    bound = {(r["scenario"], int(r["seed"])): float(r["cost_usd"]) for r in bounds}
    timings: dict[str, dict] = {}
    results, learned = [], []
    for v in cfg.variants:
        if only and v.name not in only:
            continue
        run_dir = out / "runs" / v.name
        steps = v.total_timesteps or cfg.total_timesteps
        asked = v.set["residual"].get("experts") if isinstance(v.set.get("residual"), dict) else None
        at_slo = asked in (AUTO_EXPERTS_AT_SLO, AUTO_EXPERTS_AT_SLO_ROBUST)
        per_seed = rule_tuning_seeds(out, tuning, scenarios) if asked == AUTO_EXPERTS_AT_SLO_ROBUST else None
        if per_seed is not None:  # the mean shares follow from the per-seed ones (the same rollouts)
            slo = {k: float(np.mean(v["slo_violation_share"])) for k, v in per_seed.items()}
        else:
            slo = rule_tuning_slo(out, tuning, scenarios) if at_slo else None
        sets, chosen = resolve_rules(v.set, tuning, scenarios, slo, per_seed)
        if chosen:
            log(f"{v.name}: rules chosen on the tuning seeds: {sets['residual']['policy']} + {chosen}")
        log(f"{v.name}: training {steps:,} steps ({sets or 'the base recipe'})")
        timings[v.name] = train_variant(run_dir, cfg.base, sets, steps)
        rows = evaluate_run(run_dir, scenarios, f"ppo:{run_dir}")
        learned += rows
        result = {"variant": v.name, **judge(rules, rows, f"ppo:{run_dir}", tuning, bound)}
        if chosen:
            result["chosen"] = chosen
        results.append(result)
    if specialists and cfg.specialists is not None and (not only or "specialists" in only):
        rows, label = train_specialists(
            out, cfg.specialists, scenarios, "specialist", {}, cfg, timings, log, workers=workers
        )
        learned += rows
        results.append({"variant": "specialists", **judge(rules, rows, label, tuning, bound)})
    rs = cfg.residual_specialists
    if specialists and rs is not None and cfg.specialists is not None and (not only or "residual_specialists" in only):
        chosen = {s: best_rule(tuning, s) for s in specialist_scenarios or scenarios}
        sets = {
            s: {"residual": {"policy": rule_file(spec, s), "max_offset": rs.max_offset, "zero_bias": rs.zero_bias}}
            for s, spec in chosen.items()
        }
        for s, spec in chosen.items():
            log(f"residual specialist {s}: on top of {spec} ({sets[s]['residual']['policy']}, best on tuning seeds)")
        rows, label = train_specialists(
            out, cfg.specialists, list(chosen), "residual_specialist", sets, cfg, timings, log, rs.timesteps, workers
        )
        learned += rows
        mine = [r for r in rules if r["scenario"] in chosen]  # judged on the scenarios trained
        results.append({"variant": "residual_specialists", "rules": chosen, **judge(mine, rows, label, tuning, bound)})
    gs = cfg.gate_specialists
    if specialists and gs is not None and cfg.specialists is not None and (not only or "gate_specialists" in only):
        trained = specialist_scenarios or scenarios
        floors, floor_record = choose_floor_starts(gs, tuning, trained, log) if gs.redundancy else ({}, {})
        sets, gates = gate_specialist_sets(gs, tuning, scenarios, trained, floors)
        for s, rec in floor_record.items():
            gates[s]["redundancy"] = rec
        for s in trained:
            log(f"gate specialist {s}: expert 0 {gates[s]['policy']} (best on tuning seeds), {sets[s]['residual']}")
        rows, label = train_specialists(
            out,
            cfg.specialists,
            trained,
            "gate_specialist",
            sets,
            cfg,
            timings,
            log,
            max(gs.timesteps // gs.hold, 1),
            workers,
        )
        learned += rows
        if (out / "selection.json").is_file():  # assembled by pick_arm: each run's own experts
            # each run's own experts; a floor chosen now may not be the one (if any) a run was trained with
            gates = {
                s: {
                    **{k: v for k, v in g.items() if k != "redundancy"},
                    "experts": run_experts(out / "runs" / f"gate_specialist_{s}"),
                }
                for s, g in gates.items()
            }
        mine = [r for r in rules if r["scenario"] in trained]  # judged on the scenarios trained
        results.append({"variant": "gate_specialists", "gates": gates, **judge(mine, rows, label, tuning, bound)})
    everything = rules + learned
    add_oracle_ratio(everything)
    write_rows(out / "episodes.csv", everything)
    write_rows(out / "bound_episodes.csv", bounds)  # apart: the verdict tool would count the planner as a rule
    text = markdown(results, timings, scenarios, machine)
    (out / "ablation.md").write_text(text)
    summary = [
        {
            "variant": r["variant"],
            "iqm": r["iqm"],
            "reward": r["reward"],
            "slo": r["slo"],
            "timing": timings.get(r["variant"]),
            "per_scenario": [
                {
                    "scenario": x["scenario"],
                    "rule": x["rule"],
                    "slo": x.get("slo"),
                    "rule_slo": x.get("rule_slo"),
                    **x["test"].__dict__,
                }
                for x in r["per_scenario"]
            ],
            "vs_generalist": [{"scenario": x["scenario"], **x["test"].__dict__} for x in r["vs_generalist"]],
            "cost": r["cost"],
            "rules": r.get("rules"),
            "chosen": r.get("chosen"),
            "gates": r.get("gates"),
        }
        for r in results
    ]
    (out / "ablation.json").write_text(json.dumps(summary, indent=1))
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=Path("configs/train/ablation.yaml"))
    parser.add_argument("--out", type=Path, default=Path("results/ablation"))
    parser.add_argument(
        "--only", help="comma-separated variant names (and/or specialists, residual_specialists, gate_specialists)"
    )
    parser.add_argument("--no-specialists", action="store_true")
    parser.add_argument("--bound-cache", type=Path, default=Path("results/planner/cache.json"))
    parser.add_argument("--no-bound", action="store_true", help="judge without the bound (costs over it shown as '-')")
    parser.add_argument("--total-timesteps", type=int, help="override the variants' budget")
    parser.add_argument("--specialist-timesteps", type=int, help="override the specialists' budget")
    parser.add_argument(
        "--specialist-scenarios",
        help="comma-separated scenarios: train and judge the residual (or gate) specialists of these",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="train this many specialists at once, each in its own process (the same runs as one by one; list "
        "the slowest scenario first, e.g. memory_pressure)",
    )
    args = parser.parse_args()
    pin_training_kernels()  # before the CartPole reference runs torch: the trainings then use the pinned kernels
    try:
        cfg = load_ablation_config(args.config)
        updates = {}
        if args.total_timesteps:
            updates["total_timesteps"] = args.total_timesteps
        if args.specialist_timesteps:
            updates["specialist_timesteps"] = args.specialist_timesteps
        cfg = cfg.model_copy(update=updates)
        only = args.only.split(",") if args.only else None
        chosen = args.specialist_scenarios.split(",") if args.specialist_scenarios else None
        if not 1 <= args.workers <= 64:
            raise ConfigError(f"--workers: expected 1 to 64 processes, got {args.workers}")
        unknown = sorted(set(chosen or ()) - set(EVALUATION_SCENARIOS))
        if unknown:
            raise ConfigError(f"--specialist-scenarios: unknown {unknown} (known: {', '.join(EVALUATION_SCENARIOS)})")
        text = run_ablation(
            cfg,
            args.out,
            only=only,
            specialists=not args.no_specialists,
            bound_cache=None if args.no_bound else args.bound_cache,
            specialist_scenarios=chosen,
            workers=args.workers,
        )
        print(text)
    except ConfigError as exc:
        raise SystemExit(f"error: {exc}") from None


if __name__ == "__main__":
    main()
