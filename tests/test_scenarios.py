"""The scenario library and domain randomisation (issue 3)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import TRACE_FILES, require_traces

from agents import make_policy
from scaling_env import ConfigError, EnvConfig, ServerlessScalingEnv, ServerlessScalingVectorEnv, traces
from scaling_env.config import Range, draw_ranges, has_ranges
from scaling_env.scenarios import (
    SCENARIO_DIR,
    TraceNotFoundError,
    list_scenarios,
    load_scenario,
    load_scenarios,
    scenario_names,
)
from scaling_env.sim import simulator as core
from scaling_env.workload import Workload

REQUIRED = {"steady", "diurnal", "flash_crowd", "failure_storm", "cold_start_heavy", "memory_pressure", "noisy_trace"}
ALL = scenario_names()


def raw(name: str) -> dict:
    return yaml.safe_load((SCENARIO_DIR / f"{name}.yaml").read_text())


def is_trace(name: str) -> bool:
    return raw(name)["env"]["workload"]["shape"]["kind"] == "trace"


def run_episode(config: EnvConfig, num_envs: int = 2, seed: int = 0) -> dict[str, np.ndarray]:
    """One full episode under the CPU threshold policy; per-step info arrays stacked (steps, B)."""
    env = ServerlessScalingVectorEnv(num_envs, config)
    obs, info = env.reset(seed=seed)
    policy = make_policy("threshold", config)
    policy.reset(seed=seed, num_envs=num_envs)
    log: dict[str, list] = {"reward": [], "truncated": []}
    for _ in range(config.episode_steps):
        obs, reward, terminated, truncated, info = env.step(policy.act_batch(obs, info))
        assert not terminated.any()
        log["reward"].append(reward)
        log["truncated"].append(truncated)
        for key in ("arrivals", "instances_warm", "served"):
            log.setdefault(key, []).append(info[key])
    return {k: np.array(v) for k, v in log.items()}


# ----------------------------------------------------------------------------------------- library


def test_the_issue_scenarios_are_shipped():
    assert REQUIRED <= set(ALL)
    assert [r[0] for r in list_scenarios()] == ALL


@pytest.mark.parametrize("name", ALL)
def test_every_scenario_loads_and_runs_a_full_episode(name):
    sc = load_scenario(name)  # a trace scenario's file ships with the package
    assert (sc.name, sc.path) == (name, SCENARIO_DIR / f"{name}.yaml")
    log = run_episode(sc.config)
    n = sc.config.episode_steps
    assert log["truncated"].shape == (n, 2)
    assert not log["truncated"][:-1].any() and log["truncated"][-1].all()  # the episode lasts its full length
    assert np.isfinite(log["reward"]).all()
    assert (log["arrivals"].sum(axis=0) > 0).all() and (log["served"].sum(axis=0) > 0).all()


def spelled_out(data: dict, model: dict, where: str) -> list[str]:
    """Differences between the keys of a scenario's mapping and the config's full dump, recursively."""
    faults = []
    if set(data) != set(model):
        faults.append(f"{where}: missing {sorted(set(model) - set(data))}, extra {sorted(set(data) - set(model))}")
    for key in set(data) & set(model):
        if key == "sources" and where == "env.metrics":  # named metric sources, each with every field
            for name, src in data[key].items():
                full = {"period_seconds": None, "delay_seconds": 0, "metrics": []}
                faults += spelled_out(src, full, f"{where}.sources.{name}")
        elif isinstance(model[key], dict) and "low" not in model[key]:  # a section, not a range
            faults += spelled_out(data[key], model[key], f"{where}.{key}")
        elif key == "outages":
            for i, outage in enumerate(data[key]):
                faults += spelled_out(outage, {"time_seconds": 0, "fraction": 0}, f"{where}.outages.{i}")
    return faults


@pytest.mark.parametrize("name", ALL)
def test_every_scenario_file_spells_out_every_field(name):
    data = raw(name)
    assert set(data) == {"description", "env"}
    shape = data["env"]["workload"]["shape"]
    # the full config of this scenario's shape kind, with every field (the defaults of that shape)
    model = EnvConfig.from_dict({"workload": {"shape": {"kind": shape["kind"], **_required(shape)}}}).model_dump()
    assert spelled_out(data["env"], model, "env") == []


def _required(shape: dict) -> dict:
    """The fields a shape cannot be built without (a trace's source)."""
    if shape["kind"] != "trace":
        return {}
    return {"counts": [1.0], "interval_seconds": 60.0} if shape.get("counts") else {"path": "x.csv"}


def test_spelled_out_check_catches_a_missing_field():
    data = raw("steady")
    del data["env"]["instances"]["service_cv"]
    del data["env"]["workload"]["shape"]["rate_rps"]
    model = EnvConfig.from_dict({"workload": {"shape": {"kind": "constant"}}}).model_dump()
    faults = spelled_out(data["env"], model, "env")
    assert len(faults) == 2 and "service_cv" in faults[0] + faults[1] and "rate_rps" in faults[0] + faults[1]


@pytest.mark.parametrize("name", ALL)
def test_every_description_is_one_line(name):
    description = raw(name)["description"]
    assert isinstance(description, str) and description.strip() and "\n" not in description
    assert len(description) <= 200


def test_the_scenarios_model_what_their_names_say():
    def cfg(name: str) -> EnvConfig:
        return EnvConfig.from_dict(raw(name)["env"])

    assert cfg("steady").workload.shape.kind == "constant"
    diurnal = cfg("diurnal")
    assert diurnal.workload.shape.kind == "diurnal"
    # the whole daily cycle fits in the episode
    assert diurnal.workload.day_seconds <= diurnal.episode_steps * diurnal.step_seconds
    spike = cfg("flash_crowd").workload.shape
    assert spike.kind == "spike" and spike.peak_rps == 10 * spike.base_rps and 60 <= spike.duration_seconds <= 900
    storm = cfg("failure_storm").failures
    assert storm.mtbf_seconds <= 3600 and len(storm.outages) == 1
    assert abs(storm.outages[0].fraction - 1 / 3) < 0.01
    boot = cfg("cold_start_heavy").instances
    assert boot.cold_start_seconds * (1 - boot.cold_start_jitter) >= 30.0
    mem = cfg("memory_pressure").instances
    limit = mem.instance_memory_gb * 1024
    assert cfg("memory_pressure").failures.memory_crash
    # serving at full concurrency fits; a full queue on top does not
    assert mem.memory_base_mb + mem.memory_mb_per_request * mem.concurrency < limit
    assert mem.memory_base_mb + mem.memory_mb_per_request * (mem.concurrency + mem.max_queue) > limit
    trace = cfg("noisy_trace").workload.shape
    assert trace.kind == "trace" and trace.rescale != "none"
    # one of the shared traces, by a path relative to the traces folder (so the file works on any machine)
    assert trace.path in TRACE_FILES and not Path(trace.path).is_absolute()


def test_trace_scenario_resolves_its_file_in_the_traces_folder():
    relative = raw("noisy_trace")["env"]["workload"]["shape"]["path"]
    traces_dir = require_traces(relative)
    sc = load_scenario("noisy_trace", traces_dir=traces_dir)
    assert sc.config.workload.shape.path == str((traces_dir / relative).resolve())
    rows = {name: note for name, _, note in list_scenarios(traces_dir)}
    assert rows["noisy_trace"] == f"trace {(traces_dir / relative).resolve()}"


# ----------------------------------------------------------------------------------------- errors


@pytest.fixture
def no_traces(tmp_path, monkeypatch):
    """Every traces folder empty: the option, the variable and the working directory point to an empty folder,
    and the folders outside it (the shared one beside the checkout) are left out of the search."""
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("SCALING_ENV_TRACES", str(empty))
    monkeypatch.chdir(empty)
    original = traces.trace_dirs
    inside = empty.resolve()

    def only_empty(traces_dir=None):
        return [p for p in original(traces_dir) if p.resolve() == inside or inside in p.resolve().parents]

    monkeypatch.setattr(traces, "trace_dirs", only_empty)
    return empty


def test_missing_trace_file_names_the_file_the_folders_and_how_to_set_them(no_traces):
    with pytest.raises(TraceNotFoundError) as exc:
        load_scenario("noisy_trace", traces_dir=no_traces)
    msg = str(exc.value)
    relative = raw("noisy_trace")["env"]["workload"]["shape"]["path"]
    assert "scenario noisy_trace" in msg
    assert f"trace file {relative!r} not found" in msg
    assert str(no_traces) in msg and str(no_traces / "traces") in msg  # the folders searched
    assert "--traces-dir" in msg and "SCALING_ENV_TRACES" in msg  # how to set it


def test_multi_scenario_load_skips_a_missing_trace_with_its_message(no_traces):
    loaded, skipped = load_scenarios(["steady", "noisy_trace", "flash_crowd"], traces_dir=no_traces)
    assert [s.name for s in loaded] == ["steady", "flash_crowd"]
    assert len(skipped) == 1
    assert skipped[0].startswith("skipped: scenario noisy_trace") and "SCALING_ENV_TRACES" in skipped[0]
    rows = {name: note for name, _, note in list_scenarios(no_traces)}
    assert "NOT FOUND" in rows["noisy_trace"] and rows["steady"] == ""
    # any other fault still raises
    with pytest.raises(ConfigError, match="unknown scenario 'nope'"):
        load_scenarios(["steady", "nope"])


def test_env_on_a_relative_trace_path_that_is_missing_says_where_it_looked(no_traces):
    with pytest.raises(TraceNotFoundError, match="not found in the traces folders searched"):
        ServerlessScalingEnv({"workload": {"shape": {"kind": "trace", "path": "no_such_trace.csv"}}})


def test_unknown_scenario_name_lists_the_known_ones():
    with pytest.raises(ConfigError) as exc:
        load_scenario("steddy")
    msg = str(exc.value)
    assert "unknown scenario 'steddy'" in msg and "steady" in msg and "flash_crowd" in msg
    with pytest.raises(ConfigError, match="does not exist"):
        load_scenario("no/such/file.yaml")


def scenario_file(tmp_path: Path, data: dict | str) -> Path:
    path = tmp_path / "mine.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def test_scenario_given_by_path_loads(tmp_path):
    path = tmp_path / "copy.yaml"
    shutil.copy(SCENARIO_DIR / "steady.yaml", path)
    sc = load_scenario(path)
    assert sc.name == "copy" and sc.config == load_scenario("steady").config


@pytest.mark.parametrize(
    "data, fragment",
    [
        ({**raw("steady"), "seed": 3}, "unknown key(s) seed (a scenario has 'description' and 'env')"),
        ({"description": "two\nlines", "env": {}}, "'description' must be a one-line string"),
        ({"env": {}}, "'description' must be a one-line string"),
        ({"description": "no env"}, "'env' must be a mapping"),
        ("- a list\n", "expected a mapping of scenario fields"),
        ("description: [unclosed\n", "not valid YAML"),
        ({"description": "bad field", "env": {"scaling": {"max_instance": 5}}}, "scaling.max_instance: unknown key"),
    ],
    ids=[
        "unknown_top_level_key",
        "two_line_description",
        "no_description",
        "no_env",
        "not_a_mapping",
        "bad_yaml",
        "bad_env_field",
    ],
)
def test_malformed_scenario_file_errors_name_the_file(tmp_path, data, fragment):
    path = scenario_file(tmp_path, data)
    with pytest.raises(ConfigError) as exc:
        load_scenario(path)
    assert str(path) in str(exc.value) and fragment in str(exc.value), str(exc.value)


# ----------------------------------------------------------------------------------------- ranges

SPIKE_RANGES = {
    "kind": "spike",
    "base_rps": [100.0, 600.0],
    "peak_rps": {"low": 1000.0, "high": 4000.0},
    "start_seconds": [120.0, 3000.0],
    "duration_seconds": [60.0, 600.0],
}


def test_ranges_draw_new_values_at_each_reset_within_bounds_reproducibly():
    cfg = EnvConfig.from_dict({"episode_steps": 4, "workload": {"shape": SPIKE_RANGES}})
    assert has_ranges(cfg)

    def draws(seed: int, resets: int = 6) -> list[tuple]:
        env = ServerlessScalingEnv(cfg)
        env.reset(seed=seed)
        out = []
        for _ in range(resets):
            shape = env.sim.episodes[0].config.workload.shape
            out.append((shape.base_rps, shape.peak_rps, shape.start_seconds, shape.duration_seconds))
            # the episode's arrivals follow the drawn values: the first 15 s are before any burst (start >= 120)
            assert env.sim.expected[0, 0] == pytest.approx(15.0 * shape.base_rps, rel=1e-12)
            env.reset()
        return out

    a, b, c = draws(1), draws(1), draws(2)
    assert a == b and a != c
    assert len(set(a)) == 6
    for base, peak, start, duration in a + c:
        assert 100 <= base <= 600 and 1000 <= peak <= 4000 and 120 <= start <= 3000 and 60 <= duration <= 600


def test_a_scenario_with_ranges_draws_per_cluster_failure_rates():
    cfg = EnvConfig.from_dict({"episode_steps": 4, "failures": {"mtbf_seconds": [600.0, 86400.0]}})
    env = ServerlessScalingVectorEnv(4, cfg)
    env.reset(seed=10)
    hazards = env.sim.params[:, core.P_HAZARD].copy()
    assert len(set(hazards.tolist())) == 4
    dt = cfg.step_seconds
    lo, hi = -np.expm1(-dt / 86400.0), -np.expm1(-dt / 600.0)
    assert ((hazards >= lo) & (hazards <= hi)).all()
    for b in range(4):
        mtbf = env.sim.episodes[b].config.failures.mtbf_seconds
        assert hazards[b] == -np.expm1(-dt / mtbf)
    # cluster i of the batch is the single env seeded 10 + i: same draws and same trajectory
    actions = np.random.default_rng(0).integers(0, env.sim.num_actions, (4, 4))
    batch = [env.step(a)[0] for a in actions]
    for b in range(4):
        single = ServerlessScalingEnv(cfg)
        single.reset(seed=10 + b)
        np.testing.assert_array_equal(single.sim.params[0], env.sim.params[b])
        for k in range(4):
            np.testing.assert_array_equal(single.step(int(actions[k, b]))[0], batch[k][b])
    # the autoreset at the end of the episode draws again
    env.step(np.zeros(4, dtype=np.int64))
    assert not np.array_equal(env.sim.params[:, core.P_HAZARD], hazards)


@pytest.mark.parametrize("name", [n for n in ALL if n.startswith("train_")])
def test_training_scenarios_draw_within_their_ranges(name):
    cfg = load_scenario(name).config
    assert has_ranges(cfg)
    env = ServerlessScalingVectorEnv(8, cfg)
    env.reset(seed=0)
    # each cluster draws its own values: its parameters or its arrival expectations differ from the others'
    fingerprints = {(env.sim.params[b].tobytes(), env.sim.expected[b].tobytes()) for b in range(8)}
    assert len(fingerprints) == 8
    ranges = _ranges(raw(name)["env"])
    for b in range(8):
        drawn = env.sim.episodes[b].config.model_dump()
        for where, (low, high) in ranges.items():
            value = _get(drawn, where)
            assert low <= value <= high, (where, value)


def _ranges(data: dict, where: tuple = ()) -> dict[tuple, tuple[float, float]]:
    out = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(_ranges(value, (*where, key)))
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            for i, item in enumerate(value):
                out.update(_ranges(item, (*where, key, i)))
        elif isinstance(value, list) and len(value) == 2 and key != "scale_steps":
            out[(*where, key)] = (value[0], value[1])
    return out


def _get(data, where: tuple):
    for key in where:
        data = data[key]
    return data


def test_outage_ranges_are_drawn_per_cluster():
    cfg = EnvConfig.from_dict(
        {
            "episode_steps": 4,
            "failures": {
                "outages": [
                    {"time_seconds": [300.0, 3300.0], "fraction": [0.2, 0.5]},
                    {"time_seconds": 60.0, "fraction": 0.1},
                ]
            },
        }
    )
    env = ServerlessScalingVectorEnv(3, cfg)
    env.reset(seed=0)
    table = env.sim.outages
    assert len(set(table[:, 0, 0].tolist())) == 3 and len(set(table[:, 0, 1].tolist())) == 3
    assert ((table[:, 0, 0] >= 300) & (table[:, 0, 0] <= 3300)).all()
    assert ((table[:, 0, 1] >= 0.2) & (table[:, 0, 1] <= 0.5)).all()
    np.testing.assert_array_equal(table[:, 1], [[60.0, 0.1]] * 3)


def test_a_config_without_ranges_draws_nothing():
    cfg = EnvConfig.from_dict({"workload": {"shape": {"kind": "spike"}}})
    assert not has_ranges(cfg) and not Workload(cfg).randomised
    gen = np.random.default_rng(0)
    state = gen.bit_generator.state
    assert draw_ranges(cfg, gen) is cfg
    assert gen.bit_generator.state == state


def test_a_degenerate_range_is_its_value():
    plain = EnvConfig.from_dict(
        {
            "episode_steps": 8,
            "workload": {"shape": {"kind": "spike", "peak_rps": 2000.0}},
            "failures": {"mtbf_seconds": 900.0},
        }
    )
    ranged = EnvConfig.from_dict(
        {
            "episode_steps": 8,
            "workload": {"shape": {"kind": "spike", "peak_rps": [2000.0, 2000.0]}},
            "failures": {"mtbf_seconds": {"low": 900.0, "high": 900.0}},
        }
    )
    assert has_ranges(ranged) and draw_ranges(ranged, np.random.default_rng(0)) == plain
    a, b = ServerlessScalingEnv(plain), ServerlessScalingEnv(ranged)
    a.reset(seed=0)
    b.reset(seed=0)
    np.testing.assert_array_equal(a.sim.params, b.sim.params)
    np.testing.assert_array_equal(a.sim.expected, b.sim.expected)


@pytest.mark.parametrize(
    "data, message",
    [
        (
            {"workload": {"shape": {"kind": "diurnal", "peak_rps": {"low": -5.0, "high": 100.0}}}},
            "workload.shape.diurnal.peak_rps.low: Input should be greater than or equal to 0",
        ),
        (
            {"workload": {"shape": {"kind": "diurnal", "peak_rps": [3000.0, 1000.0]}}},
            "workload.shape.diurnal.peak_rps: Value error, range low (3000.0) must be <= high (1000.0)",
        ),
        (
            {"workload": {"shape": {"kind": "spike", "start_seconds": [1.0, 2.0, 3.0]}}},
            "workload.shape.spike.start_seconds: Value error, a range is [low, high], got 3 values",
        ),
        (
            {"workload": {"shape": {"kind": "spike", "start_seconds": {"low": 5.0}}}},
            "workload.shape.spike.start_seconds.high: Field required",
        ),
        (
            {"workload": {"shape": {"kind": "spike", "start_seconds": {"low": 5.0, "high": 6.0, "mid": 5.5}}}},
            "workload.shape.spike.start_seconds.mid: unknown key",
        ),
        ({"failures": {"mtbf_seconds": [0.0, 100.0]}}, "failures.mtbf_seconds.low: Input should be greater than 0"),
        (
            {"failures": {"outages": [{"time_seconds": 10.0, "fraction": [0.5, 1.5]}]}},
            "failures.outages.0.fraction.high: Input should be less than or equal to 1",
        ),
        ({"workload": {"day_seconds": [0.0, 100.0]}}, "workload.day_seconds.low: Input should be greater than 0"),
        (
            {"workload": {"shape": {"kind": "diurnal", "trough_rps": [100.0, 900.0], "peak_rps": [800.0, 2000.0]}}},
            "the lowest peak >= the highest trough",
        ),
    ],
    ids=[
        "below_bound",
        "low_above_high",
        "three_values",
        "no_high",
        "unknown_key",
        "mtbf_zero",
        "fraction_high",
        "period_zero",
        "peak_below_trough",
    ],
)
def test_range_errors_name_the_field(data, message):
    with pytest.raises(ConfigError) as exc:
        EnvConfig.from_dict(data)
    assert message in str(exc.value), str(exc.value)


def test_range_accepts_a_pair_or_a_mapping():
    assert Range.model_validate([1, 2]) == Range(low=1.0, high=2.0) == Range.model_validate({"low": 1, "high": 2})
    cfg = EnvConfig.from_dict({"workload": {"shape": {"kind": "constant", "rate_rps": [10, 20]}}})
    rate = cfg.workload.shape.rate_rps
    assert isinstance(rate, Range) and (rate.low, rate.high) == (10.0, 20.0)
    assert EnvConfig.from_dict(cfg.model_dump()) == cfg  # a dump round-trips
