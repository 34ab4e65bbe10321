"""The M/H2/c/K queue with the hyperexponential fitted to the lognormal's first three moments, solved exactly as a
Markov chain: what a three-moment method would give for the cells of docs/model.md 6.2.2 (compare with the exact
lognormal queue of ``perf/mgc_sim.py``).

Run from the repository root (a few seconds)::

    python perf/mh2c_check.py

The H2 (probability p of the long phase, phase means x > y, in units of the mean) matches E[S^k] / k! =
p x^k + (1 - p) y^k for k = 1, 2, 3, with the lognormal's E[S^k] = m^k (1 + cv^2)^(k(k-1)/2): x and y are the roots
of t^2 - b t + d with b = (r3 - r2) / (r2 - 1), d = b - r2, r_k = E[S^k] / (k! m^k), and p = (1 - y) / (x - y)
(the two-phase moment match of W. Whitt, "Approximating a point process by a renewal process, I: two basic
methods", Operations Research 30(1), 1982; it exists for r3 > r2^2, i.e. cv^2 > 0.5 for the lognormal). The chain's
state is (requests in the system n <= c + K, busy servers in the long phase i); a request that starts service
picks the long phase with probability p.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as sla


def h2_fit(cv: float) -> tuple[float, float, float]:
    """(p, x, y): the long phase's probability and the two phase means, in units of the mean service time."""
    cv2 = cv * cv
    r2 = (1.0 + cv2) / 2.0
    r3 = (1.0 + cv2) ** 3 / 6.0
    b = (r3 - r2) / (r2 - 1.0)
    d = b - r2
    disc = math.sqrt(b * b - 4.0 * d)
    x, y = (b + disc) / 2.0, (b - disc) / 2.0
    return (1.0 - y) / (x - y), x, y


def mh2ck(c: int, lam: float, mean: float, cv: float, room: int) -> tuple[float, float]:
    """(mean wait of admitted requests, blocking probability) of M/H2/c/(c + room)."""
    p, x, y = h2_fit(cv)
    mu_long, mu_short = 1.0 / (x * mean), 1.0 / (y * mean)
    index = {}
    for n in range(c + room + 1):
        for i in range(min(n, c) + 1):
            index[(n, i)] = len(index)
    rows, cols, vals = [], [], []

    def add(a, b, rate):
        rows.append(index[a])
        cols.append(index[b])
        vals.append(rate)

    for n, i in index:
        short = min(n, c) - i
        if n < c + room:
            if n < c:
                add((n, i), (n + 1, i + 1), lam * p)
                add((n, i), (n + 1, i), lam * (1.0 - p))
            else:
                add((n, i), (n + 1, i), lam)
        for rate, change in ((i * mu_long, -1), (short * mu_short, 0)):
            if rate <= 0.0:
                continue
            if n > c:  # the next queued request starts service
                add((n, i), (n - 1, i + change + 1), rate * p)
                add((n, i), (n - 1, i + change), rate * (1.0 - p))
            else:
                add((n, i), (n - 1, i + change), rate)
    size = len(index)
    q = sp.csr_matrix((vals, (rows, cols)), shape=(size, size))
    q = q - sp.diags(np.asarray(q.sum(axis=1)).ravel())
    a = q.T.tolil()
    a[0, :] = 1.0
    rhs = np.zeros(size)
    rhs[0] = 1.0
    pi = sla.spsolve(a.tocsc(), rhs)
    pn = np.zeros(c + room + 1)
    for (n, _), k in index.items():
        pn[n] += pi[k]
    lq = sum((n - c) * pn[n] for n in range(c, c + room + 1))
    block = pn[c + room]
    return lq / (lam * (1.0 - block)), block


def main() -> None:
    print("| cv | utilisation | room | M/H2/c wait s | blocking |")
    print("|---:|---:|---:|---:|---:|")
    for cv in (1.5, 2.0, 3.0):
        for rho in (0.5, 0.75, 0.9, 0.98):
            w, b = mh2ck(10, rho * 100.0, 0.1, cv, 100)
            print(f"| {cv} | {rho} | 100 | {w:.5f} | {b:.4%} |")


if __name__ == "__main__":
    main()
