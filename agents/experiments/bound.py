"""The planning oracle's results as a cached bound: stored by (scenario, seed, code version), read by the benchmark.

``perf/bench_planner.py`` runs the bound, ``hindsight`` (the planner clairvoyant of the random draws, about
1.5 s of one core per episode) and stores each episode's metrics in a JSON
cache (default ``results/planner/cache.json``) under the key ``scenario | config digest | planner parameters |
code version``, one entry per seed. The code version is a hash of the files a result depends on
(:data:`VERSION_FILES`: the simulator and env package with its packaged traces, the policy base and actions, the
registry, the reference and rule policies and the tuned settings the planner's rule plans use); any change to them
makes earlier results stale: they are not shown, and are recomputed.

``scaling-env benchmark`` does not run the planner by default; :func:`add_bounds` looks the bound up here and adds
each policy's gap to it (reward and cost) to the summary, or says which scenarios have no cached bound and the
command that produces it.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from scaling_env.config import EnvConfig
from scaling_env.files import atomic_write_text, output_lock

from .tables import summarise_episodes

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CACHE = Path("results/planner/cache.json")
BOUND_POLICY = "hindsight"  # the planner clairvoyant of the random draws (configs/policies/hindsight.yaml)
CACHED_LABEL = "bound"  # the cached planner results' row in a benchmark summary
# what a planner result depends on: the simulator and envs (with the packaged traces), the policies it plans with
# (the references, and the rules with their tuned settings, its rule plans)
VERSION_FILES = (
    "scaling_env/**/*.py",
    "scaling_env/data/**/*.csv",
    "agents/base.py",
    "agents/actions.py",
    "agents/registry.py",
    "agents/references/*.py",
    "agents/rules/*.py",
    "configs/policies/tuned/**/*.yaml",
)


def code_version(root: Path = ROOT) -> str:
    """A hash of the contents of the files a planner result depends on (:data:`VERSION_FILES`)."""
    digest = hashlib.sha1()
    for pattern in VERSION_FILES:
        for path in sorted(root.glob(pattern)):
            if "__pycache__" not in path.parts:
                digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def planner_params(config: EnvConfig, spec: str = BOUND_POLICY, overrides: dict | None = None) -> str:
    """A planner variant's parameters as JSON, part of the cache key: ``spec``'s shipped ones
    (configs/policies/<spec>.yaml; by default the bound's) with ``overrides``."""
    from agents.registry import make_policy

    return make_policy(spec, config, overrides).params.model_dump_json()


def config_text(config: EnvConfig) -> str:
    """The config as JSON for the cache key, a replayed trace named by its contents rather than its path (a
    scenario's trace path is absolute, so the same trace in another checkout or clone would miss the cache)."""
    shape = config.workload.shape
    path = getattr(shape, "path", None) if getattr(shape, "kind", None) == "trace" else None
    if not path:
        return config.model_dump_json()
    try:
        contents = hashlib.sha1(Path(path).read_bytes()).hexdigest()
    except OSError:  # a missing trace fails when the scenario runs, with its own message
        return config.model_dump_json()
    data = config.model_dump(mode="json")
    data["workload"]["shape"]["path"] = f"sha1:{contents}"
    return json.dumps(data, sort_keys=True)


def cache_key(scenario: str, config: EnvConfig, params: str, version: str) -> str:
    """``scenario | config digest | planner parameters | code version`` (the seed is the key inside an entry)."""
    config_digest = hashlib.sha1(config_text(config).encode()).hexdigest()[:12]
    return f"{scenario}|{config_digest}|{params}|{version}"


def load_cache(path: Path) -> dict[str, Any]:
    """The cache's entries ({} if there is no file); a file that is not a cache raises ValueError naming it."""
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not a planner cache (invalid JSON: {exc}); remove it to start afresh") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a planner cache (expected a JSON object of entries)")
    return data


def store(path: Path, key: str, episodes: list[dict], seconds_per_episode: float) -> None:
    """Add episodes (each with its ``seed``) under ``key``; the file is rewritten atomically under a lock."""
    with output_lock(path, "planner cache"):
        cache = load_cache(path)
        entry = cache.setdefault(key, {"episodes": {}})
        entry["episodes"].update({str(e["seed"]): e for e in episodes})
        entry["seconds_per_episode"] = seconds_per_episode
        atomic_write_text(path, json.dumps(cache, indent=1))


def cached_episodes(cache: dict[str, Any], key: str, seeds: list[int]) -> list[dict] | None:
    """The cached episodes of ``seeds`` in order, or None unless every seed is cached under ``key``."""
    stored = cache.get(key, {}).get("episodes", {})
    if not all(str(s) in stored for s in seeds):
        return None
    return [stored[str(s)] for s in seeds]


