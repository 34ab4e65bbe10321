"""The fidelity report: the fast model against the request-level backend (``simulator: request``).

Run from the repository root. Without a reference cache it takes hours on one core (the request backend runs up to
512 seeds per grid cell and 1,000 memory_pressure episodes of about 9 s each); with ``--reference-cache`` holding
the request backend's figures for this grid, about 2 minutes::

    python perf/fidelity.py                    # writes docs/fidelity.md and docs/img/fidelity_*.png
    python perf/fidelity.py --quick            # a smaller grid and fewer seeds, to try it out (not for the docs)
    python perf/fidelity.py --noise            # the request backend's own seed-to-seed spread near capacity
    python perf/fidelity.py --sweep waiting --algo round_robin --json cells.json   # one part of the grid only
        (no report written; add ``--reference-cache ref.json`` to keep the request backend's figures between
        runs of the same grid cells while only the fast model changes)

Three parts, all with both backends on the same configs and seeds:

1. stationary grids (constant Poisson load on a fixed fleet of 8 instances, 0.1 s mean service, no failures):
   utilisation x concurrency per balancer; service variability x utilisation per balancer; waiting room x
   utilisation for round robin and least outstanding. Per cell: mean wait (served-weighted mean latency minus
   the mean service time), p95 (served-weighted mean of the steps' p95), drops (share of arrivals) and cost,
   over steps after a warm-up;
2. transients: a rate change on and off the step grid, cold starts longer than a step, crashes with detection
   delays, a scale-in with draining;
3. shipped scenarios end to end under the target-tracking rule (memory_pressure also under the HPA): episode
   reward, cost and SLO-violation share.

The issue's targets (issue 16): mean wait and p95 within 10 % (15 % for utilisation 0.97-1.03), drops within
10 % or 0.1 % of arrivals, per-scenario reward and SLO share within 5 %. A wait below 1 ms (1 % of the service
time) counts as matching when both are below it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from scaling_env import EnvConfig  # noqa: E402
from scaling_env.config import deep_merge  # noqa: E402
from scaling_env.fields import INFO_NAMES  # noqa: E402
from scaling_env.sim.simulator import BatchSimulator  # noqa: E402

SVC = 0.1
N_INST = 8
WAIT_FLOOR = 0.01 * SVC
COL = {name: i for i, name in enumerate(INFO_NAMES)}


@dataclass
class Grid:
    steps: int = 48
    warm: int = 4
    # the first block of seeds of every cell; more blocks (the next seeds) are added until the reference's 95 % CI is
    # within a third of the target's tolerance, up to ``max_seeds``: with 2 seeds the reference's own near-capacity
    # mean wait moved by up to 36 % between seed pairs, and with 8 least outstanding's still by up to 27 %
    seeds: tuple[int, ...] = tuple(range(1, 9))
    # every cell may run up to ``base_seeds``; past that, up to ``max_seeds`` while the reference's seeds stay within
    # ``request_budget`` simulated arrivals (a rule blind to the fast model): at 64 seeds least outstanding's interval
    # near capacity was still +-7 % to +-14 %, and at 1.00, c = 1 the 8 blocks of 64 seeds ranged 1.93-2.38 s
    base_seeds: int = 64
    max_seeds: int = 512
    request_budget: float = 6.0e7
    rhos_c: tuple[float, ...] = (0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 1.0, 1.02, 1.1, 1.3)
    concs: tuple[int, ...] = (1, 2, 5, 10, 20, 50)
    cvs: tuple[float, ...] = (0.5, 1.0, 1.5, 2.0, 3.0)
    rhos_cv: tuple[float, ...] = (0.5, 0.75, 0.9, 0.98, 1.02)
    queues: tuple[int, ...] = (0, 5, 20, 100, 1000)
    rhos_q: tuple[float, ...] = (0.7, 0.9, 0.98, 1.0, 1.02, 1.3)
    fleets: tuple[int, ...] = (8, 32)  # the issue's join-shortest-queue example: n = 32, utilisation 0.8
    concs_fleet: tuple[int, ...] = (1, 2, 5, 10)


QUICK = Grid(
    steps=16, warm=2, seeds=(1,), base_seeds=1, max_seeds=1, rhos_c=(0.5, 0.9, 1.0, 1.3), concs=(1, 10), cvs=(1.0, 3.0),
    rhos_cv=(0.75,), queues=(5, 100), rhos_q=(0.9, 1.02), fleets=(32,), concs_fleet=(1, 10),
)  # fmt: skip
ALGOS = ("round_robin", "least_outstanding", "random")


def stationary_config(
    simulator: str, algo: str, rho: float, conc: int, cv: float, maxq: int, steps: int, n: int = N_INST
) -> dict:
    return {
        "simulator": simulator,
        "step_seconds": 15.0,
        "episode_steps": steps,
        "workload": {"shape": {"kind": "constant", "rate_rps": rho * n * conc / SVC}},
        "instances": {
            "concurrency": conc,
            "max_queue": maxq,
            "service_seconds": SVC,
            "service_cv": cv,
            "memory_mb_per_request": 0.0,
        },
        "scaling": {"min_instances": n, "max_instances": n, "initial_instances": n},
        "load_balancer": {"algorithm": algo},
        "failures": {"mtbf_seconds": None, "memory_crash": False},
    }


def run_rows(config: dict, seed: int, actions: dict[int, int] | None = None) -> np.ndarray:
    """Metrics rows of one episode (action index 2 = hold unless ``actions`` gives one)."""
    cfg = EnvConfig.from_dict(config)
    sim = BatchSimulator(cfg, 1, parallel=False)
    sim.seed([seed])
    sim.reset()
    rows = np.zeros((cfg.episode_steps, len(INFO_NAMES)))
    hold = list(cfg.scaling.scale_steps).index(0)
    for k in range(cfg.episode_steps):
        a = hold if actions is None else actions.get(k, hold)
        sim.step(np.array([a]))
        rows[k] = sim.metrics[0]
    return rows


def summarise(rows: np.ndarray) -> dict[str, float]:
    served = rows[:, COL["served"]]
    n = max(served.sum(), 1.0)
    arrivals = max(rows[:, COL["arrivals"]].sum(), 1.0)
    return {
        "wait": float((rows[:, COL["latency_mean_s"]] * served).sum() / n - SVC),
        "p95": float((rows[:, COL["latency_p95_s"]] * served).sum() / n),
        "drop": float(rows[:, COL["dropped"]].sum() / arrivals),
        "fail": float(rows[:, COL["failed"]].sum() / arrivals),
        "cost": float(rows[:, COL["cost_usd"]].sum()),
        "arrivals": float(arrivals),
    }


REFERENCE_CACHE: dict[str, dict[str, float]] = {}  # --reference-cache: the request backend's summaries by config


def summary_of(config: dict, seed: int, grid: Grid) -> dict[str, float]:
    if config["simulator"] != "request":
        return summarise(run_rows(config, seed)[grid.warm :])
    key = json.dumps([config, seed, grid.warm], sort_keys=True)
    if key not in REFERENCE_CACHE:
        REFERENCE_CACHE[key] = summarise(run_rows(config, seed)[grid.warm :])
    return REFERENCE_CACHE[key]


def tolerance(rho: float) -> float:
    """The issue's tolerance for mean wait and p95: 15 % at utilisation 0.97-1.03, 10 % elsewhere."""
    return 0.15 if 0.97 <= rho <= 1.03 else 0.10


def reference_halfwidths(parts: list[dict[str, float]]) -> dict[str, float]:
    """95 % half-widths of the reference's seed mean: mean wait and p95 relative to the mean (the wait's to at least
    ``WAIT_FLOOR``), drops absolute (a share of arrivals)."""
    n = len(parts)

    def hw(key: str) -> float:
        values = np.array([p[key] for p in parts])
        return 1.96 * float(values.std(ddof=1)) / np.sqrt(n) if n > 1 else float("inf")

    wait = np.mean([p["wait"] for p in parts])
    p95 = np.mean([p["p95"] for p in parts])
    return {
        "ci_wait_r": hw("wait") / max(abs(float(wait)), WAIT_FLOOR),
        "ci_p95_r": hw("p95") / max(abs(float(p95)), 1e-9),
        "ci_drop_r": hw("drop"),
    }


def tight(parts: list[dict[str, float]], rho: float) -> bool:
    """Whether the reference's seed mean is precise enough to judge the cell: every 95 % half-width within a third
    of what the target allows (drops: of 10 % of the mean or 0.1 % of arrivals, whichever is larger)."""
    ci = reference_halfwidths(parts)
    drop = float(np.mean([p["drop"] for p in parts]))
    third = tolerance(rho) / 3
    return ci["ci_wait_r"] <= third and ci["ci_p95_r"] <= third and ci["ci_drop_r"] <= max(0.1 * drop, 0.001) / 3


def compare_cell(config: dict, grid: Grid, rho: float) -> dict[str, float]:
    """Both backends' means over the same seeds: the reference's first block of ``grid.seeds``, then further blocks
    (the next seeds) until :func:`tight`, ``grid.max_seeds``, or past ``grid.base_seeds`` the arrivals budget."""
    request = {**config, "simulator": "request"}
    seeds = list(grid.seeds)
    ref = [summary_of(request, s, grid) for s in seeds]

    def room_for_block() -> bool:
        n = len(seeds) + len(grid.seeds)
        arrivals = float(np.mean([p["arrivals"] for p in ref]))
        return n <= grid.max_seeds and (n <= grid.base_seeds or n * arrivals <= grid.request_budget)

    while room_for_block() and not tight(ref, rho):
        block = [s + len(seeds) for s in grid.seeds]
        ref += [summary_of(request, s, grid) for s in block]
        seeds += block
    fast = [summary_of({**config, "simulator": "fast"}, s, grid) for s in seeds]
    out: dict[str, float] = {"seeds": float(len(seeds)), **reference_halfwidths(ref)}
    for simulator, parts in (("fast", fast), ("request", ref)):
        for key in parts[0]:
            out[f"{key}_{simulator[0]}"] = float(np.mean([p[key] for p in parts]))
    return out


def rel(a: float, b: float, floor: float = 0.0) -> float:
    """Relative error of the fast value a against the reference b (0 when both are within ``floor``)."""
    if abs(a - b) <= floor:
        return 0.0
    return (a - b) / b if b != 0 else float("inf")


def verdicts(cell: dict[str, float], rho: float) -> dict[str, float | bool]:
    tol = tolerance(rho)
    e_wait = rel(cell["wait_f"], cell["wait_r"], WAIT_FLOOR)
    e_p95 = rel(cell["p95_f"], cell["p95_r"])
    d_drop = cell["drop_f"] - cell["drop_r"]
    e_drop = rel(cell["drop_f"], cell["drop_r"], 0.001)
    return {
        "e_wait": e_wait,
        "e_p95": e_p95,
        "e_drop": e_drop,
        "e_cost": rel(cell["cost_f"], cell["cost_r"]),
        "ok_wait": abs(e_wait) <= tol,
        "ok_p95": abs(e_p95) <= tol,
        "ok_drop": abs(d_drop) <= 0.001 or abs(e_drop) <= 0.10,
    }


def sweep(name: str, rows_key: str, rows_vals, cols_key: str, cols_vals, algos, grid: Grid, base: dict) -> list[dict]:
    """Every (algorithm, row value, column value) cell of one sweep."""
    cells = []
    for algo in algos:
        for rv in rows_vals:
            for cv_ in cols_vals:
                p = {**base, "algo": algo, rows_key: rv, cols_key: cv_}
                n = p.get("n", N_INST)
                config = stationary_config("fast", algo, p["rho"], p["conc"], p["cv"], p["maxq"], grid.steps, n)
                cell = {"sweep": name, **p, **compare_cell(config, grid, p["rho"])}
                cell.update(verdicts(cell, p["rho"]))
                cells.append(cell)
                errors = f"wait {cell['e_wait']:+.1%} p95 {cell['e_p95']:+.1%}"
                print(f"{name} {algo} {rows_key}={rv} {cols_key}={cv_}: {errors}", flush=True)
    return cells


# ------------------------------------------------------------------------------------------ transients
TRANSIENT_BASE = {
    "step_seconds": 15.0,
    "episode_steps": 20,
    "workload": {"shape": {"kind": "constant", "rate_rps": 300.0}},
    "instances": {"concurrency": 10, "max_queue": 100, "service_seconds": SVC, "memory_mb_per_request": 0.0},
    "scaling": {"min_instances": 0, "max_instances": 16, "initial_instances": 4, "scale_in_cooldown_seconds": 0.0},
    "failures": {"mtbf_seconds": None, "memory_crash": False},
}


