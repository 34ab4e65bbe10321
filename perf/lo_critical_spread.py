"""Least outstanding at exactly capacity, c = 1 (8 instances, q = 100, utilisation 1.00): is the request backend's
episode-mean wait (1.93 s over 64 seeds, the pooled queue's 2.36-2.39 s) low because a few long seeds dominate a
skewed law? The pooled queue's number waiting is the driftless reflected Brownian motion from empty (variance
lambda + N mu = 160 per s; docs/model.md 6.2.4): this script simulates its episode-mean wait over the grid's
steps 4-47 (Euler steps of 0.5 s, reflected at 0 and the room of 800) and prints its mean, median and spread, and
how often the mean of 64 such episodes is at or below the reference's; with ``--reference-cache`` also the
reference's own per-seed median and spread (``fidelity.py``'s cache).

Run: ``python perf/lo_critical_spread.py [--reference-cache FILE]`` (about 10 s).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

PATHS, T0, T1, H, VAR, ROOM, THETA, REF_MEAN = 20000, 60.0, 720.0, 0.5, 160.0, 800.0, 80.0, 1.931


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reference-cache", default=None)
    args = ap.parse_args()
    rng = np.random.default_rng(1)
    q = np.zeros(PATHS)
    acc = np.zeros(PATHS)
    n = 0
    for k in range(int(T1 / H)):
        q = np.clip(q + rng.normal(0.0, np.sqrt(VAR * H), PATHS), 0.0, ROOM)
        if (k + 1) * H > T0:
            acc += q
            n += 1
    w = acc / n / THETA
    means = np.array([rng.choice(w, 64).mean() for _ in range(4000)])
    print(
        f"pooled motion: mean {w.mean():.3f} s, median {np.median(w):.3f}, sd {w.std():.3f} "
        f"(median/mean {np.median(w) / w.mean():.2f}, sd/mean {w.std() / w.mean():.2f}); "
        f"P(mean of 64 <= {REF_MEAN}) = {np.mean(means <= REF_MEAN):.4f}"
    )
    if args.reference_cache:
        sys.path.insert(0, str(Path(__file__).parent))
        import fidelity as F

        F.REFERENCE_CACHE.update(json.loads(Path(args.reference_cache).read_text()))
        grid = F.Grid()
        config = F.stationary_config("request", "least_outstanding", 1.0, 1, 1.0, 100, grid.steps)
        ref = np.array([F.summary_of(config, s, grid)["wait"] for s in range(1, 65)])
        print(
            f"reference (64 seeds): mean {ref.mean():.3f} s, median {np.median(ref):.3f}, sd {ref.std():.3f} "
            f"(median/mean {np.median(ref) / ref.mean():.2f}, sd/mean {ref.std() / ref.mean():.2f})"
        )


if __name__ == "__main__":
    main()
