"""Per scenario, choose among several trainings ("arms") of the specialists the one with the best mean reward on
the tuning seeds, and put the chosen run folders together in one ablation folder, to be judged on the benchmark.

    python -m agents.experiments.pick_arm OUT ARM_OUT [ARM_OUT ...] [--kind gate_specialist] [--seeds 0-19]
    python -m agents.experiments.ablation --only gate_specialists --out OUT     # judges the chosen runs

Each ``ARM_OUT`` is an ablation folder (``python -m agents.experiments.ablation --config <arm> --only
gate_specialists --out ARM_OUT``) holding ``runs/<kind>_<scenario>``; e.g. gate specialists with hold 4 or 16, or
other training seeds. Every arm's run of a scenario is rolled out (its best model, deterministic, with the run's
``env_overrides``, as the benchmark runs it) on the scenario's tuning seeds (default 0-19, where the rules were
tuned and the best rule is chosen; seeds of the benchmark, 1000-1019, are refused) and the arm with the highest
mean reward is chosen (the first listed on a tie). ``OUT`` gets the chosen run folders (copied), the rule episodes
cached in the first arm (the rules do not depend on the arm) and ``selection.json`` (every arm's tuning reward,
the chosen arm). The ablation then finds every run trained and only evaluates and judges them.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np

from scaling_env.config import ConfigError, read_yaml_mapping

from .benchmark import EVALUATION_SCENARIOS
from .gate_choices import parse_seeds
from .train_config import FIRST_BENCHMARK_SEED

RULE_CACHE = ("rules_episodes.csv", "tuning_rewards.json", "rules_version.txt", "machine.json")


def tuning_reward(run_dir: Path, scenario: str, seeds: list[int]) -> float:
    """The mean episode reward of the run's best model on ``scenario``'s ``seeds`` (the benchmark's way)."""
    from agents.learned.ppo import apply_env_overrides, load_ppo_policy
    from scaling_env.rollout import rollout
    from scaling_env.scenarios import load_scenario

    overrides = read_yaml_mapping(run_dir / "config.yaml", "training config").get("env_overrides") or {}
    sc = load_scenario(scenario)
    config = apply_env_overrides(sc.config, overrides)
    run = rollout(config, load_ppo_policy(run_dir, config, scenario=sc.name), seeds, parallel=False)
    return float(np.mean([m["reward"] for m in run.metrics]))


def choose(rewards: dict[str, float]) -> str:
    """The arm with the highest tuning reward (the first listed on a tie)."""
    return max(rewards, key=lambda arm: (rewards[arm], -list(rewards).index(arm)))


def pick_arms(
    out: Path, arms: list[Path], scenarios: list[str], kind: str, seeds: list[int], log=print
) -> dict[str, dict]:
    """Choose each scenario's arm on ``seeds`` (:func:`choose`) and assemble ``out`` (module docstring)."""
    if max(seeds) >= FIRST_BENCHMARK_SEED:
        raise ConfigError(f"--seeds: the arms are chosen on tuning seeds (< {FIRST_BENCHMARK_SEED}), got {max(seeds)}")
    if out.resolve() in {a.resolve() for a in arms}:
        raise ConfigError(f"{out}: the folder to assemble must not be one of the arms")
    for arm in arms:
        for s in scenarios:
            if not (arm / "runs" / f"{kind}_{s}" / "final_model.zip").is_file():
                raise ConfigError(f"{arm}: no trained {kind}_{s} (runs/{kind}_{s}/final_model.zip)")
    selection = {}
    for s in scenarios:
        rewards = {str(arm): tuning_reward(arm / "runs" / f"{kind}_{s}", s, seeds) for arm in arms}
        chosen = choose(rewards)
        log(f"{s}: " + ", ".join(f"{a} {r:.2f}" for a, r in rewards.items()) + f" -> {chosen}")
        selection[s] = {"tuning_rewards": rewards, "chosen": chosen}
    (out / "runs").mkdir(parents=True, exist_ok=True)
    for name in RULE_CACHE:
        if (arms[0] / name).is_file():
            shutil.copy2(arms[0] / name, out / name)
    for s, x in selection.items():
        dst = out / "runs" / f"{kind}_{s}"
        if dst.exists():
            shutil.rmtree(dst)
        shutil.copytree(Path(x["chosen"]) / "runs" / f"{kind}_{s}", dst)
    (out / "selection.json").write_text(json.dumps({"seeds": seeds, "kind": kind, "scenarios": selection}, indent=1))
    return selection


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("arms", type=Path, nargs="+")
    parser.add_argument("--kind", default="gate_specialist")
    parser.add_argument("--scenarios", default=",".join(EVALUATION_SCENARIOS))
    parser.add_argument("--seeds", default="0-19", help="first-last or a comma list (default: the tuning seeds)")
    args = parser.parse_args()
    try:
        pick_arms(args.out, args.arms, args.scenarios.split(","), args.kind, parse_seeds(args.seeds))
    except ConfigError as exc:
        raise SystemExit(f"error: {exc}") from None


if __name__ == "__main__":
    main()
