"""numba's cache is dropped when any compiled module changes (numba itself only watches a function's own file)."""

from __future__ import annotations

import shutil
from pathlib import Path

import scaling_env
from scaling_env._jit_cache import _COMPILED, invalidate_if_sources_changed


def test_cached_code_is_dropped_when_a_helper_module_changes(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    src = Path(scaling_env.__file__).parent
    for name in _COMPILED:
        shutil.copy(src / name, pkg / name)
    cache = pkg / "__pycache__"
    cache.mkdir()
    (cache / "core.step_batch-1.py311.nbi").write_text("stale")
    assert invalidate_if_sources_changed(pkg) is True  # no stamp yet
    assert not (cache / "core.step_batch-1.py311.nbi").exists()

    (cache / "core.step_batch-1.py311.nbi").write_text("fresh")
    assert invalidate_if_sources_changed(pkg) is False  # sources unchanged: keep it
    assert (cache / "core.step_batch-1.py311.nbi").exists()

    with open(pkg / "rng.py", "a") as f:  # an edit in a helper that core.py's kernel calls
        f.write("\n# changed\n")
    assert invalidate_if_sources_changed(pkg) is True
    assert not (cache / "core.step_batch-1.py311.nbi").exists()
