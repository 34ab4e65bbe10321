"""Exact event simulation of the FIFO M/G/N/(N+K) queue with lognormal service: the figures that
``scaling_env/sim/mgc.py`` and docs/model.md (6.2.2) quote for the waiting room under service variability.

Run from the repository root (about 2 minutes on one CPU)::

    python perf/mgc_sim.py                  # N = 10, mean 0.1 s, cv 1.5 / 2 / 3, utilisation 0.5-0.98
    python perf/mgc_sim.py --arrivals 1e6   # a quicker, noisier look

Poisson arrivals at rate rho N / s; each admitted request takes the server that frees first (FIFO), so it waits
max(0, earliest free time - arrival); the requests in the system are the admitted ones whose departure lies
ahead (a heap of departure times); an arrival that finds N + K there is turned away. Per cell: the mean wait of
admitted requests and the blocking probability, over 4 seeds (their mean and the standard error of it), next to
the fast model's ``queueing.stationary_wait`` for the same queue.
"""

from __future__ import annotations

import argparse
import math

import numpy as np
from numba import njit

from scaling_env.sim.queueing import stationary_wait


@njit(cache=True)
def heap_pop(heap: np.ndarray, size: int) -> int:
    """Remove the smallest of the binary min-heap ``heap[:size]``; returns the new size."""
    size -= 1
    last = heap[size]
    i = 0
    while True:
        left = 2 * i + 1
        if left >= size:
            break
        j = left if (left + 1 >= size or heap[left] <= heap[left + 1]) else left + 1
        if heap[j] < last:
            heap[i] = heap[j]
            i = j
        else:
            break
    heap[i] = last
    return size


@njit(cache=True)
def heap_push(heap: np.ndarray, size: int, value: float) -> int:
    """Add ``value`` to the binary min-heap ``heap[:size]``; returns the new size."""
    i = size
    while i > 0:
        parent = (i - 1) // 2
        if heap[parent] > value:
            heap[i] = heap[parent]
            i = parent
        else:
            break
    heap[i] = value
    return size + 1


@njit(cache=True)
def simulate(
    servers: int, lam: float, mean: float, cv: float, room: int, n: int, seed: int, warm: int, phases: int = 1
):
    """(mean wait of admitted requests, blocking probability) of M/G/N/(N+K), lognormal service (exponential for
    cv = 1), ``room`` < 0 for an unlimited room; the first ``warm`` arrivals are not counted. ``phases`` > 1:
    Erlang-``phases`` gaps between arrivals (every ``phases``-th request of a Poisson stream: round robin over
    that many instances), E_k/G/N/(N+K)."""
    np.random.seed(seed)
    free = np.zeros(servers)
    cap = servers + room if room >= 0 else 1 << 22
    heap = np.empty(min(cap, 1 << 22) + 2)
    size = 0
    t = 0.0
    sig = math.sqrt(math.log(1.0 + cv * cv))
    mu_ln = math.log(mean) - 0.5 * sig * sig
    wait_sum = 0.0
    admitted = 0
    blocked = 0
    total = 0
    for k in range(n):
        t += np.random.exponential(1.0 / lam) if phases == 1 else np.random.gamma(phases, 1.0 / (phases * lam))
        while size > 0 and heap[0] <= t:  # pop the departures up to now
            size = heap_pop(heap, size)
        s = np.random.exponential(mean) if cv == 1.0 else math.exp(mu_ln + sig * np.random.standard_normal())
        if k >= warm:
            total += 1
        if size >= cap:
            if k >= warm:
                blocked += 1
            continue
        j = 0
        for q in range(1, servers):
            if free[q] < free[j]:
                j = q
        start = max(t, free[j])
        d = start + s
        free[j] = d
        size = heap_push(heap, size, d)
        if k >= warm:
            admitted += 1
            wait_sum += start - t
    return wait_sum / max(admitted, 1), blocked / max(total, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--servers", type=int, default=10)
    ap.add_argument("--room", type=int, default=100)
    ap.add_argument("--arrivals", type=float, default=6e6, help="arrivals per seed (4 seeds)")
    ap.add_argument("--rhos", default="0.5,0.75,0.9,0.98", help="utilisations, comma-separated")
    ap.add_argument("--seed0", type=int, default=0, help="the 4 seeds are seed0 .. seed0 + 3")
    ap.add_argument("--finite-only", action="store_true", help="only the room given, not the unlimited queue")
    args = ap.parse_args()
    mean = 0.1
    n = int(args.arrivals)
    print("| cv | utilisation | room | wait exact s | +- | blocking exact | wait fast s | error | blocking fast |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for cv in (1.5, 2.0, 3.0):
        for rho in (float(r) for r in args.rhos.split(",")):
            lam = rho * args.servers / mean
            for room in (args.room,) if args.finite_only else (-1, args.room):
                runs = [simulate(args.servers, lam, mean, cv, room, n, args.seed0 + s, 20_000) for s in range(4)]
                w = np.array([r[0] for r in runs])
                b = np.array([r[1] for r in runs])
                k = 1e12 if room < 0 else float(room)
                wf, _, bf = stationary_wait(args.servers, lam, mean, 1.0, cv * cv, k)
                print(
                    f"| {cv} | {rho} | {'inf' if room < 0 else room} | {w.mean():.5f} | {w.std(ddof=1) / 2:.5f} | "
                    f"{b.mean():.4%} | {wf:.5f} | {wf / w.mean() - 1:+.1%} | {bf:.4%} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
