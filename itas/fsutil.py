"""Atomic file writes: a temporary file in the same folder, written and flushed, then renamed into place, so a
reader (or a resumed run after a kill) sees the old file or the new one, never half of one. Files get the mode a
plain ``open()`` would have given them (results, plots and pages are meant to be read and shared)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

_UMASK = os.umask(0)
os.umask(_UMASK)
FILE_MODE = 0o666 & ~_UMASK  # what a plain open() would have given


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path`` for a writer that wants a file name (a plot library, say), renamed onto
    ``path`` when the block succeeds and removed when it fails."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f"{path.suffix}.tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, FILE_MODE)  # mkstemp creates 0600 files
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def atomic_write(path: str | Path, data: str | bytes, *, sync: bool = True) -> Path:
    """Write ``data`` (text as UTF-8) to ``path`` atomically, synced to disk before the rename unless ``sync`` is
    false (for files rewritten often and derived from a record kept elsewhere: a killed process loses nothing
    either way, only a power cut can)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
            if sync:
                f.flush()
                os.fsync(f.fileno())
    return path
