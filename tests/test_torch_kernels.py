"""torch's CPU kernels in training: pinned to AVX2 on x86-64 so that a seed trains the same weights on AVX2 and
AVX-512 machines (agents/learned/torch_kernels.py). Each case runs in a fresh process: torch fixes its kernel set
at its first operation, once per process."""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from agents.learned.torch_kernels import VARIABLE


def cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


needs_avx2 = pytest.mark.skipif(
    platform.machine().lower() not in ("x86_64", "amd64") or "avx2" not in cpu_flags(),
    reason="the pin applies on x86-64 machines with AVX2",
)


def run_python(code: str, kernels: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != VARIABLE}
    if kernels is not None:
        env[VARIABLE] = kernels
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)


PINNED = """
from agents.learned.torch_kernels import check_training_kernels, pin_training_kernels
pin_training_kernels()
print(check_training_kernels())
"""


@needs_avx2
def test_training_pins_the_avx2_kernels_unless_the_user_chose_a_set():
    assert run_python(PINNED, None).stdout.strip() == "AVX2"
    assert run_python(PINNED, "default").stdout.strip() == "DEFAULT"  # the user's choice wins


def test_a_torch_operation_before_the_choice_is_warned_about():
    code = """
import os, warnings
import torch
torch.ones(3).tanh()  # torch fixes its kernels here
os.environ["ATEN_CPU_CAPABILITY"] = "default"
from agents.learned.torch_kernels import check_training_kernels
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    used = check_training_kernels()
print(used, "|", caught[0].message if caught else "no warning")
"""
    out = run_python(code, None).stdout
    assert "ATEN_CPU_CAPABILITY=default, but torch already uses" in out, out


def train_weights(root: Path, kernels: str | None) -> str:
    """sha256 of the policy's weights after a short training on a shipped scenario with the v1 observation (43
    fields, 9 actions: vector lengths where AVX2 and AVX-512 kernels round differently)."""
    config = root / "config.yaml"
    if not config.exists():
        history = {"history": ["ema", "trend", "errors", "fleet", "control"], "reset": "steady_state"}
        body = {
            "n_envs": 8,
            "total_timesteps": 4096,
            "eval_freq": 0,
            "checkpoint_freq": 4096,
            "eval_workers": 1,
            "scenarios": ["steady"],
            "eval_scenarios": ["steady"],
            "env_overrides": {"observation": history},
            "ppo": {"n_steps": 128, "batch_size": 256, "n_epochs": 10},
        }
        config.write_text(yaml.safe_dump(body))
    run_dir = root / f"run_{kernels}"
    args = ["train", "--config", str(config), "--run-dir", str(run_dir), "--no-progress"]
    code = f"from agents.experiments.cli import app; app({args!r})"
    done = run_python(code, kernels)
    assert done.returncode == 0, done.stdout + done.stderr
    with zipfile.ZipFile(run_dir / "final_model.zip") as z:
        return hashlib.sha256(z.read("policy.pth")).hexdigest()


@needs_avx2
def test_the_same_seed_trains_the_same_weights_with_the_pinned_kernels(tmp_path):
    pinned = train_weights(tmp_path, None)
    assert pinned == train_weights(tmp_path, "avx2")
    if "avx512f" in cpu_flags():  # the weights an unpinned training on this machine gives: others
        assert pinned != train_weights(tmp_path, "avx512")
