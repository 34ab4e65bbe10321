"""Which rule a gated run follows, per scenario: the share of steps each expert acts, and how often it switches.

    python -m agents.experiments.gate_choices RUN_DIR [--scenarios steady,diurnal] [--seeds 0-19] [--alone]

A run trained with ``residual.experts`` (agents/learned/residual.py: the agent chooses which rule acts each step)
is rolled out, deterministically, on each scenario (with the run's ``env_overrides``, as the benchmark runs it) and
every step's choice is counted: the share of steps that followed each expert, the share corrected (``max_offset``
> 0), switches per episode, and the mean episode reward. The default seeds are the tuning seeds 0-19, not the
benchmark's (1000-1019): the table is for understanding a gate while working on it, and looking at the benchmark's
episodes there would be choosing on them.

The gate's row also has its mean fleet (warm + booting instances per step) and SLO share. ``--alone`` adds, per
scenario, each expert followed on every step inside the same gate (:func:`followed_alone`: the run's env config,
every expert in shadow): what a gate that always chose that expert would score, to compare the gate's mix with.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from scaling_env.config import ConfigError, read_yaml_mapping

from .benchmark import EVALUATION_SCENARIOS


class Recorder:
    """Wraps a gate's agent: passes everything through and keeps each step's actions."""

    def __init__(self, agent: Any) -> None:
        self.agent = agent
        self.actions: list[np.ndarray] = []

    def bind(self, env: Any) -> None:
        if hasattr(self.agent, "bind"):
            self.agent.bind(env)

    def reset(self, seed: int | None = None, num_envs: int = 1) -> None:
        self.agent.reset(seed, num_envs)

    def act_batch(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        actions = np.asarray(self.agent.act_batch(obs, info), dtype=np.int64)
        self.actions.append(actions.copy())
        return actions


def choice_stats(actions: np.ndarray, n_experts: int, max_offset: int) -> dict[str, Any]:
    """From the actions (steps, episodes) of a gate with ``n_experts`` and ``max_offset``: the share of steps that
    followed each expert, the share with a correction, and the mean number of expert switches per episode."""
    width = 2 * max_offset + 1
    expert, offset = actions // width, actions % width - max_offset
    share = np.bincount(expert.reshape(-1), minlength=n_experts)[:n_experts] / expert.size
    switches = float(np.mean(np.sum(expert[1:] != expert[:-1], axis=0))) if len(expert) > 1 else 0.0
    return {"share": share.tolist(), "corrected": float(np.mean(offset != 0)), "switches": switches}


def expert_label(spec: str) -> str:
    """``configs/policies/tuned/steady/kpa.yaml`` -> ``kpa (steady)``; other specs as they are."""
    path = Path(spec)
    return f"{path.stem} ({path.parent.name})" if path.suffix in (".yaml", ".yml") else spec


def gate_choices(run_dir: Path, scenarios: list[str], seeds: list[int]) -> tuple[list[str], list[dict]]:
    """(the experts' labels, one row per scenario: its name, mean reward and :func:`choice_stats`)."""
    from agents.learned.ppo import load_ppo_policy
    from scaling_env.rollout import rollout
    from scaling_env.scenarios import load_scenario

    residual = read_yaml_mapping(run_dir / "config.yaml", "training config").get("residual") or {}
    specs = [residual.get("policy", "?"), *(residual.get("experts") or ())]
    if len(specs) < 2:
        raise ConfigError(f"{run_dir}: not a gated run (its residual has no experts)")
    rows = []
    for name in scenarios:
        sc = load_scenario(name)
        policy = load_ppo_policy(run_dir, sc.config, scenario=sc.name)
        policy.agent = recorder = Recorder(policy.agent)
        run = rollout(policy.env_config, policy, seeds, record=FLEET_KEYS, parallel=False)
        stats = choice_stats(np.array(recorder.actions), len(specs), int(residual.get("max_offset", 0)))
        rows.append({"scenario": name, **episode_summary(run), **stats})
    return [expert_label(s) for s in specs], rows


FLEET_KEYS = ("instances_warm", "instances_booting", "slo_violated")


def episode_summary(run: Any) -> dict[str, float]:
    """Mean episode reward, mean fleet (warm + booting instances per step) and share of SLO-violating steps."""
    t = run.traces
    return {
        "reward": float(np.mean([m["reward"] for m in run.metrics])),
        "fleet": float(np.mean(t["instances_warm"] + t["instances_booting"])),
        "slo": float(np.mean(t["slo_violated"])),
    }


class Always:
    """A gate's agent that always chooses action ``k`` (with ``max_offset`` 0: expert k, uncorrected)."""

    def __init__(self, k: int) -> None:
        self.k = int(k)

    def reset(self, seed: int | None = None, num_envs: int = 1) -> None:
        pass

    def act_batch(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        return np.full(len(obs), self.k, dtype=np.int64)


def followed_alone(run_dir: Path, scenario: str, seeds: list[int]) -> list[dict[str, float]]:
    """Per expert k of the gated run: :func:`episode_summary` of the gate forced to follow k on every step (its
    choice uncorrected), on the run's env config with every expert in shadow, as the gate itself runs."""
    from agents.learned.ppo import load_ppo_policy
    from scaling_env.rollout import rollout
    from scaling_env.scenarios import load_scenario

    sc = load_scenario(scenario)
    policy = load_ppo_policy(run_dir, sc.config, scenario=sc.name)
    width = 2 * policy.max_offset + 1
    out = []
    for k in range(len(policy.experts)):
        policy.agent = Always(k * width + policy.max_offset)
        out.append(episode_summary(rollout(policy.env_config, policy, seeds, record=FLEET_KEYS, parallel=False)))
    return out


def markdown(labels: list[str], rows: list[dict]) -> str:
    head = "| scenario | mean reward | " + " | ".join(f"{i}: {x}" for i, x in enumerate(labels))
    head += " | corrected | switches / episode | mean fleet | SLO viol. |"
    lines = [head, "|---|---:|" + "---:|" * (len(labels) + 4)]
    for r in rows:
        shares = " | ".join(f"{100 * s:.0f}%" for s in r["share"])
        lines.append(
            f"| {r['scenario']} | {r['reward']:.1f} | {shares} | {100 * r['corrected']:.0f}% | {r['switches']:.1f} "
            f"| {r['fleet']:.1f} | {100 * r['slo']:.2f}% |"
        )
    return "\n".join(lines) + "\n"


def alone_markdown(labels: list[str], alone: dict[str, list[dict[str, float]]]) -> str:
    """Per scenario, each expert followed alone inside the gate: mean reward (mean fleet, SLO share)."""
    lines = ["| scenario | " + " | ".join(f"{i}: {x} alone" for i, x in enumerate(labels)) + " |"]
    lines.append("|---|" + "---:|" * len(labels))
    for name, rows in alone.items():
        cells = " | ".join(f"{r['reward']:.1f} ({r['fleet']:.1f}, {100 * r['slo']:.2f}%)" for r in rows)
        lines.append(f"| {name} | {cells} |")
    return "\n".join(lines) + "\n"


def parse_seeds(text: str) -> list[int]:
    """``first-last`` or a comma list of non-negative seeds; ConfigError naming ``--seeds`` otherwise."""
    try:
        if "-" in text:
            first, last = (int(x) for x in text.split("-"))
            seeds = list(range(first, last + 1))
        else:
            seeds = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"--seeds: expected first-last or a comma list of seeds, got {text!r}") from None
    if not seeds or min(seeds) < 0:
        raise ConfigError(f"--seeds: expected non-negative seeds, got {text!r}")
    return seeds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--scenarios", default=",".join(EVALUATION_SCENARIOS))
    parser.add_argument("--seeds", default="0-19", help="first-last or a comma list (default: the tuning seeds)")
    parser.add_argument("--alone", action="store_true", help="also each expert followed alone inside the gate")
    args = parser.parse_args()
    try:
        seeds = parse_seeds(args.seeds)
        labels, rows = gate_choices(args.run_dir, args.scenarios.split(","), seeds)
    except ConfigError as exc:
        raise SystemExit(f"error: {exc}") from None
    print(markdown(labels, rows))
    if args.alone:
        names = args.scenarios.split(",")
        print(alone_markdown(labels, {n: followed_alone(args.run_dir, n, seeds) for n in names}))


if __name__ == "__main__":
    main()
