"""Per-step p95 against the mean wait, fast model and request backend, for round robin at one utilisation and room
(c = 10, cv 1, the fidelity grid's stationary config; docs/model.md 6.4.3).

Usage: python perf/rr_member_p95.py RHO ROOM SEEDS   (e.g. 1.0 1000 8: about 2 min, the request backend most of it)
"""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fidelity as F  # noqa: E402


def main() -> None:
    rho, room, seeds = float(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    for sim in ("fast", "request"):
        waits, p95s = [], []
        for seed in range(1, seeds + 1):
            rows = F.run_rows(F.stationary_config(sim, "round_robin", rho, 10, 1.0, room, 48), seed)
            waits.append(rows[:, F.COL["latency_mean_s"]] - F.SVC)
            p95s.append(rows[:, F.COL["latency_p95_s"]])
        w, p = np.array(waits), np.array(p95s)
        print(sim, "wait", round(float(w[:, 4:].mean()), 3), "p95", round(float(p[:, 4:].mean()), 3))
        for k in (4, 8, 16, 24, 32, 40, 47):
            ratio = (p[:, k].mean() - F.SVC) / w[:, k].mean()
            print(f"  step {k}: wait {w[:, k].mean():.3f} p95 {p[:, k].mean():.3f} (p95 - s) / wait {ratio:.2f}")


if __name__ == "__main__":
    main()
