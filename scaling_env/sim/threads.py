"""Which compiled kernel steps a batch: the serial one, the threaded one, or whichever is faster right now.

Threads (numba ``prange``) pay off for large batches only while the CPUs are free: numba's OpenMP workers
spin while they wait, so with another process keeping one of two CPUs busy, the threaded step becomes 2-3x
slower than the serial one (docs/performance.md). The default (``parallel=None``) for B >= ``MIN_THREADED_BATCH``
therefore measures instead of guessing (:class:`AutoKernel`): it times its calls and now and then runs one call
with the other kernel; it keeps the faster. Both kernels give bit-identical results (each cluster has its own
random state), so the choice changes the speed only.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import numba

from .kernel import step_batch, step_batch_parallel

MIN_THREADED_BATCH = 256  # below this a prange launch (~10 us) outweighs the gain
FIRST_PROBE = 3  # calls before the first probe of the other kernel (the first call of each may compile)
MIN_PERIOD, MAX_PERIOD = 8, 1024  # calls between probes: doubled while the choice holds, reset on a switch
SWITCH_GAIN = 0.9  # switch when the other kernel takes less than this share of the current one's time
SMOOTHING = 0.25  # weight of the newest call in the running mean of each kernel's time per call


def usable_cpus() -> int:
    """CPUs this process may run on and numba may use (affinity mask and ``NUMBA_NUM_THREADS``)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return min(cpus, numba.config.NUMBA_NUM_THREADS)


class AutoKernel:
    """Steps with the threaded kernel or the serial one, whichever measured faster per call.

    It starts threaded; at call ``FIRST_PROBE`` and then every ``period`` calls it runs one call with the other
    kernel, compares running means of the time per call (wall clock, the first call of each kernel left out as
    it may compile), and switches if the other is faster by more than 10 %. The period doubles (to 1,024 calls)
    while the choice holds, so probing a slow kernel costs little.
    """

    def __init__(self) -> None:
        self.threads = True
        self.calls = 0
        self.next_probe = FIRST_PROBE
        self.period = MIN_PERIOD
        self.seconds: dict[bool, float | None] = {True: None, False: None}
        self._seen = {True: False, False: False}

    def __call__(self, *args) -> None:
        self.calls += 1
        probe = self.calls >= self.next_probe
        threads = self.threads != probe
        kernel: Callable[..., None] = step_batch_parallel if threads else step_batch
        t0 = time.perf_counter()
        kernel(*args)
        elapsed = time.perf_counter() - t0
        if self._seen[threads]:
            old = self.seconds[threads]
            # a probe's time replaces the other kernel's stale mean: blended into it, the threaded kernel's slow
            # second and third calls (its thread pool starting) kept its mean above the serial one's for
            # hundreds of calls, so a B = 1024 batch stepped serially at about half the threaded speed
            fresh = old is None or probe
            self.seconds[threads] = elapsed if fresh else (1.0 - SMOOTHING) * old + SMOOTHING * elapsed
        self._seen[threads] = True
        if probe:
            self._decide()

    def _decide(self) -> None:
        mine, other = self.seconds[self.threads], self.seconds[not self.threads]
        if other is None or mine is None:  # the probe compiled or loaded its kernel: measure again soon
            self.next_probe = self.calls + 1
            return
        if other < SWITCH_GAIN * mine:
            self.threads = not self.threads
            self.period = MIN_PERIOD
        else:
            self.period = min(2 * self.period, MAX_PERIOD)
        self.next_probe = self.calls + self.period


def choose_kernel(num_envs: int, parallel: bool | None) -> Callable[..., None]:
    """The step function of a batch: ``parallel`` True/False pins the threaded/serial kernel; None (default)
    measures (:class:`AutoKernel`) for B >= ``MIN_THREADED_BATCH`` on 2 or more usable CPUs, else serial."""
    if parallel is not None:
        return step_batch_parallel if parallel else step_batch
    if num_envs >= MIN_THREADED_BATCH and usable_cpus() >= 2:
        return AutoKernel()
    return step_batch
