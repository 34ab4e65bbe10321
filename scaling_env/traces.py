"""Request-count traces: loading and checking CSV files, filling gaps, and resampling to decision steps.

A trace is a series of request counts over fixed intervals (1 s to 1 h). In a CSV file it has the header
``timestamp,requests``; a timestamp is ISO-8601 (``2014-04-10T00:04:00``, with or without a UTC offset) or
epoch seconds, and marks the start of its interval. The interval is the most common step between
timestamps (or ``interval_seconds`` when given, for a file that leaves out many intervals); a longer step
must be a whole number of intervals and is a gap of missing intervals, filled by the workload's ``missing``
rule:

- ``interpolate`` (default): linearly between the counts on either side of the gap (a gap is missing data,
  not an idle service);
- ``zero``: no requests in the gap;
- ``previous``: the last count before the gap, repeated.

Replay spreads each interval's count evenly over its length (a piecewise-constant rate), so the requests
expected in a decision step are the difference of the cumulative count at the step's two ends. Nothing is
repeated or lost: over any window the expected requests equal the trace's count in that window, whatever the
step length or time compression.

Where the files are: a scenario names its trace by a path relative to a traces folder. The folder is, in this
order: the ``traces_dir`` passed in (``--traces-dir`` on the command line), the ``SCALING_ENV_TRACES``
environment variable, ``./traces`` in the working directory, the traces shipped with the package (the MIT-licensed
NAB traces the shipped scenarios replay, ``scaling_env/data/traces``), ``shared/traces`` beside the project
checkout (only when running from a checkout, not from an installed wheel), and last the working directory itself.
"""

from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path

import numpy as np

from .resources import packaged_traces_dir

TRACES_ENV_VAR = "SCALING_ENV_TRACES"
MIN_INTERVAL_SECONDS = 1.0
MAX_INTERVAL_SECONDS = 3600.0
MISSING_RULES = ("interpolate", "zero", "previous")


class TraceError(ValueError):
    """A trace file or series is malformed. The message names the file, the line and the fault."""


class TraceNotFoundError(TraceError):
    """A trace file is not in any traces folder searched."""


@dataclass(frozen=True)
class Trace:
    """A gap-free series: ``counts[i]`` requests in ``[i * interval, (i + 1) * interval)`` seconds of trace time."""

    counts: np.ndarray  # float64, gaps filled
    interval_seconds: float
    start_clock_seconds: float  # time of day of the first interval's start, seconds after midnight
    source: str  # file path, or "inline counts"
    missing_intervals: int = 0  # intervals filled by the missing rule

    @property
    def duration_seconds(self) -> float:
        return len(self.counts) * self.interval_seconds

    @property
    def total(self) -> float:
        return float(self.counts.sum())


# ------------------------------------------------------------------------------------------ finding files


def trace_dirs(traces_dir: str | Path | None = None) -> list[Path]:
    """The folders searched for a relative trace path, in order."""
    dirs: list[Path] = []
    if traces_dir is not None:
        dirs.append(Path(traces_dir))
    env = os.environ.get(TRACES_ENV_VAR)
    if env:
        dirs.append(Path(env))
    dirs.append(Path.cwd() / "traces")
    dirs.append(packaged_traces_dir())
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "pyproject.toml").is_file():  # a source checkout, not site-packages
        dirs.append(checkout.parent / "shared" / "traces")
    dirs.append(Path.cwd())
    return dirs


def find_trace(path: str | Path, traces_dir: str | Path | None = None) -> Path:
    """The file a trace path names: absolute paths as they are, relative ones in the first folder that has it."""
    p = Path(path).expanduser()
    if p.is_absolute():
        if p.is_file():
            return p
        raise TraceNotFoundError(f"trace file {p} does not exist")
    searched = trace_dirs(traces_dir)
    for d in searched:
        if (d / p).is_file():
            return (d / p).resolve()
    folders = ", ".join(str(d) for d in searched)
    raise TraceNotFoundError(
        f"trace file {str(p)!r} not found in the traces folders searched ({folders}); set the folder with "
        f"--traces-dir or the {TRACES_ENV_VAR} environment variable to a folder that holds it, or give the scenario "
        f"an absolute path to the file"
    )


# ------------------------------------------------------------------------------------------------ parsing


