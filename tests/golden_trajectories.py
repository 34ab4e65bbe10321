"""Golden trajectories: digests of every observation, reward, reward part and info value of fixed episodes.

A refactor of the simulator, its adapters or the policies must reproduce them bit for bit
(``tests/test_golden.py``). Record them again only for a change that is meant to change behaviour, in a commit
that says which behaviour changed and why:

    python tests/golden_trajectories.py --write            # rewrite tests/golden/digests.json
    python tests/golden_trajectories.py --dump DIR         # also save the raw arrays (npz) to compare by hand

Episodes: every scenario of the library x several policies x seeds 0, 1, 2, through the single env (one episode
per seed) and the native vector env (the three seeds as one batch, three steps past the end so that the
autoreset is covered), plus a random policy through the SB3 VecEnv.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import gymnasium as gym
import numpy as np

import scaling_env
from agents import make_policy
from scaling_env import load_scenario, scenario_names

DIGESTS = Path(__file__).parent / "golden" / "digests.json"
SEEDS = [0, 1, 2]
# the keys recorded: fixed here, so that a new info key or reward term (which should not change the existing
# ones) leaves the digests as they are
INFO_NAMES = (
    "arrivals", "served", "dropped", "failed", "backlog", "latency_mean_s", "latency_p95_s", "cpu_utilization",
    "memory_utilization", "cpu_max", "memory_max", "instances_warm", "instances_booting", "instances_failed",
    "instances_unhealthy", "instances_draining", "instances_billed", "instance_seconds", "cost_usd", "slo_violated",
    "scale_requested", "scale_applied", "blocked_by_cooldown", "cold_starts", "crashes", "dropped_share",
    "failed_share", "time_s",
)  # fmt: skip
REWARD_NAMES = ("cost", "slo_violation", "dropped", "failed", "scaling")
POLICIES = (
    "random",
    "static",
    "threshold",
    "step_scaling",
    "target_tracking",
    "hpa",
    "kpa",
    "predictive",
    "oracle",
    "static_peak",
)


class RandomPolicy:
    """Uniform actions from a generator seeded per cluster (so single and batch runs draw the same)."""

    def __init__(self, n_actions: int) -> None:
        self.n = n_actions

    def reset(self, seed=None, num_envs: int = 1) -> None:
        self.gens = [np.random.default_rng(1000 + (seed or 0) + i) for i in range(num_envs)]

    def bind(self, env) -> None:
        pass

    def act_batch(self, obs, info) -> np.ndarray:
        return np.array([g.integers(self.n) for g in self.gens], dtype=np.int64)

    def act(self, obs, info) -> int:
        return int(self.act_batch(None, None)[0])


def _policy(name: str, config):
    if name == "random":
        return RandomPolicy(len(config.scaling.scale_steps))
    return make_policy(name, config)


def _rows(obs, reward, info) -> list[np.ndarray]:
    rows = [np.asarray(obs, dtype=np.float64).reshape(-1), np.asarray(reward, dtype=np.float64).reshape(-1)]
    rows += [np.asarray(info[k], dtype=np.float64).reshape(-1) for k in INFO_NAMES]
    parts = info["reward_components"]
    rows += [np.asarray(parts[k], dtype=np.float64).reshape(-1) for k in REWARD_NAMES]
    return rows


def _digest(frames: list[list[np.ndarray]]) -> tuple[str, np.ndarray]:
    table = np.concatenate([np.concatenate(rows) for rows in frames])  # 1-D: frames may differ in length
    return hashlib.sha256(np.ascontiguousarray(table).tobytes()).hexdigest(), table


def single_env(scenario: str, policy_name: str, seed: int) -> tuple[str, np.ndarray]:
    config = load_scenario(scenario).config
    env = gym.make("ServerlessScaling-v0", config=config)
    policy = _policy(policy_name, config)
    policy.reset(seed=seed, num_envs=1)
    obs, info = env.reset(seed=seed)
    policy.bind(env.unwrapped)
    frames = [
        _rows(
            obs,
            0.0,
            {**info, "reward_components": {k: 0.0 for k in REWARD_NAMES}} if "reward_components" not in info else info,
        )
    ]
    for _ in range(config.episode_steps):
        obs, reward, _, _, info = env.step(policy.act(obs, info))
        frames.append(_rows(obs, reward, info))
    env.close()
    return _digest(frames)


def vector_env(scenario: str, policy_name: str) -> tuple[str, np.ndarray]:
    config = load_scenario(scenario).config
    env = gym.make_vec(
        "ServerlessScaling-v0", num_envs=len(SEEDS), vectorization_mode="vector_entry_point", config=config
    )
    policy = _policy(policy_name, config)
    policy.reset(seed=SEEDS[0], num_envs=len(SEEDS))
    obs, info = env.reset(seed=SEEDS)
    policy.bind(env.unwrapped if hasattr(env, "unwrapped") else env)
    frames = []
    for _ in range(config.episode_steps + 3):
        obs, reward, _, _, info = env.step(policy.act_batch(obs, info))
        frames.append(_rows(obs, reward, info))
    env.close()
    return _digest(frames)


def sb3_env(scenario: str) -> tuple[str, np.ndarray]:
    config = load_scenario(scenario).config
    venv = scaling_env.ServerlessScalingVecEnv(num_envs=len(SEEDS), config=config)
    venv.seed(SEEDS[0])
    obs = venv.reset()
    policy = RandomPolicy(len(config.scaling.scale_steps))
    policy.reset(seed=SEEDS[0], num_envs=len(SEEDS))
    frames = []
    for _ in range(config.episode_steps + 3):
        obs, reward, done, infos = venv.step(policy.act_batch(obs, None))
        rows = [
            np.asarray(obs, dtype=np.float64).reshape(-1),
            np.asarray(reward, dtype=np.float64),
            np.asarray(done, dtype=np.float64),
        ]
        for info in infos:
            rows.append(np.array([info[k] for k in INFO_NAMES], dtype=np.float64))
            rows.append(np.array([info["reward_components"][k] for k in REWARD_NAMES], dtype=np.float64))
            if "terminal_observation" in info:
                rows.append(np.asarray(info["terminal_observation"], dtype=np.float64))
        frames.append(rows)
    venv.close()
    return _digest(frames)


def cases(scenarios: list[str] | None = None) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    for scenario in scenarios or scenario_names():
        for policy in POLICIES:
            out.append(("vector", scenario, policy))
            out += [("single", scenario, policy, str(seed)) for seed in SEEDS]
        out.append(("sb3", scenario, "random"))
    return out


def run_case(case: tuple[str, ...]) -> tuple[str, np.ndarray]:
    kind, scenario, policy = case[:3]
    if kind == "vector":
        return vector_env(scenario, policy)
    if kind == "single":
        return single_env(scenario, policy, int(case[3]))
    return sb3_env(scenario)


def key(case: tuple[str, ...]) -> str:
    return "/".join(case)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help="rewrite tests/golden/digests.json")
    parser.add_argument("--dump", type=Path, help="save each case's raw table as DIR/<case>.npy")
    parser.add_argument("--scenarios", nargs="*")
    args = parser.parse_args()
    recorded = json.loads(DIGESTS.read_text()) if DIGESTS.exists() else {}
    digests: dict[str, str] = {}
    mismatches = 0
    for case in cases(args.scenarios):
        digest, table = run_case(case)
        digests[key(case)] = digest
        if args.dump:
            args.dump.mkdir(parents=True, exist_ok=True)
            np.save(args.dump / (key(case).replace("/", "__") + ".npy"), table)
        if key(case) in recorded and recorded[key(case)] != digest:
            mismatches += 1
            print(f"differs: {key(case)}")
    if args.write:
        DIGESTS.write_text(json.dumps(dict(sorted(digests.items())), indent=1) + "\n")
        print(f"wrote {len(digests)} digests to {DIGESTS}")
    print(f"{len(digests)} cases, {mismatches} differ from the recorded digests")


if __name__ == "__main__":
    main()
