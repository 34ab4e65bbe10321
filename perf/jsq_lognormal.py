"""Exact event simulation of least outstanding (join the shortest queue) with lognormal service: the figures that
docs/model.md 6.2.2 quotes for least outstanding under service variability and for its p95 near capacity.

Run from the repository root (about 2 minutes on one core)::

    python perf/jsq_lognormal.py                         # the wait: n = 8, c = 10, cv 1 / 2 / 3, utilisation 0.9, 0.98
    python perf/jsq_lognormal.py --p95 --conc 1,2 --rho 0.95,0.98   # the p95: stationary and per 15 s window

``n`` instances of ``c`` slots, each FIFO with a waiting room of ``room`` (an arrival that finds its chosen instance
at ``c + room`` outstanding is turned away), Poisson arrivals at ``rho n c / s``, lognormal service of mean
``s`` = 0.1 s (exponential at cv 1). A request goes to the instance with the fewest outstanding requests; a tie
goes to the first at or after a rotating pointer, which then moves past the chosen instance (as the request
backend's ``pick_target`` does). Each instance keeps its departures in a heap (its outstanding count) and the
times its slots free (FIFO: a request starts when the first slot frees, in arrival order). Per cell: 4 seeds, the
first 50,000 arrivals left out; the mean wait and its standard error over the seeds, P(wait), the blocking, and
the fast model's ``balancer_queue`` for the same queue. ``--p95``: the response time's 95th percentile over the
whole run (the stationary p95, what the fast model's p95 describes) and the mean over 15 s windows (by
departure) of each window's p95, weighted by its requests (what perf/fidelity.py reports: the served-weighted
mean of the steps' p95).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
from numba import njit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scaling_env.sim.load_balancer import LEAST_OUTSTANDING, balancer_queue  # noqa: E402

MEAN = 0.1


@njit(cache=True)
def simulate(n: int, c: int, room: int, lam: float, cv: float, arrivals: int, seed: int, warm: int):
    """(response times of the admitted requests after ``warm``, their departure times, their waits, arrivals
    counted, arrivals turned away)."""
    np.random.seed(seed)
    cap = c + room
    heap = np.empty((n, cap + 1))
    size = np.zeros(n, np.int64)
    free = np.zeros((n, c))
    sig = math.sqrt(math.log(1.0 + cv * cv))
    mu_ln = math.log(MEAN) - 0.5 * sig * sig
    t = 0.0
    pointer = 0
    resp = np.empty(arrivals)
    dep = np.empty(arrivals)
    wait = np.empty(arrivals)
    m = 0
    counted = 0
    blocked = 0
    for k in range(arrivals):
        t += np.random.exponential(1.0 / lam)
        for i in range(n):  # the departures up to now leave each instance's heap
            while size[i] > 0 and heap[i, 0] <= t:
                size[i] -= 1
                last = heap[i, size[i]]
                j = 0
                while True:
                    left = 2 * j + 1
                    if left >= size[i]:
                        break
                    ch = left if (left + 1 >= size[i] or heap[i, left] <= heap[i, left + 1]) else left + 1
                    if heap[i, ch] < last:
                        heap[i, j] = heap[i, ch]
                        j = ch
                    else:
                        break
                heap[i, j] = last
        best = -1
        best_o = 1 << 60
        for jj in range(n):
            i = (pointer + jj) % n
            if size[i] < best_o:
                best_o = size[i]
                best = i
        pointer = (best + 1) % n
        s = np.random.exponential(MEAN) if cv == 1.0 else math.exp(mu_ln + sig * np.random.standard_normal())
        if k >= warm:
            counted += 1
        if best_o >= cap:
            if k >= warm:
                blocked += 1
            continue
        q = 0
        for r in range(1, c):
            if free[best, r] < free[best, q]:
                q = r
        start = max(t, free[best, q])
        d = start + s
        free[best, q] = d
        i = size[best]
        size[best] += 1
        while i > 0:
            parent = (i - 1) // 2
            if heap[best, parent] > d:
                heap[best, i] = heap[best, parent]
                i = parent
            else:
                break
        heap[best, i] = d
        if k >= warm:
            resp[m] = d - t
            dep[m] = d
            wait[m] = start - t
            m += 1
    return resp[:m], dep[:m], wait[:m], counted, blocked


def window_p95(resp: np.ndarray, dep: np.ndarray, width: float = 15.0) -> float:
    """The requests-weighted mean of the p95 of each full ``width`` s window (by departure)."""
    win = np.floor(dep / width).astype(np.int64)
    order = np.argsort(win, kind="stable")
    win, r = win[order], resp[order]
    parts = np.split(r, np.flatnonzero(np.diff(win)) + 1)[1:-1]
    return float(np.average([np.quantile(p, 0.95) for p in parts], weights=[len(p) for p in parts]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--instances", type=int, default=8)
    ap.add_argument("--conc", default="10")
    ap.add_argument("--cv", default="1,2,3")
    ap.add_argument("--rho", default="0.9,0.98")
    ap.add_argument("--room", type=int, default=100)
    ap.add_argument("--arrivals", type=float, default=4e6, help="arrivals per seed (4 seeds)")
    ap.add_argument("--p95", action="store_true", help="also the stationary and the per-window p95")
    args = ap.parse_args()
    n = args.instances
    print("| c | cv | rho | wait s | +- | fast s | error | P(wait) | blocking | p95 stationary | p95 per 15 s |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for c in (int(x) for x in args.conc.split(",")):
        for cv in (float(x) for x in args.cv.split(",")):
            for rho in (float(x) for x in args.rho.split(",")):
                lam = rho * n * c / MEAN
                waits, pw, blocks, p95s, p95w = [], [], [], [], []
                for seed in range(4):
                    resp, dep, wait, counted, blocked = simulate(
                        n, c, args.room, lam, cv, int(args.arrivals), 7 + seed, 50_000
                    )
                    waits.append(wait.mean())
                    pw.append(float(np.mean(wait > 0.0)))
                    blocks.append(blocked / counted)
                    if args.p95:
                        p95s.append(np.quantile(resp, 0.95))
                        p95w.append(window_p95(resp, dep))
                w = float(np.mean(waits))
                se = float(np.std(waits, ddof=1) / 2)
                fast = balancer_queue(LEAST_OUTSTANDING, lam, n, float(n), float(n), c, MEAN, cv * cv, args.room)[0]
                tail = f"{np.mean(p95s):.3f} | {np.mean(p95w):.3f}" if args.p95 else "- | -"
                print(
                    f"| {c} | {cv} | {rho} | {w:.5f} | {se:.5f} | {fast:.5f} | {fast / w - 1:+.1%} | "
                    f"{np.mean(pw):.4f} | {np.mean(blocks):.4%} | {tail} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
