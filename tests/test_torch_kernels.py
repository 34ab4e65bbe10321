"""torch's CPU kernels in training: pinned to AVX2 on x86-64 so that a seed trains the same weights on AVX2 and
AVX-512 machines (agents/learned/torch_kernels.py). Each case runs in a fresh process: torch fixes its kernel set
at its first operation, once per process."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from agents.learned.torch_kernels import MKL_VARIABLE, VARIABLE, _cpu_flags, can_pin

needs_avx2 = pytest.mark.skipif(not can_pin(), reason="the pin applies on x86-64 machines with AVX2 and FMA")


def run_python(code: str, kernels: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in (VARIABLE, MKL_VARIABLE)}
    if kernels is not None:
        env[VARIABLE] = kernels
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=900)


PINNED = """
import warnings
warnings.simplefilter("always")
from agents.learned.torch_kernels import check_training_kernels, pin_training_kernels
pin_training_kernels()
print(check_training_kernels())
"""


@needs_avx2
def test_training_pins_the_avx2_kernels_unless_the_user_chose_a_set():
    assert run_python(PINNED, None).stdout.strip() == "AVX2"
    assert run_python(PINNED, "").stdout.strip() == "AVX2"  # an empty value counts as unset
    assert run_python(PINNED, "default").stdout.strip() == "DEFAULT"  # the user's choice wins


@needs_avx2
def test_a_value_torch_does_not_read_is_named():
    done = run_python(PINNED, "AVX2")  # torch reads lower case only: it falls back to the CPU's own set
    assert done.returncode == 0 and "ATEN_CPU_CAPABILITY=AVX2" in done.stderr
    assert "not a value torch reads here" in done.stderr, done.stderr


@needs_avx2
def test_a_torch_operation_before_the_choice_is_warned_about():
    code = """
import os, warnings
import torch
torch.ones(3).tanh()  # torch fixes its kernels here (AVX2 or AVX-512 on these machines)
os.environ["ATEN_CPU_CAPABILITY"] = "default"
from agents.learned.torch_kernels import check_training_kernels
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    check_training_kernels()
print(" | ".join(str(w.message) for w in caught))
"""
    done = run_python(code, None)
    assert done.returncode == 0, done.stderr
    assert "ATEN_CPU_CAPABILITY=default, but torch uses" in done.stdout, done.stdout
    assert "torch had run in this process before" in done.stdout


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
    if "avx512f" in _cpu_flags():  # the weights an unpinned training on this machine gives: others
        assert pinned != train_weights(tmp_path, "avx512")
