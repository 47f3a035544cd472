"""Crash-safe file writes: a temporary file beside the target, fsync, rename, fsync the directory.

A reader (or a run resumed after a crash) sees either the old file or the new one, never a mix.
A write that fails (disk full, read-only directory) raises a StorageError naming the file and
leaves the old one in place.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from bptrain import faults
from bptrain.errors import StorageError

TEMP_SUFFIX = ".tmp"
# mkstemp creates files readable by their owner only; written files get the usual mode.
_UMASK = os.umask(0)
os.umask(_UMASK)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically and durably."""
    path = Path(path)
    with writing(path):
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)
        faults.point("atomic.opened")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        faults.point("atomic.written")
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        if isinstance(exc, OSError):
            raise StorageError(
                f"cannot write {path}: {exc.strerror or exc}"
                + ("; the previous version is unchanged" if path.exists() else "")
            ) from None
        raise
    faults.point("atomic.renamed")
    fsync_dir(path.parent)


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def writing(path: str | os.PathLike):
    """Turn an OSError raised while writing ``path`` into a StorageError naming it."""
    try:
        yield
    except OSError as exc:
        raise StorageError(f"cannot write {path}: {exc.strerror or exc}") from None


def remove_temporaries(directory: str | os.PathLike) -> None:
    """Delete the temporary files of writes that a killed process left in ``directory``."""
    for tmp in Path(directory).glob(f".*{TEMP_SUFFIX}"):
        with contextlib.suppress(OSError):
            tmp.unlink()


def fsync_dir(path: str | os.PathLike) -> None:
    """Make renames and new entries in ``path`` durable (not possible on every platform)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
