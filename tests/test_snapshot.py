"""Snapshot, restore and fork of the simulator and the envs: a restored state continues bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from scaling_env import EnvConfig, ServerlessScalingEnv, ServerlessScalingVectorEnv
from scaling_env.fields import INFO_NAMES
from scaling_env.sim.simulator import BatchSimulator
from scaling_env.sim.snapshot import SnapshotError, state_fields

# every random mechanism on: random-walk workload drawn per episode, jitter, crashes, an outage, random routing
BUSY = EnvConfig.coerce(
    {
        "episode_steps": 30,
        "workload": {
            "shape": {"kind": "random_walk", "start_rps": 600.0, "volatility": 0.3},
            "random_phase": True,
            "scale_jitter": 0.3,
        },
        "instances": {"cold_start_seconds": 20.0, "cold_start_jitter": 0.5},
        "failures": {"mtbf_seconds": 600.0, "outages": [{"time_seconds": 60.0, "fraction": 0.5}]},
        "load_balancer": {"algorithm": "random"},
        "scaling": {"scale_out_cooldown_seconds": 15.0, "scale_in_cooldown_seconds": 30.0},
    }
)
ACTIONS = np.random.default_rng(7).integers(0, 5, size=(200, 8))
# the v1 observation (history) with delayed metrics whose period and delay are not multiples of the step: the
# monitoring's ring of step values, prior, moving averages and last action must be restored too
BUSY_V1_DELAYED = BUSY.for_version(1).with_updates(
    {
        "metrics": {
            "sources": {
                "cloudwatch": {
                    "period_seconds": 60.0,
                    "delay_seconds": 50.0,
                    "metrics": ["cpu_utilization", "arrivals", "latency_p95_s", "crashes"],
                },
                "prometheus": {"period_seconds": 20.0, "metrics": ["memory_utilization", "backlog"]},
            }
        }
    }
)


def outputs(sim: BatchSimulator) -> tuple[np.ndarray, ...]:
    return tuple(a.copy() for a in sim.outputs)


def run_autoreset(sim: BatchSimulator, start: int, stop: int) -> list[tuple[np.ndarray, ...]]:
    """Steps start..stop-1 with ACTIONS, through episode ends (new episodes draw from the generators)."""
    out = []
    for k in range(start, stop):
        sim.step_autoreset(ACTIONS[k, : sim.num_envs])
        out.append(outputs(sim))
    return out


def same(x, y) -> bool:
    """Bit-for-bit equality of nested tuples, dicts and arrays (NaN equals NaN)."""
    if isinstance(x, dict):
        return isinstance(y, dict) and x.keys() == y.keys() and all(same(x[k], y[k]) for k in x)
    if isinstance(x, (tuple, list)):
        return len(x) == len(y) and all(same(u, v) for u, v in zip(x, y))
    a, b = np.asarray(x), np.asarray(y)
    if a.dtype == object:
        return a.shape == b.shape and all(same(u, v) for u, v in zip(a.ravel(), b.ravel()))
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


def assert_same(a: list, b: list) -> None:
    assert len(a) == len(b)
    for k, (x, y) in enumerate(zip(a, b)):
        for u, v in zip(x, y):
            assert np.array_equal(u, v), f"differs at step {k}"


@pytest.mark.parametrize("config", [BUSY, BUSY_V1_DELAYED], ids=["v0", "v1-delayed-metrics"])
def test_simulator_restore_reproduces_the_trajectory_through_episode_ends(config):
    sim = BatchSimulator(config, num_envs=4)
    sim.seed([1, 2, 3, 4])
    sim.reset()
    run_autoreset(sim, 0, 12)
    snap = sim.get_state()
    first = run_autoreset(sim, 12, 75)  # two episode ends: the restored generators draw the next episodes
    sim.set_state(snap)
    assert_same(first, run_autoreset(sim, 12, 75))
    # every per-cluster array of the records was copied: the restored state equals the snapshot
    sim.set_state(snap)
    for name, array in state_fields(sim).items():
        assert np.array_equal(array, snap.arrays[name]), name
    assert {"history", "prior", "ema", "control"} <= set(snap.arrays)  # the monitoring's record (monitoring.py)


# the serverless platform mode (issue 17) keeps more state: scaling tokens, keep-alive, the activator's buffer and
# its age, idle clocks, cold-start lengths and provisioned flags of the slots
PLATFORM = EnvConfig.coerce(
    {
        "episode_steps": 30,
        "step_seconds": 10.0,
        "workload": {
            "shape": {"kind": "random_walk", "start_rps": 30.0, "volatility": 0.8, "min_rps": 0.0},
            "scale_jitter": 0.3,
        },
        "instances": {"concurrency": 2, "cold_start_seconds": 15.0, "cold_start_jitter": 0.5},
        "scaling": {"min_instances": 0, "max_instances": 40, "scale_out_cooldown_seconds": 0.0},
        "failures": {"mtbf_seconds": None},
        "platform": {
            "enabled": True,
            "max_concurrency": 40,
            "scale_rate_instances": 4,
            "keep_alive_seconds": 25.0,
            "initial_provisioned": 2,
            "activator": True,
        },
    }
)


def test_platform_mode_restore_reproduces_the_trajectory_and_state():
    sim = BatchSimulator(PLATFORM, num_envs=4)
    sim.seed([1, 2, 3, 4])
    sim.reset()
    run_autoreset(sim, 0, 12)
    snap = sim.get_state()
    first = run_autoreset(sim, 12, 75)
    throttled = INFO_NAMES.index("throttled")
    assert sum(float(o[1][:, throttled].sum()) for o in first) > 0  # the limits were reached
    sim.set_state(snap)
    assert_same(first, run_autoreset(sim, 12, 75))
    sim.set_state(snap)
    for name, array in state_fields(sim).items():
        assert np.array_equal(array, snap.arrays[name]), name


def test_restore_into_another_cluster_and_another_simulator():
    sim = BatchSimulator(BUSY, num_envs=3)
    sim.seed([5, 6, 7])
    sim.reset()
    run_autoreset(sim, 0, 9)
    snap = sim.get_state([1])
    ref = run_autoreset(sim, 9, 50)
    other = BatchSimulator(BUSY, num_envs=5)
    other.seed([11, 12, 13, 14, 15])
    other.reset()
    other.set_state(snap, [3])
    # cluster 3 of the other simulator (stepped with cluster 1's actions) follows cluster 1's trajectory
    got = []
    for k in range(9, 50):
        acts = ACTIONS[k, :5].copy()
        acts[3] = ACTIONS[k, 1]
        other.step_autoreset(acts)
        got.append(tuple(a[3].copy() for a in other.outputs))
    assert_same([tuple(a[1] for a in r) for r in ref], got)
    assert other.episodes[3] is not None


def test_fork_one_cluster_into_many_gives_identical_trajectories():
    sim = BatchSimulator(BUSY, num_envs=6)
    sim.seed(list(range(6)))
    sim.reset()
    for k in range(7):
        sim.step(ACTIONS[k, :6])
    sim.fork(2, [0, 1, 3, 4, 5])
    for k in range(7, 29):
        sim.step(np.full(6, ACTIONS[k, 0]))
        for a in sim.outputs:
            assert all(np.array_equal(a[i], a[2]) for i in range(6)), f"step {k}"
    for b in range(6):  # each fork got its own generator (same state, not one shared stream)
        assert sim.generators[b] is not sim.generators[2] or b == 2
        assert sim.generators[b].bit_generator.state == sim.generators[2].bit_generator.state


def test_snapshot_of_another_config_is_refused():
    sim = BatchSimulator(BUSY, num_envs=2)
    sim.reset()
    other = BatchSimulator(BUSY.with_updates({"scaling": {"max_instances": 32}}), num_envs=2)
    with pytest.raises(SnapshotError, match="different config.*scaling"):
        other.set_state(sim.get_state())
    with pytest.raises(SnapshotError, match="2 clusters but 3 target ids"):
        BatchSimulator(BUSY, num_envs=4).set_state(sim.get_state(), [0, 1, 2])
    with pytest.raises(SnapshotError, match=r"ids must lie in \[0, 1\]"):
        sim.get_state([2])


def test_single_env_get_state_set_state():
    env = ServerlessScalingEnv(BUSY)
    env.reset(seed=3)
    acts = ACTIONS[:, 0]
    for k in range(10):
        env.step(acts[k])
    state = env.get_state()

    def play() -> list:
        out = []
        for k in range(10, BUSY.episode_steps):
            out.append(env.step(acts[k]))
        out.append(env.reset())  # the next episode comes from the restored np_random
        out.append(env.step(2))
        return out

    first = play()
    env.set_state(state)
    second = play()
    for a, b in zip(first, second):
        assert same(a, b)
    with pytest.raises(SnapshotError, match="different config"):
        ServerlessScalingEnv(BUSY.with_updates({"episode_steps": 31})).set_state(state)
    with pytest.raises(SnapshotError, match="taken from a ServerlessScalingEnv"):
        ServerlessScalingVectorEnv(num_envs=1, config=BUSY).set_state(state)


def test_vector_env_get_state_set_state_across_autoreset():
    env = ServerlessScalingVectorEnv(num_envs=3, config=BUSY)
    env.reset(seed=20)
    for k in range(8):
        env.step(ACTIONS[k, :3])
    state = env.get_state()

    def play() -> list:
        return [env.step(ACTIONS[k, :3]) for k in range(8, 70)]  # through two next-step autoresets

    first = play()
    env.set_state(state)
    second = play()
    for a, b in zip(first, second):
        for x, y in zip(a[:4], b[:4]):
            assert np.array_equal(x, y)
        assert same(a[4], b[4])
