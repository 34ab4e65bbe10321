"""Which CPU kernels torch trains with, so that a seed trains the same weights on AVX2 and AVX-512 machines.

torch picks its CPU kernels by the instruction sets it finds (AVX-512 where there is AVX-512, else AVX2) and the
two round differently: the same config and seed trained another policy on an AVX-512 machine than on an AVX2
one (docs/training.md, "Seeds"). Training therefore asks for the AVX2 kernels on x86-64 CPUs that have AVX2 and
FMA, unless the user chose a set with ``ATEN_CPU_CAPABILITY`` (torch's own variable: ``default``, ``avx2``,
``avx512``), and caps MKL, which does torch's float32 matrix products, at AVX2 likewise
(``MKL_ENABLE_INSTRUCTIONS``; on our AMD machines MKL already stays there: the same weights with and without).
Both are read at the library's first use in a process, not at import, so this must run before any tensor is
made; this module does not import torch, so that the CLI can call it first.
"""

from __future__ import annotations

import os
import platform
import warnings
from pathlib import Path

VARIABLE = "ATEN_CPU_CAPABILITY"
MKL_VARIABLE = "MKL_ENABLE_INSTRUCTIONS"
TRAINING_KERNELS = "avx2"  # every x86-64 machine we train on has it; AVX-512 is not on all of them
ACCEPTED = ("default", "avx2", "avx512")  # what torch reads on x86-64 (lower case only)


def cpuinfo_field(name: str) -> str | None:
    """The first ``name`` line's value in /proc/cpuinfo (None where there is no such file or line)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(name):
            return line.split(":", 1)[1].strip()
    return None


def cpu_name() -> str:
    """The CPU's model name, or what :mod:`platform` knows where /proc/cpuinfo does not say."""
    return cpuinfo_field("model name") or platform.processor() or platform.machine()


def _cpu_flags() -> set[str]:
    return set((cpuinfo_field("flags") or "").split())


def can_pin() -> bool:
    """An x86-64 CPU with AVX2 and FMA: torch does not check the set it is asked for, so asking for AVX2 on a CPU
    without it would stop the process at the first AVX2 instruction."""
    return platform.machine().lower() in ("x86_64", "amd64") and {"avx2", "fma"} <= _cpu_flags()


def pin_training_kernels() -> None:
    """Ask torch for :data:`TRAINING_KERNELS` (and MKL for AVX2) where :func:`can_pin`, unless the user set the
    variable (an empty value counts as unset). Call it before the process's first torch operation;
    :func:`check_training_kernels` says when that was too late."""
    if not can_pin():
        return
    if not os.environ.get(VARIABLE):
        os.environ[VARIABLE] = TRAINING_KERNELS
    if not os.environ.get(MKL_VARIABLE):
        os.environ[MKL_VARIABLE] = TRAINING_KERNELS.upper()


def check_training_kernels() -> str:
    """torch's kernel set in this process (``torch.backends.cpu.get_cpu_capability()``), with a warning when it is
    not the one ``ATEN_CPU_CAPABILITY`` asks for: the value is not one torch reads, or torch had run before the
    variable was set. Such a training repeats bit for bit only where torch picks the same set."""
    import torch

    used = torch.backends.cpu.get_cpu_capability()
    asked = os.environ.get(VARIABLE)
    if not asked or asked.lower() == used.lower():
        return used
    if asked not in ACCEPTED:
        why = f"not a value torch reads here ({', '.join(ACCEPTED)}, in lower case)"
    else:
        why = "torch had run in this process before the variable was set"
    warnings.warn(
        f"{VARIABLE}={asked}, but torch uses its {used} kernels: {why}. This training repeats bit for bit only "
        f"where torch picks {used}; set {VARIABLE} before the process starts to choose.",
        stacklevel=2,
    )
    return used
