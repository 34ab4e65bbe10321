"""Where jobs run: local processes (the default) or a Ray cluster, behind one interface.

The benchmark, the tuner and training sweeps hand an :class:`Executor` a module-level function and a list of
picklable jobs; :meth:`Executor.run` yields ``(index, result)`` as jobs finish, in any order. Callers put each
result back in its job's place, and every job's numbers depend only on the job (its seeds), so the output is the
same to the last digit whatever the backend and the number of workers (``tests/test_distributed.py``).

- ``local``: one worker runs the jobs in this process; more run in ``spawn``-ed worker processes (a clean
  interpreter each: no inherited OpenMP or torch threads).
- ``ray``: each job is a Ray task needing one CPU. Without ``address`` a local Ray with ``workers`` CPUs is
  started (and shut down at the end); with ``address`` (``auto``, ``ray://head:10001`` ...) the jobs go to that
  cluster and ``workers`` caps the jobs in flight. Ray re-runs a task whose worker process died up to
  ``max_retries`` times (the jobs are pure functions of their inputs, so a retry gives the same result); a job
  that still fails comes back as a :class:`Failure` when asked (``failures="return"``), else raises.

Ray is an optional extra (``pip install "scaling-env[ray]"``); it is imported only when the ray backend is used.
"""

from __future__ import annotations

import multiprocessing as mp
import traceback
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Literal

BACKENDS = ("local", "ray")
RAY_MAX_RETRIES = 2  # re-runs of a task whose worker process died (Ray's default is 3)
RAY_INSTALL = 'pip install "scaling-env[ray]"  (or pip install "ray>=2.9")'


class ExecutionError(Exception):
    """A user error: an unknown backend, Ray not installed, a cluster that cannot be reached."""


@dataclass(frozen=True)
class Failure:
    """A job that raised, or whose worker died (after Ray's retries)."""

    index: int
    message: str
    crashed: bool  # the worker process died (killed, out of memory), as opposed to the job raising


Failures = Literal["raise", "return"]


class Executor:
    """Runs jobs; use as a context manager so that worker processes (or a local Ray) are shut down."""

    backend = "local"

    def __init__(self, workers: int = 1) -> None:
        if workers < 1:
            raise ExecutionError(f"--workers must be at least 1, got {workers}")
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    def describe(self) -> str:
        return f"{self.workers} local worker(s)" if self.workers > 1 else "1 local worker (this process)"

    def run(
        self, fn: Callable[[Any], Any], jobs: Sequence[Any], failures: Failures = "raise"
    ) -> Iterator[tuple[int, Any]]:
        """Yield ``(index, fn(jobs[index]))`` as jobs finish (a :class:`Failure` in place of the result of a job
        that failed, with ``failures="return"``)."""
        if self.workers <= 1:
            for i, job in enumerate(jobs):
                try:
                    yield i, fn(job)
                except Exception as exc:
                    if failures == "raise":
                        raise
                    yield i, Failure(i, f"{type(exc).__name__}: {exc}", crashed=False)
            return
        if self._pool is None:  # kept for the executor's life: spawning interpreters costs about a second each
            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=mp.get_context("spawn"))
        futures: dict[Future, int] = {self._pool.submit(fn, job): i for i, job in enumerate(jobs)}
        pending = set(futures)
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in sorted(done, key=futures.__getitem__):
                    i = futures[fut]
                    exc = fut.exception()
                    if exc is None:
                        yield i, fut.result()
                    elif failures == "raise":
                        raise exc
                    else:  # a dead worker breaks the whole pool: every job still in it fails with it
                        crashed = isinstance(exc, BrokenProcessPool)
                        yield i, Failure(i, f"{type(exc).__name__}: {exc}", crashed=crashed)
        finally:
            if self._pool is not None and getattr(self._pool, "_broken", False):
                self._pool.shutdown(cancel_futures=True)
                self._pool = None  # the next call starts a new pool


class RayExecutor(Executor):
    """Jobs as Ray tasks (one CPU each) on a local Ray or the cluster at ``address``."""

    backend = "ray"

    def __init__(self, workers: int = 1, address: str | None = None, max_retries: int = RAY_MAX_RETRIES) -> None:
        super().__init__(workers)
        try:
            import ray
        except ImportError:
            raise ExecutionError(f"--backend ray: Ray is not installed; {RAY_INSTALL}") from None
        self._ray = ray
        self.address = address
        self.max_retries = max_retries
        self._started = False
        self._remote: dict[Callable, Any] = {}
        if not ray.is_initialized():
            try:
                if address is None:  # a local Ray sized to the workers asked for
                    ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
                else:
                    ray.init(address=address, log_to_driver=False)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                where = f"the Ray cluster at {address}" if address else "a local Ray"
                raise ExecutionError(f"--backend ray: cannot start or reach {where}: {exc}") from None
            self._started = True

    def close(self) -> None:
        if self._started:
            self._ray.shutdown()
            self._started = False

    def describe(self) -> str:
        cpus = int(self._ray.cluster_resources().get("CPU", 0))
        where = f"the Ray cluster at {self.address}" if self.address else "a local Ray"
        return f"Ray: up to {self.workers} task(s) at once on {where} ({cpus} CPUs)"

    def run(
        self, fn: Callable[[Any], Any], jobs: Sequence[Any], failures: Failures = "raise"
    ) -> Iterator[tuple[int, Any]]:
        ray = self._ray
        if fn not in self._remote:
            self._remote[fn] = ray.remote(num_cpus=1, max_retries=self.max_retries)(fn)
        remote = self._remote[fn]
        queue = list(enumerate(jobs))
        queue.reverse()
        in_flight: dict[Any, int] = {}
        while queue or in_flight:
            while queue and len(in_flight) < self.workers:  # at most `workers` tasks at once
                i, job = queue.pop()
                in_flight[remote.remote(job)] = i
            done, _ = ray.wait(list(in_flight), num_returns=1)
            for ref in done:
                i = in_flight.pop(ref)
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayTaskError as exc:  # the job raised: re-raise its own exception
                    cause = exc.cause if isinstance(exc.cause, Exception) else exc
                    if failures == "raise":
                        raise cause from None
                    result = Failure(i, f"{type(cause).__name__}: {cause}", crashed=False)
                except ray.exceptions.RayError as exc:  # the worker died (after max_retries re-runs)
                    if failures == "raise":
                        raise
                    text = "".join(traceback.format_exception_only(type(exc), exc)).strip().splitlines()[0]
                    result = Failure(i, f"worker died: {text}", crashed=True)
                yield i, result


def make_executor(backend: str = "local", workers: int = 1, address: str | None = None) -> Executor:
    """The executor for ``--backend``/``--workers``/``--address``; an ExecutionError names a bad option."""
    if backend not in BACKENDS:
        raise ExecutionError(f"--backend: expected one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "local":
        if address is not None:
            raise ExecutionError("--address names a Ray cluster: use it with --backend ray")
        return Executor(workers)
    return RayExecutor(workers, address)


def run_all(
    executor: Executor,
    fn: Callable[[Any], Any],
    jobs: Sequence[Any],
    on_done: Callable[[int, Any], None] | None = None,
    failures: Failures = "raise",
) -> list[Any]:
    """Every job's result in the jobs' order (``on_done(index, result)`` as each finishes)."""
    results: list[Any] = [None] * len(jobs)
    for i, res in executor.run(fn, jobs, failures):
        results[i] = res
        if on_done is not None:
            on_done(i, res)
    return results