def add_bounds(
    summary: list[dict], rows: list[dict], scenarios: dict[str, EnvConfig], seeds: list[int], cache_path: Path
) -> list[str]:
    """Each summary row gets ``reward_gap_to_bound`` and ``cost_gap_to_bound`` (its mean minus the planner's;
    NaN where the scenario has no bound), and a ``bound`` row is added after each scenario whose
    bound comes from the cache. The bound is the run's own ``hindsight`` rows if it ran, else the cached episodes
    of exactly these seeds and the current code version. Platform-mode scenarios have none (the planner's base
    plans scale a pool). Returns lines saying where each bound comes from."""
    have_run = {r["scenario"] for r in rows if r["policy"] == BOUND_POLICY}
    cache = load_cache(cache_path) if len(have_run) < len(scenarios) else {}
    version = code_version() if cache else ""
    bounds: dict[str, dict] = {}
    missing = []
    platform = [name for name, config in scenarios.items() if config.platform.enabled]
    for name, config in scenarios.items():
        if name in platform and name not in have_run:
            continue
        if name in have_run:
            bounds[name] = next(s for s in summary if s["scenario"] == name and s["policy"] == BOUND_POLICY)
            continue
        eps = cache and cached_episodes(cache, cache_key(name, config, planner_params(config), version), seeds)
        if not eps:
            missing.append(name)
            continue
        row = {"scenario": name, "policy": CACHED_LABEL, "episodes": len(eps), **summarise_episodes(eps)}
        oracle = {r["seed"]: r["cost_usd"] for r in rows if r["scenario"] == name and r["policy"] == "oracle"}
        if any("cost_ratio_to_oracle" in s for s in summary):
            ratios = [e["cost_usd"] / oracle[s] if oracle.get(s) else math.nan for s, e in zip(seeds, eps)]
            row["cost_ratio_to_oracle"] = float(np.mean(ratios))
        last = max(i for i, s in enumerate(summary) if s["scenario"] == name)
        summary.insert(last + 1, row)
        bounds[name] = row
    platform_line = f"no bound for the platform-mode scenarios ({', '.join(platform)}): the planner scales a pool"
    if not bounds:
        return ([no_bound_line(missing, seeds, cache_path)] if missing else []) + ([platform_line] if platform else [])
    for s in summary:
        b = bounds.get(s["scenario"])
        s["reward_gap_to_bound"] = s["reward"] - b["reward"] if b else math.nan
        s["cost_gap_to_bound"] = s["cost_usd"] - b["cost_usd"] if b else math.nan
    cached = [n for n in bounds if n not in have_run]
    lines = []
    if cached:
        lines.append(
            f"bound: the hindsight planner's results cached in {cache_path} (code version {version}) for "
            + ", ".join(cached)
        )
    if have_run & set(bounds):
        lines.append(f"bound: the hindsight planner run here for {', '.join(sorted(have_run & set(bounds)))}")
    for name, b in bounds.items():
        above = [s["policy"] for s in summary if s["scenario"] == name and s["reward"] > b["reward"]]
        if above:  # the planner is no bound there (its base plans or the seeds' noise)
            lines.append(f"ABOVE the bound on {name}: {', '.join(above)} (a higher mean reward than the bound's)")
    if missing:
        lines.append(no_bound_line(missing, seeds, cache_path))
    if platform:
        lines.append(platform_line)
    return lines


def no_bound_line(missing: list[str], seeds: list[int], cache_path: Path, spec: str = BOUND_POLICY) -> str:
    """Which scenarios have no bound (or planner variant ``spec``) for these seeds and code, and the command that
    computes it (minutes each)."""
    consecutive = seeds == list(range(seeds[0], seeds[-1] + 1))
    seed_arg = f"{seeds[0]}..{seeds[-1]}" if consecutive else ",".join(map(str, seeds))
    command = f"--scenarios {','.join(missing)} --seeds {seed_arg} --out {cache_path.parent}"
    if spec == BOUND_POLICY:
        return (
            f"no cached bound for {', '.join(missing)} on these seeds and code (in {cache_path}); compute it with "
            f"`python perf/bench_planner.py {command}` (1-2 minutes per scenario on 2 cores, memory_pressure "
            "about 10) or add -p hindsight"
        )
    return (
        f"no cached `{spec}` for {', '.join(missing)} on these seeds and code (in {cache_path}); compute it with "
        f"`python perf/bench_planner.py --bound {spec} {command}` (the sampled-futures planner: about 3 minutes "
        "per scenario on 2 cores, memory_pressure about 50)"
    )
