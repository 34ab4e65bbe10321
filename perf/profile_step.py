"""Where the compiled step's time goes: the kernel per cluster-step, and the round-robin queue's two parts in it.

Run from the repository root::

    python perf/profile_step.py                 # default config, CPU rule, 10 episodes of arguments
    python perf/profile_step.py --policy hold   # the hold action (the initial fleet throughout)

1. The arguments: one run of ``--episodes`` episodes of the default config (one cluster, the CPU rule of
   ``perf/bench_step.py`` on the metrics row, or the hold action) in a subprocess with ``NUMBA_DISABLE_JIT=1``,
   which records every call of ``queueing.erlang_arrivals_wait`` (the E_n/M/c queue of round robin),
   ``queueing.gim_wait_probability``, ``nonstationary.psffa_wait`` (the followed queue, PSFFA) and
   ``queueing.room_wait_p95`` (the p95 of a wait bounded by the room: rare, about 40 us a call at stop 28) that the
   step makes.
2. The times, compiled: each function called on the recorded arguments in a compiled loop (best of ``--repeats``
   windows, ns per call), ``erlang_sigma`` and ``_takacs_sums`` on the same (servers, phases, utilisation); and
   the serial kernel alone (``BatchSimulator``'s compiled call, hold action, best of ``--repeats`` windows) at
   B = 1 and B = 1024, ns per cluster-step.

A best-of-windows time on a shared machine is an upper bound on the quiet figure; compare two trees by running
this script alternately in each (``cd <tree> && python perf/profile_step.py``; ``--kernel-only`` for a tree older
than the E_n/M/c queue: copy the script there).
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def record(episodes: int, policy: str, out: str) -> None:
    """(In the NUMBA_DISABLE_JIT=1 subprocess) run the episodes and pickle the recorded arguments to ``out``."""
    import numpy as np

    import scaling_env.sim.kernel as kernel
    import scaling_env.sim.load_balancer as load_balancer
    import scaling_env.sim.queueing as queueing
    from scaling_env.config import EnvConfig
    from scaling_env.fields import INFO_NAMES
    from scaling_env.sim.simulator import BatchSimulator

    calls: dict[str, list] = {
        "erlang_arrivals_wait": [],
        "gim_wait_probability": [],
        "psffa_wait": [],
        "room_wait_p95": [],
    }

    def recorder(name, fn):
        def wrapped(*args):
            calls[name].append(tuple(float(a) for a in args))
            return fn(*args)

        return wrapped

    eaw = recorder("erlang_arrivals_wait", queueing.erlang_arrivals_wait)
    load_balancer.erlang_arrivals_wait = eaw  # (pure Python: the callers look the names up at each call)
    kernel.erlang_arrivals_wait = eaw
    queueing.gim_wait_probability = recorder("gim_wait_probability", queueing.gim_wait_probability)
    kernel.psffa_wait = recorder("psffa_wait", kernel.psffa_wait)
    kernel.room_wait_p95 = recorder("room_wait_p95", kernel.room_wait_p95)

    config = EnvConfig()
    sim = BatchSimulator(config, 1, parallel=False)
    sim.seed([0])
    sim.reset()
    cpu_col = INFO_NAMES.index("cpu_utilization")
    actions = np.zeros(1, dtype=np.int64)
    for _ in range(episodes * config.episode_steps):
        cpu = sim.metrics[0, cpu_col]
        actions[0] = (3 if cpu > 0.7 else (1 if cpu < 0.3 else 2)) if policy == "rule" else 2
        sim.step(actions)
        if sim.truncated[0]:
            sim.reset()
    with open(out, "wb") as f:
        pickle.dump({k: np.array(v, dtype=np.float64) for k, v in calls.items()}, f)


def best_ns(fn, args, calls: int, repeats: int) -> float:
    fn(*args, 1)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn(*args, 20)
        best = min(best, time.perf_counter() - t)
    return 1e9 * best / (20 * calls)


def time_parts(recorded: dict, repeats: int) -> dict[str, float]:
    import numpy as np
    from numba import njit

    from scaling_env.sim import queueing as q
    from scaling_env.sim.nonstationary import psffa_wait

    # One timed loop; each part is a row function of (calls table, extra column, row) passed in (numba
    # specialises the loop per function), so the figures differ only in the call they time.
    @njit
    def repeat_rows(row, a, extra, reps):
        s = 0.0
        for _ in range(reps):
            for i in range(a.shape[0]):
                s += row(a, extra, i)
        return s

    @njit
    def row_e(a, extra, i):
        w, p, b = q.erlang_arrivals_wait(int(a[i, 0]), int(a[i, 1]), a[i, 2], a[i, 3], a[i, 4], a[i, 5])
        return w + p + b

    @njit
    def row_g(a, extra, i):
        d, sg = q.gim_wait_probability(int(a[i, 0]), int(a[i, 1]), a[i, 2])
        return d + sg

    @njit
    def row_sigma(a, extra, i):
        return q.erlang_sigma(int(a[i, 0]), a[i, 2])

    @njit
    def row_takacs(a, extra, i):
        return q._takacs_sums(int(a[i, 0]), int(a[i, 1]), a[i, 2], extra[i])[0]

    @njit
    def row_psffa(a, extra, i):
        y, w = psffa_wait(a[i, 0], a[i, 1], a[i, 2], int(a[i, 3]), a[i, 4], a[i, 5], a[i, 6])
        return y + w

    @njit
    def row_room(a, extra, i):
        return q.room_wait_p95(a[i, 0], a[i, 1], a[i, 2], a[i, 3], int(a[i, 4]), a[i, 5])

    e, g, p = recorded["erlang_arrivals_wait"], recorded["gim_wait_probability"], recorded["psffa_wait"]
    room = recorded.get("room_wait_p95", np.zeros((0, 6)))
    sigma = np.array([q.erlang_sigma(int(r[0]), r[2]) for r in g])
    none = np.zeros(1)
    parts = (
        ("erlang_arrivals_wait", row_e, e, none),
        ("gim_wait_probability", row_g, g, none),
        ("erlang_sigma", row_sigma, g, none),
        ("_takacs_sums", row_takacs, g, sigma),
        ("psffa_wait", row_psffa, p, none),
        ("room_wait_p95", row_room, room, none),
    )
    return {name: best_ns(repeat_rows, (row, a, extra), len(a), repeats) for name, row, a, extra in parts if len(a)}


def time_kernel(num_envs: int, calls: int, repeats: int) -> float:
    """Serial kernel alone, hold action, default config: best ns per cluster-step over ``repeats`` windows."""
    import numpy as np

    from scaling_env.config import EnvConfig
    from scaling_env.sim.simulator import BatchSimulator

    sim = BatchSimulator(EnvConfig(), num_envs, parallel=False)
    sim.seed(list(range(num_envs)))
    sim.reset()
    actions = np.full(num_envs, 2, dtype=np.int64)
    kernel, state, outputs, active = sim._kernel, sim.state, sim.outputs, sim._all
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(calls):
            kernel(actions, active, *state, *outputs)
            if sim.truncated[0]:
                sim.reset()
        best = min(best, (time.perf_counter() - t) / (calls * num_envs))
    return 1e9 * best


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--policy", choices=("rule", "hold"), default="rule", help="actions while recording (default rule)")
    p.add_argument("--episodes", type=int, default=10, help="episodes whose calls are recorded (default 10)")
    p.add_argument("--repeats", type=int, default=7, help="timed windows per figure; the best is kept (default 7)")
    p.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    p.add_argument(
        "--kernel-only", action="store_true", help="time only the kernel (runs on older trees without the queues)"
    )
    p.add_argument("--record", metavar="PATH", help=argparse.SUPPRESS)  # internal: the recording subprocess
    args = p.parse_args(argv)
    if args.record:
        record(args.episodes, args.policy, args.record)
        return 0

    if args.kernel_only:
        for num_envs, calls in ((1, 4000), (1024, 8)):
            print(f"kernel B={num_envs} ns/cluster-step {time_kernel(num_envs, calls, args.repeats):9.1f}")
        return 0
    with tempfile.TemporaryDirectory(prefix="profile-step-") as tmp:
        path = os.path.join(tmp, "calls.pkl")
        env = dict(os.environ, NUMBA_DISABLE_JIT="1")
        env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        cmd = [sys.executable, str(Path(__file__).resolve()), "--record", path]
        cmd += ["--episodes", str(args.episodes), "--policy", args.policy]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(REPO))
        if proc.returncode != 0:
            print(proc.stderr, file=sys.stderr)
            raise SystemExit("recording the calls failed")
        with open(path, "rb") as f:
            recorded = pickle.load(f)

    steps = args.episodes * 240
    print(f"# calls recorded over {args.episodes} episodes ({args.policy}), load average {os.getloadavg()[0]:.2f}")
    for name, rows in recorded.items():
        print(f"- {name}: {len(rows)} calls ({len(rows) / steps:.2f} per step)")
    figures = {f"{k} ns/call": v for k, v in time_parts(recorded, args.repeats).items()}
    figures["kernel B=1 ns/cluster-step"] = time_kernel(1, 4000, args.repeats)
    figures["kernel B=1024 ns/cluster-step"] = time_kernel(1024, 8, args.repeats)
    for k, v in figures.items():
        print(f"{k:40s} {v:9.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
