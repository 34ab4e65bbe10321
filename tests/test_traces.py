"""Trace replay (issue 3): CSV checking, gap filling, resampling to steps, scaling, windows.

The real traces are read from ``../shared/traces`` (or ``$SCALING_ENV_TRACES``), never copied here; without
them those tests are skipped, or fail when ``CI`` is set.
"""

from __future__ import annotations

import csv
import math
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from conftest import TRACE_FILES, conservation_ok, require_traces

from scaling_env import EnvConfig, ServerlessScalingEnv, ServerlessScalingVectorEnv
from scaling_env.sim import simulator as core
from scaling_env.traces import TraceError, TraceNotFoundError, fill_gaps, load_trace, trace_from_counts
from scaling_env.workload import Workload

HEADER = "timestamp,requests\n"


def write(tmp_path: Path, text: str | bytes, name: str = "trace.csv") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8", newline="")
    return path


def trace_config(shape: dict, steps: int, step_seconds: float, **workload) -> EnvConfig:
    return EnvConfig.from_dict(
        {
            "episode_steps": steps,
            "step_seconds": step_seconds,
            "workload": {"shape": {"kind": "trace", **shape}, **workload},
        }
    )


def expected(shape: dict, steps: int, step_seconds: float, seed: int = 0) -> np.ndarray:
    """Expected arrivals per step of the first episode drawn with ``seed``."""
    cfg = trace_config(shape, steps, step_seconds)
    return Workload(cfg).sample_episode(np.random.default_rng(seed)).expected_arrivals()


def csv_rows(path: Path) -> tuple[list[str], np.ndarray]:
    """Timestamps and counts of a trace file, read independently of scaling_env."""
    with open(path, newline="", encoding="utf-8-sig") as fh:
        rows = list(csv.reader(fh))[1:]
    return [r[0] for r in rows], np.array([float(r[1]) for r in rows])


def hold(num_envs: int = 1) -> np.ndarray:
    return np.full(num_envs, EnvConfig().scaling.scale_steps.index(0), dtype=np.int64)


# ----------------------------------------------------------------------------------------- malformed files

MALFORMED = {
    # id: (file text, line named in the message, fragment of the fault)
    "missing_column": (HEADER + "0,1\n60\n120,3\n", 3, "expected 2 columns (timestamp,requests), got 1"),
    "extra_column": (HEADER + "0,1\n60,2,5\n", 3, "expected 2 columns (timestamp,requests), got 3"),
    "trailing_comma": (HEADER + "0,1,\n60,2\n", 2, "got 3"),
    "wrong_header": ("time,count\n0,1\n60,2\n", 1, "the header must be 'timestamp,requests', got 'time,count'"),
    "header_extra_column": ("timestamp,requests,host\n0,1,a\n", 1, "the header must be"),
    "no_header": ("0,1\n60,2\n", 1, "the header must be 'timestamp,requests', got '0,1'"),
    "unparsable_timestamp": (
        HEADER + "2014-04-10T00:00:00,1\n2014-04-10T00:01:00,1\n2014-13-10T00:02:00,2\n",
        4,
        "cannot parse timestamp '2014-13-10T00:02:00'",
    ),
    "empty_timestamp": (HEADER + "0,1\n,3\n", 3, "cannot parse timestamp ''"),
    "timestamp_backwards": (HEADER + "0,1\n60,1\n120,1\n90,1\n", 5, "earlier than the previous line's"),
    "timestamp_repeated": (HEADER + "0,1\n60,1\n60,1\n", 4, "repeats the previous line's"),
    "iso_repeated": (HEADER + "2014-04-10T00:00:00,1\n2014-04-10T00:00:00,2\n", 3, "repeats"),
    "negative_count": (HEADER + "0,1\n60,-1\n", 3, "request count '-1' must be a finite number >= 0"),
    "non_numeric_count": (HEADER + "0,1\n60,abc\n", 3, "request count 'abc' is not a number"),
    "empty_count": (HEADER + "0,1\n60,\n", 3, "request count '' is not a number"),
    "nan_count": (HEADER + "0,1\n60,nan\n", 3, "request count 'nan' must be a finite number"),
    "inf_count": (HEADER + "0,1\n60,inf\n120,1\n", 3, "request count 'inf' must be a finite number"),
    "minus_inf_count": (HEADER + "0,1\n60,1\n120,-inf\n", 4, "'-inf' must be a finite number"),
    "header_only": (HEADER, 1, "no data rows after the header"),
    "header_only_after_blank_lines": ("\n\n" + HEADER + "\n", 3, "no data rows"),
    "one_row": (HEADER + "0,5\n", 2, "cannot be inferred"),
    "irregular_interval": (
        HEADER + "0,1\n60,1\n120,1\n150,1\n210,1\n",
        5,
        "150 s after the first, not a whole number of the 60 s interval",
    ),
    "interval_below_1s": (HEADER + "0,1\n0.5,1\n1,1\n", 3, "interval between timestamps is 0.5 s"),
    "interval_above_1h": (HEADER + "0,1\n7200,1\n14400,1\n", 3, "interval between timestamps is 7200 s"),
    "iso_then_epoch": (HEADER + "2014-04-10T00:00:00,1\n1397088060,1\n", 3, "mixes formats"),
    "epoch_then_iso": (HEADER + "1397088000,1\n1397088060,1\n2014-04-10T00:02:00,1\n", 4, "mixes formats"),
    "naive_then_offset": (HEADER + "2014-04-10T00:00:00,1\n2014-04-10T00:01:00+00:00,1\n", 3, "mixes formats"),
    "not_utf8": (HEADER.encode() + b"0,1\n60,\xff\xfe\n", 3, "not UTF-8"),
    "line_numbers_count_blank_lines": (HEADER + "\n0,1\n\n60,-3\n", 5, "'-3' must be"),
}


