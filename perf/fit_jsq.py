"""The provenance of ``scaling_env/sim/jsq.py``: simulate join-the-shortest-queue, fit the factors' shape.

Run from the repository root (a few minutes on one core)::

    python perf/fit_jsq.py                    # simulate the grid, fit, print coefficients and per-cell errors
    python perf/fit_jsq.py --write            # ... and write the coefficients into sim/jsq.py
    python perf/fit_jsq.py --arrivals 2e6     # a quicker, noisier run
    python perf/fit_jsq.py --save cells.json  # keep the simulated cells; --load cells.json refits without simulating

The simulation. ``n`` instances of ``c`` slots, Poisson arrivals at ``rho n c`` (the mean service time is the
unit of time), exponential services, FCFS at each instance and no limit on its queue. A request goes to the
instance with the fewest outstanding requests (in service + queued); a tie goes to the first one at or after a
rotating pointer, which then moves to just after the chosen instance (as ``sim/request/loop.py``'s
``pick_target`` does). With exponential services the outstanding counts form a continuous-time Markov chain; it
is simulated exactly by uniformisation (events at the constant rate ``lambda + n c``: an arrival with
probability ``lambda / (lambda + n c)``, else one of the ``n c`` slots chosen uniformly completes a service if it
is busy). A request that finds ``o >= c`` outstanding at its instance waits for ``o - c + 1`` departures of that
instance's ``c`` busy slots, ``(o - c + 1) / c`` in expectation (FCFS: later arrivals do not overtake it), so each
arrival adds its conditional expected wait and whether it waits at all; the first ``WARMUP`` of the arrivals are
left out. The run is cut into ``BATCHES`` batches; the noise reported is the standard error of the batch means.

The fit. The pooled M/M/(n c) queue's mean wait ``C / (n c (1 - rho))`` and P(wait) ``C`` (Erlang C) are scaled
by the module docstring's factors

    R = 1 + (n - 1) g,   ln g = ln G0 + G_N ln n + (G_RHO + G_RHO_LN_N ln n) ln(1 - rho) + G_C ln c
    ln h = ln n (1 - rho) (H1 + H2 (1 - rho) + H_C ln c + H_N ln n),   h at most 1

``ln h`` is linear in its four coefficients (ordinary least squares on ``ln(P_jsq / C)``); the wait's five are
fitted by least squares on ``ln(R_model / R_sim)`` (the relative error of the mean wait itself), from the linear
fit of ``ln g`` as the start. Cells whose simulated factor is noisier than ``MAX_NOISE`` (relative standard
error) are left out of the fit and marked in the table.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import time
from pathlib import Path

import numpy as np
from numba import njit
from scipy.optimize import least_squares

REPO = Path(__file__).resolve().parents[1]
JSQ = REPO / "scaling_env" / "sim" / "jsq.py"

NS = (2, 4, 8, 16, 32)
CS = (1, 2, 3)
RHOS = (0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.97, 0.99)
ARRIVALS = 5_000_000  # per cell (near capacity more: ``arrivals_for``)
WARMUP = 0.05
BATCHES = 20
MAX_NOISE = 0.03


@njit(cache=True)
def simulate(n: int, c: int, rho: float, arrivals: int, seed: int, batches: int):
    """JSQ with a rotating tie pointer; per batch, (mean wait in service times, share of arrivals that wait)."""
    np.random.seed(seed)
    lam = rho * n * c
    p_arrival = lam / (lam + n * c)
    out = np.zeros(n, np.int64)
    pointer = 0
    warm = int(arrivals * WARMUP)
    per_batch = (arrivals - warm) // batches
    wait_sum = np.zeros(batches)
    waited = np.zeros(batches)
    seen = 0
    while seen < warm + per_batch * batches:
        if np.random.random() < p_arrival:
            best = -1
            best_o = 1 << 62
            for jj in range(n):
                i = (pointer + jj) % n
                if out[i] < best_o:
                    best_o = out[i]
                    best = i
            if seen >= warm:
                k = (seen - warm) // per_batch
                if best_o >= c:
                    wait_sum[k] += (best_o - c + 1) / c
                    waited[k] += 1.0
            out[best] += 1
            pointer = (best + 1) % n
            seen += 1
        else:
            j = min(int(np.random.random() * n * c), n * c - 1)
            i = j // c
            if j % c < min(out[i], c):
                out[i] -= 1
    return wait_sum / per_batch, waited / per_batch


def erlang_c(servers: int, offered: float) -> float:
    """Erlang C: P(wait) in M/M/servers at ``offered`` Erlangs (Erlang B's recursion)."""
    b = 1.0
    for k in range(1, servers + 1):
        b = offered * b / (k + offered * b)
    rho = offered / servers
    return b / (1.0 - rho + rho * b)


def arrivals_for(rho: float, base: int) -> int:
    """More requests where the queue relaxes slowly (its relaxation time grows as 1 / (1 - rho)^2; the noise
    is reported per cell)."""
    return int(base * max(1.0, (0.1 / (1.0 - rho)) ** 1.5))


def run_grid(base: int) -> list[dict]:
    cells = []
    for n in NS:
        for c in CS:
            for rho in RHOS:
                t0 = time.perf_counter()
                seed = 1000 * n + 100 * c + int(round(rho * 100))
                w, p = simulate(n, c, rho, arrivals_for(rho, base), seed, BATCHES)
                erl = erlang_c(n * c, rho * n * c)
                w_pool = erl / (n * c * (1.0 - rho))
                r, h = w.mean() / w_pool, p.mean() / erl
                # relative standard errors (infinite where no request waited: such a cell says nothing)
                r_se = w.std(ddof=1) / math.sqrt(BATCHES) / w_pool / r if r > 0.0 else math.inf
                h_se = p.std(ddof=1) / math.sqrt(BATCHES) / erl / h if h > 0.0 else math.inf
                cells.append({"n": n, "c": c, "rho": rho, "R": r, "h": h, "R_se": r_se, "h_se": h_se})
                s = time.perf_counter() - t0
                print(
                    f"n={n:2d} c={c} rho={rho:.2f}: R {r:7.3f} +- {r_se:.1%}, h {h:6.3f} +- {h_se:.1%}  ({s:.1f} s)",
                    flush=True,
                )
    return cells


def wait_factor(coef, n, c, rho):
    g0, g_n, g_rho, g_rho_ln_n, g_c = coef
    ln_n = np.log(n)
    ln_g = math.log(g0) + g_n * ln_n + (g_rho + g_rho_ln_n * ln_n) * np.log(1.0 - rho) + g_c * np.log(c)
    return 1.0 + (n - 1.0) * np.exp(ln_g)


def wait_prob_factor(coef, n, c, rho):
    h1, h2, h_c, h_n = (*coef, 0.0)[:4]  # (the form before H_N had three)
    idle = 1.0 - rho
    # at most 1 (the simulated factor is below 1 in every cell; the form exceeds it at n = 2, low load)
    return np.minimum(np.exp(np.log(n) * idle * (h1 + h2 * idle + h_c * np.log(c) + h_n * np.log(n))), 1.0)


def fit(cells: list[dict], rho_max: float):
    use = [x for x in cells if x["rho"] <= rho_max + 1e-9]
    ok_r = [x for x in use if x["R_se"] <= MAX_NOISE and x["R"] > 1.0]
    n, c, rho, r = (np.array([x[k] for x in ok_r], float) for k in ("n", "c", "rho", "R"))
    # the start: ordinary least squares on ln g = ln((R - 1) / (n - 1))
    a = np.column_stack([np.ones_like(n), np.log(n), np.log(1 - rho), np.log(n) * np.log(1 - rho), np.log(c)])
    x0, *_ = np.linalg.lstsq(a, np.log((r - 1.0) / (n - 1.0)), rcond=None)
    start = np.array([math.exp(x0[0]), *x0[1:]])
    res = least_squares(lambda k: np.log(wait_factor(k, n, c, rho) / r), start, bounds=([1e-6] + [-np.inf] * 4, np.inf))
    g = res.x
    ok_h = [x for x in use if x["h_se"] <= MAX_NOISE]
    n, c, rho, h = (np.array([x[k] for x in ok_h], float) for k in ("n", "c", "rho", "h"))
    idle = 1.0 - rho
    a = np.column_stack([np.log(n) * idle, np.log(n) * idle**2, np.log(n) * idle * np.log(c), np.log(n) ** 2 * idle])
    hc, *_ = np.linalg.lstsq(a, np.log(h), rcond=None)
    return g, hc


def committed():
    text = JSQ.read_text()
    g = re.search(r"_G0, _G_N, _G_RHO, _G_RHO_LN_N, _G_C = (.*)", text).group(1)
    h = re.search(r"_H1, _H2, _H_C(?:, _H_N)? = (.*)", text).group(1)
    return [float(v) for v in g.split(",")], [float(v) for v in h.split(",")]


def table(cells: list[dict], g, h, label: str) -> None:
    """Per cell: the model's error in the mean wait and P(wait) (* marks a cell noisier than MAX_NOISE, left out
    of the fit and of the ranges below)."""
    print(f"\n{label}: error of the mean wait (R_model / R_sim - 1) and of P(wait); * = noise above {MAX_NOISE:.0%}")
    print("  n  c   " + "  ".join(f"   rho={rho:.2f}     " for rho in RHOS))
    for n in NS:
        for c in CS:
            row = []
            for rho in RHOS:
                x = next(x for x in cells if (x["n"], x["c"], x["rho"]) == (n, c, rho))
                ew = wait_factor(g, n, c, rho) / x["R"] - 1.0 if x["R"] > 0.0 else math.nan
                eh = wait_prob_factor(h, n, c, rho) / x["h"] - 1.0 if x["h"] > 0.0 else math.nan
                row.append(f"{ew:+6.1%} {eh:+6.1%}{'*' if x['R_se'] > MAX_NOISE else ' '}")
            print(f" {n:2d} {c:2d}   " + "  ".join(row))
    for lo, hi in ((0.3, 0.5), (0.7, 0.95), (0.97, 0.99)):
        sel = [x for x in cells if lo - 1e-9 <= x["rho"] <= hi + 1e-9 and x["R_se"] <= MAX_NOISE]
        ew = [wait_factor(g, x["n"], x["c"], x["rho"]) / x["R"] - 1.0 for x in sel]
        eh = [wait_prob_factor(h, x["n"], x["c"], x["rho"]) / x["h"] - 1.0 for x in sel]
        print(
            f"  rho {lo:.2f}-{hi:.2f}: wait {min(ew):+.1%} .. {max(ew):+.1%} "
            f"(|e| <= 10 %: {sum(abs(e) <= 0.1 for e in ew)} of {len(ew)}, rms {np.sqrt(np.mean(np.square(ew))):.1%}), "
            f"P(wait) {min(eh):+.1%} .. {max(eh):+.1%} (rms {np.sqrt(np.mean(np.square(eh))):.1%})"
        )


def write(g, h) -> None:
    text = JSQ.read_text()
    g_line = "_G0, _G_N, _G_RHO, _G_RHO_LN_N, _G_C = " + ", ".join(f"{v:.4f}" for v in g)
    h_line = "_H1, _H2, _H_C, _H_N = " + ", ".join(f"{v:.4f}" for v in h)
    text = re.sub(r"_G0, _G_N, _G_RHO, _G_RHO_LN_N, _G_C = .*", g_line, text)
    text = re.sub(r"_H1, _H2, _H_C(?:, _H_N)? = .*", h_line, text)
    JSQ.write_text(text)
    print(f"wrote the coefficients into {JSQ.relative_to(REPO)} (update its docstring's formula and errors)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arrivals", type=float, default=ARRIVALS, help="requests per cell (more near capacity)")
    parser.add_argument("--rho-max", type=float, default=max(RHOS), help="fit the cells up to this utilisation")
    parser.add_argument("--write", action="store_true", help="write the refit coefficients into sim/jsq.py")
    parser.add_argument("--save", type=Path, help="write the simulated cells to this JSON file")
    parser.add_argument("--load", type=Path, help="read the cells from this JSON file instead of simulating")
    args = parser.parse_args()
    cells = json.loads(args.load.read_text()) if args.load else run_grid(int(args.arrivals))
    if args.save:
        args.save.write_text(json.dumps(cells, indent=1))
    noise = [x["R_se"] for x in cells if x["R_se"] <= MAX_NOISE]
    print(
        f"\nnoise of the simulated wait factor (relative standard error): median {np.median(noise):.2%}, largest "
        f"{max(noise):.2%} in the {len(noise)} of {len(cells)} cells within {MAX_NOISE:.0%}"
    )
    g_old, h_old = committed()
    table(cells, g_old, h_old, "committed coefficients")
    g, h = fit(cells, args.rho_max)
    print("\nrefit: _G0, _G_N, _G_RHO, _G_RHO_LN_N, _G_C = " + ", ".join(f"{v:.4f}" for v in g))
    print("       _H1, _H2, _H_C, _H_N = " + ", ".join(f"{v:.4f}" for v in h))
    table(cells, g, h, f"refit (cells up to rho {args.rho_max:.2f})")
    if args.write:
        write(g, h)


if __name__ == "__main__":
    main()
