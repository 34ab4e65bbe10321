"""Least outstanding near capacity with lognormal service: the stationary pooled wait against the request backend,
with the long-run cs2 and with the services' count variance over the queue's relaxation time
(``jsq.window_variance_share``, docs/model.md 6.2.4).

No constant is fitted: the share r = ``mgc.variance_ratio(cv, T)`` at the reflected Brownian motion's relaxation
time T = var / drift^2 = (rho + cs2) / (N (1 - rho)^2) mean services (Abate & Whitt 1987) comes from the lognormal
renewal table that ``mgc.blocking_stretch`` already uses. This script prints the share for the grid's least
outstanding cells near capacity (8 instances of 10 slots, q = 100, utilisation 0.98, cv 1.5-3), the kernel's
steady-state cap with and without it, and, with ``--cells``, both backends' episode means over the grid's seeds
(``fidelity.compare_cell``; the request backend's figures from ``--reference-cache`` if given, else simulated:
several minutes).

Run: ``python perf/lo_cv_window.py [--cells] [--reference-cache FILE]``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from scaling_env.sim.jsq import window_variance_share
from scaling_env.sim.load_balancer import LEAST_OUTSTANDING, balancer_queue
from scaling_env.sim.mgc import variance_ratio

N, C, Q, SVC = 8, 10, 100, 0.1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", action="store_true", help="also run the grid cells (fast and request backends)")
    ap.add_argument("--reference-cache", default=None, help="the request backend's cell figures (fidelity.py's)")
    args = ap.parse_args()
    servers = N * C
    print("rho   cv  T(services)     r  share  w_stat(s)  w_cap(s)")
    for rho in (0.95, 0.98, 0.99, 1.02):
        for cv in (1.5, 2.0, 3.0):
            cs2 = cv * cv
            load = min(rho, 0.99)
            t = (load + cs2) / (servers * (1.0 - load) ** 2)
            lam = rho * servers / SVC
            w_stat = balancer_queue(LEAST_OUTSTANDING, lam, N, float(N), float(N), C, SVC, cs2, float(Q))[0]
            share = window_variance_share(servers, rho, cv)
            print(
                f"{rho:4.2f} {cv:4.1f} {t:10.1f} {variance_ratio(cv, t):7.3f} {share:6.3f} {w_stat:9.4f} "
                f"{w_stat * share:9.4f}"
            )
    if not args.cells:
        return
    sys.path.insert(0, str(Path(__file__).parent))
    import fidelity as F

    if args.reference_cache:
        F.REFERENCE_CACHE.update(json.loads(Path(args.reference_cache).read_text()))
    grid = F.Grid()
    print("cell (least outstanding, c 10, q 100)   wait fast / request   p95 fast / request   seeds")
    for rho in (0.98, 1.02):
        for cv in (1.5, 2.0, 3.0):
            config = F.stationary_config("fast", "least_outstanding", rho, C, cv, Q, grid.steps)
            cell = F.compare_cell(config, grid, rho)
            print(
                f"rho {rho:4.2f} cv {cv:3.1f}   {cell['wait_f']:.4f} / {cell['wait_r']:.4f} "
                f"({cell['wait_f'] / cell['wait_r'] - 1.0:+.1%})   {cell['p95_f']:.3f} / {cell['p95_r']:.3f} "
                f"({cell['p95_f'] / cell['p95_r'] - 1.0:+.1%})   {cell['seeds']:.0f}"
            )


if __name__ == "__main__":
    main()
