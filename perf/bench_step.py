"""Step-throughput benchmark of scaling-env, next to Gymnasium's CartPole, plus compile time and peak memory.

Run from the repository root::

    python perf/bench_step.py                      # the default run (about 75 s on a 2-CPU machine)
    python perf/bench_step.py --json bench.json    # also write every figure as JSON
    python perf/bench_step.py --duration 1 --batch-sizes 1,1024 --no-compile   # a quick look

What is timed (``time.perf_counter``; each case: a warm-up, then steps until ``--duration`` seconds have
passed; the rate is steps / elapsed time of the measured window):

* ``ServerlessScaling-v0`` made by ``gymnasium.make`` (default wrappers: PassiveEnvChecker, OrderEnforcing),
  default config, driven by a CPU rule on ``info["cpu_utilization"]`` (action 3 = +1 instance above 0.7,
  1 = -1 below 0.3, else 2 = hold), and by a constant hold action; ``reset()`` at truncation is timed too.
* the native vector env, ``gymnasium.make_vec(..., num_envs=B, vectorization_mode="vector_entry_point")``,
  at each B: with the default threading choice (serial below B = 256; from B = 256 on, ``AutoKernel`` picks threads
  or serial by measured time per call) and with the other fixed choice (``parallel=False`` where the default may
  use threads, ``parallel=True`` where it does not). ``--busy N`` keeps N extra CPUs busy (``while True: pass``
  processes) during the cases, to measure the choice on a busy machine. The
  autoreset (next-step, the default; episodes are 240 steps) is timed. Actions: the CPU rule vectorised
  with ``np.where`` (``--vec-policy rule``, default) or a fixed pre-generated random array (``--vec-policy random``).
* ``CartPole-v1`` by ``gymnasium.make`` (fixed pre-generated random actions, ``reset()`` when done) and
  CartPole's native vector env by ``make_vec(..., vectorization_mode="vector_entry_point")`` at the same B.
* peak resident memory (``resource.getrusage(RUSAGE_SELF).ru_maxrss``): each case runs in its own fresh
  subprocess of this script, so each gets its own peak (imports included). ``--in-process`` runs every case
  in this one process instead; the peak RSS column then only grows (it is the process peak so far).
* compile time of the numba core: in a fresh subprocess with an empty ``NUMBA_CACHE_DIR`` (a new temp dir),
  ``import scaling_env`` + ``gymnasium.make`` + first ``reset()`` + first ``step()`` (the serial kernel), then a
  B=256 vector env's first reset + step (the threaded kernel, compiled separately); then the same in a
  second subprocess with the same, now warm, cache dir.

Output: a Markdown report on stdout; ``--json PATH`` writes the figures, versions and machine info.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

ENV_ID = "ServerlessScaling-v0"
EPISODE_STEPS = 240  # default config
TARGET_SINGLE = 50_000  # steps/s, single env via gymnasium.make
TARGET_VECTOR = 1_000_000  # env-steps/s, native vector env at B = 1024
TARGET_VECTOR_B = 1024
# measured earlier on these machines (for comparison; the run below measures CartPole again)
REFERENCE = {
    "cartpole_single": 158_000,
    "cartpole_vector_B1": 26_000,
    "cartpole_vector_B256": 5_200_000,
}


# ------------------------------------------------------------------------------------------- helpers
def peak_rss_mb() -> float:
    """Peak resident set size of this process, MiB (Linux reports ru_maxrss in KiB)."""
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024.0 if sys.platform != "darwin" else kb / 1024.0 / 1024.0


def cpu_busy_seconds() -> float | None:
    """CPU-seconds spent busy by the whole machine so far (all CPUs, from /proc/stat; steal counted as busy)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """CPU-seconds used by this process and its finished children."""
    s = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


class ForeignLoad:
    """Average number of CPUs kept busy by *other* processes while a case ran (machine busy - our own use)."""

    def __enter__(self) -> ForeignLoad:
        self.busy0, self.own0, self.t0 = cpu_busy_seconds(), own_cpu_seconds(), time.perf_counter()
        self.cores: float | None = None
        return self

    def __exit__(self, *exc) -> None:
        busy1, own1, t1 = cpu_busy_seconds(), own_cpu_seconds(), time.perf_counter()
        if self.busy0 is not None and busy1 is not None and t1 > self.t0:
            self.cores = max((busy1 - self.busy0) - (own1 - self.own0), 0.0) / (t1 - self.t0)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def versions() -> dict[str, str]:
    import gymnasium
    import numba
    import numpy

    return {
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "numba": numba.__version__,
        "gymnasium": gymnasium.__version__,
    }


