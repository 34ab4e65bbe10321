"""Keep numba's on-disk cache consistent with the sources of the compiled simulation.

numba's ``cache=True`` invalidates a cached function when its own file changes, but not when a compiled
function it calls from another module changes, nor when a module-level constant it read (a column index) does.
Before the simulation is imported, this hashes every module of this folder and its subfolders (the request-level
backend in ``request/``) and ``fields.py``, whose column constants the kernels read, and drops the cached machine
code of all of them if any changed since it was written.
"""

from __future__ import annotations

import hashlib
from pathlib import Path


def compiled_sources(sim_dir: Path) -> list[Path]:
    """The files whose change must drop the cache: every module of the sim folder and its subfolders, and
    ``../fields.py``."""
    return sorted(sim_dir.rglob("*.py")) + [sim_dir.parent / "fields.py"]


def invalidate_if_sources_changed(sim_dir: Path | None = None) -> bool:
    """Drop stale cached machine code; returns True if it did (or if there was no stamp yet)."""
    here = Path(__file__).parent if sim_dir is None else Path(sim_dir)
    digest = hashlib.sha256()
    for path in compiled_sources(here):
        digest.update(path.relative_to(here.parent).as_posix().encode())
        digest.update(path.read_bytes())
    cache = here / "__pycache__"
    stamp = cache / "jit_sources.sha256"
    try:
        if stamp.exists() and stamp.read_text() == digest.hexdigest():
            return False
        cache.mkdir(exist_ok=True)
        for folder in here.rglob("__pycache__"):
            for f in list(folder.glob("*.nbi")) + list(folder.glob("*.nbc")):
                f.unlink(missing_ok=True)
        stamp.write_text(digest.hexdigest())
    except OSError:
        # a read-only install: numba then caches elsewhere (or not at all); nothing to keep in step here
        return False
    return True