@pytest.mark.parametrize("text, line, fault", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_file_error_names_file_line_and_fault(tmp_path, text, line, fault):
    path = write(tmp_path, text)
    with pytest.raises(TraceError) as exc:
        load_trace(path)
    msg = str(exc.value)
    assert msg.startswith(f"{path}, line {line}: "), msg
    assert fault in msg, msg


@pytest.mark.parametrize("text", ["", "\n\n   \n", "\ufeff"], ids=["empty", "blank_lines", "bom_only"])
def test_empty_file_error_names_the_file(tmp_path, text):
    path = write(tmp_path, text)
    with pytest.raises(TraceError, match="the file is empty") as exc:
        load_trace(path)
    assert str(path) in str(exc.value)


def test_errors_of_the_env_config_name_the_file(tmp_path):
    path = write(tmp_path, HEADER + "0,1\n60,-7\n")
    with pytest.raises(TraceError, match=f"{path}, line 3: request count '-7'"):
        ServerlessScalingEnv({"workload": {"shape": {"kind": "trace", "path": str(path)}}})
    with pytest.raises(TraceNotFoundError, match="does not exist"):
        ServerlessScalingEnv({"workload": {"shape": {"kind": "trace", "path": str(tmp_path / "none.csv")}}})


# ----------------------------------------------------------------------------------------- good files


def test_epoch_seconds_file_loads(tmp_path):
    # 1397109600 = 2014-04-10T06:00:00Z
    path = write(tmp_path, HEADER + "1397109600,5\n1397109900,7\n1397110200,0\n")
    tr = load_trace(path)
    np.testing.assert_array_equal(tr.counts, [5.0, 7.0, 0.0])
    assert (tr.interval_seconds, tr.start_clock_seconds, tr.missing_intervals) == (300.0, 21600.0, 0)
    assert tr.source == str(path)


def test_iso_with_utc_offsets_loads_on_the_absolute_time_line(tmp_path):
    # 08:00+02:00 = 06:00Z; the next rows are 5 and 10 min later, written in other offsets
    path = write(
        tmp_path, HEADER + "2014-04-10T08:00:00+02:00,1\n2014-04-10T06:05:00Z,2\n2014-04-10T07:10:00+01:00,3\n"
    )
    tr = load_trace(path)
    np.testing.assert_array_equal(tr.counts, [1.0, 2.0, 3.0])
    assert tr.interval_seconds == 300.0
    assert tr.start_clock_seconds == 8 * 3600.0  # the clock of the first timestamp as written


def test_blank_lines_bom_crlf_quotes_and_spaces_are_accepted(tmp_path):
    text = '\ufeff\r\nTimestamp , Requests\r\n\r\n 2014-04-10T00:04:00 , 94 \r\n\r\n"2014-04-10T00:05:00","6"\r\n'
    tr = load_trace(write(tmp_path, text))
    np.testing.assert_array_equal(tr.counts, [94.0, 6.0])
    assert (tr.interval_seconds, tr.start_clock_seconds) == (60.0, 240.0)


def test_the_interval_is_the_most_common_step_and_longer_steps_are_gaps(tmp_path):
    tr = load_trace(write(tmp_path, HEADER + "0,1\n2,2\n4,3\n10,4\n12,5\n"))
    assert (tr.interval_seconds, tr.missing_intervals, len(tr.counts)) == (2.0, 2, 7)
    # the bounds 1 s and 1 h themselves are allowed
    assert load_trace(write(tmp_path, HEADER + "0,1\n1,2\n", "1s.csv")).interval_seconds == 1.0
    assert load_trace(write(tmp_path, HEADER + "0,1\n3600,2\n", "1h.csv")).interval_seconds == 3600.0


GAP = HEADER + "0,10\n60,20\n240,50\n300,7\n"  # slots 2 and 3 missing
GAP_FILLS = {"interpolate": [10, 20, 30, 40, 50, 7], "zero": [10, 20, 0, 0, 50, 7], "previous": [10, 20, 20, 20, 50, 7]}


@pytest.mark.parametrize("rule", GAP_FILLS)
def test_missing_intervals_are_filled_by_the_documented_rule(tmp_path, rule):
    tr = load_trace(write(tmp_path, GAP), missing=rule)
    np.testing.assert_array_equal(tr.counts, GAP_FILLS[rule])
    assert (tr.interval_seconds, tr.missing_intervals) == (60.0, 2)


def test_unknown_missing_rule_is_refused():
    with pytest.raises(ValueError, match="missing rule must be one of"):
        fill_gaps(np.array([0, 2]), np.array([1.0, 3.0]), "mean")


def test_inline_counts_are_checked():
    with pytest.raises(TraceError, match="count 1 is -1.0"):
        trace_from_counts([1.0, -1.0], 60.0)
    with pytest.raises(TraceError, match="non-empty 1-D"):
        trace_from_counts([], 60.0)
    with pytest.raises(TraceError, match="interval_seconds is 0.5"):
        trace_from_counts([1.0], 0.5)


# ----------------------------------------------------------------------------------------- inline replay

# counts [60, 0, 120] per 60 s interval: rates 1, 0, 2 requests/s for 60 s each (180 s, 180 requests)
INLINE = {"counts": [60.0, 0.0, 120.0], "interval_seconds": 60.0}


def test_inline_counts_are_spread_over_the_steps_of_an_interval():
    np.testing.assert_array_equal(expected(INLINE, 6, 30.0), [30, 30, 0, 0, 60, 60])
    np.testing.assert_array_equal(expected(INLINE, 3, 60.0), [60, 0, 120])
    np.testing.assert_array_equal(expected(INLINE, 1, 180.0), [180])
    # steps across interval boundaries: [0,45) = 45; [45,90) = 15 + 0; [90,135) = 0 + 30; [135,180) = 90
    np.testing.assert_array_equal(expected(INLINE, 4, 45.0), [45, 15, 30, 90])
    ep = Workload(trace_config(INLINE, 6, 30.0)).sample_episode(np.random.default_rng(0))
    np.testing.assert_array_equal(ep.rate(np.array([0.0, 59.9, 60.0, 119.0, 120.0, 179.0])), [1, 1, 0, 0, 2, 2])


def test_time_compression_replays_the_trace_faster():
    # compression 2: an interval lasts 30 simulated seconds, so a 15 s step holds half an interval
    np.testing.assert_array_equal(expected({**INLINE, "time_compression": 2.0}, 6, 15.0), [30, 30, 0, 0, 60, 60])
    # compression 0.5 (slower): an interval lasts 120 s, a 60 s step holds half of one
    np.testing.assert_array_equal(expected({**INLINE, "time_compression": 0.5}, 6, 60.0), [30, 30, 0, 0, 60, 60])


def test_rescale_to_a_target_mean_or_peak_rate():
    # mean rate 180 / 180 s = 1 request/s: a target of 4 multiplies the counts by 4
    mean = expected({**INLINE, "rescale": "mean", "target_rps": 4.0}, 6, 30.0)
    np.testing.assert_allclose(mean, [120, 120, 0, 0, 240, 240], rtol=1e-12)
    assert mean.sum() / 180.0 == pytest.approx(4.0, rel=1e-12)
    # peak rate 120 / 60 s = 2 requests/s: a target of 10 multiplies the counts by 5
    peak = expected({**INLINE, "rescale": "peak", "target_rps": 10.0}, 6, 30.0)
    np.testing.assert_allclose(peak, [150, 150, 0, 0, 300, 300], rtol=1e-12)
    assert peak.max() / 30.0 == pytest.approx(10.0, rel=1e-12)
    # with compression, the target is a rate on the simulator's clock
    fast = expected({**INLINE, "rescale": "mean", "target_rps": 4.0, "time_compression": 3.0}, 6, 10.0)
    np.testing.assert_allclose(fast, [40, 40, 0, 0, 80, 80], rtol=1e-12)


def test_rescale_of_an_empty_trace_is_refused():
    with pytest.raises(ValueError, match="no requests"):
        Workload(
            trace_config(
                {"counts": [0.0, 0.0], "interval_seconds": 60.0, "rescale": "mean", "target_rps": 5.0}, 4, 15.0
            )
        )


def test_loop_wraps_and_no_loop_ends_the_load():
    np.testing.assert_array_equal(expected({**INLINE, "loop": True}, 9, 30.0), [30, 30, 0, 0, 60, 60, 30, 30, 0])
    np.testing.assert_array_equal(expected({**INLINE, "loop": False}, 9, 30.0), [30, 30, 0, 0, 60, 60, 0, 0, 0])
    # a step straddling the end: [150, 210) holds 60 requests of the last interval, then 30 of the next lap
    np.testing.assert_array_equal(expected({**INLINE, "loop": True}, 4, 60.0), [60, 0, 120, 60])
    # a step straddling the end: [105, 210) holds 0 + 120 of this lap and 30 of the next
    np.testing.assert_array_equal(expected({**INLINE, "loop": True}, 2, 105.0), [60, 150])
    np.testing.assert_array_equal(expected({**INLINE, "loop": False}, 2, 105.0), [60, 120])


def test_fixed_window_starts_at_the_offset_in_trace_seconds():
    np.testing.assert_array_equal(expected({**INLINE, "start_offset_seconds": 60.0}, 6, 30.0), [0, 0, 60, 60, 30, 30])
    np.testing.assert_array_equal(
        expected({**INLINE, "start_offset_seconds": 90.0, "loop": False}, 4, 30.0), [0, 60, 60, 0]
    )
    # compression 2: 60 trace seconds are 30 simulated seconds, so the window starts at the same point
    np.testing.assert_array_equal(
        expected({**INLINE, "start_offset_seconds": 60.0, "time_compression": 2.0}, 6, 15.0), [0, 0, 60, 60, 30, 30]
    )


def test_deterministic_arrivals_carry_the_fraction_through_the_env():
    # counts [10, 5] per 60 s, steps of 45 s: expected 7.5, 2.5 + 2.5, 2.5; carrying the fraction: 7, 5, 3
    cfg = trace_config(
        {"counts": [10.0, 5.0], "interval_seconds": 60.0, "loop": False}, 4, 45.0, arrival_process="deterministic"
    )
    env = ServerlessScalingVectorEnv(1, cfg)
    env.reset(seed=0)
    np.testing.assert_array_equal(env.sim.expected[0], [7.5, 5.0, 2.5, 0.0])
    arrivals = [int(env.step(hold())[4]["arrivals"][0]) for _ in range(4)]
    assert arrivals == [7, 5, 3, 0]  # rounding each step down would give 7, 5, 2


# ----------------------------------------------------------------------------------------- windows


RANDOM_WINDOW = {"counts": list(np.arange(1.0, 101.0)), "interval_seconds": 60.0, "start": "random", "loop": False}


def test_random_window_is_drawn_from_the_seed_inside_the_trace():
    wl = Workload(trace_config(RANDOM_WINDOW, 10, 60.0))
    offsets = []
    for seed in range(20):
        a = wl.sample_episode(np.random.default_rng(seed))
        b = wl.sample_episode(np.random.default_rng(seed))
        assert a.offset == b.offset
        np.testing.assert_array_equal(a.expected_arrivals(), b.expected_arrivals())
        # without loop the window fits in the trace: 6000 s minus the 600 s episode
        assert 0.0 <= a.offset <= 5400.0
        # count k + 1 in interval k: a 60 s step from t = 60 i + f holds (60 - f) / 60 of count i + 1 and f / 60
        # of count i + 2, that is i + 1 + f / 60
        i, f = divmod(a.offset, 60.0)
        want = i + 1.0 + np.arange(10) + f / 60.0
        np.testing.assert_allclose(a.expected_arrivals(), want, rtol=1e-12)
        offsets.append(a.offset)
    assert len(set(offsets)) == 20


def test_random_window_episodes_are_reproducible_by_seed(traces_dir):
    cfg = trace_config(
        {
            "path": str(traces_dir / "aws_elb_request_count_5min.csv"),
            "rescale": "mean",
            "target_rps": 200.0,
            "time_compression": 24.0,
            "start": "random",
        },
        40,
        15.0,
    )

    def run(seed: int) -> tuple[np.ndarray, list[np.ndarray]]:
        env = ServerlessScalingVectorEnv(2, cfg)
        obs, _ = env.reset(seed=seed)
        trajectory = [obs]
        actions = np.random.default_rng(99)
        for _ in range(cfg.episode_steps - 1):
            obs, reward, _, _, info = env.step(actions.integers(0, env.sim.num_actions, 2))
            trajectory += [obs, reward, info["arrivals"]]
        return env.sim.expected.copy(), trajectory

    exp_a, traj_a = run(5)
    exp_b, traj_b = run(5)
    exp_c, traj_c = run(6)
    np.testing.assert_array_equal(exp_a, exp_b)
    for x, y in zip(traj_a, traj_b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(exp_a[0], exp_a[1])  # the two clusters replay different windows
    np.testing.assert_array_equal(exp_a[1], exp_c[0])  # cluster 1 of seed 5 is cluster 0 of seed 6
    assert not np.array_equal(exp_a[0], exp_c[0])
    # the batch's cluster 1 is the single env seeded 5 + 1
    single = ServerlessScalingEnv(cfg)
    single.reset(seed=6)
    np.testing.assert_array_equal(single.sim.expected[0], exp_a[1])


def test_fixed_window_on_a_file_and_the_trace_clock(traces_dir):
    path = traces_dir / "aws_elb_request_count_5min.csv"
    _, counts = csv_rows(path)
    # aligned steps: each step is one interval, so the window is the file's counts from the offset on
    cfg = trace_config({"path": str(path), "start_offset_seconds": 30 * 300.0}, 50, 300.0)
    env = ServerlessScalingVectorEnv(1, cfg)
    env.reset(seed=0)
    np.testing.assert_array_equal(env.sim.expected[0], counts[30:80])  # no gap before 2014-04-10T11:29
    # the clock follows the timestamps: the file starts at 00:04 (240 s), the window 9000 s later
    assert env.sim.params[0, core.P_CLOCK0] == 240.0 + 9000.0
    assert env.sim.params[0, core.P_DAY] == 86400.0
    # compressed 24 times: a trace day lasts an hour, and the clock runs 24 times faster too
    cfg = trace_config({"path": str(path), "start_offset_seconds": 1200.0, "time_compression": 24.0}, 10, 12.5)
    env = ServerlessScalingVectorEnv(1, cfg)
    env.reset(seed=0)
    assert env.sim.episodes[0].offset == 50.0
    assert env.sim.params[0, core.P_CLOCK0] == (240.0 + 1200.0) / 24.0
    assert env.sim.params[0, core.P_DAY] == 3600.0
    np.testing.assert_array_equal(env.sim.expected[0], counts[4:14])  # 12.5 s = one 300 s interval / 24


# ----------------------------------------------------------------------------------------- shared traces

# interval (s) of each shared trace, from its README
INTERVALS = {
    "aws_elb_request_count_5min.csv": 300.0,
    "nyc_taxi_passengers_30min.csv": 1800.0,
    "twitter_amzn_mentions_5min.csv": 300.0,
    "twitter_ko_mentions_5min.csv": 300.0,
    "azure_llm_conv_2023_1s.csv": 1.0,
    "alibaba_genai_lora_2024_1min.csv": 60.0,
}
# (step seconds, time compression): steps shorter and longer than an interval, mostly not aligned with them
RESAMPLINGS = [(7.0, 3.3), (15.0, 24.0), (13.0, 100.0), (60.0, 1.0)]


def test_traces_dir_fixture_skips_or_fails_in_ci_without_the_traces(tmp_path, monkeypatch):
    monkeypatch.setenv("SCALING_ENV_TRACES", str(tmp_path / "nowhere"))
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="nowhere"):
        require_traces(*TRACE_FILES)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="nowhere"):
        require_traces(*TRACE_FILES)
    write(tmp_path, HEADER, name=TRACE_FILES[0])
    monkeypatch.setenv("SCALING_ENV_TRACES", str(tmp_path))
    with pytest.raises(pytest.fail.Exception, match=TRACE_FILES[1]):  # the folder without one of the files
        require_traces(*TRACE_FILES)
    assert require_traces(TRACE_FILES[0]) == tmp_path