def _parse_time(text: str) -> tuple[float, bool, float] | None:
    """(epoch seconds, has UTC offset, seconds after midnight of the local clock) or None if unparsable."""
    try:
        t = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(t):
            return None
        return t, True, t % 86400.0
    if text[-1:] in ("Z", "z"):  # UTC as 'Z': Python < 3.11's fromisoformat does not read it
        text = text[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        return None
    aware = dt.tzinfo is not None
    clock = dt.hour * 3600.0 + dt.minute * 60.0 + dt.second + dt.microsecond * 1e-6
    # naive times are read as UTC: only differences and the clock matter
    epoch = dt.timestamp() if aware else (dt - datetime(1970, 1, 1)).total_seconds()
    return epoch, aware, clock


@lru_cache(maxsize=32)
def _read_csv(path: str, mtime_ns: int, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """(times relative to the first, counts, line numbers, clock of the first) of a checked file; cached by path
    and mtime."""
    times: list[float] = []
    lines: list[int] = []
    counts: list[float] = []
    clock0 = 0.0
    kinds: set[tuple[bool, bool]] = set()  # (epoch number, has offset)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise TraceError(f"{path}: cannot read trace file ({exc.strerror})") from None
    try:
        text = raw.decode("utf-8-sig")  # a byte-order mark is dropped
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1
        raise TraceError(
            f"{path}, line {line}: not UTF-8 text (byte {exc.object[exc.start]:#04x}); save the file as UTF-8 CSV"
        ) from None
    header_line = 0
    with io.StringIO(text, newline="") as fh:
        reader = csv.reader(fh)
        header: list[str] | None = None
        for row in reader:
            line = reader.line_num
            if not row or all(not c.strip() for c in row):
                continue  # blank lines carry nothing
            if header is None:
                header, header_line = [c.strip().lower() for c in row], line
                if header != ["timestamp", "requests"]:
                    raise TraceError(
                        f"{path}, line {line}: the header must be 'timestamp,requests', got {','.join(row)!r}"
                    )
                continue
            if len(row) != 2:
                raise TraceError(
                    f"{path}, line {line}: expected 2 columns (timestamp,requests), got {len(row)}: {','.join(row)!r}"
                )
            ts, value = row[0].strip(), row[1].strip()
            parsed = _parse_time(ts)
            if parsed is None:
                raise TraceError(
                    f"{path}, line {line}: cannot parse timestamp {ts!r} (ISO-8601 such as "
                    f"2014-04-10T00:04:00, or epoch seconds)"
                )
            epoch, aware, clock = parsed
            kind = (_is_number(ts), aware)
            if kinds and kind not in kinds:
                raise TraceError(
                    f"{path}, line {line}: timestamp {ts!r} mixes formats with the lines above "
                    f"(epoch seconds, ISO with and without UTC offset cannot be mixed)"
                )
            kinds.add(kind)
            try:
                n = float(value)
            except ValueError:
                raise TraceError(f"{path}, line {line}: request count {value!r} is not a number") from None
            if not math.isfinite(n) or n < 0:
                raise TraceError(f"{path}, line {line}: request count {value!r} must be a finite number >= 0")
            if times:
                prev = times[-1]
                if epoch == prev:
                    raise TraceError(f"{path}, line {line}: timestamp {ts!r} repeats the previous line's")
                if epoch < prev:
                    raise TraceError(
                        f"{path}, line {line}: timestamp {ts!r} is earlier than the previous line's "
                        f"(timestamps must increase)"
                    )
            else:
                clock0 = clock
            times.append(epoch)
            counts.append(n)
            lines.append(line)
    if header is None:
        raise TraceError(f"{path}: the file is empty (expected the header 'timestamp,requests' and data rows)")
    if not counts:
        raise TraceError(f"{path}, line {header_line}: no data rows after the header")
    t = np.asarray(times)
    return t - t[0], np.asarray(counts), np.asarray(lines), clock0


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _grid(path: str, rel_times: np.ndarray, lines: np.ndarray, interval: float | None) -> tuple[np.ndarray, float]:
    """Slot index of each row on the trace's regular grid, and the interval (the most common step, unless given)."""
    if len(rel_times) == 1:
        if interval is None:
            raise TraceError(
                f"{path}, line {lines[0]}: the only data row: the interval cannot be inferred from one timestamp"
            )
        return np.zeros(1, dtype=np.int64), interval
    diffs = np.diff(rel_times)
    if interval is None:
        values, freq = np.unique(np.round(diffs, 6), return_counts=True)
        interval = float(values[np.argmax(freq)])
    if not MIN_INTERVAL_SECONDS <= interval <= MAX_INTERVAL_SECONDS:
        # name the first line that ends a step of that length
        i = int(np.argmin(np.abs(diffs - interval))) + 1
        hint = ""
        if interval >= 1000.0 and interval % 1000.0 == 0.0 and rel_times[-1] > 1e6:
            hint = " (epoch timestamps in milliseconds? they must be in seconds)"
        raise TraceError(
            f"{path}, line {lines[i]}: the interval between timestamps is {interval:g} s (from line "
            f"{lines[i - 1]} to line {lines[i]}); it must be between {MIN_INTERVAL_SECONDS:g} s and "
            f"{MAX_INTERVAL_SECONDS:g} s{hint}"
        )
    slots = rel_times / interval
    idx = np.round(slots).astype(np.int64)
    off = np.abs(slots - idx) > 1e-6
    if off.any():
        i = int(np.argmax(off))
        raise TraceError(
            f"{path}, line {lines[i]}: timestamp is {rel_times[i]:g} s after the first, not a whole "
            f"number of the {interval:g} s interval (irregular sampling; if the file leaves out "
            f"intervals, give the real one as workload.shape.interval_seconds)"
        )
    return idx, interval


def fill_gaps(idx: np.ndarray, counts: np.ndarray, rule: str) -> tuple[np.ndarray, int]:
    """The series on the full grid ``0..idx[-1]``, missing slots filled by ``rule``; and how many were missing."""
    if rule not in MISSING_RULES:
        raise ValueError(f"missing rule must be one of {MISSING_RULES}, got {rule!r}")
    n = int(idx[-1]) + 1
    full = np.arange(n)
    if rule == "interpolate":
        out = np.interp(full, idx, counts)
    elif rule == "zero":
        out = np.zeros(n)
        out[idx] = counts
    else:  # previous
        pos = np.searchsorted(idx, full, side="right") - 1
        out = counts[pos]
    return out.astype(np.float64), n - len(idx)


def load_trace(
    path: str | Path,
    missing: str = "interpolate",
    traces_dir: str | Path | None = None,
    interval_seconds: float | None = None,
) -> Trace:
    """Load and check a CSV trace (relative paths are looked up in the traces folders). The interval is the
    most common step between timestamps, or ``interval_seconds``."""
    file = find_trace(path, traces_dir)
    st = file.stat()
    rel, counts, lines, clock0 = _read_csv(str(file), st.st_mtime_ns, st.st_size)
    idx, interval = _grid(str(file), rel, lines, interval_seconds)
    full, n_missing = fill_gaps(idx, counts, missing)
    return Trace(full, interval, clock0, str(file), n_missing)


def trace_from_counts(
    counts: np.ndarray | list[float],
    interval_seconds: float,
    source: str = "inline counts",
    start_clock_seconds: float = 0.0,
) -> Trace:
    """A trace from a plain series of counts (no gaps)."""
    c = np.asarray(counts, dtype=np.float64)
    if c.ndim != 1 or c.size == 0:
        raise TraceError(f"{source}: counts must be a non-empty 1-D series, got shape {c.shape}")
    bad = ~np.isfinite(c) | (c < 0)
    if bad.any():
        i = int(np.argmax(bad))
        raise TraceError(f"{source}: count {i} is {float(c[i])!r}; counts must be finite and >= 0")
    if not MIN_INTERVAL_SECONDS <= interval_seconds <= MAX_INTERVAL_SECONDS:
        raise TraceError(
            f"{source}: interval_seconds is {interval_seconds:g}; it must be between "
            f"{MIN_INTERVAL_SECONDS:g} and {MAX_INTERVAL_SECONDS:g}"
        )
    return Trace(c, float(interval_seconds), start_clock_seconds, source)


# ------------------------------------------------------------------------------------------------ replay


@dataclass(frozen=True)
class Replay:
    """A trace on the simulator's clock: time-compressed by ``compression`` and its counts scaled by ``scale``.

    ``cumulative(t)`` is the expected number of requests in ``[0, t)`` seconds of simulated time from the
    trace's start; past the end the trace repeats when ``loop`` is set (else the rate is 0).
    """

    trace: Trace
    compression: float
    scale: float
    loop: bool

    @property
    def interval(self) -> float:
        """Length of one trace interval in simulated seconds."""
        return self.trace.interval_seconds / self.compression

    @property
    def duration(self) -> float:
        return self.trace.duration_seconds / self.compression

    @property
    def total(self) -> float:
        return self.trace.total * self.scale

    @property
    def _knots(self) -> np.ndarray:
        return np.concatenate(([0.0], np.cumsum(self.trace.counts))) * self.scale

    def cumulative(self, t: np.ndarray) -> np.ndarray:
        t = np.asarray(t, dtype=np.float64)
        knots = self._knots
        n = len(self.trace.counts)
        if self.loop:
            laps = np.floor(t / self.duration)
            rest = t - laps * self.duration
            return laps * knots[-1] + np.interp(rest / self.interval, np.arange(n + 1), knots)
        return np.interp(np.clip(t, 0.0, self.duration) / self.interval, np.arange(n + 1), knots)

    def rate(self, t: np.ndarray) -> np.ndarray:
        """Requests/s at simulated time ``t`` from the trace's start (the rate of the interval holding it)."""
        t = np.asarray(t, dtype=np.float64)
        n = len(self.trace.counts)
        if self.loop:
            t = np.mod(t, self.duration)
        i = np.floor(t / self.interval + 1e-9).astype(np.int64)
        inside = (i >= 0) & (i < n)
        counts = self.trace.counts[np.clip(i, 0, n - 1)]
        return np.where(inside, counts * self.scale / self.interval, 0.0)

    def mean_rps(self) -> float:
        return self.total / self.duration

    def peak_rps(self) -> float:
        return float(self.trace.counts.max()) * self.scale / self.interval