def transient_cases() -> list[tuple[str, dict, dict[int, int], int]]:
    """(name, config overrides, actions by step (index into scale_steps -2..2), step to show)."""
    spike = {"kind": "spike", "base_rps": 200.0, "peak_rps": 600.0, "duration_seconds": 1e5}
    outage = {"outages": [{"time_seconds": 100.0, "fraction": 0.5}]}
    cold = {"cold_start_seconds": 40.0, "cold_start_jitter": 0.0}
    return [
        (
            "rate 200 -> 600 req/s on the step grid (t = 150 s), capacity 400",
            {"workload": {"shape": {**spike, "start_seconds": 150.0}}},
            {},
            10,
        ),
        (
            "rate 200 -> 600 req/s off the grid (t = 157.5 s), capacity 400",
            {"workload": {"shape": {**spike, "start_seconds": 157.5}}},
            {},
            10,
        ),
        (
            "cold start 40 s (> step): 2 -> 4 instances at 300 req/s",
            {"scaling": {"initial_instances": 2}, "instances": cold},
            {2: 4},
            4,
        ),
        (
            "outage of half the fleet at t = 100 s, checks 30 s x 2, round robin",
            {"failures": outage, "load_balancer": {"algorithm": "round_robin"}},
            {},
            7,
        ),
        (
            "outage of half the fleet at t = 100 s, checks 30 s x 2, least outstanding",
            {"failures": outage, "load_balancer": {"algorithm": "least_outstanding"}},
            {},
            7,
        ),
        (
            "scale-in 6 -> 4 at 500 req/s with draining (delay 300 s)",
            {"workload": {"shape": {"kind": "constant", "rate_rps": 500.0}}, "scaling": {"initial_instances": 6}},
            {4: 0},
            4,
        ),
    ]


def transients(seeds) -> list[dict]:
    out = []
    for name, over, actions, show in transient_cases():
        row: dict = {"case": name, "show": show}
        for simulator in ("fast", "request"):
            config = deep_merge(TRANSIENT_BASE, {**over, "simulator": simulator}, replace=("shape",))
            runs = [run_rows(config, s, actions) for s in seeds]
            tot = np.mean([r.sum(axis=0) for r in runs], axis=0)
            at = np.mean([r[show] for r in runs], axis=0)
            served = np.mean([(r[:, COL["latency_mean_s"]] * r[:, COL["served"]]).sum() for r in runs])
            row[simulator] = {
                "served": tot[COL["served"]],
                "dropped": tot[COL["dropped"]],
                "failed": tot[COL["failed"]],
                "latency": served / max(tot[COL["served"]], 1.0),
                "cost": tot[COL["cost_usd"]],
                "step_dropped": at[COL["dropped"]],
                "step_failed": at[COL["failed"]],
                "step_latency": at[COL["latency_mean_s"]],
                "step_p95": at[COL["latency_p95_s"]],
            }
        out.append(row)
        print("transient", name, flush=True)
    return out


# ------------------------------------------------------------------------------------------ scenarios
SCENARIOS = ("steady", "diurnal", "flash_crowd", "failure_storm", "cold_start_heavy", "memory_pressure", "noisy_trace")
# rules besides target tracking a scenario is also run under (memory_pressure: the HPA's spiral of memory crashes)
SCENARIO_POLICIES = {"memory_pressure": ("hpa",)}
# the first block: the benchmark's 20 evaluation seeds (with 3, flash_crowd's reward moved by about 5 % with the seeds
# alone); ``scenarios`` adds the next blocks of 20 where the paired CI is wide
SCENARIO_SEEDS = tuple(range(1000, 1020))


# the most seeds a row runs (memory_pressure under target tracking always reaches it: its episodes escape the crash
# spiral or not, so it is stratified as well, below)
SCENARIO_MAX_SEEDS = 1000


# rows whose reward is bimodal, estimated by strata (:func:`stratified_mean`): the steps of the prefix that decides
# the stratum, and how many prefixes (seeds from ``STRATA_FIRST_SEED``) weigh the strata. Under target tracking
# memory_pressure's episode escapes the crash spiral (reward about -400) or not (about -2,600), and the rule's first
# scale-out, at step 12 exactly when its first three 1-minute CPU points pass 0.5, decides it in 93 % of episodes
# (perf/memory_escape.py --breach); a prefix of 13 steps costs a twentieth of an episode.
SCENARIO_STRATA = {"memory_pressure": (13, 20_000)}
STRATA_FIRST_SEED = 10_000
STRATA_KEYS = ("reward", "cost_usd", "slo_violation_share")


def prefix_scaled_out(config: EnvConfig, spec: str, seeds: list[int], steps: int) -> np.ndarray:
    """Whether the rule ``spec`` scaled the fleet out within the first ``steps`` steps of each seed's episode (the
    episode's own first steps: a seed's trajectory does not depend on the batch or on how long it runs)."""
    from agents.registry import make_policy
    from scaling_env.envs.vector import ServerlessScalingVectorEnv

    out = []
    for c in range(0, len(seeds), 5000):  # chunks bound the batch's memory
        chunk = seeds[c : c + 5000]
        env = ServerlessScalingVectorEnv(num_envs=len(chunk), config=config, autoreset_mode="next_step", parallel=False)
        policy = make_policy(spec, config)
        obs, info = env.reset(seed=chunk)
        policy.reset(seed=chunk[0], num_envs=len(chunk))
        bind = getattr(policy, "bind", None)
        if bind is not None:
            bind(env)
        up = np.zeros(len(chunk), dtype=bool)
        for _ in range(steps):
            obs, _, _, _, info = env.step(policy.act_batch(obs, info))
            up |= np.asarray(info["scale_applied"]) > 0
        env.close()
        out.append(up)
    return np.concatenate(out)


def cached_prefix(config: EnvConfig, spec: str, seeds: list[int], steps: int) -> np.ndarray:
    """:func:`prefix_scaled_out`, kept in the reference cache for the request backend."""
    if config.simulator != "request":
        return prefix_scaled_out(config, spec, seeds, steps)
    key = json.dumps(["prefix", spec, config.model_dump(mode="json"), steps, seeds[0], len(seeds)])
    if key not in REFERENCE_CACHE:
        REFERENCE_CACHE[key] = {"scaled_out": prefix_scaled_out(config, spec, seeds, steps).tolist()}
    return np.array(REFERENCE_CACHE[key]["scaled_out"], dtype=bool)


def stratified_mean(values: np.ndarray, strata: np.ndarray, population: np.ndarray) -> tuple[float, float]:
    """Stratified estimate of a mean and its variance: ``values`` observed with their stratum ``strata``, the
    strata's weights w_h estimated from ``population``, an independent and larger sample of strata alone (the idea of
    double sampling for stratification, Cochran, *Sampling Techniques*, 3rd ed. 1977, ch. 12). Given the counts
    n_h, the stratified mean's variance is sum_h w_h^2 s_h^2 / n_h (ibid. 5.2); the estimated weights add their
    multinomial variance, (sum_h w_h ybar_h^2 - mean^2) / N. Left out: Var(w_h) s_h^2 / n_h, of order 1 / (n N).
    Every stratum seen in ``population`` needs two values."""
    levels = np.unique(population)
    weights = np.array([np.mean(population == h) for h in levels])
    parts = [values[strata == h] for h in levels]
    if min(len(x) for x in parts) < 2:
        raise ValueError(f"a stratum holds fewer than two episodes: {[len(x) for x in parts]}")
    means = np.array([x.mean() for x in parts])
    mean = float(weights @ means)
    var = sum(w**2 * x.var(ddof=1) / len(x) for w, x in zip(weights, parts, strict=True))
    var += (float(weights @ means**2) - mean**2) / len(population)
    return mean, float(var)


def stratify(row: dict, metrics: dict[str, list[dict]], used: list[int], base: EnvConfig, spec: str) -> None:
    """Replace ``row``'s reward, cost and SLO share by their stratified estimates (:data:`SCENARIO_STRATA`) and the
    reward's CI by theirs (the backends' draws are independent, so the variances add); the plain means are kept
    under ``row["plain"]``."""
    steps, n = SCENARIO_STRATA[row["scenario"]]
    population = list(range(STRATA_FIRST_SEED, STRATA_FIRST_SEED + n))
    row["plain"] = {sim: dict(row[sim]) for sim in metrics}
    row["plain"]["reward_ci"] = row["reward_ci"]
    var: dict[str, float] = {key: 0.0 for key in STRATA_KEYS}
    for sim, runs in metrics.items():
        config = base.with_updates({"simulator": sim})
        strata = cached_prefix(config, spec, used, steps)
        weights_from = cached_prefix(config, spec, population, steps)
        # the escape (an SLO-violation share below 0.5) by stratum: how well the prefix decides it
        escaped = np.array([m["slo_violation_share"] < 0.5 for m in runs])
        row.setdefault("strata", {})[sim] = (float(strata.mean()), float(weights_from.mean()))
        row.setdefault("escapes", {})[sim] = (float(escaped[strata].mean()), float(escaped[~strata].mean()))
        for key in STRATA_KEYS:
            mean, v = stratified_mean(np.array([m[key] for m in runs]), strata, weights_from)
            row[sim][key] = mean
            var[key] += v
    row["reward_ci"] = float(1.96 * np.sqrt(var["reward"]))
    row["slo_ci"] = float(1.96 * np.sqrt(var["slo_violation_share"]))
    row["prefixes"] = n


def scenario_tight(fast: list[dict], request: list[dict]) -> bool:
    """Whether the paired 95 % CI of the fast-minus-request difference (same seeds) is within a third of the target
    (5 % of the request backend's reward; 5 % of its SLO share, or 0.005 where that share is small). The rule sees
    the difference's spread, never its mean, so where a row stops does not depend on whether it agrees."""
    return all(
        ci <= target / 3
        for ci, target in (row_precision(fast, request, key) for key in ("reward", "slo_violation_share"))
    )


def row_target(key: str, reference: float) -> float:
    """The issue's target for a scenario row's ``key``: 5 % of the request backend's value (the SLO share's at
    least 0.005, where that share is small)."""
    return max(0.05 * abs(reference), 0.005 if key == "slo_violation_share" else 0.0)


def row_precision(fast: list[dict], request: list[dict], key: str) -> tuple[float, float]:
    """The paired 95 % half-width of the fast-minus-request difference of ``key`` and the target it is judged by."""
    diff = np.array([f[key] - r[key] for f, r in zip(fast, request, strict=True)])
    target = row_target(key, float(np.mean([r[key] for r in request])))
    return float(1.96 * diff.std(ddof=1) / np.sqrt(len(diff))), target


def scenarios(seeds) -> list[dict]:
    """Each shipped scenario under its rules on both backends: the first block ``seeds``, then further blocks (the
    next seeds) until :func:`scenario_tight` or ``SCENARIO_MAX_SEEDS`` (a single seed: that seed only)."""
    from agents.registry import make_policy
    from scaling_env.rollout import rollout
    from scaling_env.scenarios import load_scenario

    seeds = list(seeds)
    out = []
    for name in SCENARIOS:
        base = load_scenario(name).config
        for spec in ("target_tracking", *SCENARIO_POLICIES.get(name, ())):
            row: dict = {"scenario": name if spec == "target_tracking" else f"{name} ({spec})"}
            metrics: dict[str, list[dict]] = {"fast": [], "request": []}
            used: list[int] = []
            block = seeds
            limit = SCENARIO_MAX_SEEDS
            while block:
                for simulator in ("fast", "request"):
                    config = base.with_updates({"simulator": simulator})
                    if simulator == "fast":
                        metrics[simulator] += rollout(config, make_policy(spec, config), block, parallel=False).metrics
                        continue
                    # the request backend's episodes are kept in the reference cache, one per seed (a seed's
                    # episode does not depend on the batch it runs in)
                    keys = {s: json.dumps(["scenario", spec, config.model_dump(mode="json"), s]) for s in block}
                    todo = [s for s in block if keys[s] not in REFERENCE_CACHE]
                    if todo:
                        for s, m in zip(todo, rollout(config, make_policy(spec, config), todo, parallel=False).metrics):
                            REFERENCE_CACHE[keys[s]] = {k: float(v) for k, v in m.items()}
                    metrics[simulator] += [REFERENCE_CACHE[keys[s]] for s in block]
                used += block
                more = len(used) > 1 and len(used) + len(seeds) <= limit
                tight = len(used) > 1 and scenario_tight(metrics["fast"], metrics["request"])
                block = [s + len(used) for s in seeds] if more and not tight else []
            for simulator, runs in metrics.items():
                row[simulator] = {k: float(np.mean([m[k] for m in runs])) for k in runs[0]}
            # half-width of the paired 95 % CI of the reward difference (same seeds, both backends), so a reader
            # can tell a miss from the seeds' noise
            for key, field in (("reward", "reward_ci"), ("slo_violation_share", "slo_ci")):
                many = len(used) > 1
                row[field] = row_precision(metrics["fast"], metrics["request"], key)[0] if many else float("nan")
            row["seeds"] = len(used)
            if spec == "target_tracking" and name in SCENARIO_STRATA:
                stratify(row, metrics, used, base, spec)
            out.append(row)
            print("scenario", row["scenario"], len(used), "seeds", flush=True)
    return out


# ------------------------------------------------------------------------------------------ memory crashes
MEMORY_POLICIES = ("target_tracking", "target_tracking@tuned", "hpa", "predictive@tuned")
MEMORY_KEYS = ("reward", "cost_usd", "slo_violation_share", "failed_share", "crashes")


