"""The blocking of a waiting room under lognormal service (cv > 1): the time scale of ``sim/mgc.blocking_stretch``
fitted to an exact event simulation, and the fidelity grid's drop cells checked against the exact queue.

Run from the repository root::

    python perf/fit_room_variance.py --fit     # T_A, T_P (about 1-2 minutes on one CPU)
    python perf/fit_room_variance.py --grid    # the grid's cells: exact episode drops against the model's
    python perf/fit_room_variance.py --table   # mgc.variance_ratio against a Monte Carlo count variance

``--fit``: for each (servers N, room K) and cv 2 and 3 at utilisation 0.98 the stationary blocking of the FIFO
M/G/N/(N+K) queue with lognormal service of mean 0.1 s (``perf/mgc_sim.simulate``, 2 seeds); the stretch z_b
whose room of K / z_b M/M/N places gives it (``nonstationary.mmck_blocking``), the services' effective squared
coefficient cs2_eff = 2 z_b - 1 and so the share r = cs2_eff / cv^2 of their long-run count variance; the time t
(mean services) at which ``mgc.variance_ratio(cv, t)`` is r (printed per cell); then (T_A, T_P) by least squares
of the log of the model's blocking over the exact one over all cells (a grid search), next to mgc's constants.

``--grid``: the episode of the fidelity grid's service-variability cells (8 instances of N = 10, K = 100, an episode
of 720 s from empty, drops counted from 60 s on as ``perf/fidelity.py`` does): one instance's exact queue (round
robin: Erlang-8 gaps, every 8th request of the Poisson stream; random: Poisson), replicated, against the model's
blocking (the flow's with z_b, ``nonstationary.psffa_finite_wait``) and the former room of K / z places.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
from numba import njit

REPO = Path(__file__).resolve().parents[1]
for path in (str(REPO), str(REPO / "perf")):
    if path not in sys.path:
        sys.path.insert(0, path)

from mgc_sim import heap_pop, heap_push, simulate  # noqa: E402

from scaling_env.sim.mgc import T_A, T_P, blocking_stretch, variance_ratio  # noqa: E402
from scaling_env.sim.nonstationary import mmck_blocking, psffa_finite_wait, stretch_of  # noqa: E402
from scaling_env.sim.queueing import erlang_arrivals_wait, stationary_wait  # noqa: E402

SVC = 0.1
FIT_CELLS = ((1, 20), (1, 100), (2, 100), (5, 50), (10, 20), (10, 50), (10, 100), (30, 100), (10, 300))


def _bisect(f, lo: float, hi: float, log: bool = False) -> float:
    """The root of the increasing ``f`` between lo and hi (in ln x if ``log``)."""
    a, b = (math.log(lo), math.log(hi)) if log else (lo, hi)
    for _ in range(100):
        m = 0.5 * (a + b)
        if f(math.exp(m) if log else m) > 0.0:
            b = m
        else:
            a = m
    m = 0.5 * (a + b)
    return math.exp(m) if log else m


def time_scale(servers: int, room: float, cv: float, blocking: float, rho: float = 0.98) -> tuple[float, float]:
    """(z_b, t): the stretch that gives ``blocking`` and the time scale (mean services) that gives that z_b."""
    z_b = _bisect(lambda z: mmck_blocking(servers, rho, room / z) - blocking, 0.05, 100.0, log=True)
    share = (2.0 * z_b - 1.0) / (cv * cv)
    t = _bisect(lambda t: variance_ratio(cv, t) - share, 0.05, 1e6, log=True)
    return z_b, t


def fit(arrivals: float) -> None:
    rows = []
    print("| N | K | cv | exact blocking | z | z_b | t (mean services) |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for servers, room in FIT_CELLS:
        for cv in (2.0, 3.0):
            lam = 0.98 * servers / SVC
            b = np.mean([simulate(servers, lam, SVC, cv, room, int(arrivals), 500 + s, 50_000)[1] for s in range(2)])
            z_b, t = time_scale(servers, float(room), cv, b)
            rows.append((servers, room, cv, b))
            z = 0.5 * (1 + cv * cv)
            print(f"| {servers} | {room} | {cv} | {b:.4%} | {z:.2f} | {z_b:.2f} | {t:.1f} |", flush=True)
    # least squares of the log blocking (model over exact) over (ln T_A, T_P) on a grid: a fit in t itself is
    # dominated by the cells whose blocking barely depends on t (cv 2, large rooms: r near 1)
    best = (math.inf, 0.0, 0.0)
    for power in np.arange(0.30, 1.0001, 0.01):
        for ln_a in np.arange(-3.0, 3.0001, 0.02):
            err = 0.0
            for servers, room, cv, b in rows:
                t = math.exp(ln_a) * (room * room / servers) ** power
                z_b = 0.5 * (1.0 + cv * cv * variance_ratio(cv, t))
                err += math.log(mmck_blocking(servers, 0.98, room / z_b) / b) ** 2
            best = min(best, (err, ln_a, power))
    err, ln_a, power = best
    print(
        f"T_A = {math.exp(ln_a):.3f}, T_P = {power:.2f} (t = T_A (K^2 / N)^T_P), "
        f"rms log error {math.sqrt(err / len(rows)):.3f}"
    )
    for servers, room, cv, b in rows:
        for t_a, t_p, name in ((math.exp(ln_a), power, "fit"), (T_A, T_P, "mgc")):
            z_b = 0.5 * (1.0 + cv * cv * variance_ratio(cv, t_a * (room * room / servers) ** t_p))
            m = mmck_blocking(servers, 0.98, room / z_b)
            print(f"  N {servers:3d} K {room:4d} cv {cv}: exact {b:.4%}, {name} {m:.4%} ({m / b - 1:+.1%})")


@njit(cache=True)
def episode_drops(servers, lam, cv, room, horizon, start, reps, seed, phases):
    """The share of arrivals turned away between ``start`` and ``horizon`` s by one FIFO G/G/N/(N+K) queue that
    starts empty (Erlang-``phases`` gaps, lognormal service of mean SVC), over ``reps`` replications."""
    np.random.seed(seed)
    sig = math.sqrt(math.log(1.0 + cv * cv))
    mu_ln = math.log(SVC) - 0.5 * sig * sig
    cap = servers + room
    heap = np.empty(cap + 2)
    free = np.zeros(servers)
    arrived = 0
    dropped = 0
    for _ in range(reps):
        size = 0
        t = 0.0
        free[:] = 0.0
        while True:
            t += np.random.gamma(phases, 1.0 / (phases * lam))
            if t >= horizon:
                break
            while size > 0 and heap[0] <= t:  # departures up to now (a binary heap)
                size = heap_pop(heap, size)
            counted = t >= start
            arrived += counted
            if size >= cap:
                dropped += counted
                continue
            k = 0
            for j in range(1, servers):
                if free[j] < free[k]:
                    k = j
            d = max(t, free[k]) + math.exp(mu_ln + sig * np.random.standard_normal())
            free[k] = d
            size = heap_push(heap, size, d)
    return dropped / max(arrived, 1)


def grid(reps: int) -> None:
    n, c, room = 8, 10, 100.0
    print("| balancer | utilisation | cv | exact drops | model (z_b) | error | before (K / z) | error |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, phases in (("round_robin", n), ("random", 1)):
        ca2 = 1.0 / phases
        for cv in (1.5, 2.0, 3.0):
            for rho in (0.98, 1.02):
                lam = rho * c / SVC
                exact = episode_drops(c, lam, cv, int(room), 720.0, 60.0, reps, int(1000 * cv + 100 * rho), phases)
                if phases > 1:
                    w, _, before = erlang_arrivals_wait(phases, c, lam, SVC, cv * cv, room)
                else:
                    w, _, before = stationary_wait(c, lam, SVC, 1.0, cv * cv, room)
                z_b = blocking_stretch(ca2, c, room, cv)
                y, z = 0.0, stretch_of(ca2, cv * cv)
                model = []
                for _ in range(48):  # 15 s steps; the blocking from step 4 on
                    model.append(psffa_finite_wait(y, lam, SVC, c, w, room, 15.0, z_b)[2])
                    y = psffa_finite_wait(y, lam, SVC, c, w, room, 15.0, z)[0]
                m = float(np.mean(model[4:]))
                print(
                    f"| {name} | {rho} | {cv} | {exact:.4%} | {m:.4%} | {m / exact - 1:+.1%} | {before:.4%} | "
                    f"{before / exact - 1:+.1%} |",
                    flush=True,
                )


@njit(cache=True)
def window_counts(cv: float, t: float, windows: int, seed: int) -> np.ndarray:
    """Renewals of the lognormal law (mean 1) in ``windows`` consecutive windows of ``t``, after a burn-in of 1e4."""
    np.random.seed(seed)
    sig = math.sqrt(math.log(1.0 + cv * cv))
    mu = -0.5 * sig * sig
    nxt = 0.0
    while nxt < 1e4:
        nxt += math.exp(mu + sig * np.random.standard_normal())
    nxt -= 1e4
    out = np.zeros(windows)
    for w in range(windows):
        end = (w + 1) * t
        while nxt < end:
            out[w] += 1.0
            nxt += math.exp(mu + sig * np.random.standard_normal())
    return out


def table() -> None:
    print("| cv | t | Monte Carlo Var N_e(t) / (cs2 t) | mgc.variance_ratio | error |")
    print("|---:|---:|---:|---:|---:|")
    for cv in (1.5, 2.0, 3.0):
        for t in (3.0, 10.0, 30.0, 100.0, 300.0):
            mc = window_counts(cv, t, int(4e7 / t), 11).var() / (t * cv * cv)
            r = variance_ratio(cv, t)
            print(f"| {cv} | {t:g} | {mc:.4f} | {r:.4f} | {r / mc - 1:+.1%} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fit", action="store_true", help="fit the time scale's T_A, T_P")
    ap.add_argument("--grid", action="store_true", help="the fidelity grid's drop cells against the exact queue")
    ap.add_argument("--table", action="store_true", help="the variance ratio's table against Monte Carlo")
    ap.add_argument("--arrivals", type=float, default=4e6, help="--fit: arrivals per seed (2 seeds)")
    ap.add_argument("--reps", type=int, default=400, help="--grid: episodes of one instance per cell")
    args = ap.parse_args()
    if args.fit:
        fit(args.arrivals)
    if args.grid:
        grid(args.reps)
    if args.table:
        table()


if __name__ == "__main__":
    main()
