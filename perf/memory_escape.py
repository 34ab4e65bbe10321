"""Why the request backend escapes memory_pressure's crash spiral under target tracking and the fast model does not.

Issue 16 (known miss; docs/model.md section 7, "Escape from the crash spiral"). Runs the shipped scenario under
the default ``target_tracking`` rule in both backends and prints (1) a per-step table of one seed (arrivals,
failed, warm/booting/failed/unhealthy at the step end, crashes, CPU, the rule's action) and (2) statistics over
the first 40 steps (10 minutes, before any escape) of a block of seeds: the share of steps with no serving
instance, the crash rate of the instances warm at a step start, and the outcome of a replacement round (the
step with cold starts and the one after it: how often it ends with a warm instance left).

``--rounds`` instead holds the initial 3 instances (no scaling, so that no seed escapes and every cold start is a
replacement) and classifies each replacement round, the step in which replacements boot, by the pool it meets
(replacements, warm and crashed-undetected members at the step start) and counts the replacements warm at its end
(docs/model.md 7: the replacements drawn on their own).

Run from the repository root (about 40 s on a 2-CPU machine)::

    python perf/memory_escape.py                       # seed 1004, statistics on seeds 1000-1019
    python perf/memory_escape.py --seed 1000 --steps 20 --seeds 40
    python perf/memory_escape.py --rounds --seeds 80   # replacement rounds, seeds 1000-1079, first 40 steps
    python perf/memory_escape.py --episodes --seeds 400  # whole episodes: escapes, reward, SLO share (~4 min)
    python perf/memory_escape.py --pi                    # the escape chance pi for Erlang-k arrivals (exact chain)
    python perf/memory_escape.py --breach --seeds 20000  # the first scale-out: 12 steps, seeds 10000-29999 (~3 min)

``--episodes`` runs whole episodes of seeds 1000.. in both backends (target tracking; ``--policy hpa`` for the
HPA) and prints the escapes (an episode whose SLO violation share is below 0.5: the rule scaled out and the crashes
stopped), the mean reward and SLO violation share, and the paired 95 % CI of their fast-minus-request difference.

``--breach`` runs only the first 12 steps, where the escape is decided: target tracking holds the fleet until its
third 1-minute data point, and scales out at step 12 exactly when all three pass 0.5 (then 93 % of the episodes
escape in both backends, and nearly no other does), so the share of seeds with three breaching minutes measures
the escape on 20,000 seeds in minutes; it also lists the replacement rounds of the even steps by pool.
"""

from __future__ import annotations

import argparse
import os

import numpy as np

from agents.registry import make_policy
from scaling_env.fields import M_COLD_STARTS, M_CPU
from scaling_env.rollout import rollout
from scaling_env.scenarios import load_scenario
from scaling_env.sim.instances import BOOTING, FAILED, I_STATE, OFF, WARM
from scaling_env.sim.simulator import BatchSimulator

KEYS = (
    "arrivals",
    "failed",
    "instances_warm",
    "instances_booting",
    "instances_failed",
    "instances_unhealthy",
    "crashes",
    "cold_starts",
    "cpu_utilization",
    "scale_applied",
)


def run(sim: str, seeds: list[int]) -> dict[str, np.ndarray]:
    cfg = load_scenario("memory_pressure").config.with_updates({"simulator": sim})
    return rollout(cfg, make_policy("target_tracking", cfg), seeds, record=KEYS, parallel=False).traces


def row(t: dict[str, np.ndarray], i: int, k: int) -> str:
    n = [int(t[key][i, k]) for key in KEYS if key not in ("cold_starts", "cpu_utilization", "scale_applied")]
    cpu, act = t["cpu_utilization"][i, k], int(t["scale_applied"][i, k])
    return f"{n[0]:6d} {n[1]:6d} {n[2]:3d} {n[3]:2d} {n[4]:2d} {n[5]:2d} {n[6]:3d} {cpu:5.2f} {act:+3d}"