def memory_policies(seeds) -> list[dict]:
    """Both backends on ``memory_pressure`` under each of ``MEMORY_POLICIES``: episode means over ``seeds``
    (crashes: instances crashed per episode)."""
    from agents.registry import make_policy
    from scaling_env.rollout import rollout
    from scaling_env.scenarios import load_scenario

    base = load_scenario("memory_pressure").config
    out = []
    for spec in MEMORY_POLICIES:
        row: dict = {"case": f"memory_pressure, {spec}"}
        for simulator in ("fast", "request"):
            config = base.with_updates({"simulator": simulator})
            policy = make_policy(spec, config, scenario="memory_pressure")
            run = rollout(config, policy, list(seeds), record=("crashes",), parallel=False)
            row[simulator] = {k: float(np.mean([m[k] for m in run.metrics])) for k in MEMORY_KEYS[:-1]}
            row[simulator]["crashes"] = float(run.traces["crashes"].sum(axis=1).mean())
        out.append(row)
        print("memory", spec, flush=True)
    return out


def memory_config(simulator: str, algo: str, share: float, conc: int = 20, n: int = 4, steps: int = 40) -> dict:
    """A fixed fleet of ``n`` instances (concurrency ``conc``, 48 MB per request over 256 MB of a 1 GB limit: at
    most 16 requests in flight) at a constant rate whose mean in flight per instance is ``share`` of 16."""
    config = stationary_config(simulator, algo, share * 16 / conc, conc, 1.0, 100, steps, n)
    config["instances"].update({"memory_mb_per_request": 48.0, "memory_base_mb": 256.0, "instance_memory_gb": 1.0})
    config["failures"] = {"mtbf_seconds": None, "memory_crash": True, "replace_unhealthy": True}
    return config


# (concurrency, mean in flight as a share of the 16 that fit): c = 20 never queues, so only the count's
# spread can pass the limit; c = 10 is memory_pressure's instance (a queue of 7 passes it)
MEMORY_HAND = ((20, 0.3), (20, 0.4), (20, 0.5), (20, 0.7), (20, 0.9), (10, 0.3), (10, 0.4), (10, 0.5))


def memory_hand(seeds) -> list[dict]:
    """Both backends on ``memory_config`` at ``MEMORY_HAND``'s shares of the memory limit's count: per episode,
    instances crashed, failed share and cost."""
    out = []
    for algo in ("round_robin", "random"):
        for conc, share in MEMORY_HAND:
            row: dict = {"case": f"hand: {algo}, c = {conc}, mean in flight {share:.2f} x 16"}
            for simulator in ("fast", "request"):
                rows = [run_rows(memory_config(simulator, algo, share, conc), seed) for seed in seeds]
                arrivals = [max(r[:, COL["arrivals"]].sum(), 1.0) for r in rows]
                row[simulator] = {
                    "crashes": float(np.mean([r[:, COL["crashes"]].sum() for r in rows])),
                    "failed_share": float(np.mean([r[:, COL["failed"]].sum() / a for r, a in zip(rows, arrivals)])),
                    "cost_usd": float(np.mean([r[:, COL["cost_usd"]].sum() for r in rows])),
                }
            out.append(row)
            print("memory", algo, share, flush=True)
    return out


def memory_lines(policy_rows: list[dict], hand_rows: list[dict]) -> list[str]:
    """The memory-crash table: each figure of both backends and the fast model's error."""
    lines = ["| case | " + " | ".join(f"{k} fast | request | error" for k in MEMORY_KEYS) + " |"]
    lines.append("|---|" + "---:|---:|---:|" * len(MEMORY_KEYS))
    for row in policy_rows + hand_rows:
        f, r = row["fast"], row["request"]
        cells = []
        for k in MEMORY_KEYS:
            if k not in f:
                cells.append(" | ")
                continue
            floor = 0.005 if k in ("slo_violation_share", "failed_share") else 0.0
            cells.append(f"{f[k]:.4g} | {r[k]:.4g} | {pct(rel(f[k], r[k], floor))}")
        lines.append(f"| {row['case']} | " + " | ".join(cells) + " |")
    return lines


