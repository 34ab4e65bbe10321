"""How much a grid cell's reference (the request backend) moves with its seeds.

Runs one stationary grid cell (``fidelity.stationary_config``: 8 instances, 48 steps of 15 s, the first 4 left out)
in one backend over many seeds and prints the mean wait, p95 and drop share with their 95 % half-widths, and the
mean wait of each block of 64 seeds. Stop 29 (docs/fidelity.md): least outstanding at 1.00, c = 1 read 1.931 s on
seeds 1-64 and 2.189 +- 0.105 s on seeds 1-512.

Run from the repository root (about 6-12 s for 512 seeds of a c = 1-2 cell)::

    python perf/reference_seeds.py least_outstanding 1.0 1              # seeds 1-512, request backend
    python perf/reference_seeds.py least_outstanding 1.02 2 --seeds 256
    python perf/reference_seeds.py random 1.0 1 --simulator fast
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fidelity as F  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("algo", choices=F.ALGOS)
    ap.add_argument("rho", type=float)
    ap.add_argument("conc", type=int)
    ap.add_argument("--cv", type=float, default=1.0)
    ap.add_argument("--maxq", type=int, default=100)
    ap.add_argument("--seeds", type=int, default=512)
    ap.add_argument("--simulator", choices=("request", "fast"), default="request")
    args = ap.parse_args()
    grid = F.Grid()
    cfg = F.stationary_config(args.simulator, args.algo, args.rho, args.conc, args.cv, args.maxq, grid.steps)
    parts = [F.summarise(F.run_rows(cfg, s)[grid.warm :]) for s in range(1, args.seeds + 1)]
    for key in ("wait", "p95", "drop"):
        v = np.array([p[key] for p in parts])
        hw = 1.96 * v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else float("nan")
        print(f"{key}: {v.mean():.5f} +- {hw:.5f} (95 %, {len(v)} seeds)")
    w = np.array([p["wait"] for p in parts])
    blocks = [f"{w[k : k + 64].mean():.3f}" for k in range(0, len(w), 64)]
    print("mean wait by block of 64 seeds:", " ".join(blocks))


if __name__ == "__main__":
    main()
