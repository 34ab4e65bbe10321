"""numba's cache is dropped when any compiled module changes (numba itself only watches a function's own file)."""

from __future__ import annotations

import shutil
from pathlib import Path

import scaling_env.sim
from scaling_env.sim.jit_cache import compiled_sources, invalidate_if_sources_changed


def test_cached_code_is_dropped_when_a_helper_module_changes(tmp_path):
    sim = tmp_path / "pkg" / "sim"
    sim.mkdir(parents=True)
    for path in compiled_sources(Path(scaling_env.sim.__file__).parent):
        shutil.copy(path, sim.parent / path.name if path.name == "fields.py" else sim / path.name)
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
