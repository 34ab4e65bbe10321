"""Keep numba's on-disk cache consistent with the sources of the compiled core.

numba's ``cache=True`` invalidates a cached function when its own file changes, but not when a compiled
function it calls from another module changes. Before the core is imported, this hashes every compiled
module and drops the package's cached machine code if any of them changed since it was written.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

_COMPILED = ("rng.py", "queueing.py", "instances.py", "load_balancer.py", "fields.py", "core.py")


def invalidate_if_sources_changed(package_dir: Path | None = None) -> bool:
    """Drop stale cached machine code; returns True if it did (or if there was no stamp yet)."""
    here = Path(__file__).parent if package_dir is None else Path(package_dir)
    digest = hashlib.sha256()
    for name in _COMPILED:
        digest.update((here / name).read_bytes())
    cache = here / "__pycache__"
    stamp = cache / "jit_sources.sha256"
    try:
        if stamp.exists() and stamp.read_text() == digest.hexdigest():
            return False
        cache.mkdir(exist_ok=True)
        for f in list(cache.glob("*.nbi")) + list(cache.glob("*.nbc")):
            f.unlink(missing_ok=True)
        stamp.write_text(digest.hexdigest())
    except OSError:
        # a read-only install: numba then caches elsewhere (or not at all); nothing to keep in step here
        return False
    return True
