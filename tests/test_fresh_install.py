"""A fresh machine: the project copied alone (no ../shared beside it, no $SCALING_ENV_TRACES), installed into a
fresh virtual environment, as a built wheel and as the README's editable install.

The fresh venvs reuse this environment's installed dependencies (a .pth line to its site-packages, so nothing is
downloaded: torch is large) but not its install of this project. Each copy also starts with this checkout's numba
cache (``seed_compiled_core``): compiling the core takes about three minutes of one core, and twice more in these two
tests made them the suite's slowest by far; what they check is the install, not the compiler (the rest of the suite
compiles the core afresh on a fresh machine). Not checked here, then: a fresh install's first import with no cache
and no ``sim/jit_cache.py`` stamp (CI's own clone takes that path).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

# the default training, made tiny: every default training and evaluation scenario is loaded (traces included)
TINY_TRAINING = [
    "--total-timesteps",
    "192",
    "--set",
    "n_envs=6",
    "--set",
    "ppo={n_steps: 32, batch_size: 64, n_epochs: 1, policy_kwargs: {net_arch: [8]}}",
    "--set",
    "eval_freq=0",
    "--set",
    "checkpoint_freq=0",
    "--no-progress",
]


def clean_env() -> dict[str, str]:
    drop = ("SCALING_ENV_TRACES", "CI", "PYTHONPATH", "COLUMNS", "NUMBA_CACHE_DIR")
    return {k: v for k, v in os.environ.items() if k not in drop}


def copy_project(dest: Path) -> Path:
    """The project's files as a clone would have them (tracked and new, not ignored), alone in ``dest``."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    for name in filter(None, (n.decode() for n in listed)):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def warm_compiled_core() -> None:
    """Compile (or load) in this process what the copies run: a few steps of both backends."""
    from agents.registry import make_policy
    from scaling_env.config import EnvConfig
    from scaling_env.rollout import rollout

    for backend in ("fast", "request"):
        config = EnvConfig.model_validate({"simulator": backend, "episode_steps": 4})
        rollout(config, make_policy("hpa", config), [0])


def seed_compiled_core(package: Path) -> int:
    """Copy this checkout's numba cache into an installed ``scaling_env`` folder. numba 0.68 (this environment's)
    keys a cached function by its source file's contents (a sha256), not its path or time, and
    ``sim/jit_cache.py``'s stamp is contents and relative paths, so the copy loads what this checkout compiled (an
    older numba keys by time and size: a wheel's files then miss and compile, slower but the same). Returns the
    compiled files copied."""
    warm_compiled_core()
    src = ROOT / "scaling_env"
    copied = 0
    for folder in src.rglob("__pycache__"):
        for f in folder.iterdir():
            if f.suffix in (".nbi", ".nbc") or f.name == "jit_sources.sha256":
                target = package / f.relative_to(src)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(f, target)
                copied += f.suffix in (".nbi", ".nbc")
    return copied


def fresh_venv(path: Path) -> Path:
    """A venv that sees this environment's packages (via a .pth line), not this project's install."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    python = path / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(site) / "_reuse_dependencies.pth").write_text("\n".join(sorted(ours)) + "\n")
    return python


def run(args: list[str], cwd: Path, timeout: float = 400) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(args)}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def pip_install(python: Path, *args: str) -> None:
    run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index", *args], ROOT)


WHERE = "import scaling_env, agents; print(scaling_env.__file__, agents.__version__)"
TRACE_TESTS = ["tests/test_scenarios.py", "tests/test_traces.py", "tests/test_packaging.py"]


def test_a_built_wheel_runs_the_benchmark_and_a_training(tmp_path):
    project = copy_project(tmp_path / "src")
    dist = tmp_path / "dist"
    run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(dist), "."], project
    )
    (wheel,) = dist.glob("scaling_env-*.whl")
    python = fresh_venv(tmp_path / "venv")
    pip_install(python, str(wheel))
    shutil.rmtree(project)  # nothing of the source left: the wheel alone
    (package,) = (tmp_path / "venv").glob("lib/python*/site-packages/scaling_env")
    assert seed_compiled_core(package) > 0
    work = tmp_path / "work"
    work.mkdir()
    cli = str(python.parent / "scaling-env")

    where = run(
        [str(python), "-c", "import scaling_env, agents; print(scaling_env.__file__, agents.__version__)"], work
    )
    assert str(tmp_path / "venv") in where.stdout
    scenarios = run([cli, "scenarios"], work).stdout
    assert "noisy_trace" in scenarios and "steady" in scenarios and "NOT FOUND" not in scenarios
    bench = run(
        [cli, "benchmark", "-p", "static,hpa", "-s", "steady,noisy_trace", "--episodes", "2", "--workers", "1"], work
    )
    assert "nothing skipped" in bench.stdout.strip().splitlines()[-1], bench.stdout
    assert len(list((work / "results" / "benchmark").glob("*/cost_vs_slo.png"))) == 1  # a new timestamped folder
    trained = run([cli, "train", "--run-dir", str(work / "run"), *TINY_TRAINING], work)
    assert "trained" in trained.stdout and (work / "run" / "final_model.zip").is_file()


def test_a_clean_clone_runs_every_scenario_and_its_trace_tests(tmp_path):
    clone = copy_project(tmp_path / "clone")  # nothing beside it: no ../shared
    assert not (tmp_path / "shared").exists()
    assert seed_compiled_core(clone / "scaling_env") > 0
    python = fresh_venv(tmp_path / "venv")
    pip_install(python, "-e", str(clone))
    cli = str(python.parent / "scaling-env")
    # hybrid_histogram: the keep-alive platform scenario (sparse_bursts) runs only the keep-alive baselines
    policies = "static,hpa,hybrid_histogram"
    bench = run([cli, "benchmark", "-p", policies, "--episodes", "1", "--workers", "2", "--no-progress"], clone)
    last = bench.stdout.strip().splitlines()[-1]
    assert "done: 11 scenario(s)" in last and "nothing skipped" in last, bench.stdout
    # the trace and scenario tests: those of the shipped traces run; only those of other traces skip (not in CI)
    tests = run([str(python), "-m", "pytest", "-v", "-p", "no:cacheprovider", *TRACE_TESTS], clone)
    summary = tests.stdout.strip().splitlines()[-1]
    assert "failed" not in summary and "error" not in summary, tests.stdout[-3000:]
    results = [line for line in tests.stdout.splitlines() if line.startswith("tests/")]
    shipped = ("aws_elb_request_count_5min.csv", "twitter_amzn_mentions_5min.csv")
    for line in results:
        if any(f"[{name}]" in line for name in shipped) or "[train_trace]" in line or "[noisy_trace]" in line:
            assert "PASSED" in line, line
    assert sum("PASSED" in line for line in results if any(name in line for name in shipped)) >= 8
