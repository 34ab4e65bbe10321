"""Least outstanding near capacity: the pooled M/M/N/(N+K) queue from empty, exact against the reflected Brownian
motion (RBM) followed step by step (docs/model.md 6.2.4).

The request backend's least outstanding pool near capacity is, by heavy-traffic state-space collapse (Foschini &
Salz 1978), one pooled queue of N = n c slots with a room of K = n q, started empty. This script computes per step
(15 s, 48 steps, the grid's episode) the admitted requests' mean wait of

- ``exact``: the birth-death chain's forward equations from empty (a lazy uniformised chain, step 1 / (2 Lambda));
- ``rbm``: the kernel's law (``queueing.rbm_step_wait``): the waiting count as an RBM from empty whose age is fitted
  each step to the count carried from the last step;
- ``model``: the kernel's law (``nonstationary.pooled_transient_wait``): the motion reflected at the room's top
  too (``queueing.drbm_step_wait``, lo28), capped at the stationary pooled queue;
- ``stat``: the stationary chain (what a per-step stationary queue gives at the true load).

Run: ``python perf/lo_transient.py`` (about a minute); it prints one line per case: the means over steps 4-47 (the
grid's warm-up left out) and the largest per-step error of ``model`` against ``exact``. ``--speed``: single-env
steps/s of the fast model at utilisation 1.00, c = 2, q = 100 (60 episodes of 48 steps), least outstanding and
round robin.
"""

from __future__ import annotations

import math
import sys

import numpy as np
from numba import njit

from scaling_env.sim.load_balancer import LEAST_OUTSTANDING, balancer_queue
from scaling_env.sim.nonstationary import pooled_transient_wait
from scaling_env.sim.queueing import rbm_step_wait

MU = 10.0
DT = 15.0
STEPS = 48
WARM = 4


@njit(cache=True)
def chain_steps(servers: int, room: int, lam: float, mu: float, dt: float, steps: int):
    """Per step: the admitted arrivals' mean wait and P(wait) of M/M/servers/(servers + room) from empty, the
    time-averaged law of the number in system, and P(full)."""
    top = servers + room
    p = np.zeros(top + 1)
    p[0] = 1.0
    rate = lam + servers * mu
    h = 0.5 / rate
    sub = int(math.ceil(dt / h))
    h = dt / sub
    q = np.zeros(top + 1)
    waits = np.zeros(steps)
    pwait = np.zeros(steps)
    full = np.zeros(steps)
    laws = np.zeros((steps, top + 1))
    for k in range(steps):
        acc = np.zeros(top + 1)
        for _ in range(sub):
            for n in range(top + 1):
                out = (lam if n < top else 0.0) + min(n, servers) * mu
                q[n] = p[n] * (1.0 - out * h)
            for n in range(top):
                q[n + 1] += p[n] * lam * h
            for n in range(1, top + 1):
                q[n - 1] += p[n] * min(n, servers) * mu * h
            for n in range(top + 1):
                acc[n] += 0.5 * (p[n] + q[n])
                p[n] = q[n]
        acc /= sub
        laws[k] = acc
        adm = 1.0 - acc[top]
        w = 0.0
        pw = 0.0
        for n in range(servers, top):
            w += acc[n] * (n - servers + 1) / (servers * mu)
            pw += acc[n]
        waits[k] = w / adm
        pwait[k] = pw / adm
        full[k] = acc[top]
    return waits, pwait, full, laws


def stationary_wait(servers: int, room: int, lam: float, mu: float) -> float:
    top = servers + room
    logp = np.zeros(top + 1)
    for n in range(1, top + 1):
        logp[n] = logp[n - 1] + math.log(lam / (min(n, servers) * mu))
    p = np.exp(logp - logp.max())
    p /= p.sum()
    n = np.arange(top)
    w = np.maximum(n - servers + 1, 0) / (servers * mu)
    return float((p[:top] * w).sum() / p[:top].sum())


def rbm_steps(servers: int, room: int, lam: float, mu: float, cs2: float = 1.0):
    """The motion from empty step by step, uncapped (``queueing.rbm_step_wait``): mean wait per step."""
    count = 0.0
    out = np.zeros(STEPS)
    for k in range(STEPS):
        w, count = rbm_step_wait(count, lam, 1.0 / mu, servers, cs2, float(room), DT)
        out[k] = w
    return out


def model_steps(n: int, c: int, q: int, lam: float, mu: float, cs2: float = 1.0):
    """The kernel's law step by step (``nonstationary.pooled_transient_wait``, capped at the stationary pooled
    queue with the JSQ factors of ``load_balancer.balancer_queue``): mean wait per step."""
    w_stat = balancer_queue(LEAST_OUTSTANDING, lam, n, float(n), float(n), c, 1.0 / mu, cs2, float(q))[0]
    count = 0.0
    out = np.zeros(STEPS)
    for k in range(STEPS):
        w, count = pooled_transient_wait(count, lam, 1.0 / mu, n * c, cs2, float(n * q), DT, w_stat)
        out[k] = w
    return out


CASES = [  # (instances, slots each, room each, utilisation)
    (8, c, q, rho)
    for c, q, rho in [
        (1, 100, 0.95), (2, 100, 0.95), (1, 100, 0.98), (2, 100, 0.98), (5, 100, 0.98), (1, 100, 1.0),
        (2, 100, 1.0), (5, 100, 1.0), (10, 100, 1.0), (10, 20, 1.0), (10, 1000, 1.0), (1, 100, 1.02),
        (2, 100, 1.02), (10, 100, 1.02), (10, 20, 1.02), (10, 5, 1.02),
    ]
]  # fmt: skip


def main(cases=CASES) -> None:
    print("n  c    q   rho |  exact   rbm  model   stat | rbm/exact model/exact  worst step (model)")
    for n, c, q, rho in cases:
        servers, room = n * c, n * q
        lam = rho * servers * MU
        ex = chain_steps(servers, room, lam, MU, DT, STEPS)[0]
        rb = rbm_steps(servers, room, lam, MU)
        md = model_steps(n, c, q, lam, MU)
        st = stationary_wait(servers, room, lam, MU)
        e, r, m = ex[WARM:].mean(), rb[WARM:].mean(), md[WARM:].mean()
        worst = np.max(np.abs(md[WARM:] / ex[WARM:] - 1.0))
        print(
            f"{n} {c:2d} {q:4d} {rho:5.2f} | {e:6.3f} {r:6.3f} {m:6.3f} {st:6.3f} | {r / e - 1.0:+7.1%} "
            f"{m / e - 1.0:+7.1%}  {worst:6.1%}"
        )
        sys.stdout.flush()


def speed() -> None:
    import time

    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
    import fidelity

    from scaling_env import EnvConfig
    from scaling_env.sim.simulator import BatchSimulator

    for algo in ("least_outstanding", "round_robin"):
        cfg = EnvConfig.from_dict(fidelity.stationary_config("fast", algo, 1.0, 2, 1.0, 100, 48))
        sim = BatchSimulator(cfg, 1, parallel=False)
        hold = np.array([list(cfg.scaling.scale_steps).index(0)])
        sim.seed([1])
        sim.reset()
        for _ in range(48):  # compiled and warm
            sim.step(hold)
        n = 0
        start = time.perf_counter()
        for ep in range(60):
            sim.seed([ep])
            sim.reset()
            for _ in range(48):
                sim.step(hold)
                n += 1
        print(f"{algo}: {n / (time.perf_counter() - start):,.0f} steps/s")


if __name__ == "__main__":
    if "--speed" in sys.argv:
        speed()
    else:
        main()
