"""Workloads: the arrival-rate function lambda(t) of an episode, in requests/s.

A :class:`Workload` is built from ``EnvConfig.workload``. At every reset it draws an :class:`EpisodeWorkload`
from the env's seeded generator: the values of any ranges in the config (domain randomisation, see
``config.Range``), then the random phase, scale, random-walk path or trace window. The episode workload exposes
``rate(t)`` (instantaneous rate at ``t`` seconds after episode start) so that a clairvoyant policy can look
ahead, and ``expected_arrivals()``: the exact integral of lambda over each decision step, which is the Poisson
mean the simulator draws the step's arrival count from.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import (
    ConfigError,
    ConstantWorkload,
    DiurnalWorkload,
    EnvConfig,
    RampWorkload,
    RandomWalkWorkload,
    SpikeWorkload,
    TraceWorkload,
    draw_ranges,
    has_ranges,
)
from .traces import Replay, Trace, load_trace, trace_from_counts

DAY = 86400.0
SPLIT_SLICES = 32  # slices of a step searched for its rate change (EpisodeWorkload.rate_splits)
SPLIT_MIN_CHANGE = 0.05  # a change of the rate inside a step below this share of it is left out


@dataclass(frozen=True)
class EpisodeWorkload:
    """The rate function of one episode. Times are seconds after the episode start."""

    config: EnvConfig  # with the values drawn for this episode where the config gave ranges
    clock_start_seconds: float  # clock time (seconds after a midnight) at episode start
    scale: float  # multiplier drawn at reset (1 without scale_jitter)
    walk: np.ndarray | None  # random-walk rate per step (requests/s), else None
    replay: Replay | None = None  # trace replay on the simulator's clock, else None
    offset: float = 0.0  # trace replay: simulated seconds from the trace's start to the episode's start

    def rate(self, t: np.ndarray | float) -> np.ndarray:
        """Instantaneous arrival rate lambda(t), requests/s, at ``t`` seconds after episode start."""
        t = np.asarray(t, dtype=np.float64)
        shape = self.config.workload.shape
        if isinstance(shape, ConstantWorkload):
            r = np.full_like(t, shape.rate_rps)
        elif isinstance(shape, DiurnalWorkload):
            r = self._diurnal_mid_amp()[0] + self._diurnal_mid_amp()[1] * np.cos(self._phase(t))
        elif isinstance(shape, SpikeWorkload):
            inside = (t >= shape.start_seconds) & (t < shape.start_seconds + shape.duration_seconds)
            r = np.where(inside, shape.peak_rps, shape.base_rps)
        elif isinstance(shape, RampWorkload):
            frac = np.clip(t / shape.duration_seconds, 0.0, 1.0)
            r = shape.start_rps + (shape.end_rps - shape.start_rps) * frac
        elif isinstance(shape, RandomWalkWorkload):
            assert self.walk is not None
            # the small offset keeps k*dt in step k when k*dt/dt rounds below k (e.g. dt = 0.7)
            k = np.clip(np.floor(t / self.config.step_seconds + 1e-9).astype(np.int64), 0, len(self.walk) - 1)
            r = self.walk[k]
        elif isinstance(shape, TraceWorkload):
            assert self.replay is not None
            r = self.replay.rate(self.offset + t)
        else:  # pragma: no cover - the config's discriminated union admits no other kind
            raise TypeError(f"unknown workload shape {type(shape).__name__}")
        return self.scale * r

    def mean_rate(self, t0: np.ndarray, t1: np.ndarray) -> np.ndarray:
        """Exact mean of lambda over [t0, t1), requests/s (vectorised; t1 > t0)."""
        t0 = np.asarray(t0, dtype=np.float64)
        t1 = np.asarray(t1, dtype=np.float64)
        width = t1 - t0
        shape = self.config.workload.shape
        if isinstance(shape, ConstantWorkload):
            r = np.full_like(t0, shape.rate_rps)
        elif isinstance(shape, DiurnalWorkload):
            mid, amp = self._diurnal_mid_amp()
            omega = 2.0 * np.pi / self.config.workload.day_seconds
            r = mid + amp * (np.sin(self._phase(t1)) - np.sin(self._phase(t0))) / (omega * width)
        elif isinstance(shape, SpikeWorkload):
            s, e = shape.start_seconds, shape.start_seconds + shape.duration_seconds
            overlap = np.clip(np.minimum(t1, e) - np.maximum(t0, s), 0.0, None)
            r = shape.base_rps + (shape.peak_rps - shape.base_rps) * overlap / width
        elif isinstance(shape, RampWorkload):
            d, a, b = shape.duration_seconds, shape.start_rps, shape.end_rps

            def integral(t: np.ndarray) -> np.ndarray:
                tc = np.minimum(t, d)
                return a * t + (b - a) * (tc * tc / (2.0 * d) + np.maximum(t - d, 0.0))

            r = (integral(t1) - integral(t0)) / width
        elif isinstance(shape, RandomWalkWorkload):
            # piecewise constant per step; callers integrate over whole steps
            r = self.rate(t0) / self.scale
        elif isinstance(shape, TraceWorkload):
            assert self.replay is not None
            r = (self.replay.cumulative(self.offset + t1) - self.replay.cumulative(self.offset + t0)) / width
        else:  # pragma: no cover
            raise TypeError(f"unknown workload shape {type(shape).__name__}")
        return self.scale * r

    def expected_arrivals(self) -> np.ndarray:
        """Expected arrivals in each step of the episode: the integral of lambda over the step."""
        dt = self.config.step_seconds
        if self.replay is not None:
            # differences of the cumulative count: the steps' expectations add up to the window's count
            edges = self.offset + dt * np.arange(self.config.episode_steps + 1, dtype=np.float64)
            return self.scale * np.maximum(np.diff(self.replay.cumulative(edges)), 0.0)
        k = np.arange(self.config.episode_steps, dtype=np.float64)
        return np.maximum(self.mean_rate(k * dt, (k + 1.0) * dt), 0.0) * dt

    def sub_step_arrivals(self, sub: int) -> np.ndarray:
        """Expected arrivals of each of ``sub`` equal sub-intervals of every step, (episode_steps * sub,): the
        exact integral of lambda over each (the request backend's arrivals; ``rate_splits``)."""
        config = self.config
        dt, steps = config.step_seconds, config.episode_steps
        edges = dt * np.arange(steps * sub + 1, dtype=np.float64) / sub
        if self.replay is not None:
            cum = self.replay.cumulative(self.offset + edges)
            return self.scale * np.maximum(np.diff(cum), 0.0)
        if config.workload.shape.kind == "random_walk":  # constant within a step
            return np.repeat(self.expected_arrivals() / sub, sub)
        return np.maximum(self.mean_rate(edges[:-1], edges[1:]), 0.0) * (dt / sub)

    def rate_splits(self, slices: int = SPLIT_SLICES) -> tuple[np.ndarray, np.ndarray]:
        """The rate change inside each step, for the fast model's two-rate fluid (docs/model.md 5): per step, the
        time of the split (s from the step start; 0 where the rate is about constant in the step) and the part of
        the step's arrivals before it (exact: the integral of lambda).

        The step is cut into ``slices`` equal slices; the split is the slice boundary of the best two-rate fit of
        their mean rates (least squares: it maximises ``j (slices - j) (r_before - r_after)^2``, the classic
        single change point). A step whose two rates differ by at most ``SPLIT_MIN_CHANGE`` of the larger gets no
        split, so the step stays as it was where the rate is constant within each step (constant, random-walk
        and step-aligned trace workloads) or changes too little to matter (a diurnal over a 15 s step)."""
        dt, steps = self.config.step_seconds, self.config.episode_steps
        if self._steady_within_steps():
            return np.zeros(steps), np.zeros(steps)
        a = self.sub_step_arrivals(slices).reshape(steps, slices)
        cum = np.cumsum(a, axis=1)
        total = cum[:, -1]
        j = np.arange(1, slices, dtype=np.float64)
        before = cum[:, :-1] / j  # mean arrivals per slice before boundary j (j = 1..slices-1)
        after = (total[:, None] - cum[:, :-1]) / (slices - j)
        gain = j * (slices - j) * (before - after) ** 2
        best = np.argmax(gain, axis=1)
        rows = np.arange(steps)
        r_b, r_a = before[rows, best], after[rows, best]
        change = np.abs(r_b - r_a) > SPLIT_MIN_CHANGE * np.maximum(r_b, r_a)
        split = np.where(change, dt * (best + 1.0) / slices, 0.0)
        early = np.where(change, cum[rows, best] / np.where(total > 0.0, total, 1.0), 0.0)
        return split, early

    def _steady_within_steps(self) -> bool:
        """Whether no step can have a rate change above SPLIT_MIN_CHANGE, known without integrating (spares the
        reset the slices): constant and random-walk rates, and smooth curves whose two rates in a step cannot
        differ by more than it at their lowest rate (the means of two adjacent intervals of a curve of slope at
        most L differ by at most L times the distance of their centres, here dt / 2)."""
        shape = self.config.workload.shape
        dt = self.config.step_seconds
        if isinstance(shape, (ConstantWorkload, RandomWalkWorkload)):
            return True
        if isinstance(shape, DiurnalWorkload):
            mid, amp = self._diurnal_mid_amp()
            omega = 2.0 * np.pi / self.config.workload.day_seconds
            return abs(amp) * omega * dt / 2.0 < SPLIT_MIN_CHANGE * (mid - abs(amp))
        if isinstance(shape, RampWorkload):
            slope = abs(shape.end_rps - shape.start_rps) / shape.duration_seconds
            return slope * dt / 2.0 < SPLIT_MIN_CHANGE * min(shape.start_rps, shape.end_rps)
        return False

    def _phase(self, t: np.ndarray) -> np.ndarray:
        shape = self.config.workload.shape
        assert isinstance(shape, DiurnalWorkload)
        day = self.config.workload.day_seconds
        return 2.0 * np.pi * (self.clock_start_seconds + t - shape.peak_time_seconds) / day

    def _diurnal_mid_amp(self) -> tuple[float, float]:
        shape = self.config.workload.shape
        assert isinstance(shape, DiurnalWorkload)
        return 0.5 * (shape.peak_rps + shape.trough_rps), 0.5 * (shape.peak_rps - shape.trough_rps)


class Workload:
    """Draws the episode workload at each reset from the env's generator. A trace is loaded (and checked) here,
    once, so a bad file fails when the env is made: :class:`~scaling_env.config.ConfigError` (a ValueError)
    names the trace and the field for a trace that cannot give the configured load."""

    def __init__(self, config: EnvConfig) -> None:
        self.config = config
        self.randomised = has_ranges(config)
        self.trace: Trace | None = None
        shape = config.workload.shape
        if isinstance(shape, TraceWorkload):
            if shape.path is not None:
                self.trace = load_trace(shape.path, shape.missing, interval_seconds=shape.interval_seconds)
            else:
                assert shape.counts is not None and shape.interval_seconds is not None
                self.trace = trace_from_counts(shape.counts, shape.interval_seconds)
            if shape.start == "fixed" and not shape.loop and shape.start_offset_seconds >= self.trace.duration_seconds:
                raise ConfigError(
                    f"{self.trace.source}: workload.shape.start_offset_seconds "
                    f"({shape.start_offset_seconds:g}) is past the trace's end "
                    f"({self.trace.duration_seconds:g} s) and loop is off: the episode would have no load"
                )
            if shape.rescale != "none" and self.trace.total <= 0.0:
                raise ConfigError(
                    f"{self.trace.source}: the trace has no requests, so workload.shape.rescale: {shape.rescale} "
                    f"cannot scale it to a {shape.rescale} rate of {shape.target_rps:g} requests/s"
                )

    @property
    def static(self) -> bool:
        """Whether every episode has the same rate function (nothing is drawn at reset)."""
        wl = self.config.workload
        random_window = isinstance(wl.shape, TraceWorkload) and wl.shape.start == "random"
        return not (
            self.randomised
            or wl.random_phase
            or wl.scale_jitter > 0.0
            or wl.shape.kind == "random_walk"
            or random_window
        )

    def sample_episode(self, rng: np.random.Generator) -> EpisodeWorkload:
        config = draw_ranges(self.config, rng) if self.randomised else self.config
        if isinstance(config.workload.shape, TraceWorkload):
            return self._trace_episode(config, rng)
        wl = config.workload
        clock = wl.start_time_seconds
        if wl.random_phase:
            clock = float(rng.uniform(0.0, wl.day_seconds))
        scale = 1.0
        if wl.scale_jitter > 0.0:
            scale = float(rng.uniform(1.0 - wl.scale_jitter, 1.0 + wl.scale_jitter))
        walk = None
        if isinstance(wl.shape, RandomWalkWorkload):
            walk = _random_walk(wl.shape, config.episode_steps, rng)
        return EpisodeWorkload(config, clock, scale, walk)

    def _trace_episode(self, config: EnvConfig, rng: np.random.Generator) -> EpisodeWorkload:
        shape = config.workload.shape
        assert isinstance(shape, TraceWorkload) and self.trace is not None
        f = float(shape.time_compression)
        replay = Replay(self.trace, f, 1.0, shape.loop)
        if shape.rescale == "mean":
            replay = Replay(self.trace, f, float(shape.target_rps) / replay.mean_rps(), shape.loop)
        elif shape.rescale == "peak":
            replay = Replay(self.trace, f, float(shape.target_rps) / replay.peak_rps(), shape.loop)
        if shape.start == "random":
            episode = config.episode_steps * config.step_seconds
            # a window that fits inside the trace; only a trace shorter than an episode wraps (with loop)
            wraps = shape.loop and replay.duration < episode
            room = replay.duration if wraps else max(replay.duration - episode, 0.0)
            offset = float(rng.uniform(0.0, room))
        else:
            offset = float(shape.start_offset_seconds) / f
        # the trace's own clock, compressed like its timeline: a trace day lasts 86400 / f simulated seconds
        clock = (self.trace.start_clock_seconds / f + offset) % (DAY / f)
        scale = 1.0
        if config.workload.scale_jitter > 0.0:
            j = config.workload.scale_jitter
            scale = float(rng.uniform(1.0 - j, 1.0 + j))
        return EpisodeWorkload(config, clock, scale, None, replay, offset)


def _random_walk(shape: RandomWalkWorkload, steps: int, rng: np.random.Generator) -> np.ndarray:
    """Mean-reverting walk of the log rate; the recursion is linear, so it is a cumulative filter."""
    lo, hi = np.log(max(shape.min_rps, 1e-9)), np.log(shape.max_rps)
    target = np.log(shape.start_rps)
    noise = shape.volatility * rng.standard_normal(steps)
    x = np.empty(steps)
    x[0] = target
    keep = 1.0 - shape.reversion
    # a Python loop at reset only (once per episode), never in the step
    for k in range(1, steps):
        x[k] = min(max(x[k - 1] + (1.0 - keep) * (target - x[k - 1]) + noise[k], lo), hi)
    rates = np.exp(x)
    if shape.min_rps == 0.0:
        rates = np.where(x <= lo, 0.0, rates)
    return rates