@pytest.mark.parametrize("name", TRACE_FILES)
def test_each_shared_trace_loads_and_keeps_its_total(name):
    traces_dir = require_traces(name)
    path = traces_dir / name
    stamps, counts = csv_rows(path)
    tr = load_trace(path, missing="zero")
    assert tr.interval_seconds == INTERVALS[name]
    gaps = 8 if name.startswith("aws_elb") else 0  # README: 8 points missing from the ELB trace, none elsewhere
    assert tr.missing_intervals == gaps
    assert len(tr.counts) == len(counts) + gaps
    assert tr.total == counts.sum()
    first = datetime.fromisoformat(stamps[0])
    assert tr.start_clock_seconds == first.hour * 3600 + first.minute * 60 + first.second
    # the last row is in the last slot: the span is (rows + gaps - 1) intervals
    span = (datetime.fromisoformat(stamps[-1]) - first).total_seconds()
    assert span == (len(tr.counts) - 1) * tr.interval_seconds


@pytest.mark.parametrize("name", TRACE_FILES)
def test_each_shared_trace_replays_through_the_env(name):
    traces_dir = require_traces(name)
    cfg = trace_config(
        {
            "path": str(traces_dir / name),
            "rescale": "mean",
            "target_rps": 150.0,
            "time_compression": 24.0,
            "start": "random",
        },
        60,
        15.0,
    )
    env = ServerlessScalingVectorEnv(2, cfg)
    _, info = env.reset(seed=1)
    replay = env.sim.episodes[0].replay
    assert replay.mean_rps() == pytest.approx(150.0, rel=1e-12)
    for b in range(2):
        off = env.sim.episodes[b].offset
        window = replay.cumulative(off + 900.0) - replay.cumulative(off)
        assert env.sim.expected[b].sum() == pytest.approx(window, rel=1e-9)
    backlog = info["backlog"].copy()
    steps, arrivals = 0, 0
    while True:
        _, reward, terminated, truncated, info = env.step(hold(2))
        steps += 1
        assert np.isfinite(reward).all() and not terminated.any()
        for b in range(2):
            assert conservation_ok(backlog[b], {k: v[b] for k, v in info.items() if isinstance(v, np.ndarray)})
        backlog = info["backlog"].copy()
        arrivals += info["arrivals"].sum()
        if truncated.any():
            break
    assert steps == cfg.episode_steps and truncated.all()
    assert arrivals > 0


