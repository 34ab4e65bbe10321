"""Where numba's compile time goes: the kernels tests/conftest.py warms up, compiled from an empty cache.

    python perf/compile_times.py serial|threaded [--top 15]

A fresh machine (and CI) compiles the simulation's kernels once: ``tests/conftest.py`` runs two processes before
the test workers start, one for the serial kernel and the request backend (``serial``), one for the threaded
kernel (``threaded``); the slower of the two is CI time. This runs one of them in a subprocess whose
``NUMBA_CACHE_DIR`` is a new temporary folder, so everything compiles, and records numba's ``numba:compile``
events: the wall time, and each function's own compile time (its events' time minus that of the compiles nested
in them) and how often it was compiled (a function compiled for two signatures counts twice). Numba's event API:
https://numba.readthedocs.io/en/stable/developer/event_api.html. One core; report the load beside it.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import time

KINDS = {"serial": "fast,request", "threaded": "threaded"}  # tests/conftest.py's _WARM_UP

CHILD = """
import collections, json, sys, time
from numba.core import event
with event.install_recorder("numba:compile") as rec:
    t0 = time.perf_counter()
    from agents.registry import make_policy
    from scaling_env.config import EnvConfig
    from scaling_env.rollout import rollout
    for kind in sys.argv[1].split(","):
        config = EnvConfig.model_validate({"simulator": "request" if kind == "request" else "fast", "episode_steps": 2})
        rollout(config, make_policy("hpa", config), [0], parallel=kind == "threaded")
    wall = time.perf_counter() - t0
own, count, stack = collections.Counter(), collections.Counter(), []
for ts, ev in rec.buffer:
    fn = ev.data["dispatcher"].py_func
    name = f"{fn.__module__}.{fn.__qualname__}"
    if ev.is_start:
        stack.append([name, ts, 0.0])
        continue
    name, start, nested = stack.pop()
    own[name] += ts - start - nested
    count[name] += 1
    if stack:
        stack[-1][2] += ts - start
print(json.dumps({"wall": wall, "own": own, "count": count}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("kind", choices=sorted(KINDS))
    ap.add_argument("--top", type=int, default=15)
    args = ap.parse_args()
    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as cache:
        t0 = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", CHILD, KINDS[args.kind]],
            env={**os.environ, "NUMBA_CACHE_DIR": cache},
            capture_output=True,
            text=True,
        )
        total = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"the {args.kind} warm-up failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    data = json.loads(done.stdout.strip().splitlines()[-1])
    own, count = collections.Counter(data["own"]), data["count"]
    print(
        f"{args.kind}: {data['wall']:.1f} s of imports and compiles ({total:.1f} s with the interpreter), "
        f"{sum(count.values())} compiles of {len(count)} functions; load before {load[0]:.2f}, "
        f"after {os.getloadavg()[0]:.2f}"
    )
    for name, seconds in own.most_common(args.top):
        print(f"{seconds:7.1f} s  x{count[name]}  {name}")


if __name__ == "__main__":
    main()
