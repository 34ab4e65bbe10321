"""The planning oracle against every other policy, per evaluation scenario: the table of docs/planner.md.

    nice -n 10 python perf/bench_planner.py [--seeds 1000..1019] [--scenarios a,b] [--policies p,q] \
        [--out results/planner]

Runs ``planner`` and the other policies (default: the benchmark's, each with its ``@generalist`` and ``@tuned``
settings where configs/policies/tuned has them, as ``scaling-env benchmark --tuned`` does) over the benchmark
seeds, one batch per (scenario, policy) as the benchmark does, and writes ``episodes.json`` (per seed) and
``planner.md`` (the planner's mean reward, cost and wall time, each policy's gap to it) into ``--out``. Planner
results are cached in ``<out>/cache.json`` by (scenario, config, planner parameters, code version) and seed
(``agents/experiments/bound.py``), so a rerun only plans what changed, and ``scaling-env benchmark`` shows the
bound and every policy's gap to it from that cache without planning.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from agents.experiments.benchmark import DEFAULT_POLICIES, EVALUATION_SCENARIOS, ci95
from agents.experiments.bound import (
    BOUND_POLICY,
    cache_key,
    cached_episodes,
    code_version,
    load_cache,
    planner_params,
    store,
)
from agents.registry import PLATFORM_POLICIES, TUNED_DIR, make_policy, with_tuned
from scaling_env.rollout import rollout
from scaling_env.scenarios import load_scenario


def run(scenario: str, spec: str, seeds: list[int], overrides: dict | None = None) -> tuple[list[dict], float]:
    cfg = load_scenario(scenario).config
    policy = make_policy(spec, cfg, overrides, scenario=scenario)
    t = time.perf_counter()
    res = rollout(cfg, policy, seeds, parallel=False)
    return [{"seed": s, **m} for s, m in zip(seeds, res.metrics)], time.perf_counter() - t


def parse_seeds(text: str) -> list[int]:
    if ".." in text:
        a, b = text.split("..")
        return list(range(int(a), int(b) + 1))
    return [int(s) for s in text.split(",")]


def planner_rows(
    scenario: str,
    seeds: list[int],
    cache_path: Path,
    version: str,
    overrides: dict | None = None,
    spec: str = BOUND_POLICY,
) -> tuple[list[dict], float]:
    """The planner's episodes of ``seeds`` (from the cache, planning only the missing seeds) and its seconds per
    planned episode."""
    cfg = load_scenario(scenario).config
    key = cache_key(scenario, cfg, planner_params(cfg, spec, overrides), version)
    cache = load_cache(cache_path)
    todo = [s for s in seeds if cached_episodes(cache, key, [s]) is None]
    if todo:
        eps, seconds = run(scenario, spec, todo, overrides)
        store(cache_path, key, eps, seconds / len(todo))
        cache = load_cache(cache_path)
    eps = cached_episodes(cache, key, seeds)
    assert eps is not None
    return eps, float(cache[key]["seconds_per_episode"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="1000..1019", help="first..last or a comma list")
    ap.add_argument("--scenarios", default=",".join(EVALUATION_SCENARIOS))
    pool_policies = [p for p in DEFAULT_POLICIES if p not in PLATFORM_POLICIES]  # (platform mode only)
    ap.add_argument("--policies", default=",".join(with_tuned(pool_policies)))
    ap.add_argument("--out", type=Path, default=Path("results/planner"))
    ap.add_argument(
        "--bound",
        default=BOUND_POLICY,
        help=f"the planner variant that is the bound (default {BOUND_POLICY}: clairvoyant of the random draws; "
        "planner: sampled futures)",
    )
    ap.add_argument(
        "--planner",
        type=json.loads,
        default=None,
        help="JSON overrides of the planner's parameters, e.g. '{\"know_random_draws\": true}' (cached apart)",
    )
    args = ap.parse_args()
    seeds = parse_seeds(args.seeds)
    args.out.mkdir(parents=True, exist_ok=True)
    cache_path = args.out / "cache.json"
    version = code_version()
    scenarios = args.scenarios.split(",")
    rows: list[dict] = []
    times: dict[str, float] = {}
    loads: dict[str, str] = {}
    for scenario in scenarios:
        for spec in [p for p in args.policies.split(",") if p not in ("planner", "hindsight", args.bound)]:
            if spec.endswith("@tuned") and not (TUNED_DIR / scenario).is_dir():
                print(f"{scenario}: no tuned settings, {spec} left out", flush=True)
                continue
            eps, _ = run(scenario, spec, seeds)
            rows += [{"scenario": scenario, "policy": spec, **e} for e in eps]
        eps, times[scenario] = planner_rows(scenario, seeds, cache_path, version, args.planner, args.bound)
        rows += [{"scenario": scenario, "policy": args.bound, **e} for e in eps]
        loads[scenario] = " ".join(f"{v:.1f}" for v in os.getloadavg())
        print(f"{scenario}: done ({times[scenario]:.1f} s per planner episode, load {loads[scenario]})", flush=True)
    (args.out / "episodes.json").write_text(json.dumps(rows, indent=1))
    params = planner_params(load_scenario(scenarios[0]).config, args.bound, args.planner)
    what = f"code version {version}, the bound is `{args.bound}`, its params {params}"
    text = report(rows, scenarios, seeds, what, times, loads, args.bound)
    (args.out / "planner.md").write_text(text)
    print(text)


def report(
    rows: list[dict],
    scenarios: list[str],
    seeds: list[int],
    what: str,
    times: dict,
    loads: dict,
    bound: str = BOUND_POLICY,
) -> str:
    lines = [
        f"Seeds {seeds[0]}..{seeds[-1]} ({len(seeds)}), {what}.",
        "",
        "| scenario | planner reward (95 % CI) | planner cost USD | planner s/episode (load) | best other policy "
        "| its reward (95 % CI) | reward gap (paired 95 % CI) | cost gap | policies below the planner |",
        "|---|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    detail = [
        "",
        "| scenario | policy | reward | gap to planner | cost USD | cost - planner's |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for scenario in scenarios:
        by: dict[str, dict[int, dict]] = {}
        for r in rows:
            if r["scenario"] == scenario:
                by.setdefault(r["policy"], {})[r["seed"]] = r
        reward = {p: np.array([rs[s]["reward"] for s in seeds]) for p, rs in by.items()}
        cost = {p: float(np.mean([rs[s]["cost_usd"] for s in seeds])) for p, rs in by.items()}
        mean = {p: float(v.mean()) for p, v in reward.items()}
        pr = reward[bound]
        others = {p: v for p, v in mean.items() if p != bound}
        best = max(others, key=others.get)
        below = sum(v <= mean[bound] for v in others.values())
        diff = pr - reward[best]  # paired by seed
        lines.append(
            f"| {scenario} | {mean[bound]:.1f} ± {ci95(pr):.1f} | {cost[bound]:.3f} "
            f"| {times[scenario]:.1f} ({loads[scenario]}) | {best} | {others[best]:.1f} ± {ci95(reward[best]):.1f} "
            f"| {diff.mean():+.1f} ± {ci95(diff):.1f} | {cost[bound] - cost[best]:+.3f} "
            f"| {below}/{len(others)} |"
        )
        for p in sorted(others, key=others.get, reverse=True):
            detail.append(
                f"| {scenario} | {p} | {mean[p]:.1f} | {mean[p] - mean[bound]:+.1f} | {cost[p]:.3f} "
                f"| {cost[p] - cost[bound]:+.3f} |"
            )
    return "\n".join(lines + detail) + "\n"


if __name__ == "__main__":
    main()