def git_state() -> str:
    """Commit of the repository and whether scaling_env/ has uncommitted changes (the figures depend on it)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=str(REPO), check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "scaling_env"], capture_output=True, text=True, cwd=str(REPO), check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" + uncommitted changes in scaling_env/" if dirty else "")


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.update(extra or {})
    return env


# ------------------------------------------------------------------------------------------- the cases
def _timed_loop(
    step_once, warmup: float, duration: float, check_every: int = 1, windows: int = 5
) -> tuple[int, float, list[float]]:
    """Call ``step_once()`` for ``warmup`` s (untimed), then for ``duration`` s.

    Returns (calls, seconds, calls/s of each of ``windows`` equal sub-windows); the sub-window rates show how
    steady the run was (another process taking a CPU shows up as a slow window).
    """
    clock = time.perf_counter
    t_end = clock() + warmup
    while clock() < t_end:
        for _ in range(check_every):
            step_once()
    rates = []
    calls = 0
    t0 = clock()
    for w in range(1, windows + 1):
        t_w0 = clock()
        n = 0
        t_end = t0 + duration * w / windows
        while True:
            for _ in range(check_every):
                step_once()
            n += check_every
            t = clock()
            if t >= t_end:
                break
        rates.append(n / (t - t_w0))
        calls += n
    return calls, clock() - t0, rates


def bench_scaling_single(policy: str, warmup: float, duration: float, seed: int) -> dict:
    import gymnasium as gym
    import numpy as np

    import scaling_env  # noqa: F401  (registers the env)

    env = gym.make(ENV_ID)
    _, info = env.reset(seed=seed)
    state = {"info": info, "warm": 0.0, "arrivals": 0.0, "dropped": 0.0, "n": 0}
    step = env.step
    reset = env.reset

    if policy == "rule":

        def step_once() -> None:
            cpu = state["info"]["cpu_utilization"]
            a = 3 if cpu > 0.7 else (1 if cpu < 0.3 else 2)
            _, _, _, truncated, info = step(a)
            state["info"] = info
            if truncated:
                _, state["info"] = reset()
    else:  # hold

        def step_once() -> None:
            _, _, _, truncated, info = step(2)
            state["info"] = info
            if truncated:
                _, state["info"] = reset()

    calls, secs, rates = _timed_loop(step_once, warmup, duration, check_every=64)

    # one more untimed episode to describe the fleet this policy keeps (not part of the timing)
    _, info = env.reset(seed=seed + 1)
    warm, arrivals, dropped, failed = [], 0.0, 0.0, 0.0
    for _ in range(EPISODE_STEPS):
        cpu = info["cpu_utilization"]
        a = (3 if cpu > 0.7 else (1 if cpu < 0.3 else 2)) if policy == "rule" else 2
        _, _, _, truncated, info = env.step(a)
        warm.append(info["instances_warm"])
        arrivals += info["arrivals"]
        dropped += info["dropped"]
        failed += info["failed"]
        if truncated:
            break
    env.close()
    return {
        "env_steps": calls,
        "calls": calls,
        "seconds": secs,
        "steps_per_s": calls / secs,
        "us_per_call": 1e6 * secs / calls,
        "window_rates": rates,
        "episode_mean_warm": float(np.mean(warm)),
        "episode_max_warm": float(np.max(warm)),
        "episode_lost_share": (dropped + failed) / arrivals if arrivals > 0 else 0.0,
    }


def bench_scaling_vector(
    num_envs: int, parallel: bool | None, vec_policy: str, warmup: float, duration: float, seed: int
) -> dict:
    import gymnasium as gym
    import numpy as np

    import scaling_env  # noqa: F401

    kwargs = {} if parallel is None else {"parallel": parallel}
    env = gym.make_vec(ENV_ID, num_envs=num_envs, vectorization_mode="vector_entry_point", **kwargs)
    uenv = env.unwrapped
    _, info = env.reset(seed=seed)
    step = env.step
    if vec_policy == "rule":
        up = np.full(num_envs, 3, dtype=np.int64)
        down = np.full(num_envs, 1, dtype=np.int64)
        hold = np.full(num_envs, 2, dtype=np.int64)
        state = {"info": info}

        def step_once() -> None:
            cpu = state["info"]["cpu_utilization"]
            acts = np.where(cpu > 0.7, up, np.where(cpu < 0.3, down, hold))
            state["info"] = step(acts)[4]
    else:
        rows = 64
        table = np.random.default_rng(seed).integers(0, env.single_action_space.n, size=(rows, num_envs))
        state = {"k": 0}

        def step_once() -> None:
            k = state["k"]
            step(table[k])
            state["k"] = (k + 1) & (rows - 1)

    calls, secs, rates = _timed_loop(step_once, warmup, duration)
    threads = bool(uenv.sim.parallel)  # with the default (AutoKernel) the choice it has come to
    warm = float(np.mean(uenv.sim.metrics[:, 11]))  # M_WARM of the last step (a rough sanity figure)
    threading_layer = None
    if threads:
        import numba

        try:
            threading_layer = numba.threading_layer()
        except ValueError:
            threading_layer = None
    env.close()
    return {
        "env_steps": calls * num_envs,
        "calls": calls,
        "seconds": secs,
        "steps_per_s": calls * num_envs / secs,
        "us_per_call": 1e6 * secs / calls,
        "window_rates": [x * num_envs for x in rates],
        "threads": threads,
        "threading_layer": threading_layer,
        "last_step_mean_warm": warm,
    }


def bench_cartpole_single(warmup: float, duration: float, seed: int) -> dict:
    import gymnasium as gym
    import numpy as np

    env = gym.make("CartPole-v1")
    env.reset(seed=seed)
    actions = np.random.default_rng(seed).integers(0, 2, size=4096).tolist()
    state = {"k": 0}
    step = env.step
    reset = env.reset

    def step_once() -> None:
        k = state["k"]
        _, _, terminated, truncated, _ = step(actions[k])
        state["k"] = (k + 1) & 4095
        if terminated or truncated:
            reset()

    calls, secs, rates = _timed_loop(step_once, warmup, duration, check_every=64)
    env.close()
    return {
        "env_steps": calls,
        "calls": calls,
        "seconds": secs,
        "steps_per_s": calls / secs,
        "us_per_call": 1e6 * secs / calls,
        "window_rates": rates,
    }


def bench_cartpole_vector(num_envs: int, warmup: float, duration: float, seed: int) -> dict:
    import gymnasium as gym
    import numpy as np

    env = gym.make_vec("CartPole-v1", num_envs=num_envs, vectorization_mode="vector_entry_point")
    env.reset(seed=seed)
    rows = 64
    table = np.random.default_rng(seed).integers(0, 2, size=(rows, num_envs))
    state = {"k": 0}
    step = env.step

    def step_once() -> None:
        k = state["k"]
        step(table[k])
        state["k"] = (k + 1) & (rows - 1)

    calls, secs, rates = _timed_loop(step_once, warmup, duration)
    env.close()
    return {
        "env_steps": calls * num_envs,
        "calls": calls,
        "seconds": secs,
        "steps_per_s": calls * num_envs / secs,
        "us_per_call": 1e6 * secs / calls,
        "window_rates": [x * num_envs for x in rates],
    }


def run_case(case: dict, warmup: float, duration: float, vec_policy: str, seed: int) -> dict:
    kind = case["kind"]
    if kind == "scaling_single":
        out = bench_scaling_single(case["policy"], warmup, duration, seed)
    elif kind == "scaling_vector":
        out = bench_scaling_vector(case["B"], case["parallel"], vec_policy, warmup, duration, seed)
    elif kind == "cartpole_single":
        out = bench_cartpole_single(warmup, duration, seed)
    elif kind == "cartpole_vector":
        out = bench_cartpole_vector(case["B"], warmup, duration, seed)
    else:
        raise ValueError(f"unknown case kind {kind!r}")
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def build_cases(batch_sizes: list[int]) -> list[dict]:
    cases: list[dict] = [
        {"name": "scaling single, CPU rule", "kind": "scaling_single", "policy": "rule", "B": 1},
        {"name": "scaling single, hold", "kind": "scaling_single", "policy": "hold", "B": 1},
        {"name": "CartPole single", "kind": "cartpole_single", "B": 1},
    ]
    for b in batch_sizes:
        default_threads = b >= 256  # the default (parallel=None) may use threads from B = 256 on (AutoKernel)
        cases.append({"name": f"scaling vector B={b}, default", "kind": "scaling_vector", "B": b, "parallel": None})
        cases.append(
            {
                "name": f"scaling vector B={b}, parallel={not default_threads}",
                "kind": "scaling_vector",
                "B": b,
                "parallel": not default_threads,
            }
        )
    for b in batch_sizes:
        cases.append({"name": f"CartPole vector B={b}", "kind": "cartpole_vector", "B": b})
    return cases


# ------------------------------------------------------------------------------------------- compile time
PROBE = r"""
import json, resource, sys, time
clock = time.perf_counter
t = clock()
import numpy, numba, gymnasium
t_deps = clock() - t
t = clock()
import scaling_env
t_import = clock() - t
t = clock()
env = gymnasium.make("ServerlessScaling-v0")
t_make = clock() - t
t = clock()
env.reset(seed=0)
t_reset = clock() - t
t = clock()
env.step(2)
t_step = clock() - t
t = clock()
venv = gymnasium.make_vec("ServerlessScaling-v0", num_envs=256, vectorization_mode="vector_entry_point")
venv.reset(seed=0)
venv.step(numpy.full(256, 2))
t_parallel = clock() - t
print(json.dumps({"deps_import_s": t_deps, "import_s": t_import, "make_s": t_make, "first_reset_s": t_reset,
                  "first_step_s": t_step, "first_vector_B256_s": t_parallel,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}))
