"""The planning oracle against every other policy, per evaluation scenario: the table of docs/planner.md.

    python perf/bench_planner.py [--seeds 1000..1019] [--scenarios a,b] [--policies p,q] [--out results/planner]

Runs ``planner`` and the other policies (default: the benchmark's, plus every ``<tuned-dir>/<scenario>/*.yaml``
and ``<tuned-dir>/generalist/*.yaml`` that exists, as ``<policy>@tuned`` and ``<policy>@generalist``; tuned-dir
defaults to configs/policies/tuned) over the benchmark seeds, one batch per (scenario, policy) as the benchmark
does, and writes ``episodes.json`` (per seed) and ``planner.md`` (the planner's mean reward, cost and wall time,
each policy's gap to it). Planner results are cached in ``<out>/cache.json`` by (scenario, seed, planner
parameters, code version = a hash of the files a result depends on, ``VERSION_FILES``), so a rerun only plans what
changed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import numpy as np

from agents.experiments.benchmark import DEFAULT_POLICIES, EVALUATION_SCENARIOS, ci95
from agents.registry import CONFIG_DIR, make_policy
from scaling_env.rollout import rollout
from scaling_env.scenarios import load_scenario

ROOT = Path(__file__).resolve().parent.parent


# the code a planner result depends on: the simulator, the env config and workloads, the policies it plans with
VERSION_FILES = ("scaling_env/**/*.py", "agents/base.py", "agents/references/*.py", "configs/scenarios/*.yaml")


def code_version() -> str:
    """A hash of the contents of the files a planner result depends on (``VERSION_FILES``)."""
    digest = hashlib.sha1()
    for pattern in VERSION_FILES:
        for path in sorted(ROOT.glob(pattern)):
            digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def run(scenario: str, spec: str, seeds: list[int]) -> tuple[list[dict], float]:
    cfg = load_scenario(scenario).config
    policy = make_policy(spec, cfg)
    t = time.perf_counter()
    res = rollout(cfg, policy, seeds, parallel=False)
    return [{"seed": s, **m} for s, m in zip(seeds, res.metrics)], time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="1000..1019", help="first..last or a comma list")
    ap.add_argument("--scenarios", default=",".join(EVALUATION_SCENARIOS))
    ap.add_argument("--policies", default=",".join(DEFAULT_POLICIES))
    ap.add_argument("--out", type=Path, default=Path("results/planner"))
    ap.add_argument(
        "--tuned-dir", type=Path, default=CONFIG_DIR / "tuned", help="tuned policy files: <dir>/<scenario>/*.yaml"
    )
    args = ap.parse_args()
    if ".." in args.seeds:
        a, b = args.seeds.split("..")
        seeds = list(range(int(a), int(b) + 1))
    else:
        seeds = [int(s) for s in args.seeds.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    cache_path = args.out / "cache.json"
    cache = json.loads(cache_path.read_text()) if cache_path.exists() else {}
    version = code_version()
    planner_params = make_policy("planner", load_scenario("steady").config).params.model_dump_json()
    rows: list[dict] = []
    times: dict[str, float] = {}
    for scenario in args.scenarios.split(","):
        specs = [(p, p) for p in args.policies.split(",") if p != "planner"]
        for folder, tag in ((scenario, "tuned"), ("generalist", "generalist")):
            files = sorted((args.tuned_dir / folder).glob("*.yaml")) if (args.tuned_dir / folder).is_dir() else []
            specs += [(str(f), f"{f.stem}@{tag}") for f in files]
        for spec, name in specs:
            eps, _ = run(scenario, spec, seeds)
            rows += [{"scenario": scenario, "policy": name, **e} for e in eps]
        key = f"{scenario}|{planner_params}|{version}"
        hit = cache.get(key, {})
        todo = [s for s in seeds if str(s) not in hit.get("episodes", {})]
        if todo:
            eps, seconds = run(scenario, "planner", todo)
            hit.setdefault("episodes", {}).update({str(e["seed"]): e for e in eps})
            hit["seconds_per_episode"] = seconds / len(todo)
            cache[key] = hit
            cache_path.write_text(json.dumps(cache, indent=1))
        rows += [{"scenario": scenario, "policy": "planner", **hit["episodes"][str(s)]} for s in seeds]
        times[scenario] = hit["seconds_per_episode"]
        print(f"{scenario}: done", flush=True)
    (args.out / "episodes.json").write_text(json.dumps(rows, indent=1))
    lines = [
        f"Seeds {seeds[0]}..{seeds[-1]} ({len(seeds)}), code version {version}, planner params {planner_params}.",
        "",
        "| scenario | planner reward (95 % CI) | planner cost USD | planner s/episode | best other policy "
        "| its reward | reward gap | cost gap | policies below the planner |",
        "|---|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    detail = [
        "",
        "| scenario | policy | reward | gap to planner | cost USD | cost - planner's |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for scenario in args.scenarios.split(","):
        by: dict[str, list[dict]] = {}
        for r in rows:
            if r["scenario"] == scenario:
                by.setdefault(r["policy"], []).append(r)
        mean = {p: float(np.mean([r["reward"] for r in rs])) for p, rs in by.items()}
        cost = {p: float(np.mean([r["cost_usd"] for r in rs])) for p, rs in by.items()}
        pr = np.array([r["reward"] for r in by["planner"]])
        others = {p: v for p, v in mean.items() if p != "planner"}
        best = max(others, key=others.get)
        below = sum(v <= mean["planner"] for v in others.values())
        lines.append(
            f"| {scenario} | {mean['planner']:.1f} ± {ci95(pr):.1f} | {cost['planner']:.3f} | {times[scenario]:.2f} "
            f"| {best} | {others[best]:.1f} | {mean['planner'] - others[best]:+.1f} "
            f"| {cost['planner'] - cost[best]:+.3f} | {below}/{len(others)} |"
        )
        for p in sorted(others, key=others.get, reverse=True):
            detail.append(
                f"| {scenario} | {p} | {mean[p]:.1f} | {mean[p] - mean['planner']:+.1f} | {cost[p]:.3f} "
                f"| {cost[p] - cost['planner']:+.3f} |"
            )
    text = "\n".join(lines + detail) + "\n"
    (args.out / "planner.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
