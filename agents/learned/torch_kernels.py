"""Which CPU kernels torch trains with, so that a seed trains the same weights on every x86-64 machine.

torch picks its CPU kernels by the instruction sets it finds (AVX-512 where there is AVX-512, else AVX2) and the
two round differently: the same config and seed trained another policy on an AVX-512 machine than on an AVX2
one (docs/training.md, "Seeds"). Training therefore asks for the AVX2 kernels on x86-64 unless the user chose a
set with ``ATEN_CPU_CAPABILITY`` (torch's own variable: ``default``, ``avx2``, ``avx512``). torch reads it at its
first operation in a process, not at import, so this must run before any tensor is made (and this module does
not import torch, so that the CLI can call it first).
"""

from __future__ import annotations

import os
import platform
import warnings

VARIABLE = "ATEN_CPU_CAPABILITY"
TRAINING_KERNELS = "avx2"  # every x86-64 machine we train on has it; AVX-512 is not on all of them


def pin_training_kernels() -> None:
    """Ask torch for :data:`TRAINING_KERNELS` on x86-64 unless ``ATEN_CPU_CAPABILITY`` is set already (the user's
    choice wins). Call it before the process's first torch operation; :func:`check_training_kernels` says when
    that was too late."""
    if platform.machine().lower() in ("x86_64", "amd64"):
        os.environ.setdefault(VARIABLE, TRAINING_KERNELS)


def check_training_kernels() -> str:
    """torch's kernel set in this process (``torch.backends.cpu.get_cpu_capability()``), with a warning when it is
    not the one ``ATEN_CPU_CAPABILITY`` asks for: torch had run before the variable was set (or the CPU lacks
    it), so this training will not repeat bit for bit on a machine with other instruction sets."""
    import torch

    used = torch.backends.cpu.get_cpu_capability()
    asked = os.environ.get(VARIABLE)
    if asked and asked.lower() != used.lower():
        warnings.warn(
            f"{VARIABLE}={asked}, but torch already uses its {used} kernels (it had run before the variable was "
            f"set, or this CPU lacks {asked}): this training repeats bit for bit only on machines that give torch "
            f"{used}. Set {VARIABLE} before the process starts to choose.",
            stacklevel=2,
        )
    return used