@pytest.mark.parametrize("name", TRACE_FILES)
def test_expected_arrivals_preserve_the_file_total_across_resampling(name):
    traces_dir = require_traces(name)
    path = traces_dir / name
    total = csv_rows(path)[1].sum()
    duration = load_trace(path).duration_seconds
    for dt, compression in RESAMPLINGS:
        steps = math.ceil(duration / compression / dt) + 1  # the whole trace, and a step past its end
        exp = expected(
            {"path": str(path), "missing": "zero", "time_compression": compression, "loop": False}, steps, dt
        )
        assert abs(exp.sum() - total) <= 1e-6 * total, (dt, compression)
        assert exp[-1] == 0.0


@pytest.mark.parametrize("name", TRACE_FILES)
def test_deterministic_replay_of_the_whole_trace_counts_every_request(name):
    traces_dir = require_traces(name)
    path = traces_dir / name
    total = int(csv_rows(path)[1].sum())
    trace = load_trace(path, missing="zero")
    n = len(trace.counts)

    def arrivals(shape: dict, steps: int, dt: float) -> np.ndarray:
        cfg = trace_config({"path": str(path), "missing": "zero", **shape}, steps, dt, arrival_process="deterministic")
        env = ServerlessScalingVectorEnv(1, cfg)
        env.reset(seed=0)
        return np.array([env.step(hold())[4]["arrivals"][0] for _ in range(steps)])

    # one step per interval, as recorded: the episode is the trace, request for request
    got = arrivals({}, n, trace.interval_seconds)
    assert got.sum() == total
    np.testing.assert_array_equal(got, trace.counts)
    # 1,500 steps of 7 s that cover the trace compressed to 10,500 s: steps and intervals do not align
    got = arrivals({"time_compression": trace.duration_seconds / 10_500.0}, 1500, 7.0)
    assert got.sum() == total


