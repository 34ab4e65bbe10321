"""Files a run writes: atomic replacement, complete folders, and a lock per output.

A reader (or a kill) never sees half a file: every file is written to a temporary file in the same folder,
flushed to disk (fsync) and then renamed over the target (``os.replace`` is atomic on POSIX and Windows when
source and target are on the same file system; the folder is fsynced after the rename so the new name survives
a power cut too). A result folder is filled under a temporary name beside it and renamed when complete.

Two processes writing the same output are refused, not mixed: :func:`output_lock` takes an exclusive,
non-blocking ``filelock`` lock on a hidden ``.<name>.lock`` file beside the output (an OS lock: it is released
when the process dies, even by SIGKILL).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from .config import ConfigError

__all__ = [
    "OutputBusyError",
    "OutputExistsError",
    "ManifestError",
    "OutputLock",
    "atomic_dir",
    "atomic_file",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "check_manifest",
    "file_digest",
    "fsync_dir",
    "output_lock",
    "replace_dir",
    "write_manifest",
]


class OutputBusyError(ConfigError):
    """Another process is writing this output (its lock is held)."""


class OutputExistsError(ConfigError):
    """The output already exists and overwriting it was not asked for."""


def fsync_dir(folder: str | Path) -> None:
    """Make a rename or creation in ``folder`` durable (no-op where folders cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(str(folder), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def _temp_name(path: Path) -> Path:
    """A fresh hidden name beside ``path`` that keeps its suffix (libraries such as SB3 add '.zip' otherwise)."""
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    return Path(name)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` for a library to write to (``model.save``, ``fig.savefig``...);
    when the block ends without an exception the file is fsynced and renamed to ``path``, else removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(path)
    try:
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


@contextlib.contextmanager
def atomic_file(path: str | Path, mode: str = "w", **open_kwargs: Any) -> Iterator[IO[Any]]:
    """``open(path, mode)`` that replaces ``path`` only when the block completes (``mode``: "w" or "wb")."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_file writes a whole file: mode 'w' or 'wb', got {mode!r}")
    if mode == "w":
        open_kwargs.setdefault("encoding", "utf-8")
    with atomic_path(path) as tmp, open(tmp, mode, **open_kwargs) as fh:
        yield fh
        fh.flush()
        os.fsync(fh.fileno())


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_file(path, "wb") as fh:
        fh.write(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_file(path, "w", newline="") as fh:
        fh.write(text)


def replace_dir(src: Path, dst: Path) -> None:
    """Move the complete folder ``src`` to ``dst`` (same parent), replacing a previous ``dst`` as a whole: the
    old folder is renamed aside first and deleted after, so ``dst`` is at every moment the old or the new."""
    old = None
    if dst.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", suffix=".old", dir=dst.parent))
        os.replace(dst, old / dst.name)
    os.replace(src, dst)
    fsync_dir(dst.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_dir(path: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``path``; when the block completes it becomes ``path``.

    An existing non-empty ``path`` raises :class:`OutputExistsError` (before and after the block: another
    writer may have made it meanwhile) unless ``overwrite``: then the old folder is replaced as a whole (nothing
    of it stays beside the new files). On an exception the temporary folder is removed."""
    path = Path(path)
    _refuse_existing(path, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        for child in tmp.rglob("*"):
            if child.is_file():
                _fsync_file(child)
        _refuse_existing(path, overwrite)
        if path.exists() and not path.is_dir():
            raise OutputExistsError(f"{path}: exists and is not a folder")
        replace_dir(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _refuse_existing(path: Path, overwrite: bool) -> None:
    if overwrite or not path.exists():
        return
    if path.is_dir() and not any(path.iterdir()):
        return
    raise OutputExistsError(
        f"{path} already exists and is not empty; choose another --out, or pass --overwrite to replace it"
    )


class OutputLock:
    """An exclusive lock on an output (a file or folder, which need not exist), taken at once or refused with
    :class:`OutputBusyError`; use as a context manager, or :meth:`acquire` and :meth:`release`."""

    def __init__(self, path: str | Path, what: str = "output") -> None:
        from filelock import FileLock

        self.path = Path(path)
        self.what = what
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(str(self.path.parent / f".{self.path.name}.lock"), timeout=0)

    def acquire(self) -> OutputLock:
        from filelock import Timeout

        try:
            self._lock.acquire()
        except Timeout:
            raise OutputBusyError(
                f"{self.path}: another process is writing this {self.what} (lock {self._lock.lock_file} is "
                "held); wait for it to finish or choose another output"
            ) from None
        return self

    def release(self) -> None:
        if self._lock.is_locked:
            self._lock.release()

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def output_lock(path: str | Path, what: str = "output") -> OutputLock:
    """The lock of ``path`` (acquired by ``with`` or :meth:`OutputLock.acquire`)."""
    return OutputLock(path, what)


# ------------------------------------------------------------------------------------------------ manifests
def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's bytes (hex)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_manifest(path: str | Path, files: list[Path], **extra: Any) -> None:
    """Write the manifest of a set of files that belong together (a model and its statistics): their sizes and
    SHA-256 digests, and ``extra`` values. Written last, atomically: the set counts as complete from then on."""
    path = Path(path)
    entries = {f.name: {"bytes": f.stat().st_size, "sha256": file_digest(f)} for f in files}
    atomic_write_text(path, json.dumps({**extra, "files": entries}, indent=1) + "\n")


class ManifestError(ConfigError):
    """A manifest is missing or unreadable, or a file it lists is missing or differs from what was written."""


def check_manifest(path: str | Path) -> dict[str, Any]:
    """The manifest's values if every file it lists (beside it) is there with its recorded size and digest;
    else :class:`ManifestError` naming the file and the fault."""
    path = Path(path)
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
        files = data["files"]
        if not isinstance(files, dict):
            raise TypeError("'files' is not a mapping")
    except FileNotFoundError:
        raise ManifestError(f"{path}: missing (the files were not all written)") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ManifestError(f"{path}: unreadable manifest ({exc})") from None
    for name, entry in files.items():
        f = path.parent / name
        if not f.is_file():
            raise ManifestError(f"{f}: listed in {path.name} but missing")
        if f.stat().st_size != entry.get("bytes") or file_digest(f) != entry.get("sha256"):
            raise ManifestError(f"{f}: differs from what {path.name} recorded (damaged or replaced)")
    return data