# ------------------------------------------------------------------------------------------ report
def heat_maps(cells: list[dict], sweep_name: str, rows_key: str, cols_key: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mine = [c for c in cells if c["sweep"] == sweep_name]
    algos = sorted({c["algo"] for c in mine}, key=ALGOS.index)
    rows_vals = sorted({c[rows_key] for c in mine})
    cols_vals = sorted({c[cols_key] for c in mine})
    metrics = (("e_wait", "mean wait"), ("e_p95", "p95"), ("e_drop", "drops"))
    fig, axes = plt.subplots(len(metrics), len(algos), figsize=(4.2 * len(algos), 3.2 * len(metrics)), squeeze=False)
    for i, (key, label) in enumerate(metrics):
        for j, algo in enumerate(algos):
            grid = np.full((len(rows_vals), len(cols_vals)), np.nan)
            for c in mine:
                if c["algo"] == algo:
                    grid[rows_vals.index(c[rows_key]), cols_vals.index(c[cols_key])] = c[key]
            ax = axes[i, j]
            ax.imshow(np.clip(grid * 100, -50, 50), cmap="RdBu_r", vmin=-50, vmax=50, aspect="auto")
            for (r, q), v in np.ndenumerate(grid):
                if np.isfinite(v):
                    ax.text(q, r, f"{v * 100:+.0f}", ha="center", va="center", fontsize=7)
            ax.set_xticks(range(len(cols_vals)), [f"{v:g}" for v in cols_vals], fontsize=7)
            ax.set_yticks(range(len(rows_vals)), [f"{v:g}" for v in rows_vals], fontsize=7)
            ax.set_xlabel(cols_key, fontsize=8)
            ax.set_ylabel(rows_key, fontsize=8)
            ax.set_title(f"{label}, {algo}: fast vs request, %", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def pct(x: float) -> str:
    return "inf" if not np.isfinite(x) else f"{x * 100:+.1f} %"


def cell_table(cells: list[dict], sweep_name: str, rows_key: str, cols_key: str) -> list[str]:
    lines = [
        f"| algorithm | {rows_key} | {cols_key} | wait fast s | wait request s | error | p95 fast s | p95 request s "
        "| error | drops fast | drops request | cost error | seeds | request's 95 % CI: wait, p95 "
        "| holds (wait, p95, drops) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for c in cells:
        if c["sweep"] != sweep_name:
            continue
        holds = "".join("y" if c[k] else "**n**" for k in ("ok_wait", "ok_p95", "ok_drop"))
        lines.append(
            f"| {c['algo']} | {c[rows_key]:g} | {c[cols_key]:g} | {c['wait_f']:.4f} | {c['wait_r']:.4f} | "
            f"{pct(c['e_wait'])} | {c['p95_f']:.3f} | {c['p95_r']:.3f} | {pct(c['e_p95'])} | {c['drop_f']:.2%} | "
            f"{c['drop_r']:.2%} | {pct(c['e_cost'])} | {c['seeds']:.0f} | +-{c['ci_wait_r']:.1%}, "
            f"+-{c['ci_p95_r']:.1%} | {holds} |"
        )
    return lines


def summary_lines(cells: list[dict]) -> list[str]:
    n = len(cells)
    lines = ["| target | cells where it holds | of |", "|---|---:|---:|"]
    for key, label in (("ok_wait", "mean wait within 10 % (15 % near capacity)"), ("ok_p95", "p95 within 10 % (15 %)"),
                       ("ok_drop", "drops within 10 % or 0.1 % of arrivals")):  # fmt: skip
        lines.append(f"| {label} | {sum(bool(c[key]) for c in cells)} | {n} |")
    lines.append(f"| all three | {sum(all(c[k] for k in ('ok_wait', 'ok_p95', 'ok_drop')) for c in cells)} | {n} |")
    return lines


def close_calls(cells: list[dict]) -> list[str]:
    """Cells that hold on the point estimate but whose reference's 95 % CI reaches past the tolerance: undecided
    under the stricter reading the scenario rows use (the whole CI inside the target)."""
    rows = []
    for c in cells:
        tol = tolerance(c["rho"])
        out = []
        if c["ok_wait"] and c["e_wait"] != 0 and abs(c["e_wait"]) + c["ci_wait_r"] > tol:
            out.append(f"wait {pct(c['e_wait'])} +-{100 * c['ci_wait_r']:.1f} %")
        if c["ok_p95"] and abs(c["e_p95"]) + c["ci_p95_r"] > tol:
            out.append(f"p95 {pct(c['e_p95'])} +-{100 * c['ci_p95_r']:.1f} %")
        d_drop = c["drop_f"] - c["drop_r"]
        if c["ok_drop"] and abs(d_drop) + c["ci_drop_r"] > max(0.1 * c["drop_r"], 0.001):
            out.append(
                f"drops {100 * c['drop_f']:.2f} % against {100 * c['drop_r']:.2f} % +-{100 * c['ci_drop_r']:.2f}"
            )
        if out:
            rows.append(
                f"| {c['algo']} | {c['rho']} | {c['conc']} | {c['cv']} | {c['maxq']} | {int(c['seeds'])} | "
                f"{'; '.join(out)} |"
            )
    head = [
        f"Close calls: {len(rows)} cells hold on the point estimate while the reference's 95 % CI reaches past the "
        "tolerance (the fast model's own seed noise not counted), so a stricter reading, the whole CI inside, "
        "would leave them undecided:",
        "",
        "| balancer | utilisation | c | cv | room | seeds | error, reference's 95 % CI |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    return head + rows if rows else ["Close calls: none (every cell's reference CI lies inside the tolerance)."]


def transient_lines(rows: list[dict]) -> list[str]:
    lines = [
        "| case | backend | served | dropped | failed | mean latency s | cost USD | shown step: dropped | failed "
        "| mean latency s | p95 s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        for simulator in ("fast", "request"):
            v = row[simulator]
            lines.append(
                f"| {row['case'] if simulator == 'fast' else ''} | {simulator} | {v['served']:,.0f} | "
                f"{v['dropped']:,.0f} | {v['failed']:,.0f} | {v['latency']:.3f} | {v['cost']:.4f} | "
                f"step {row['show']}: {v['step_dropped']:,.0f} | {v['step_failed']:,.0f} | {v['step_latency']:.3f} | "
                f"{v['step_p95']:.3f} |"
            )
    return lines


def scenario_lines(rows: list[dict]) -> list[str]:
    lines = [
        "| scenario | seeds | reward fast | reward request | error | 95 % CI of the error (paired; stratified: below) "
        "| cost fast | cost request | error | SLO share fast | SLO share request | difference, 95 % CI "
        "| holds (reward, SLO share within 5 %) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    close: list[str] = []
    for row in rows:
        f, r = row["fast"], row["request"]
        e_rew = rel(f["reward"], r["reward"])
        # holds (y): the error within the target (the SLO share's within 5 % or 0.005, if larger) and measured to a
        # 95 % CI within a third of it; ? where the error is within but its CI is wider
        d_slo = f["slo_violation_share"] - r["slo_violation_share"]
        ok = ""
        for gap, ci, target in (
            (abs(f["reward"] - r["reward"]), row["reward_ci"], row_target("reward", r["reward"])),
            (abs(d_slo), row["slo_ci"], row_target("slo_violation_share", r["slo_violation_share"])),
        ):
            ok += "**n**" if gap > target else ("y" if ci <= target / 3 else "?")
            if gap <= target < gap + ci:
                close.append(f"{row['scenario']} ({'reward' if len(ok) == 1 else 'SLO share'})")
        seeds = f"{row.get('seeds', '')}"
        if "prefixes" in row:
            seeds += f" + {row['prefixes']:,} prefixes (stratified)"
        lines.append(
            f"| {row['scenario']} | {seeds} | {f['reward']:.2f} | {r['reward']:.2f} | {pct(e_rew)} | "
            f"+-{100 * row['reward_ci'] / abs(r['reward']):.1f} % | {f['cost_usd']:.3f} | "
            f"{r['cost_usd']:.3f} | {pct(rel(f['cost_usd'], r['cost_usd']))} | {f['slo_violation_share']:.3f} | "
            f"{r['slo_violation_share']:.3f} | {d_slo:+.3f} +-{row['slo_ci']:.3f} | {ok} |"
        )
    lines += [
        "",
        "A row holds (y) when its error is within the target and its 95 % CI within a third of the target (? where "
        "the CI is wider). "
        + (
            f"Close calls, whose CI reaches past the target: {', '.join(close)}."
            if close
            else "Close calls: none (every CI lies inside the target)."
        ),
    ]
    for row in rows:
        if "prefixes" not in row:
            continue
        f, r, plain = row["fast"], row["request"], row["plain"]
        (sf, wf), (sr, wr) = row["strata"]["fast"], row["strata"]["request"]
        e_plain = rel(plain["fast"]["reward"], plain["request"]["reward"])
        esc = row["escapes"]
        lines += [
            "",
            f"**{row['scenario']} is stratified.** Its episodes either escape the crash spiral or not, so the plain "
            f"mean over {row['seeds']} seeds is noisy: reward {pct(e_plain)} "
            f"+-{100 * plain['reward_ci'] / abs(plain['request']['reward']):.1f} %, SLO share "
            f"{plain['fast']['slo_violation_share']:.3f} against {plain['request']['slo_violation_share']:.3f}. "
            "The row above weighs two strata, whether target tracking scaled out within the first "
            f"{SCENARIO_STRATA[row['scenario']][0]} steps, by their "
            f"shares in {row['prefixes']:,} other seeds' prefixes (from {STRATA_FIRST_SEED:,}; `stratified_mean`): "
            f"scaled out in {wf:.4f} of the fast model's prefixes and {wr:.4f} of the request backend's (in the "
            f"episodes' own seeds {sf:.3f} and {sr:.3f}). The CIs add both backends' variances: reward "
            f"{pct(rel(f['reward'], r['reward']))} +-{100 * row['reward_ci'] / abs(r['reward']):.1f} %, SLO share "
            f"{pct(rel(f['slo_violation_share'], r['slo_violation_share']))} "
            f"+-{100 * row['slo_ci'] / abs(r['slo_violation_share']):.1f} %. The prefix decides the escape (an "
            f"SLO-violation share below 0.5): of the episodes that scaled out, {100 * esc['fast'][0]:.1f} % (fast) "
            f"and {100 * esc['request'][0]:.1f} % (request) escaped; of the others {100 * esc['fast'][1]:.1f} % and "
            f"{100 * esc['request'][1]:.1f} %.",
        ]
    return lines


SWEEPS = (
    ("utilisation x concurrency", "rho", "conc", {"cv": 1.0, "maxq": 100}),
    ("service variability x utilisation", "cv", "rho", {"conc": 10, "maxq": 100}),
    ("waiting room x utilisation", "maxq", "rho", {"conc": 10, "cv": 1.0}),
    ("fleet size x concurrency", "n", "conc", {"rho": 0.8, "cv": 1.0, "maxq": 100}),
)


def run_grid(grid: Grid, only: str | None = None, algos: tuple[str, ...] = ALGOS) -> list[dict]:
    """Every sweep of the grid, or those whose name contains ``only``; ``algos`` limits the balancers."""
    parts = (
        ("rho", grid.rhos_c, "conc", grid.concs, ALGOS),
        ("cv", grid.cvs, "rho", grid.rhos_cv, ALGOS),
        ("maxq", grid.queues, "rho", grid.rhos_q, ALGOS[:2]),
        ("n", grid.fleets, "conc", grid.concs_fleet, ALGOS[:2]),
    )
    cells: list[dict] = []
    for (name, _, _, base), (rows_key, rows_vals, cols_key, cols_vals, mine) in zip(SWEEPS, parts, strict=True):
        if only is None or only in name:
            use = tuple(a for a in mine if a in algos)
            cells += sweep(name, rows_key, rows_vals, cols_key, cols_vals, use, grid, base)
    return cells


def write_report(path: Path, cells, trans, scen, grid: Grid, seconds: float, quick: bool) -> None:
    img = path.parent / "img"
    img.mkdir(parents=True, exist_ok=True)
    lines = [
        "# Fidelity: the fast model against the request-level backend",
        "",
        "Generated by `python perf/fidelity.py`"
        + (" --quick (a reduced grid: not the published one)" if quick else "")
        + f" in {seconds / 60:.1f} min (load average {os.getloadavg()[0]:.1f} at the end); do not edit by hand: "
        "the discussion is the `DISCUSSION` text of that script.",
        "",
        "Three parts" + __doc__.split("Three parts", 1)[1].split("The issue's targets")[0].rstrip(),
        "",
        "The issue's targets" + __doc__.split("The issue's targets", 1)[1].rstrip(),
        "Heat maps show the fast model's signed error in % (clipped at +-50 in colour; the number is the value).",
        "The reference is itself a finite simulation, so each cell runs as many seeds as its reference needs: blocks "
        f"of {len(grid.seeds)} seeds (the same seeds for both backends), added until the request backend's 95 % "
        "confidence interval of the mean wait and the p95 is within a third of the tolerance (and of the drops "
        f"within a third of 10 % or 0.1 % of arrivals), up to {grid.base_seeds}, and past that up to "
        f"{grid.max_seeds} while the reference's seeds stay within {grid.request_budget:.0e} simulated arrivals (a "
        "rule blind to the fast model); the tables give the seeds and that interval. With 2 seeds (the first "
        "reports) the reference's own near-capacity mean wait moved by up to 36 % between seed pairs; with "
        "blocks of 8 (`python perf/fidelity.py --noise`: seeds 1-8 against 9-16) round "
        "robin and random moved by under 3 %, least outstanding still by up to 27 % (c = 1 at 0.98) and 24 % (c = "
        "10 at 1.00): its pooled queue near capacity fluctuates over far longer than an episode, and even at 64 "
        "seeds its interval there was +-7 % to +-14 % (stop 29 added the budgeted seeds past 64).",
        "",
        f"Each grid cell: {len(grid.seeds)} to {grid.max_seeds} seeds per backend, {grid.steps} steps of 15 s, the "
        f"first {grid.warm} left out; {N_INST} instances, service mean {SVC} s, `max_queue` 100 unless the sweep "
        "varies it.",
        "",
        "## Summary over the grid",
        "",
        *summary_lines(cells),
        "",
        *close_calls(cells),
        "",
        DISCUSSION.strip(),
        "",
    ]
    for name, rows_key, cols_key, _ in SWEEPS:
        slug = name.split(" ")[0].replace("-", "_")
        png = img / f"fidelity_{slug}.png"
        heat_maps(cells, name, rows_key, cols_key, png)
        mine = [c for c in cells if c["sweep"] == name]
        picture = f"![{name}: signed error of the fast model, %](img/{png.name})"
        lines += [f"## Grid: {name}", "", *summary_lines(mine), "", picture, ""]
        lines += [*cell_table(cells, name, rows_key, cols_key), ""]
    lines += [
        "## Transients",
        "",
        "Totals over 20 steps of 15 s (mean of the seeds), and the step where it happens.",
        "",
    ]
    lines += [*transient_lines(trans), ""]
    lines += [
        "## Scenarios end to end (target-tracking rule; memory_pressure also under the HPA)",
        "",
        f"Seeds from 1000 on in blocks of {len(SCENARIO_SEEDS)} (the benchmark's evaluation seeds first), added until "
        "the paired 95 % CI of the reward and SLO-share differences is within a third of the target (a rule blind "
        f"to the error itself), up to {SCENARIO_MAX_SEEDS} (memory_pressure under target tracking, whose episodes "
        "either escape the crash spiral or not, always reaches it and is stratified as well: below the table). "
        "With `--reference-cache` the request "
        "backend's episodes are kept per seed, so a re-run after a change to the fast model re-runs only the fast "
        "backend.",
        "",
    ]
    lines += [*scenario_lines(scen), ""]
    path.write_text("\n".join(lines) + "\n")


def reference_noise(grid: Grid) -> None:
    """How much the request backend's own near-capacity figures move with the grid's seeds against as many others."""
    for algo in ALGOS:
        for rho in (0.98, 1.0, 1.02):
            for conc in (1, 10):
                config = stationary_config("request", algo, rho, conc, 1.0, 100, grid.steps)
                other = tuple(s + len(grid.seeds) for s in grid.seeds)
                a = [summarise(run_rows(config, s)[grid.warm :]) for s in grid.seeds]
                b = [summarise(run_rows(config, s)[grid.warm :]) for s in other]
                wa, wb = np.mean([x["wait"] for x in a]), np.mean([x["wait"] for x in b])
                pa, pb = np.mean([x["p95"] for x in a]), np.mean([x["p95"] for x in b])
                print(f"{algo} rho={rho} c={conc}: wait {rel(wa, wb):+.1%}, p95 {rel(pa, pb):+.1%}", flush=True)


def print_part(part: str, grid: Grid, quick: bool) -> None:
    """One part of the report on stdout, as its table (for measuring a change without the full run)."""
    if part == "memory":
        seeds = (1000, 1001, 1002) if quick else tuple(range(1000, 1020))
        print("\n".join(memory_lines(memory_policies(seeds), memory_hand(seeds))))
        return
    if part == "transients":
        print("\n".join(transient_lines(transients(grid.seeds if quick else (1, 2, 3)))))
        return
    if part == "scenarios":
        print("\n".join(scenario_lines(scenarios((1000,) if quick else SCENARIO_SEEDS))))
        return
    near = tuple(r for r in grid.rhos_c if 0.97 <= r <= 1.03)
    cells = sweep(SWEEPS[0][0], "rho", near, "conc", grid.concs, ALGOS, grid, SWEEPS[0][3])
    print("\n".join(cell_table(cells, SWEEPS[0][0], "rho", "conc")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a reduced grid and fewer seeds")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "fidelity.md")
    parser.add_argument("--noise", action="store_true", help="only the reference's own seed-to-seed spread")
    parser.add_argument(
        "--only",
        choices=("transients", "near-capacity", "memory", "scenarios"),
        help="print one part and write nothing: the transients (seeds 1-3), the grid's cells at utilisation "
        "0.98-1.02 (q = 100, cv = 1, every balancer and concurrency), memory crashes (memory_pressure under "
        "four rules and hand configs near the memory limit, seeds 1000-1019), or the shipped scenarios end to "
        "end (seeds 1000-1019)",
    )
    parser.add_argument("--sweep", help="only the grid sweeps whose name contains this (no report is written)")
    parser.add_argument("--algo", help="only these balancers, comma-separated (no report is written)")
    parser.add_argument("--json", type=Path, help="also write the grid cells as JSON to this file")
    parser.add_argument(
        "--reference-cache",
        type=Path,
        help="JSON file of the request backend's cell figures, read and extended (valid while that backend and "
        "the grid's settings are unchanged: to compare the fast model before and after a change)",
    )
    args = parser.parse_args()
    grid = QUICK if args.quick else Grid()
    if args.noise:
        reference_noise(Grid())
        return
    if args.reference_cache is not None and args.reference_cache.exists():
        REFERENCE_CACHE.update(json.loads(args.reference_cache.read_text()))
    if args.only:
        print_part(args.only, grid, args.quick)
        if args.reference_cache is not None:
            args.reference_cache.write_text(json.dumps(REFERENCE_CACHE))
        return
    t0 = time.perf_counter()
    partial = args.sweep is not None or args.algo is not None
    algos = tuple(a.strip() for a in args.algo.split(",")) if args.algo else ALGOS
    unknown = sorted(set(algos) - set(ALGOS))
    if unknown:
        parser.error(f"--algo: unknown balancer(s) {unknown}; known: {', '.join(ALGOS)}")
    cells = run_grid(grid, args.sweep, algos)
    if args.reference_cache is not None:
        args.reference_cache.write_text(json.dumps(REFERENCE_CACHE))
    if args.json is not None:
        args.json.write_text(json.dumps(cells, indent=1, default=float))
    if partial:
        print("\n".join(summary_lines(cells)))
        return
    trans = transients(grid.seeds if args.quick else (1, 2, 3))
    scen = scenarios((1000,) if args.quick else SCENARIO_SEEDS)
    if args.reference_cache is not None:  # the scenarios' request episodes and prefixes too
        args.reference_cache.write_text(json.dumps(REFERENCE_CACHE))
    write_report(args.out, cells, trans, scen, grid, time.perf_counter() - t0, args.quick)
    with args.out.open("a") as fh:  # the platform scenarios' section (platform_section, at the end of this file)
        fh.write(platform_section(platform_seeds(1 if args.quick else PLATFORM_SEEDS)))
    print(f"wrote {args.out}")


DISCUSSION = """
## Where the fast model misses, and what would fix it

The tables above are this run's (seeds fixed, so a re-run gives the same); the items below keep the figures
measured when each fix went in (before stop 25, against the 2-seed reference). The first report
found the fast model holding all three targets in 189 of 333 cells; the grid now also has a fleet-size sweep
(n = 8 and 32 instances at utilisation 0.8, c = 1-10: the issue's join-shortest-queue example). On the 349 cells
the fast model went from 200 (before issue 16's fixes) to 239 (stop 20), 249 (stop 22: item 2's waiting rooms of
1-20, item 3's JSQ factors, items 7 and 10), 259 (stop 23: item 1's finite-buffer flow for round robin and
random, item 3's refitted JSQ factors, item 5's waiting room under service variability) and 281 (stop 24: item 1's
flow as the step's mean wait above capacity, with the diffusion stretch; item 5's lognormal M/G/c wait), all
against a reference of 2 seeds per cell. **Stop 25** first made the reference precise enough to judge a cell:
blocks of 8 seeds until its 95 % CI is within a third of the tolerance (up to 64). On stop 24's model that alone
moved the count from 281 to 298 (the 2-seed reference's own noise near capacity, up to 36 %, had been counted
as the fast model's misses). Then, each measured on the whole grid: the blocking of a loss system (q = 0) at the
uncapped load (Erlang B; Takacs's GI/M/c/c for round robin: round robin's q = 0 at 1.3 0.231 -> 0.306 of
arrivals against 0.305), 300; the p95 of a wait bounded by the waiting room (item 1, `queueing.room_wait_p95`,
docs/model.md 6.4.1), 305; above capacity the fluid queues serve at most the finite queue's busy share rho (1 -
P_K), so a full room turns away M/M/c/K's share, not only the excess 1 - 1/rho (random at 1.02, c = 10: 0.0193
-> 0.0221 of arrivals against 0.0230), 311; random's queue entering the flow at exactly 0.95 (a rounding had kept
it on the per-step queue: c = 1 wait -23 % -> +0 %), 312 at stop 25. **Stop 26**: the p95 of a near-capacity
queue that has not reached its stationary law (`queueing.transient_wait_p95`, docs/model.md 6.4.2: the reflected
Brownian motion started empty, its age fitted to the flow's mean; round robin at 1.00, c = 1 -19 % -> +10 %,
random at 0.95, c = 1 -12 % -> +1 %), and a full room's fluid wait up to 1.25 K s / c counted as the room's
(random at 1.02, c = 20 +17 % -> +0 %): 315 (p95 333 -> 337; no held cell lost). Also at stop 26, outside the
grid: members whose boot ends inside a step split the followed queue at their join (`kernel.pool_join`, docs/model.md
6.2.1: the cold-start transient's next step 0.282 s -> 0.105 s against 0.105 s, its join step 0.915 s -> 0.793 s
against 0.790 s), and memory_pressure's replacements drawn one by one (below). Stop 25's per sweep, stop 24 (2
seeds) -> stop 25: utilisation x concurrency 164 -> 182 of 198, service variability 53 -> 60 of 75, waiting room
48 -> 54 of 60, fleet size 16 of 16. Still open at stop 25 (37 cells; stop 26 fixed the last two p95 items of this
list and moved the room of 1,000's round-robin p95 to +19 %): least outstanding near capacity (11 cells: the per-step
pooled queue's wait -20 % to
-41 % at 1.00 and its p95 +11 % to +28 % at c = 1-2 for 0.95-0.98; the exact birth-death transient of the pooled
M/M/nc/nK queue from empty is within 0.3-6 % of the reference at 1.00, so following the pooled queue with that
relaxation is the fix; the reference's own CI there is +-7 % to +-14 % even at 64 seeds); the drops under service
variability (round robin +84 % / +94 % at 0.98 with cv 1.5 / 2: the K/z room overstates the blocking; -13 % to
-26 % at 1.02); drops at 1.02 with c = 1-2 (-13 % to -52 %: the deterministic fluid queue fills a room of 100 in
250-500 s, the reference's far sooner by its fluctuations); least outstanding's small rooms at 1.02 (wait +37 %,
+53 %); the room of 1,000's p95 at 1.00 (round robin -40 %, least outstanding -28 %); round robin's p95 at c = 1
and 1.00 (-19 %: a queue that moves less than half its room in a step keeps the exponential tail). **Stop 27**,
each measured on the whole grid: drops while a waiting room fills just above capacity (docs/model.md 6.2.3: a
filling slot turns away the flow's blocking beyond its room's draw, the share 1 / (ca2 + 1) the deterministic fluid
queues leave out; round robin at 1.02, c = 1 / 2 -52 % / -20 % -> +1 % / +4 %, random -26 % / -13 % -> -1 % / +3
%), 319; least outstanding's pooled queue followed from 0.95 on as a reflected Brownian motion from empty, capped at
its steady state, with a p95 spread by how far the queue moves within the step (docs/model.md 6.2.4; 14 cells,
e.g. c = 2 at 1.00 wait -41 % -> -8 %, p95 -35 % -> -14 %; the room of 1,000 at 1.00 -40 % -> -3 %; q = 5 at
1.02 +53 % -> 0 %), 333; the room's blocking under lognormal service from the flow with the room's stretch z_b,
the services' count variance over the time the room takes to fill (docs/model.md 6.2.5; every drop cell of the
service-variability sweep, e.g. round robin at 0.98, cv 2 +94 % -> -3 %), **344 of 349**. Still open (5 cells):
least outstanding at 1.00, c = 1 (wait +23 %; the exact pooled M/M/8/808 chain from empty is itself 22 % above
the reference there, whose CI is +-13 %: join-the-shortest-queue at c = 1 is not the pooled queue); least
outstanding at 1.02, c = 2 (p95 -15 %, drops -10 %, both just outside); least outstanding at 0.98, c = 10, cv 3
(wait +16 %: the stationary M/G/N wait with the JSQ factors); round robin at 0.75, c = 10, cv 1.5 (wait +15 %);
round robin's room of 1,000 at 1.00 (p95 +19 %: the grid's 8 members' levels are 8 draws of the walk's law, whose
empirical 95th percentile is below the law's; Blom's order statistic fixed it but broke 0.95, docs/model.md
6.4.2). Outside the grid at stop 27: the step of a rate change inside it weighs each part's wait by what it serves
(`kernel.served_in_part`; the off-grid transient's step 0.691 s -> 0.626 s; an exact event simulation,
`python perf/rate_change_des.py`, gives 0.614 s, the request backend 0.589 s because it integrates the rate
over 1 s sub-intervals and so spreads the jump at 157.5 s over [157, 158)). **Stop 28**, each measured on the
whole grid: round robin's E_n/G/N wait under lognormal service with a factor of its own for Erlang-n arrivals
(`mgc.erlang_lognormal_factor`, fitted to the exact E_8/G/N queue, docs/model.md 6.2.2: c = 10, cv 1.5 at 0.75
+15 % -> +0 %); least outstanding's pooled count as a Brownian motion reflected at the room's top too
(`queueing.drbm_step_wait`, within 2 % of the exact chain at 1.00-1.02; 1.02, c = 2 p95 -15 % -> -7 %) and its
steady-state cap under lognormal service taking the services' count variance over the queue's relaxation time
(`jsq.window_variance_share`; 0.98, c = 10, cv 3 wait +16 % -> +8 %), docs/model.md 6.2.4; round robin's p95 in
the walk-from-empty regime read at the members' order statistic, blended by how far a member moves within the
step against the spread between members (`queueing.members_wait_p95`, docs/model.md 6.4.3; the room of 1,000 at
1.00 +19 % -> +14 %): **347 of 349**, no held cell lost, with two least outstanding cells open (1.00, c = 1 wait
+24 %; 1.02, c = 2 drops -10.4 %). **Stop 29: both were the reference's noise.** A cell stopped at 64 seeds even
where the reference's CI was still +-13 %; now, past 64, blocks are added up to 512 seeds while the reference's
seeds stay within 6e7 simulated arrivals (`Grid.request_budget`, a rule blind to the fast model; 91 cells had
stopped at 64 untight). Least outstanding at 1.00, c = 1: the reference's wait was 1.931 s on seeds 1-64 and is
2.189 +- 0.105 s on seeds 1-512 (its eight blocks of 64 range 1.93-2.38 s; `python perf/reference_seeds.py
least_outstanding 1.0 1`), so the fast model's 2.393 s is +10 %, not +24 %, and lo28's "two thirds of the pooled
variance" was that first block. At 1.02, c = 2 the reference drops 1.50 % on 512 seeds (1.56 % on 64): -7 %.
More seeds also moved three drop cells out, each by 0.1-0.3 points of arrivals beyond the 0.1 % floor: least
outstanding at 1.02, c = 1 (-16 %: 0.69 % against 0.82 % on 512 seeds, 0.66 % on 64), random at 1.00, c = 1
(+16 %: 0.92 % against 0.80 %) and c = 2 (+12.5 %: 1.03 % against 0.91 %): 346 of 349. Two fixes (docs/model.md
6.2.3): a filling slot turns away the fill share in expectation, `(p_fill - p_block) a` on top of its draw, not
`max(p_fill a - X, 0)` (whose mean is more: random's drops jumped by a third between utilisation 0.9999 and
1.0001, now by 2-7 %); and where the room's blocking is the flow's `P_K` less the overload's excess, the draw's
share is less what the slots' fluid queues overflow beyond that excess (`kernel.pool_blocking`: each takes its
instance's drawn arrivals, and a full one turns away its overflow whatever the draw, a fluctuation `P_K` already
counts): random at 1.00, c = 1 +16 % -> +9 %, c = 2 +12.5 % -> +3.5 %. And least outstanding's drops near
capacity had been its members' fluid queues' alone, which fill the room only after 500 s at 1.02 (0.2 requests/s
each); the pooled count's fluctuations reach it from about 180 s on. The two-sided motion's overflow at the room's
top (`queueing.drbm_overflow`, its upper regulator: var / 2 times the transition density at the top, by the
spectral series of `drbm_mean`) gives 0.86 % from true time against 0.82 % (c = 2: 1.49 % against 1.51 %); the
slots still filling now turn away its services' share beyond `p_block`, as round robin's and random's do
(`p_fill`): c = 1 -16 % -> -2 %, c = 2 -6 % -> -2.5 % (taken whole as the draw's share, with the fluid queues'
overflow on top, it gave +19 %). **349 of 349**, none lost. By mechanism,
with the fix each
miss calls for (or got):

1. **Near capacity, every balancer** (utilisation 0.98-1.02). Before issue 16's fix round robin's mean wait was -18
   % to -33 % at 0.98 and about -60 % at 1.00 for every c: the stationary term caps the utilisation at 0.99 and is a
   steady-state value, while a queue at utilisation 1 needs far longer than any step to reach (or never reaches) a
   steady state. Fixed for round robin: its queue is carried from step to step by the pointwise stationary
   fluid-flow approximation (W.-P. Wang, D. Tipper, S. Banerjee, "A simple approximation for modeling nonstationary
   queues", IEEE INFOCOM 1996; docs/model.md 6.2.1), fitted each step to the stationary wait, so it gives that back
   in a steady state. Round robin at 1.00 is now -3 % to -22 % (p95 -37 % to +12 %), at 0.98 -10 % to -11 % for c <=
   2 (c >= 5: -18 % to -28 %, the stationary formula's own value, which the queue reaches well within the episode);
   at 1.02 +20 % to +37 % (c <= 2 moved from -20 % / +1 % to +20 % / +26 %, with the p95 from -41 % / -21 % to -18 %
   / -11 %). The followed queue's wait in a draining step is its arrivals' (item 7); where it grows or is full it
   keeps `Lq / lambda`, so these cells (constant rates) hardly move (measured before that last rule: at 1.00 +0.0 to
   +0.4 points, at 1.02 +0.6 to +2.3 points, no verdict changed). Still open: random and least outstanding keep the
   per-step queue (a Poisson stream per instance, or the pooled queue, fills its waiting room near capacity, which
   the flow's one-parameter relation does not know: followed over time they overshot the reference by +40 % to +120
   % at 1.00), and every balancer at 1.02 with q = 100 (+21 % to +48 %): at and above capacity the M/M/c/K queue
   holds about half its room (q/2 waiting at utilisation 1, as the reference's 0.49 s at c = 10 shows), which needs
   the finite-buffer form of the flow (G and the blocking from the M/M/c/K relation for every utilisation: D.
   Tipper, M. K. Sundareshan, IEEE JSAC 8(9), 1990). The drops at 0.98 (0.28 % against 0.03-0.05 %) are item 2's.
   **Stop 23: that finite-buffer flow** (`nonstationary.psffa_finite_wait`, docs/model.md 6.2.1): from
   utilisation 0.95 on, round robin's and random's queues follow the flow with the M/M/c/K relation, whose fixed
   point is the M/M/c/K queue below, at and above capacity (tested to 1e-6 against the product form). Before it,
   stop 22's arrival-wait rule had let round robin's followed queue fill its room at 1.00 (+103 % to +119 % at
   c >= 5); now round robin at 1.00 is -8 % to +7 %, random at 0.98 0 % to +17 % (was -18 % to -3 %) and at 1.00
   -4 % to +10 % (was -35 % to -5 %). Still open: utilisation 1.02 (round robin +19 % to +37 %, random +16 % to
   +52 %: the fluid queues fill the room to K above capacity, where M/M/c/K holds about K - 1/(rho - 1); giving
   random the flow's whole blocking fixed its wait there but broke its p95 at 1.3), least outstanding at 1.00
   (-17 % to +47 %; it keeps the per-step pooled queue, since its pooled room of n q fills by diffusion far
   slower than the flow relaxes and, followed, overshot by +50 % to +170 %), round robin's drops at 1.00
   (-36 % to -41 %), a room of 1,000 at 1.00 (round robin +126 %, least outstanding -54 %), and the step after an
   overload rate change off the step grid (transients: 0.750 s against 0.589 s, was 0.633 s).
   **Stop 24: the flow's queue is the step's mean wait above capacity** (docs/model.md 6.2.1 "Above capacity").
   The kernel had taken the larger of the flow's wait and the deterministic fluid queues', and above capacity
   the fluid queues fill the room: a full room's wait exactly (1.000 s at c = 10, 0.500 s at c = 20), where the
   flow's fixed point, M/M/c/K, holds about K - 1/(rho - 1) (0.653 s at c = 10 against the reference's 0.649 s
   under random). A fluid wait beyond a full room's (a cold start, an outage, which the flow does not know) is
   still added. The flow's relation is stretched by z = (ca2 + cs2) / 2 (M/M/c's on K / z places with z times
   its number waiting: the heavy-traffic diffusion scaling, J. M. Harrison, *Brownian Motion and Stochastic Flow
   Systems*, 1985; Whitt 2004), so round robin's Erlang-n arrivals (ca2 = 1/n) keep a fuller room than Poisson
   ones; a growing queue reports the wait of the requests it serves in the step (Little with the admitted rate);
   it grows at most as a reflected Brownian motion's mean (the drift's part plus sqrt(Lq0^2 + 2 sigma^2 h /
   pi), sigma^2 = z (lambda + c mu): the flow overshoots at critical load, and a room of 1,000 fills this way);
   round robin's blocking at and below capacity is the flow's for rooms above 20, and a p95 is capped at a full
   room's. Now: utilisation 1.02, round robin's wait -1 % to +7 % (was +19 % to +37 %), random's -4 % to +14 %
   (was +16 % to +52 %); round robin's drops at 1.00 within 10 % at c >= 10 (0.52-0.54 % against
   0.50-0.54 %; was -36 % to -41 %); the room of 1,000 at 1.00, round robin's wait +9 % (was +126 %; its p95
   -37 %, so the cell still misses); the step after an overload change off the grid 0.691 s against 0.589 s (was
   0.750 s), the change on the grid 0.974 s against 0.976 s, the scale-in step 0.892 against 0.893 s. Tried and
   left out: the flow's whole blocking above capacity (277 cells, but the overload transients' drops moved away
   from the reference). Still open: random at 1.02 (p95 +13 % to +16 %, drops -9 % to -21 %), round robin's p95 at
   1.00 (c = 1-2: -26 %, -18 %; c = 20: +17 %), least outstanding at 1.00 (-17 % to +47 %, untouched), the cold
   start step (0.915 s against 0.790 s).
2. **Small waiting rooms under round robin** (q 0-20). Was: drops 2-7x too many below capacity (q = 0 at
   utilisation 0.7: 7.9 % against 3.3 %; q = 5 at 0.9: 6.1 % against 2.7 %; q = 20 at 0.9: 0.9 % against 0.1 %)
   and waits -20 % to -55 %, from M/M/c/K's blocking (Poisson arrivals), while round robin gives each instance
   every n-th request (Erlang-n gaps). **Fixed in part** (`queueing.erlang_arrivals_wait`, docs/model.md 6.2):
   the E_n/M/c queue seen by arrivals (item 4) with its geometric tail cut at the waiting room K, and for K = 0
   the exact GI/M/c/c loss probability (L. Takacs, *Introduction to the Theory of Queues*, 1962). Now: q = 0
   holds at 0.7-1.02 (3.24 % against 3.27 % at 0.7, 11.40 % against 11.49 % at 0.9, 15.9 % against 16.3 % at
   1.00); the waits at q = 5 and 20 hold up to utilisation 1.00 (were -41 % to -48 %); q = 20 at 0.9 holds all
   three (0.21 % against 0.13 % of arrivals). **Fixed for 1 <= K <= 20** (`queueing.erlang_arrivals_finite`,
   docs/model.md 6.2): the cut geometric tail overstated the blocking about 1.7-fold (q = 5: 4.5 % against 2.7 %
   at 0.9, 9.5 % against 5.7 % at 0.98; q = 20 at 0.98: 2.7 % against 1.6 %); now the exact E_n/M/c/K queue seen
   by arrivals (the GI/M/c/K chain embedded at arrivals: Gross & Harris, *Fundamentals of Queueing Theory*), solved
   from the top state down in O(n (c + K)) per step, at the utilisation uncapped (a finite queue has a steady
   state above 1). Round robin's waiting-room cells holding all three went from 16 to 22 of 30; q = 5: 2.73 %
   against 2.65 % at 0.9, 5.75 % against 5.72 % at 0.98, 7.66 % against 7.73 % at 1.02 (wait -8.8 % -> +0.0 %);
   q = 20: 0.127 % against 0.127 % at 0.9, 1.54 % against 1.58 % at 0.98, 3.49 % against 3.39 % at 1.02 (wait
   -19.9 % -> +0.0 %). Still missing: at q = 20 the p95 near and above capacity (+15.1 % at 1.02, +10.9 % at 1.3:
   were +4.5 %, +4.2 %, when the wait was off), the wait at q = 5 and 1.3 (+25 %, was +45 %: the fluid's full
   waiting room), and above q = 20, where the cut tail is kept for speed (q = 100 at 0.98: 0.087 % against
   0.050 %, inside the 0.1 % floor). Above capacity with no waiting room it is the other way: 23.1 % against
   30.6 % at 1.3 (a bufferless group loses Erlang B's share, more than the fluid's excess over capacity).
3. **Least outstanding at low concurrency** (c = 1-2): waits -26 % to -70 % (c = 1, utilisation 0.5-0.9), p95 to
   -16 %. One pooled M/M/(n c) queue lets a free server take any waiting request; join-the-shortest-queue cannot
   move a queued request. Fix: a JSQ approximation, e.g. H.-C. Lin and C. S. Raghavendra, "An approximate analysis
   of the join the shortest queue (JSQ) policy", IEEE TPDS 7(3), 1996, or the single-queue approximation of
   V. Gupta, M. Harchol-Balter, K. Sigman, W. Whitt, "Analysis of join-the-shortest-queue routing for web server
   farms", Performance Evaluation 64, 2007. From c = 5 on the pooled queue holds.
   **Fixed in part** (`sim/jsq.py`, docs/model.md 6.2): the pooled wait and
   P(wait) scaled by factors exact at n = 1 and in heavy traffic, fitted to a JSQ event simulation; now (n = 8)
   c = 1: +0 % to +10 % at 0.5-0.9, c = 2: +12 % at 0.8, +21 % at 0.9, and +15 % to +18 % at 0.95 (overstated near
   capacity; p95 +34 % at 0.95, c = 1). Was the fleet-size sweep
   shows the issue's case: n = 32, c = 1, utilisation 0.8, mean wait 2.5 ms against 7.3 ms (-66 %); n = 8: -36 %
   (c = 1), -29 % (c = 2); c >= 5 within the 1 ms floor. A balanced-queues bound (every instance within one
   request of the others, so an arrival that waits sits behind floor(N/n) - c + 1 departures of its own
   instance: `C / (c mu (1 - rho^n))`) overstates it about as much (16 ms at n = 32): the answer lies between.
   **Stop 23: the fit's provenance and a refit** (`perf/fit_jsq.py`): an exact FCFS JSQ simulation (ties by the
   request backend's rotating pointer; n = 2-32, c = 1-3, utilisation 0.3-0.99, 5-160 M requests a cell, median
   standard error 1.2 %) and the least-squares fit, whose coefficients sim/jsq.py now holds: wait rms error 3.9 ->
   2.6 % at 0.7-0.95, 10.8 -> 5.8 % at 0.3-0.5; P(wait) rms 12.4 -> 7.8 %. Against the request backend every
   least-outstanding cell at c = 1-2 up to 0.9 holds the wait except c = 2 at 0.9 (+13 %; the factor is within 1 %
   of the exact simulation there, and the request backend over 4 seeds of 200 steps gives 44.4 ms against the
   simulation's 45.7 ms: the grid's 2 seeds of 48 steps read 39.4 ms), the fleet sweep holds all 16 cells, and
   the p95 at c = 1-2 and 0.95-0.98 is still +16 % to +33 % (the p95 model, not the factor).
4. **Round robin at low load and c <= 5**. Was: waits +11 % to +190 % where they are a few ms (11.5 against
   7.2 ms at c = 1, utilisation 0.3), from Whitt's two-moment GI/G/c formula with ca2 = 1/n. **Fixed**: the exact
   E_n/M/c queue (`queueing.erlang_arrivals_wait`, c <= 256): `sigma` the root of `sigma = (n rho / (n rho + 1 -
   sigma))^n` by Newton's method from 0, Takacs' P(wait) (L. Takacs 1962; Gross & Harris, GI/M/c), W = P(wait) /
   (c mu (1 - sigma)); Whitt's GI/G/c over GI/M/c factor for cv != 1. Now every round-robin cell at utilisation
   0.3-0.95 and cv = 1 holds the wait except c = 1 at 0.9 (-11.6 %) and 0.95 (+18.6 %), e.g. 7.9 against 7.2 ms
   at c = 1, 0.3 (inside the 1 ms floor), 0.176 against 0.172 s at n = 32, c = 1, 0.8 (+2.7 %); at utilisation
   0.98 the wait is -17 % (c = 1) and -9 % to +7 % (c >= 2), was -18 % to -33 %.
5. **Service variability above 1** (lognormal in the request backend). Was: the p95 -14 % to -22 % at low
   load, because the p95 treated cv > 1 as exponential (service p95 0.300 s against the lognormal's 0.361 s at
   cv 2 and 0.385 s at cv 3). **Fixed for the p95** (`queueing.service_shape`, docs/model.md 6.4): the service is
   taken as the lognormal the request backend draws, an exponential tail fitted to its mean and its exact 95th
   percentile, convolved with the wait by the same root search: at utilisation 0.5-0.9 every p95 at cv 1.5-3
   holds (within 10 %, most within 3 %) except cv 3 at 0.9 under round robin (+33 %) and random (+35 %), whose
   waits are off (+42 %, +55 %; below); e.g. cv 3 at 0.5: -0.0 % (round robin), -0.2 % (least outstanding),
   +1.1 % (random), were -21 % to -22 %. **Open: the mean
   wait**, +7 % to +370 % at utilisation 0.5-0.98 (round robin +7 % to +338 %, random +11 % to +370 %, least
   outstanding +17 % to +55 % at 0.98): two moments do not determine the M/G/c wait of a heavy-tailed law
   (V. Gupta, J. Dai, M. Harchol-Balter, B. Zwart, "On the inapproximability of M/G/K: why two moments of job
   size distribution are not enough", Queueing Systems 64, 2010); at 0.9-0.98 the reference also drops
   0.4-2.5 % of requests with q = 100 (the lognormal's long services fill the waiting room), which the fast model
   does not. Fix: a wait approximation with a third moment, and the blocking of M/G/c/K. **At c = 1 the random
   balancer was not exact** and is now: Whitt's phi is not 1 for M/G/1 at cs2 != 1 (0.403 s against
   Pollaczek-Khinchine's exact 0.5 s at cv 3, utilisation 0.5); it now takes Pollaczek-Khinchine's mean (Pollaczek
   1930, Khinchine 1932; docs/model.md 6.2). Against the request backend (random, c = 1, q = 100, 8 instances,
   seeds 1-3; not in the grid) the wait at cv 2 / 3 and utilisation 0.5, 0.75, 0.9 went from -34.4 %, -7.8 %,
   -3.1 % / -12.6 %, +21.9 %, +30.2 % to -23.2 %, -2.0 %, -1.1 % / +8.5 %, +32.4 %, +34.0 %: closer where the
   room is not reached, further at cv 3 and 0.75-0.9, where the reference turns away 0.1-1.2 % with q = 100 (the
   lognormal's long services fill the room, which the M/M/1/K scaling does not see: M/G/1/K is the fix there);
   at cv 2 and 0.5 the reference's 0.326 s is 30 % above the exact steady state 0.25 s, which its room cannot
   explain (open: its spread over seeds).
   **Stop 23: the waiting room under service variability** (`sim/mgc.py`, docs/model.md 6.2.2). An exact event
   simulation of M/G/c/K with the lognormal (`perf/mgc_sim.py`) showed the old model cut the M/M/c queue at the
   room and then multiplied the wait by Whitt's z (x5 at cv 3): near capacity that gave waits longer than a full
   room allows and almost no blocking (cv 3, 0.98: 1.57 s and 0.28 % against the exact 0.41 s and 2.28 %). The
   room is now K / z places of the M/M/c (round robin: E_n/M/c) queue, the line stretched z-fold (heavy-traffic
   diffusion scaling: W. Whitt, "A diffusion approximation for the G/GI/n/m queue", Operations Research 52(6),
   2004): against that exact simulation (c = 10, K = 100) the wait at 0.98 is +0.7 %, +1.0 %, -2.3 % at cv 1.5,
   2, 3 (was +41 %, +104 %, +284 %). In the grid: round robin cv 3 at 0.9 +42 % -> +2 %, at 0.98 +142 % -> -18 %;
   random cv 3 at 0.98 +172 % -> -18 %. A three-moment H2 (Whitt 1982's match, exact M/H2/10/110 chain:
   `perf/mh2c_check.py`) understates the lognormal's wait by 4.6 / 15 / 41 % at cv 1.5 / 2 / 3 and utilisation
   0.75, where the two-moment factor overstates it by 7.5 / 14 / 32 %: three moments do not pin it down either
   (Gupta et al. above), so it was not adopted. Still open: far from the room at cv 2-3 (round robin +17 % to
   +21 % at 0.75, random +35 % at cv 3 and 0.75; random cv 3 at 0.5 reads +369 % only because the 2-seed
   reference is 0.47 ms, while 10 seeds give 1.33 +- 0.98 ms and the exact queue 1.49 ms: inside the 1 ms
   floor), least outstanding at cv 3 and 0.9-0.98 (+38 % to +47 %: the JSQ factor is fitted with exponential
   service), the drops at 0.9-0.98 (now overstated: +26 % to +70 %) and 1.02.
   **Stop 24: the lognormal's own M/G/c wait** (`sim/mgc.py`, docs/model.md 6.2.2). For cv > 1 the wait factor
   over M/M/c is the exact light-traffic limit of the lognormal (S. A. Burman, D. R. Smith, "Asymptotic analysis
   of a queueing model with bursty traffic", Bell System Technical Journal 62, 1983), tabulated at import,
   interpolated towards the heavy-traffic (1 + cv^2) / 2 (Kollerstrom 1974) with a weight fitted to the exact
   M/G/N simulation over 100 cells (N = 1-100, cv 1.5-3, utilisation 0.3-0.95; `perf/fit_mgc.py`): rms error 2.6
   %, at most 10.9 %, against the two-moment factor's 21 % (up to +102 %). Round robin's E_n/M/c wait takes the
   same correction (an exact E_8/G/10 simulation: within 7.3 % at cv 2-3, 0.7-0.95), least outstanding's pooled
   wait too (`perf/jsq_lognormal.py`, an exact JSQ simulation with lognormal service: within 0.4-7.6 % at c = 10,
   cv 1-3, 0.9 and 0.98). In the grid: round robin cv 1.5 / 2 at 0.75 +20.7 % / +17.3 % -> 0.0 %, random cv 2 / 3
   at 0.75 +13.2 % / +35.5 % -> 0.0 %, least outstanding cv 3 at 0.9 +46.6 % -> within 10 %. Two cells moved out
   on the reference's noise: round robin cv 3 at 0.75 (-19.9 %: 8 request seeds give 25.0 +- 2.0 ms, the fast
   model 25.6 ms, the grid's 2 seeds 32.0 ms), least outstanding cv 2 at 0.9 (8 seeds 5.7 +- 0.5 ms against 6.3
   ms, inside the 1 ms floor). Still open: the blocking under cv > 1 (the exact M/G/m/K blocking,
   `perf/mgc_sim.py --finite-only`, is overstated by the room of K / z places by up to +76 % at K = 20 and +36 %
   at K = 100; the room that fits is K / z_b with z_b / z = 0.48-1.0, which a 3- or 5-parameter fit did not
   capture well enough to adopt); round robin's drops at 0.98 (0.69 / 1.72 / 2.53 % against 0.37 / 1.15 /
   2.12 % at cv 1.5 / 2 / 3); least outstanding's p95 at c = 1-2 and 0.95-0.98, which is the metric's: the
   grid reports the mean of each 15 s step's p95, below the stationary p95 near capacity (exact, c = 1 at 0.98:
   2.00 s stationary, 1.27 s per 15 s window; fast 1.62 s; request 1.22 s): it needs a per-step p95.
6. **Overload at c <= 2** (utilisation >= 1.1). Was: p95 -10 % to -12 %: fluid waits are deterministic, while
   the wait behind k queued requests on c servers has a spread. **Fixed** (`queueing.fluid_p95`, docs/model.md
   6.3): in a step that turned requests away (full waiting rooms), the p95 bound of a fluid wait adds the spread
   of the services ahead, `cv s sqrt(k) / c` (Gamma(k, c/s) for exponential service; k = the waiting room plus
   the slots, at most the wait's worth), combined with the service's own as for normals. Now every cell at 1.1
   and 1.3 holds the p95, within 6 % (c <= 2: +0.2 % to +5.7 %, was -6 % to -12 %). Near capacity
   (1.02), where the fast model's waits are off (item 1), the added spread moves some p95 up, e.g. round robin,
   c = 10: +7.4 % -> +12.3 %.
7. **A rate change inside a step** (fixed in issue 16). At 157.5 s (off the grid) the step dropped 21 requests
   against 1,067 and its mean latency was 0.84 s against 0.59 s (on the grid: within 4 %): the fast model spread
   a step's arrivals evenly, so 200 -> 600 req/s at mid-step looked like exactly the capacity of 400. Now the
   workload gives each step its rate change (`EpisodeWorkload.rate_splits`: the best two-rate fit over 32 slices
   of the exact sub-step integrals the request backend also draws from, none below a 5 % change) and the members'
   fluid queues and round robin's followed queue run the part before and the part after at their own rates
   (docs/model.md 4, 5, 6.2.1): 1,156 drops against 1,067 (+8 %), mean latency 0.633 s against 0.589 s (+7 %),
   p95 1.359 against 1.231 s; episode drops 27,903 against 28,385 (were 26,419). End to end with a fixed fleet the
   traces that change inside a step follow: noisy_trace's reward -275.3 against -272.3 (was -192.5; drops
   270,271 against 269,940, were 188,613), train_trace -125.3 against -123.9 (was -114.4). The followed queue's
   wait is now its arrivals' `Lq / (c mu G)` (it was `Lq / lambda`, which reported 10.8 s against 0.89 s in the
   step after an overload when the rate drops to 2 req/s; now 1.04 s) where the queue drains or holds; where it
   grows or is full it keeps `Lq / lambda`, the FIFO wait of the requests the step serves (the cold start case's
   step 4: 0.923 s against 0.790 s, as before). Still open: the followed queue does not split at a pool change
   (it takes the step's time-weighted pool all step).
8. **Crashes** (fixed in issue 16). An outage inside a step acted at the step start (10 s early here), so it
   failed 20 % more requests under round robin (8,998 against 7,476); a crash now takes effect at its time
   (`instances.crash_at`: served before, failed after, health checks from the crash; spontaneous crashes at
   mid-step): 7,514 against 7,476. Under least outstanding the request backend fails 14,161: a crashed target
   answers at once, has no outstanding requests and wins every tie but those with an idle healthy member
   (docs/model.md section 5). A crashed member now gets the share of an M/G/1/1 tie model (each healthy member
   is a one-server loss system while the crashed ones are in the pool; Erlang's loss formula,
   `load_balancer.failed_tie_share`): 14,090 failed against 14,161 (was 8,994), the shown step 4,247 against
   4,225 (was 2,263).
9. **Cold start longer than a step, and draining**: episode totals within 5 % (the scale-in within 1 %). In the
   step where the cold starts end the old members' arrivals were spread over the step, while they take the late
   members' part until they join (drops 738 against 1,027). Fixed in issue 16: a member in the pool all step
   takes its arrivals at two rates around the step's first pool change, two fluid segments (docs/model.md
   section 5): drops 995 against 1,027 in that step, 6,836 against 6,860 in the episode (was 6,580).

**Scenarios end to end** (target-tracking rule; from stop 25 seeds in blocks of 20 from 1000 until the paired
95 % CI of the reward and SLO-share differences is within a third of the target, up to 80; before, the
benchmark's 20 seeds): steady, diurnal, flash_crowd, cold_start_heavy and noisy_trace hold both targets, each
reward error inside or near its CI. failure_storm now holds too (80 seeds: -0.6 % +- 3.3 %, SLO share 0.309
against 0.311): with the benchmark's 20 its SLO share was 0.322 against 0.300, the crash streams' noise (over 96
seeds, 1000-1095, the fast model's reward error was +12.6 % before issue 16 with crashes at the step start, -2.9 %
with crashes at mid-step and -0.5 % with the crash time drawn in the step as the request backend draws it).
**memory_pressure under target tracking missed at stop 25** (fixed at stop 26, see the end of this paragraph; 80
seeds: +11.1 % +- 7.0 %, SLO share 0.998 against 0.900; the
20 seeds had hidden it at +4.2 % +- 9.0 %): in 9 of the 80 seeds the request backend escapes the memory-crash
spiral (reward about -200 to -340, SLO share 0.10-0.19, the fleet scaled out to about 7 instances) and the fast
model never does. Diagnosis (docs/model.md 7, "Known miss"; `python perf/memory_escape.py`): target tracking
scales out after three 1-minute CPU data points above 0.5; the fast model's replacements boot, serve and crash
together in one step and leave the next with nothing serving (CPU 0), so no minute's mean passes 0.5 and the
rule never scales out; in the request backend the replacements' crashes spread over steps and survivors fill
the gaps (replacement rounds ending with at least 2 warm instances: 4.5 % against 0.3 %), so data points pass
0.5 and it scales out. The fix it calls for: each replacement's boot end and kept queue drawn on its own, not
at the mean (`boot_crash_split`, the pool-change split). Under the HPA both spiral on every seed (-0.2 %).
**Stop 26** built it (docs/model.md 7): a replacement is drawn at the rate it takes from its join and from the
count it joins with, the gambler's-ruin chance of its birth-death chain passing the limit before falling back
(Karlin & Taylor 1975; `memory.escape_probability`). Per-seed rollouts, seeds 1000-1079: reward +11.1 % -> +0.9 %
+- 9.4 %, SLO share 0.914 against 0.900, escapes 10 of 80 against the request backend's 9; under the HPA +0.1 %.
**Stop 28: the 80 seeds had been lucky.** The rows' request episodes are now kept per seed in the reference cache
and the memory_pressure row runs up to 1,000 seeds (the rest up to 200). On stop 27's final model, seeds
1000-1999: reward +10.5 % +- 3.4 %, SLO share 0.906 against 0.818; escapes (SLO share below 0.5) 105 of 960
against the request backend's 198: a miss. mem28 found its cause in round robin's crash hazard, not in the
escape chance `pi` (from a replacement's count at the limit, Poisson and Erlang-k arrivals give the same `pi`,
0.670 against 0.671 at a = 6.7, k = 3): the stationary first passage of the birth-death chain is 26-49 % too
high for a member whose arrivals are Erlang-k (3 warm members at 200/s: 0.349 crashed a step against the
request backend's 0.276). Now it is the exact first passage of the (count, arrival phase) chain
(`memory.erlang_passage`; M. F. Neuts, *Matrix-Geometric Solutions in Stochastic Models*, 1981; 0.274 against
0.276), and a replacement that crashes as it joins reports a busy server, as the request backend does (docs/model.md
7, "Round robin's hazard, exactly"). On the 1,000 seeds: reward -4.4 % +- 3.9 %, SLO share 0.789 against 0.818
(-3.6 %): both within 5 %, but the reward's CI reaches -8.3 %; the fast model now escapes slightly more often
(23.5 % of 800 seeds against 19.8 %; the lead: a round with one warm, one crashed member and one replacement
leaves a survivor in 0.575 of rounds against 0.447). `--only memory` (seeds 1000-1019): the tuned rules' rows
moved to within 1.4 % (target tracking +7.5 % -> +1.2 %, predictive +14.6 % -> +1.4 %), but one fixed-fleet hand
configuration got worse, round robin c = 20 at 0.4 x 16: failed share -14 % -> -63 % (1.3 crashes an episode
against 3.1: the crashes that follow a first one). **Stop 29 (mem29):** the escape is decided in the first 12
steps (target tracking scales out at step 12 exactly when its first three 1-minute CPU points are above 0.5, and
then 93 % of episodes escape in both backends), so the share of seeds with three such minutes measures it on
20,000 seeds (`python perf/memory_escape.py --breach`): fast 0.260 against the request backend's 0.224. Stop 28's
lead (a round with one warm, one crashed member and one replacement) matched on 3,600 rounds; the miss was the
rounds with two replacements, whose cold starts end at different times, so the first to boot takes every second
request until the other does (past saturation at this load) and was drawn at its mean rate. Now its count is
followed exactly through those parts (`memory.lone_part`, uniformization of the (count, phase) chain; Jensen 1953)
and its escape solved on that chain (`memory.lone_escape`): a pair keeps 1.105 warm (exact 1.109, request 1.114),
onset 0.260 -> 0.245. And round robin's phases now count this step's scale-outs (`split_crash_means` had looped to
the stale `E_HI`): a warm member beside a new slot survives 0.755 (request 0.766, was 0.567). On the final model
the row read reward -3.1 % +- 3.9 %, SLO share 0.799 against 0.818: the point estimates within 5 %, the reward's
CI still reaching -7.0 %. **Stop 30: the row stratified.** A request-backend episode of this scenario takes about
9 s, so the plain mean's CI could not shrink much further (4,000 seeds for +-2 %). But nearly all of the reward's
variance is the escape, and the escape is decided by the rule's first scale-out (within the first 13 steps: of the
episodes that scaled out 92-95 % escape, of the others 0-0.1 %), which costs a twentieth of an episode to find.
So the row weighs the two strata's means over the 1,000 full episodes by the strata's shares in 20,000 other seeds'
prefixes (`stratified_mean`, Cochran 1977; the variance, bias and the prefix being the episode's own first steps
are tested in tests/test_fidelity_strata.py). On stop 29's model: reward -1.9 % +- 1.4 %, SLO share -1.2 % +- 1.4 %
(the plain means: -3.1 % +- 3.9 %). A third of the plain gap was the 1,000 seeds' luck: 0.251 of them scaled out in
the fast model against its 0.245 on 20,000, and 0.218 against 0.224 in the request backend. What remains is the
onset, 0.245 against 0.224 (the fast model escapes a tenth more often), and the scaled-out stratum's reward, -460
against -383: 8 % of those episodes fail to escape in the fast model against 5 % (an escaped episode itself scores
-286 against -272 on average, its failed share 2.4 % against 2.2 %); the mean over both strata is within 5 % with
its CI. Also at stop 30: a row holds (y) only when its CI is within a third of the target too (it had shown y on the
point estimate alone; ? now marks a row whose CI is wider), the rows' cap is 1,000 seeds for all (was 200: steady,
failure_storm and noisy_trace had stopped there untight), and the report lists the close calls, rows and grid cells
that hold on the point estimate while their CI reaches past the target. The table above is this run's.

10. **Memory crashes** (found while checking the benchmark; `python perf/fidelity.py --only memory`, seeds
   1000-1019): `memory_pressure` (48 MB per request on a 1 GB instance with 256 MB base: at most 16 requests in
   flight) differed grossly between the backends. The request backend crashes an instance whenever its momentary
   count of requests in flight and queued passes the limit (an OOM kill), the fast model did only when the
   step's mean did: under the HPA the request backend fails 99.7 % of requests on every seed (reward -2,629),
   the fast model fell into that spiral on 2 of 20 seeds (reward -200, 6.8 % failed); under target tracking
   -74 against -2,523. **Fixed** (`scaling_env/sim/memory.py`, docs/model.md 7): the fast model draws the crash
   from the level-crossing rate of the instance queue's stationary law (an arrival that finds L = 16 lifts the
   count past the limit: P(crash in the step) = 1 - exp(-a_i r_L), r_L from M/M/c/K for random, the E_n/M/c
   arrival-epoch law for round robin, the balanced pooled queue for least outstanding) at a time drawn in the
   step. Now (before -> after, reward error; SLO share fast / request): target tracking -97.1 % -> -0.3 %
   (1.000 / 0.955), target tracking@tuned -96.9 % -> -15.3 % (0.943 / 0.992), HPA -92.4 % -> -6.8 %
   (1.000 / 0.998), predictive@tuned -96.0 % -> +4.2 % (0.963 / 0.948). Hand configs (4 fixed instances, 40
   steps, mean in flight 0.3-0.9 x 16): the old model never crashed in them. Now, where crashes are not certain,
   random, c = 10 at 0.3 x 16: 16.2 against 14.1 crashes an episode (c = 20 at 0.3: 3.9 against 3.1); round
   robin c = 10 at 0.4: 35.9 against 25.3, c = 20 at 0.3: 0 against 0, at 0.4: 1.6 against 3.1 (below c round
   robin takes E_n/M/infinity's law: Takacs' binomial moments); where they are certain (c = 20 at 0.7-0.9),
   40 against 40.
   Then (issue 16, docs/model.md 3 and 7) an overload crash (a fluid queue past the limit, e.g. the queue
   built during a cold start) acted at the step's end: where every instance crashes in every life the fast
   model failed 77 % of requests against 99 %; it now acts when the fluid count reaches the limit (99.9 %
   against 99.6-99.9 %; HPA reward -6.8 % -> +1.0 %, target tracking failed share 0.76 -> 0.999 against 0.95, its
   reward -0.3 % -> +5.1 %). A replacement now starts at the detection inside the step (the shipped scenarios
   detect at a step's end, so they do not change). The crash counts under the pre-re-tune tuned target tracking
   (813 against 188, cost +89 %) came from the CPU samples of replacements that crashed in their cold start,
   which kept the rule scaling out: now 171 against 188 (cost -2.4 %). Then (issue 16, docs/model.md 7, four
   mechanisms read off the request backend): where crashes are drawn, round robin and random at 0.4-0.5 x 16
   had crashes +26 % to +42 % and failed +33 % to +44 %. (a) The crossings of the limit come in clumps and only
   the first crashes: the crash is drawn at the first-passage hazard (Keilson's birth-death passage time), not
   at the share of arrivals that find the limit (one instance at 6.4 in flight: 29 % of steps against the
   request backend's 31 %, was 45 %); (b) a member whose arrivals come at two rates around a pool change
   (members found, replacements booting) is drawn at each rate's hazard; (c) with every instance booting, the
   first to pass the limit takes the later requests and spares the others, which join the pool at their boot
   end; (d) a cold start's queue counts once when it starts serving. Now (failed share; crashes): round robin
   c = 10 at 0.4: +14.7 %; +15.0 % (was +43.5 %; +41.7 %), c = 20 at 0.5: +10.3 %; +12.0 % (was +32.5 %;
   +25.9 %), at 0.4: -14.3 %; -12.9 % (was -58.3 %; -50.0 %); random c = 20 at 0.4: +4.6 %; +5.9 % (was
   +37.8 %; +27.0 %), at 0.3: +12.3 %; +11.3 %, c = 10 at 0.3: -8.5 %; -7.8 % (was +2.7 %; +14.9 %); where
   crashes are certain, failed within 5 %. memory_pressure's reward error: target tracking +5.1 % -> +4.2 %
   (+-9.0 %; crashes 117 -> 153 against 103), stop 23's @tuned +5.3 % -> +2.7 %, HPA +1.0 % -> -0.2 %,
   predictive@tuned +9.0 % -> +4.1 %. Still off: least outstanding (4 instances at 0.7 x 16: 22 against 10
   crashes an episode, was 24), round robin's clumps below c (E_k/M/infinity is not a birth-death chain: the
   passage sum on its arrival-epoch law is an approximation), and booting instances when a cold start ends
   before the first crash (that one becomes the pool member; the fast model still splits evenly).
"""

# ------------------------------------------------------------------------------------------ platform scenarios
PLATFORM_SCENARIOS = ("sparse_bursts", "daily_provisioned", "scaling_rate_burst")
PLATFORM_POLICIES = ("provisioned_tracking", "scheduled", "fixed_keep_alive", "hybrid_histogram")
PLATFORM_KEYS = ("reward", "cost_usd", "throttled_share", "cold_starts", "slo_violation_share")
# sparse_bursts has 10 bursts an episode, each starting about 2.3 instances (sd about 1): with 3 seeds either
# backend's episode cost moves by 5-8 % with the seeds alone, so the table takes 20 (about 4 minutes)
PLATFORM_SEEDS = 20


def platform_seeds(n: int) -> tuple[int, ...]:
    return tuple(range(1000, 1000 + n))


def platform_scenarios(seeds) -> list[dict]:
    """Both backends on the serverless platform scenarios end to end, each under the platform baselines that can
    control it (``agents.rules.provisioned.runs_on``, the benchmark's pairing): episode means over ``seeds``."""
    from agents.registry import make_policy
    from agents.rules.provisioned import runs_on
    from scaling_env.rollout import rollout
    from scaling_env.scenarios import load_scenario

    out = []
    for name in PLATFORM_SCENARIOS:
        base = load_scenario(name).config
        for spec in PLATFORM_POLICIES:
            if not runs_on(make_policy(spec, base, scenario=name), base):
                continue
            row: dict = {"scenario": name, "policy": spec}
            for simulator in ("fast", "request"):
                config = base.with_updates({"simulator": simulator})
                policy = make_policy(spec, config, scenario=name)
                metrics = rollout(config, policy, list(seeds), parallel=False).metrics
                row[simulator] = {k: float(np.mean([m[k] for m in metrics])) for k in PLATFORM_KEYS}
            out.append(row)
            print("platform", name, spec, flush=True)
    return out


def platform_lines(rows: list[dict]) -> list[str]:
    """The platform table: per scenario and baseline, each figure of both backends and the fast one's error."""
    head = "| scenario | policy | " + " | ".join(f"{k} fast | request | error" for k in PLATFORM_KEYS)
    lines = [head + " | holds (reward, SLO share within 5 %) |", "|---|---|" + "---:|---:|---:|" * 5 + "---|"]
    for row in rows:
        f, r = row["fast"], row["request"]
        cells = []
        for k in PLATFORM_KEYS:
            floor = 0.005 if k in ("throttled_share", "slo_violation_share") else 0.0
            cells.append(f"{f[k]:.4g} | {r[k]:.4g} | {pct(rel(f[k], r[k], floor))}")
        ok = "y" if abs(rel(f["reward"], r["reward"])) <= 0.05 else "**n**"
        ok += "y" if abs(rel(f["slo_violation_share"], r["slo_violation_share"], 0.005)) <= 0.05 else "**n**"
        lines.append(f"| {row['scenario']} | {row['policy']} | " + " | ".join(cells) + f" | {ok} |")
    return lines


def platform_section(seeds) -> str:
    """The report's section on the platform scenarios: the table and its discussion (Markdown)."""
    rows = platform_scenarios(seeds)
    head = "## Platform scenarios end to end (platform baselines)"
    intro = (
        f"Episode means over {len(seeds)} seed(s), each scenario under every platform baseline the benchmark pairs "
        "with it (`agents.rules.provisioned.runs_on`); error = fast against request."
    )
    return "\n".join(["", head, "", intro, "", *platform_lines(rows), "", PLATFORM_DISCUSSION.strip(), ""])


def platform_main() -> None:
    """``python perf/fidelity.py --platform [--quick | --seeds N]``: print only the platform scenarios' section
    (``PLATFORM_SEEDS`` seeds, the report's; ``--seeds N``: seeds 1000 to 1000 + N - 1)."""
    n = 1 if "--quick" in sys.argv else PLATFORM_SEEDS
    if "--seeds" in sys.argv:
        at = sys.argv.index("--seeds") + 1
        if at >= len(sys.argv) or not sys.argv[at].isdigit() or int(sys.argv[at]) < 1:
            sys.exit("--seeds takes a positive whole number of seeds")
        n = int(sys.argv[at])
    print(platform_section(platform_seeds(n)))


PLATFORM_DISCUSSION = """
**Platform scenarios** (20 seeds; `python perf/fidelity.py --platform [--seeds N]`). Every scenario and baseline
holds both targets (reward within 5 % and the SLO share).
With 3 seeds sparse_bursts is off by 14 % in either direction with the seeds alone (10 bursts an episode, each
starting about 2.3 instances, sd about 1), hence 20. Before the warm pool of docs/model.md section 12 the fast
model missed the reward by -17 % and -34 % on sparse_bursts and by -23 % and -15 % on daily_provisioned (20
seeds), through the cost (-16 % to -40 %): it packed a step's requests onto instances at their mean concurrency,
while Poisson arrivals overlap, a request that finds every instance busy starts one more, and a 600 s keep-alive
holds the peak of the last ten minutes. Now, with Poisson arrivals, the warm instances lose Erlang B's share of
the requests (ordered hunting over M/G/k/k, insensitive to the service law; Gross & Harris), the instances a step
uses are the running maximum of its occupancy (overflow episodes at `lambda B(k, a) k / (a + k)` by level
crossing, counted as Poisson: Aldous' clumping heuristic), so the fleet a keep-alive holds is the peak; a cold
start fans out by the arrivals during it (`1 + Poisson`), instances booting at the step start are capacity from
the end of their cold start, and when the scaling rate binds each new instance serves from the end of its cold
start to the step end. Costs are now within +11 % (sparse_bursts, fixed_keep_alive: 0.269 against 0.243 $; its
cold starts 25.0 against 22.9 an episode) and within 4 % elsewhere. Throttling under a binding scaling rate
(scaling_rate_burst, provisioned_tracking) was 8.2 % of requests against 6.3 % (reward +5.7 %): the fast step
took its tokens at its start, at most the bucket's size (20), while the request-level backend refills
continuously as it launches (39 instances in the first binding step of the spike). Now each launch takes its
token at its need's time within the step (`platform.spread_launches`, docs/model.md 12): 6.2 % against 6.3 %,
reward -0.3 %, cold starts -0.4 %. What is left: sparse_bursts' cost (+8 % to +11 %, cold starts +9 % to +17 %).
Where (stop 24, located, not fixed): the extra cold starts come in a burst's first step (2.35-2.44 per burst
against 2.23-2.28) and its second (0.12-0.15 against 0.06), and the 600 s keep-alive then holds 2.50 instances
against 2.29, which is the cost; per burst P(3) is 0.24 against 0.20 and P(4) 0.105 against 0.06, while the
fan-out `1 + Poisson(lambda x 1.6 s)` alone predicts the request backend's (0.196, 0.07): the excess tail comes
from the fast model's admission (`platform.admit`), not from the fan-out.
"""

if __name__ == "__main__":
    if "--platform" in sys.argv:
        platform_main()
    else:
        main()
