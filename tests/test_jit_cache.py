"""numba's cache is dropped when any compiled module changes (numba itself only watches a function's own file)."""

from __future__ import annotations

import shutil
from pathlib import Path

import scaling_env.sim
from scaling_env.sim.jit_cache import compiled_sources, invalidate_if_sources_changed


def copy_of_the_sim_package(tmp_path: Path) -> Path:
    """The compiled sources (the sim folder with its subfolders, and fields.py beside it) copied under tmp_path;
    returns the copy's sim folder."""
    sim = tmp_path / "pkg" / "sim"
    source = Path(scaling_env.sim.__file__).parent
    for path in compiled_sources(source):
        target = sim.parent / path.name if path.name == "fields.py" else sim / path.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
    return sim


def test_cached_code_is_dropped_when_a_helper_module_changes(tmp_path):
    sim = copy_of_the_sim_package(tmp_path)
    cache = sim / "__pycache__"
    cache.mkdir()
    stale = cache / "simulator.step_batch-1.py311.nbi"
    stale.write_text("stale")
    assert invalidate_if_sources_changed(sim) is True  # no stamp yet
    assert not stale.exists()

    stale.write_text("fresh")
    assert invalidate_if_sources_changed(sim) is False  # sources unchanged: keep it
    assert stale.exists()

    with open(sim / "rng.py", "a") as f:  # an edit in a helper that the kernel calls
        f.write("\n# changed\n")
    assert invalidate_if_sources_changed(sim) is True
    assert not stale.exists()

    stale.write_text("fresh")
    assert invalidate_if_sources_changed(sim) is False
    with open(sim.parent / "fields.py", "a") as f:  # the column constants the kernels read
        f.write("\n# changed\n")
    assert invalidate_if_sources_changed(sim) is True


def test_the_request_backends_cache_is_dropped_when_the_column_constants_change(tmp_path):
    # the request-level backend (sim/request) reads the same column constants: a stale copy of its compiled loop
    # would write its counts into the wrong info columns
    sim = copy_of_the_sim_package(tmp_path)
    assert (sim / "request" / "loop.py").exists()
    invalidate_if_sources_changed(sim)
    cache = sim / "request" / "__pycache__"
    cache.mkdir()
    stale = cache / "loop.step_cluster-97.py311.nbi"
    stale.write_text("fresh")
    assert invalidate_if_sources_changed(sim) is False
    with open(sim.parent / "fields.py", "a") as f:
        f.write("\n# changed\n")
    assert invalidate_if_sources_changed(sim) is True
    assert not stale.exists()
    stale.write_text("fresh")
    with open(sim / "request" / "loop.py", "a") as f:
        f.write("\n# changed\n")
    assert invalidate_if_sources_changed(sim) is True
    assert not stale.exists()