def stats(t: dict[str, np.ndarray], horizon: int) -> None:
    w = t["instances_warm"][:, :horizon]
    c = t["crashes"][:, :horizon]
    cpu = t["cpu_utilization"][:, :horizon]
    cs = t["cold_starts"][:, :horizon]
    start = np.concatenate([np.full((w.shape[0], 1), 3.0), w[:, :-1]], axis=1)  # warm at the step start
    print(f"  steps with no warm instance at the end {np.mean(w == 0):.3f}, with CPU 0 {np.mean(cpu == 0):.3f}")
    minutes = cpu[:, : horizon // 4 * 4].reshape(cpu.shape[0], -1, 4)  # the rule's 1-minute data points
    zeros = (minutes == 0).sum(axis=2)
    print(
        f"  1-minute data points above 0.5: {np.mean(minutes.mean(axis=2) > 0.5):.3f};"
        f" minutes with 0/1/2/3/4 zero-CPU steps: {np.bincount(zeros.ravel(), minlength=5) / zeros.size}"
    )
    for n in (1, 2, 3):
        m = start == n
        if m.any():
            print(
                f"  {n} warm at the step start: {m.sum():4d} steps,"
                f" crashes per such instance {c[m].sum() / (n * m.sum()):.3f}, mean CPU {cpu[m].mean():.2f}"
            )
    after = np.zeros_like(cs, dtype=bool)
    after[:, 1:] = cs[:, :-1] > 0
    for name, m in (("step with cold starts", cs > 0), ("step after it", after)):
        print(
            f"  {name:22s}: {m.sum():4d} steps, crashes {c[m].mean():.2f}, warm at the end {w[m].mean():.2f},"
            f" P(none warm) {np.mean(w[m] == 0):.3f}, P(>= 2 warm) {np.mean(w[m] >= 2):.3f}"
        )


def rounds(sim: str, seeds: list[int], horizon: int) -> None:
    """Replacement rounds under a held fleet of 3: per pool at the round (replacements, warm, crashed members),
    how often at least one / two replacements are warm at the round's end. The fast model launches a replacement
    at the end of the detection step (booting at the next step's start); the request backend at the detection,
    the next step's start (its cold starts count in that step): the round is the step the replacements boot in."""
    cfg = load_scenario("memory_pressure").config.with_updates({"simulator": sim})
    bs = BatchSimulator(cfg, num_envs=len(seeds), parallel=False)
    bs.seed(seeds)
    bs.reset()
    hold = np.full(len(seeds), list(cfg.scaling.scale_steps).index(0), dtype=np.int64)
    out: dict[tuple[int, int, int], list[int]] = {}
    for _ in range(horizon):
        st0 = bs.inst_i[:, :, I_STATE].copy()
        bs.step(hold)
        st1 = bs.inst_i[:, :, I_STATE]
        for b in range(len(seeds)):
            warm = int((st0[b] == WARM).sum())
            if sim == "fast":
                reps = st0[b] == BOOTING
                n, crashed = int(reps.sum()), int((st0[b] == FAILED).sum())
                survived = int((st1[b][reps] == WARM).sum())
            else:  # (members found at the step start are FAILED at it and UNHEALTHY at its end)
                n = int(bs.metrics[b, M_COLD_STARTS])
                crashed = int(((st0[b] == FAILED) & (st1[b] == FAILED)).sum())
                survived = int(((st0[b] != WARM) & (st1[b] == WARM)).sum())
            if n > 0:
                out.setdefault((n, warm, crashed), []).append(survived)
    total = sum(len(v) for v in out.values())
    print(f"{sim}: seeds {seeds[0]}-{seeds[-1]}, first {horizon} steps, fleet held at 3: {total} replacement rounds")
    for key in sorted(out, key=lambda k: -len(out[k]))[:6]:
        v = np.array(out[key])
        print(
            f"  {key[0]} replacements, {key[1]} warm, {key[2]} crashed in the pool: {len(v):4d} rounds,"
            f" >= 1 replacement warm at the end {np.mean(v >= 1):.3f}, >= 2 {np.mean(v >= 2):.3f}"
        )
    v = np.concatenate([np.array(x) for x in out.values()])
    print(f"  all: >= 1 replacement warm at the end {np.mean(v >= 1):.3f}, >= 2 {np.mean(v >= 2):.3f}")


def episodes(seeds: list[int], policy: str, ref: str | None = None) -> None:
    """Whole episodes in both backends, paired per seed: escapes (SLO violation share < 0.5), reward, SLO share."""
    out = {}
    for sim in ("fast", "request"):
        cache = f"{ref}.{policy}.{seeds[0]}-{seeds[-1]}.npz" if ref and sim == "request" else None
        if cache and os.path.exists(cache):  # (the request backend's episodes do not change with the fast model)
            with np.load(cache) as z:
                out[sim] = {k: z[k] for k in z.files}
            continue
        cfg = load_scenario("memory_pressure").config.with_updates({"simulator": sim})
        runs = rollout(cfg, make_policy(policy, cfg), seeds, parallel=False).metrics
        out[sim] = {k: np.array([m[k] for m in runs]) for k in ("reward", "slo_violation_share")}
        if cache:
            np.savez(cache, **out[sim])
    print(f"memory_pressure under {policy}, seeds {seeds[0]}-{seeds[-1]} ({len(seeds)})")
    for sim, m in out.items():
        esc = m["slo_violation_share"] < 0.5
        print(
            f"  {sim:8s} escapes {esc.sum():4d} ({esc.mean():.3f}), reward {m['reward'].mean():9.1f},"
            f" SLO share {m['slo_violation_share'].mean():.3f}"
        )
    both = (out["fast"]["slo_violation_share"] < 0.5) & (out["request"]["slo_violation_share"] < 0.5)
    print(f"  escapes in both {both.sum()}")
    for key in ("reward", "slo_violation_share"):
        f, r = out["fast"][key], out["request"][key]
        d = f - r
        ci = 1.96 * d.std(ddof=1) / np.sqrt(len(d))
        # (fast - request) / request, as perf/fidelity.py's: + is a more negative reward, a larger SLO share
        print(f"  {key}: error {d.mean() / r.mean():+.1%} +- {ci / abs(r.mean()):.1%} (paired 95 % CI)")


def pi_erlang(k: int, c: int, a: float, level: int, q0: int, phase: int = -1) -> float:
    """The chance that the count of an instance fed every k-th request of a Poisson stream (Erlang-k gaps, offered
    load ``a``, ``c`` exponential servers) passes ``level`` before it falls back to its bulk ``m = floor(a)``, from
    ``q0`` at arrival phase ``phase`` (-1: uniform over the k phases, a place in the rotation taken at random): the
    first-step equations of the (count, phase) chain (Neuts 1981) solved densely. k = 1 is
    ``memory.escape_probability``'s gambler's ruin."""
    m = min(int(np.floor(a)), level - 1)
    if q0 <= m:
        return 0.0
    size = (level - m) * k
    mat = np.eye(size)
    rhs = np.zeros(size)
    for n in range(m + 1, level + 1):
        for j in range(k):
            r = (n - m - 1) * k + j
            up, down = k * a, min(n, c)
            if j < k - 1:
                mat[r, r + 1] -= up / (up + down)
            elif n == level:
                rhs[r] += up / (up + down)
            else:
                mat[r, r + 1] -= up / (up + down)  # (n + 1, 0) follows (n, k - 1)
            if n - 1 > m:
                mat[r, r - k] -= down / (up + down)
    u = np.linalg.solve(mat, rhs)
    at = u[(q0 - m - 1) * k : (q0 - m) * k]
    return float(at.mean() if phase < 0 else at[phase])


def pi_table() -> None:
    """memory_pressure's instance (c = 10, 16 fit): pi for Poisson (k = 1) and Erlang-k arrivals, from the limit
    (a replacement that kept 16 while booting) and from 12."""
    print("pi(q0): k = 1, 2, 3, 4 (uniform arrival phase; phase 0 = just after an arrival)")
    for a in (4.0, 5.0, 6.5, 6.7, 8.0):
        for q0 in (16, 12):
            row = " ".join(f"{pi_erlang(k, 10, a, 16, q0):.4f}" for k in (1, 2, 3, 4))
            ph0 = " ".join(f"{pi_erlang(k, 10, a, 16, q0, 0):.4f}" for k in (1, 2, 3, 4))
            print(f"  a = {a:3.1f}, q0 = {q0}: {row}   phase 0: {ph0}")


def breach(sim: str, first: int, n: int, ref: str | None = None) -> dict[str, np.ndarray]:
    """The first 12 steps (target tracking holds the fleet at 3 until its third 1-minute data point) of seeds
    ``first``.. in chunks of 5,000 clusters: per step and cluster the pool at its start (warm, crashed, replacements
    booting in it: the request backend's at the detection, in the step) and at its end (warm, replacements warm)
    and the CPU. Cached in ``{ref}.breach.{first}-{n}.npz`` for the request backend."""
    cache = f"{ref}.breach.{first}-{n}.npz" if ref and sim == "request" else None
    if cache and os.path.exists(cache):
        with np.load(cache) as z:
            return {k: z[k] for k in z.files}
    cfg = load_scenario("memory_pressure").config.with_updates({"simulator": sim})
    out = {k: np.zeros((n, 12)) for k in ("w0", "c0", "r0", "w1", "r1", "cpu")}
    for c0 in range(0, n, 5000):
        nn = min(5000, n - c0)
        part = slice(c0, c0 + nn)
        bs = BatchSimulator(cfg, num_envs=nn, parallel=False)
        bs.seed(list(range(first + c0, first + c0 + nn)))
        bs.reset()
        hold = np.full(nn, list(cfg.scaling.scale_steps).index(0), dtype=np.int64)
        for k in range(12):
            st0 = bs.inst_i[:, :, I_STATE].copy()
            bs.step(hold)
            st1 = bs.inst_i[:, :, I_STATE]
            if sim == "fast":
                reps, crashed = st0 == BOOTING, st0 == FAILED
            else:
                reps, crashed = (st0 == OFF) & (st1 != OFF), (st0 == FAILED) & (st1 == FAILED)
            out["w0"][part, k] = (st0 == WARM).sum(axis=1)
            out["c0"][part, k] = crashed.sum(axis=1)
            out["r0"][part, k] = reps.sum(axis=1)
            out["w1"][part, k] = (st1 == WARM).sum(axis=1)
            out["r1"][part, k] = (reps & (st1 == WARM)).sum(axis=1)
            out["cpu"][part, k] = bs.metrics[:, M_CPU]
    if cache:
        np.savez(cache, **out)
    return out


def breach_table(first: int, n: int, ref: str | None) -> None:
    """The share of seeds whose three first 1-minute CPU points pass target tracking's 0.5 (its first scale-out,
    at step 12; 93 % of those episodes escape the spiral in both backends, and nearly no other does), and the
    replacement rounds of the even steps by pool (warm, crashed, replacements): replacements warm at the end."""
    z = {sim: breach(sim, first, n, ref) for sim in ("fast", "request")}
    for sim, t in z.items():
        points = t["cpu"].reshape(n, 3, 4).mean(axis=2) > 0.5
        p = points.all(axis=1).mean()
        ci = 1.96 * np.sqrt(p * (1 - p) / n)
        print(f"{sim:8s} seeds {first}-{first + n - 1}: 3 breaching minutes {p:.4f} +- {ci:.4f}")
    print("step (warm, crashed, replacements): rounds fast request | replacements warm at the end fast request")
    f, r = z["fast"], z["request"]
    for k in (4, 6, 8, 10):
        for pool in ((0, 1, 2), (1, 0, 2), (0, 2, 1), (1, 1, 1), (0, 0, 3)):
            m = [(t["w0"][:, k] == pool[0]) & (t["c0"][:, k] == pool[1]) & (t["r0"][:, k] == pool[2]) for t in (f, r)]
            if min(x.sum() for x in m) >= 100:
                print(
                    f"  {k:2d} {pool}: {m[0].sum():5d} {m[1].sum():5d} | {f['r1'][m[0], k].mean():.3f}"
                    f" {r['r1'][m[1], k].mean():.3f}"
                )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=1004, help="the seed of the per-step table")
    ap.add_argument("--steps", type=int, default=26, help="steps of the per-step table")
    ap.add_argument("--seeds", type=int, default=20, help="seeds from 1000 of the statistics")
    ap.add_argument("--horizon", type=int, default=40, help="steps of the statistics (from the start)")
    ap.add_argument("--rounds", action="store_true", help="the replacement rounds of a fleet held at 3 (above)")
    ap.add_argument("--episodes", action="store_true", help="whole episodes: escapes, reward, SLO share (above)")
    ap.add_argument("--policy", default="target_tracking", help="the rule of --episodes")
    ap.add_argument("--ref", help="--episodes: keep the request backend's episodes in files with this prefix")
    ap.add_argument("--pi", action="store_true", help="the escape chance for Erlang-k arrivals (above)")
    ap.add_argument("--breach", action="store_true", help="target tracking's first scale-out, the first 12 steps")
    ap.add_argument("--first", type=int, default=10000, help="--breach: the first seed")
    a = ap.parse_args()
    if a.breach:
        breach_table(a.first, a.seeds, a.ref)
        return
    if a.pi:
        pi_table()
        return
    if a.episodes:
        episodes(list(range(1000, 1000 + a.seeds)), a.policy, a.ref)
        return
    if a.rounds:
        for sim in ("fast", "request"):
            rounds(sim, list(range(1000, 1000 + a.seeds)), a.horizon)
        return
    seeds = sorted(set(range(1000, 1000 + a.seeds)) | {a.seed})
    tr = {sim: run(sim, seeds) for sim in ("fast", "request")}
    i = seeds.index(a.seed)
    print(f"seed {a.seed}: arrivals failed warm booting failed unhealthy crashes cpu action (fast | request)")
    for k in range(a.steps):
        print(f"{k:3d} | {row(tr['fast'], i, k)} | {row(tr['request'], i, k)}")
    for sim in tr:
        print(f"{sim}: seeds 1000-{999 + a.seeds}, first {a.horizon} steps")
        stats({key: v[: a.seeds] for key, v in tr[sim].items()}, a.horizon)


if __name__ == "__main__":
    main()