"""


def measure_compile() -> dict:
    out: dict = {}
    with tempfile.TemporaryDirectory(prefix="numba-cache-bench-") as cache_dir:
        for label in ("cold", "warm"):
            t = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, "-c", PROBE],
                capture_output=True,
                text=True,
                env=child_env({"NUMBA_CACHE_DIR": cache_dir}),
                cwd=str(REPO),
            )
            wall = time.perf_counter() - t
            if proc.returncode != 0:
                raise RuntimeError(f"compile probe ({label}) failed:\n{proc.stderr}")
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            r["import_reset_step_s"] = r["import_s"] + r["make_s"] + r["first_reset_s"] + r["first_step_s"]
            r["process_wall_s"] = wall
            out[label] = r
        n_files = sum(1 for p in Path(cache_dir).rglob("*") if p.is_file())
        out["cache_files"] = n_files
    return out


# ------------------------------------------------------------------------------------------- reporting
def fmt_rate(x: float) -> str:
    return f"{x:,.0f}"


def report(meta: dict, results: list[dict], compile_times: dict | None) -> str:
    lines: list[str] = []
    lines.append(f"# scaling-env step benchmark ({meta['date']})")
    lines.append("")
    v = meta["versions"]
    lines.append(f"- CPU: {meta['cpu']} ({meta['cpus']} logical CPUs), numba threads: {meta['numba_threads']}")
    lines.append(f"- code: {meta['git']}")
    lines.append(f"- Python {v['python']}, numpy {v['numpy']}, numba {v['numba']}, gymnasium {v['gymnasium']}")
    if meta.get("busy"):
        lines.append(f"- {meta['busy']} extra CPU(s) kept busy by --busy during the cases")
    procs = "one process for all cases" if meta["in_process"] else "one fresh subprocess per case"
    lines.append(
        f"- per case: {meta['warmup']:g} s warm-up, {meta['duration']:g} s measured; vector actions: "
        f"{meta['vec_policy']}; {procs}"
    )
    lines.append("")
    lines.append(
        "| case | B | threads | steps/s (env-steps/s) | windows min-max | us per call | peak RSS MiB "
        "| other load (CPUs) | notes |"
    )
    lines.append("|---|---:|---|---:|---:|---:|---:|---:|---|")
    for r in results:
        notes = []
        if r["kind"] == "scaling_single":
            notes.append(
                f"fleet mean {r['episode_mean_warm']:.1f} / max {r['episode_max_warm']:.0f} warm, "
                f"lost {100 * r['episode_lost_share']:.1f}% of requests"
            )
        thr = "-"
        if r["kind"] == "scaling_vector":
            thr = f"yes, {r['threading_layer']}" if r["threads"] else "no"
            thr += " (default)" if r["parallel"] is None else f" (parallel={r['parallel']})"
        if r.get("target") is not None:
            notes.append(f"target >= {fmt_rate(r['target'])}: {'PASS' if r['pass'] else 'FAIL'}")
        other = "?" if r.get("other_load_cores") is None else f"{r['other_load_cores']:.2f}"
        spread = f"{fmt_rate(min(r['window_rates']))}-{fmt_rate(max(r['window_rates']))}"
        lines.append(
            f"| {r['name']} | {r['B']} | {thr} | {fmt_rate(r['steps_per_s'])} | {spread} | "
            f"{r['us_per_call']:.1f} | "
            f"{r['peak_rss_mb']:.0f} | {other} | {'; '.join(notes)} |"
        )
    lines.append("")
    busy = [r["name"] for r in results if (r.get("other_load_cores") or 0.0) > 0.1]
    if busy:
        lines.append(
            f"**Warning**: other processes kept > 0.1 CPU busy during {len(busy)} case(s) "
            f"({', '.join(busy)}); those figures are not clean (threaded cases suffer most)."
        )
        lines.append("")
    la = meta["loadavg_at_start"]
    lines.append(
        f"Load average at start: {la[0]:.2f} {la[1]:.2f} {la[2]:.2f}. 'other load' = machine-wide busy CPU "
        "time minus this benchmark's own, per second of the case."
    )
    lines.append("")
    by = {r["name"]: r for r in results}
    cp = by.get("CartPole single")
    sc = by.get("scaling single, CPU rule")
    if cp and sc:
        lines.append(
            f"Single env: scaling-env (CPU rule) runs at {sc['steps_per_s'] / cp['steps_per_s']:.2f}x "
            f"CartPole's steps/s in this run (reference CartPole figure: "
            f"{fmt_rate(REFERENCE['cartpole_single'])})."
        )
    vec_rows = []
    for b in meta["batch_sizes"]:
        s = by.get(f"scaling vector B={b}, default")
        c = by.get(f"CartPole vector B={b}")
        if s and c:
            vec_rows.append(f"B={b}: {s['steps_per_s'] / c['steps_per_s']:.2f}x")
    if vec_rows:
        lines.append(
            "Vector env, scaling-env (default threading) / CartPole native vector env: " + ", ".join(vec_rows) + "."
        )
    lines.append("")
    if compile_times:
        lines.append("## numba compile time (fresh subprocess each)")
        lines.append("")
        lines.append(
            "| cache | import scaling_env s | make + first reset s | first step s | import + reset + step s | "
            "first B=256 vector reset + step s (threaded kernel) | process wall s | peak RSS MiB |"
        )
        lines.append("|---|---:|---:|---:|---:|---:|---:|---:|")
        for label in ("cold", "warm"):
            c = compile_times[label]
            lines.append(
                f"| {label} | {c['import_s']:.2f} | {c['make_s'] + c['first_reset_s']:.2f} | "
                f"{c['first_step_s']:.2f} | {c['import_reset_step_s']:.2f} | {c['first_vector_B256_s']:.2f} | "
                f"{c['process_wall_s']:.2f} | {c['peak_rss_mb']:.0f} |"
            )
        lines.append("")
        deps = compile_times["cold"]["deps_import_s"], compile_times["warm"]["deps_import_s"]
        lines.append(
            f"(numpy + numba + gymnasium imports, excluded above: cold {deps[0]:.2f} s, "
            f"warm {deps[1]:.2f} s; cache files written: "
            f"{compile_times['cache_files']})"
        )
        lines.append("")
    lines.append(
        f"Peak RSS of the driver process: {meta['driver_peak_rss_mb']:.0f} MiB; total run time {meta['total_s']:.0f} s."
    )
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--duration", type=float, default=2.5, help="measured seconds per case (default 2.5)")
    p.add_argument("--warmup", type=float, default=0.5, help="untimed warm-up seconds per case (default 0.5)")
    p.add_argument(
        "--batch-sizes",
        default="1,64,1024,4096",
        help="comma-separated B values for the vector envs (default 1,64,1024,4096)",
    )
    p.add_argument(
        "--vec-policy",
        choices=("rule", "random"),
        default="rule",
        help="actions of the scaling vector env: vectorised CPU rule (default) or a fixed random array",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    p.add_argument(
        "--in-process",
        action="store_true",
        help="run every case in this process (peak RSS is then the process peak so far)",
    )
    p.add_argument("--no-compile", action="store_true", help="skip the numba compile-time measurement")
    p.add_argument("--only", default=None, help="run only cases whose name contains this text")
    p.add_argument(
        "--busy", type=int, default=0, help="keep this many extra CPUs busy (while True: pass) during the cases"
    )
    p.add_argument("--worker", help=argparse.SUPPRESS)  # internal: run one case (JSON) and print its result
    return p.parse_args(argv)


def run_cases(cases: list[dict], args: argparse.Namespace) -> list[dict]:
    """Run each case (in its own subprocess unless ``--in-process``): its figures and the other processes' load."""
    results: list[dict] = []
    for case in cases:
        print(f"... {case['name']}", file=sys.stderr, flush=True)
        with ForeignLoad() as load:
            if args.in_process:
                r = run_case(case, args.warmup, args.duration, args.vec_policy, args.seed)
            else:
                cmd = [
                    sys.executable,
                    str(Path(__file__).resolve()),
                    "--worker",
                    json.dumps(case),
                    "--warmup",
                    str(args.warmup),
                    "--duration",
                    str(args.duration),
                    "--vec-policy",
                    args.vec_policy,
                    "--seed",
                    str(args.seed),
                ]
                proc = subprocess.run(cmd, capture_output=True, text=True, env=child_env(), cwd=str(REPO))
                if proc.returncode != 0:
                    print(proc.stderr, file=sys.stderr)
                    raise SystemExit(f"case {case['name']!r} failed")
                r = json.loads(proc.stdout.strip().splitlines()[-1])
        r["other_load_cores"] = load.cores
        r.update(case)
        r["target"] = None
        if case["kind"] == "scaling_single" and case["policy"] == "rule":
            r["target"] = TARGET_SINGLE
        elif case["kind"] == "scaling_vector" and case["B"] == TARGET_VECTOR_B and case["parallel"] is None:
            r["target"] = TARGET_VECTOR
        if r["target"] is not None:
            r["pass"] = r["steps_per_s"] >= r["target"]
        results.append(r)
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        case = json.loads(args.worker)
        print(json.dumps(run_case(case, args.warmup, args.duration, args.vec_policy, args.seed)))
        return 0

    t_start = time.perf_counter()
    loadavg_start = os.getloadavg()
    batch_sizes = [int(x) for x in args.batch_sizes.split(",") if x.strip()]
    cases = build_cases(batch_sizes)
    if args.only:
        cases = [c for c in cases if args.only in c["name"]]

    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
    try:
        results = run_cases(cases, args)
    finally:
        for proc in busy:
            proc.kill()
            proc.wait()

    compile_times = None
    if not args.no_compile:
        print("... numba compile time (cold, then warm cache)", file=sys.stderr, flush=True)
        compile_times = measure_compile()

    import numba

    meta = {
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "numba_threads": numba.config.NUMBA_NUM_THREADS,
        "versions": versions(),
        "platform": platform.platform(),
        "git": git_state(),
        "warmup": args.warmup,
        "duration": args.duration,
        "batch_sizes": batch_sizes,
        "vec_policy": args.vec_policy,
        "in_process": args.in_process,
        "busy": args.busy,
        "seed": args.seed,
        "targets": {"single_steps_per_s": TARGET_SINGLE, "vector_env_steps_per_s_at_B1024": TARGET_VECTOR},
        "reference": REFERENCE,
        "loadavg_at_start": loadavg_start,
        "driver_peak_rss_mb": peak_rss_mb(),
        "total_s": time.perf_counter() - t_start,
    }
    print(report(meta, results, compile_times))
    if args.json:
        Path(args.json).write_text(
            json.dumps({"meta": meta, "results": results, "compile": compile_times}, indent=2) + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