def test_elb_gaps_are_filled_as_documented(traces_dir):
    path = traces_dir / "aws_elb_request_count_5min.csv"
    stamps, counts = csv_rows(path)
    t = np.array([datetime.fromisoformat(s).timestamp() for s in stamps])
    after = np.flatnonzero(np.diff(t) == 600.0)  # rows followed by one missing interval
    assert len(after) == 8 and set(np.diff(t)) == {300.0, 600.0}
    assert stamps[after[0]] == "2014-04-10T11:29:00"
    slots = after + 1 + np.arange(8)  # each earlier gap shifts the later ones by one slot
    fills = {"interpolate": (counts[after] + counts[after + 1]) / 2, "zero": np.zeros(8), "previous": counts[after]}
    for rule, want in fills.items():
        tr = load_trace(path, missing=rule)
        assert tr.missing_intervals == 8
        np.testing.assert_array_equal(tr.counts[slots], want)
        np.testing.assert_array_equal(np.delete(tr.counts, slots), counts)
        assert tr.total == counts.sum() + want.sum()


def test_a_file_that_leaves_out_many_intervals_loads_with_its_interval_given(tmp_path):
    # a 60 s log that skips most empty minutes: the most common step is 120 s, so without the real interval the
    # 60 s step is irregular; with interval_seconds the left-out minutes are gaps, filled by the missing rule
    path = write(tmp_path, HEADER + "0,5\n60,7\n180,1\n300,2\n420,4\n", "sparse.csv")
    with pytest.raises(TraceError, match=r"sparse\.csv, line 3:.*interval_seconds"):
        load_trace(path)
    tr = load_trace(path, "zero", interval_seconds=60.0)
    assert tr.counts.tolist() == [5.0, 7.0, 0.0, 1.0, 0.0, 2.0, 0.0, 4.0] and tr.missing_intervals == 3
    cfg = EnvConfig.from_dict(
        {
            "step_seconds": 60.0,
            "episode_steps": 8,
            "workload": {"shape": {"kind": "trace", "path": str(path), "interval_seconds": 60.0, "missing": "zero"}},
        }
    )
    assert Workload(cfg).sample_episode(np.random.default_rng(0)).expected_arrivals().tolist() == tr.counts.tolist()


def test_random_windows_of_a_long_trace_never_wrap_around_its_end():
    # 10 intervals of 60 s, episodes of 4 steps of 60 s: starts are drawn in [0, 600 - 240) so that the window
    # lies inside the trace (a wrapped window would jump the time-of-day clock)
    cfg = EnvConfig.from_dict(
        {
            "step_seconds": 60.0,
            "episode_steps": 4,
            "workload": {
                "shape": {
                    "kind": "trace",
                    "counts": [float(i) for i in range(10)],
                    "interval_seconds": 60.0,
                    "start": "random",
                }
            },
        }
    )
    wl = Workload(cfg)
    offsets = [wl.sample_episode(np.random.default_rng(s)).offset for s in range(300)]
    assert 0.0 <= min(offsets) and max(offsets) <= 360.0 and max(offsets) > 300.0
