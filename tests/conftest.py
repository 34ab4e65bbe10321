from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agents.learned.torch_kernels import pin_training_kernels
from scaling_env import EnvConfig, ServerlessScalingEnv
from scaling_env.config import deep_merge
from scaling_env.resources import packaged_traces_dir

pin_training_kernels()  # as the CLI does, before any test runs torch: trainings here use the kernels users get

# What the xdist workers would each compile on a fresh machine, in two processes (about 3 minutes of one core
# each for the threaded kernel and for the serial kernel with the request backend, `python perf/compile_times.py
# threaded|serial`; a second or two each once cached)
_WARM_UP = {
    "serial kernel and request backend": "fast,request",
    "threaded kernel": "threaded",
}
_WARM_UP_CODE = """
import sys
from agents.registry import make_policy
from scaling_env.config import EnvConfig
from scaling_env.rollout import rollout
for kind in sys.argv[1].split(","):
    config = EnvConfig.model_validate({"simulator": "request" if kind == "request" else "fast", "episode_steps": 2})
    rollout(config, make_policy("hpa", config), [0], parallel=True if kind == "threaded" else False)
"""


def pytest_configure(config: pytest.Config) -> None:
    """Under xdist (``-n 2``), compile the simulation's kernels once before the workers start: each worker would
    otherwise compile every kernel itself, both at once, on a fresh machine (numba's cache is then shared). A
    failure here is only reported: the workers compile what is missing, and the tests show any error."""
    if hasattr(config, "workerinput") or not config.getoption("numprocesses", default=None):
        return
    if config.option.collectonly:
        return
    procs = {
        name: subprocess.Popen(
            [sys.executable, "-c", _WARM_UP_CODE, kinds], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for name, kinds in _WARM_UP.items()
    }
    for name, proc in procs.items():
        try:
            out, _ = proc.communicate(timeout=1200)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
            print(f"conftest: compiling the {name} in advance took over 20 minutes; stopped")
            continue
        if proc.returncode != 0:
            print(f"conftest: compiling the {name} in advance failed (exit {proc.returncode}):\n{out[-2000:]}")


def merge(base: dict, over: dict) -> dict:
    return deep_merge(base, over, replace=("shape",))  # a new shape replaces the old


# a small, quiet cluster for hand-computed scenarios: no random crashes, no jitter, deterministic arrivals
QUIET: dict[str, Any] = {
    "episode_steps": 40,
    "workload": {"shape": {"kind": "constant", "rate_rps": 100.0}, "arrival_process": "deterministic"},
    "instances": {
        "cold_start_seconds": 2.0,
        "cold_start_jitter": 0.0,
        "max_queue": 100_000,
        "memory_mb_per_request": 0.0,
    },
    "scaling": {"min_instances": 0, "max_instances": 8, "initial_instances": 1},
    "failures": {"mtbf_seconds": None},
}


def quiet_config(**over: Any) -> EnvConfig:
    return EnvConfig.from_dict(merge(QUIET, over))


def started(config: EnvConfig, seed: int = 0) -> ServerlessScalingEnv:
    """A single env on this config, reset with ``seed``."""
    env = ServerlessScalingEnv(config)
    env.reset(seed=seed)
    return env


def action_for(config: EnvConfig, change: int) -> int:
    return config.scaling.scale_steps.index(change)


@pytest.fixture
def make_env():
    def _make(config: EnvConfig | dict | None = None, seed: int = 0) -> tuple[ServerlessScalingEnv, dict]:
        env = ServerlessScalingEnv(config)
        _, info = env.reset(seed=seed)
        return env, info

    return _make


# ------------------------------------------------------------------------------------------ shared traces

# the real traces of ../shared/traces (see its README.md); the package ships the two MIT-licensed ones the scenarios
# replay (scaling_env/data/traces), the others are read from ../shared/traces or $SCALING_ENV_TRACES
TRACE_FILES = (
    "aws_elb_request_count_5min.csv",
    "nyc_taxi_passengers_30min.csv",
    "twitter_amzn_mentions_5min.csv",
    "twitter_ko_mentions_5min.csv",
    "azure_llm_conv_2023_1s.csv",
    "alibaba_genai_lora_2024_1min.csv",
)


def shared_traces_dir() -> Path:
    """``$SCALING_ENV_TRACES`` if set, else ``shared/traces`` beside the checkout (``../shared/traces``)."""
    env = os.environ.get("SCALING_ENV_TRACES")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "traces"


def require_traces(*names: str) -> Path:
    """A folder holding the trace files ``names``: the shared traces folder, else the traces shipped with the
    package (when it has them all). Missing: a failure in CI (``CI`` set), else a skip."""
    folder = shared_traces_dir()
    missing = [n for n in names if not (folder / n).is_file()] if folder.is_dir() else ["the folder itself"]
    if not missing:
        return folder
    packaged = packaged_traces_dir()
    if all((packaged / n).is_file() for n in names):
        return packaged
    msg = (
        f"shared traces not found in {folder} (missing: {', '.join(missing)}); set SCALING_ENV_TRACES "
        f"to the folder that holds them"
    )
    if os.environ.get("CI"):
        pytest.fail(msg)
    pytest.skip(msg)


@pytest.fixture
def traces_dir() -> Path:
    """The folder of the shared real traces, with all of ``TRACE_FILES`` (skip, or fail in CI, without it)."""
    return require_traces(*TRACE_FILES)


def conservation_ok(prev_backlog: float, info: dict) -> bool:
    lhs = prev_backlog + info["arrivals"]
    rhs = info["served"] + info["dropped"] + info["failed"] + info["backlog"]
    return lhs == rhs


__all__ = [
    "QUIET",
    "quiet_config",
    "started",
    "action_for",
    "merge",
    "conservation_ok",
    "np",
    "TRACE_FILES",
    "shared_traces_dir",
    "require_traces",
]


# ------------------------------------------------------------------------------------------ the fidelity report
@pytest.fixture
def fidelity():
    """perf/fidelity.py (a script, not a package module), loaded afresh for each test: tests may set its globals."""
    import importlib.util
    import sys

    path = Path(__file__).resolve().parents[1] / "perf" / "fidelity.py"
    spec = importlib.util.spec_from_file_location("fidelity", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["fidelity"] = module  # (its dataclass looks its module up there)
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------------------------------------------------ fidelity grid cells
# the fidelity grid's fleet (perf/fidelity.py): 8 instances, a room of 100 each, 0.1 s service, 48 steps of 15 s;
# its figures are taken after a warm-up of 4 steps
CELL_INSTANCES, CELL_ROOM, CELL_SVC, CELL_STEP, CELL_STEPS, CELL_WARM = 8, 100, 0.1, 15.0, 48, 4


def cell_drop_share(algo: str, conc: int, rho: float, cv: float, seeds) -> tuple[float, float]:
    """The fast model's drops in a fidelity grid cell over the steps after the warm-up, as a share of the
    arrivals, and the largest conservation gap (arrivals - served - dropped - failed - queue at the end, requests)
    of any episode."""
    from scaling_env.fields import INFO_NAMES
    from scaling_env.sim.simulator import BatchSimulator

    cfg = EnvConfig.from_dict(
        {
            "simulator": "fast",
            "step_seconds": CELL_STEP,
            "episode_steps": CELL_STEPS,
            "workload": {"shape": {"kind": "constant", "rate_rps": rho * CELL_INSTANCES * conc / CELL_SVC}},
            "instances": {
                "concurrency": conc,
                "max_queue": CELL_ROOM,
                "service_seconds": CELL_SVC,
                "service_cv": cv,
                "memory_mb_per_request": 0.0,
            },
            "scaling": {
                "min_instances": CELL_INSTANCES,
                "max_instances": CELL_INSTANCES,
                "initial_instances": CELL_INSTANCES,
            },
            "load_balancer": {"algorithm": algo},
            "failures": {"mtbf_seconds": None, "memory_crash": False},
        }
    )
    col = {name: i for i, name in enumerate(INFO_NAMES)}
    hold = list(cfg.scaling.scale_steps).index(0)
    dropped = arrivals = 0.0
    gap = 0.0
    for seed in seeds:
        sim = BatchSimulator(cfg, 1, parallel=False)
        sim.seed([seed])
        sim.reset()
        rows = np.zeros((CELL_STEPS, len(INFO_NAMES)))
        for k in range(CELL_STEPS):
            sim.step(np.array([hold]))
            rows[k] = sim.metrics[0]
        dropped += rows[CELL_WARM:, col["dropped"]].sum()
        arrivals += rows[CELL_WARM:, col["arrivals"]].sum()
        out = rows[:, col["served"]].sum() + rows[:, col["dropped"]].sum() + rows[:, col["failed"]].sum()
        gap = max(gap, abs(rows[:, col["arrivals"]].sum() - out - rows[-1, col["backlog"]]))
    return dropped / arrivals, gap
