"""An event simulation of the off-grid rate change (docs/model.md 6.2.1, "A rate change inside a step"), written
independently of the request backend to check the fast model's step latency there: 4 instances under round robin,
10 slots each, a waiting room of 100 each, exponential service of 0.1 s, Poisson arrivals at 200 req/s switching
to 600 req/s at ``--at`` s (the jump exactly at its time, or ``--spread`` over its whole second, as the request
backend's 1 s sub-intervals have it). Prints the mean response time, served and dropped of the requests that
complete (resp. are turned away) in the step [150, 165).

    python perf/rate_change_des.py [--seeds 200] [--at 157.5] [--spread]
"""

from __future__ import annotations

import argparse
import heapq
import math

import numpy as np


def run(seed: int, at: float, spread: bool, n: int = 4, c: int = 10, room: int = 100, svc: float = 0.1) -> tuple:
    rng = np.random.default_rng(seed)
    lo, hi = (math.floor(at), math.floor(at) + 1.0) if spread else (at, at)
    mid = 200.0 + 400.0 * (at - lo) / max(hi - lo, 1e-12) if spread else 0.0

    def rate(t: float) -> float:
        if t < lo:
            return 200.0
        return mid if t < hi else 600.0

    breaks = [lo, hi] if spread else [at]

    def next_arrival(t: float) -> float:
        # piecewise constant rate: memoryless, so restart the draw at each change
        while True:
            t_next = t + rng.exponential(1.0 / rate(t))
            cut = next((b for b in breaks if t < b <= t_next), None)
            if cut is None:
                return t_next
            t = cut

    busy = [0] * n
    queues: list[list[float]] = [[] for _ in range(n)]
    heads = [0] * n
    events: list[tuple[float, int, float]] = []
    nxt, turn = 0, next_arrival(0.0)
    latency, served, dropped = 0.0, 0, 0
    while True:
        t_done = events[0][0] if events else math.inf
        if turn <= t_done:
            t = turn
            if t >= 165.0:
                break
            i, nxt = nxt, (nxt + 1) % n
            if busy[i] < c:
                busy[i] += 1
                heapq.heappush(events, (t + rng.exponential(svc), i, t))
            elif len(queues[i]) - heads[i] < room:
                queues[i].append(t)
            elif t >= 150.0:
                dropped += 1
            turn = next_arrival(t)
        else:
            t, i, arrived = heapq.heappop(events)
            if t >= 165.0:
                break
            if t >= 150.0:
                latency += t - arrived
                served += 1
            if heads[i] < len(queues[i]):
                heapq.heappush(events, (t + rng.exponential(svc), i, queues[i][heads[i]]))
                heads[i] += 1
            else:
                busy[i] -= 1
    return latency / served, served, dropped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=200)
    parser.add_argument("--at", type=float, default=157.5)
    parser.add_argument("--spread", action="store_true", help="spread the jump over its whole second")
    args = parser.parse_args()
    runs = np.array([run(s, args.at, args.spread) for s in range(args.seeds)])
    half = 1.96 * runs[:, 0].std() / math.sqrt(len(runs))
    print(
        f"mean latency {runs[:, 0].mean():.4f} s +- {half:.4f} (95 % CI), served {runs[:, 1].mean():.1f}, "
        f"dropped {runs[:, 2].mean():.1f} in [150, 165) over {args.seeds} seeds"
    )


if __name__ == "__main__":
    main()
