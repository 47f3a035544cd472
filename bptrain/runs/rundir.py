"""The run directory: ``runs/<name>/<YYYYmmdd-HHMMSS>/`` and the files inside it.

config.yaml                  the resolved config; ``bptrain fit`` on it reproduces the run
metrics.csv                  one row per epoch, appended
checkpoints/last.safetensors after every epoch (and every ``every_steps`` steps)
checkpoints/best.safetensors whenever the monitored metric improves
plots/*.png                  loss and metric curves; ``eval`` adds the confusion matrix
eval.json                    written by ``bptrain eval``
.lock                        while a process trains the run: locked by it (flock), removed when
                             it ends; one a killed process left is harmless
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

from bptrain.errors import StorageError
from bptrain.runs.atomic import writing

LOCK_NAME = ".lock"
_held: dict[Path, int] = {}  # run path -> descriptor holding its lock, for this process


@dataclass(frozen=True)
class RunDir:
    path: Path

    @property
    def config(self) -> Path:
        return self.path / "config.yaml"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.csv"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def last(self) -> Path:
        return self.checkpoints / "last.safetensors"

    @property
    def best(self) -> Path:
        return self.checkpoints / "best.safetensors"

    @property
    def plots(self) -> Path:
        return self.path / "plots"

    @property
    def eval(self) -> Path:
        return self.path / "eval.json"

    def make(self) -> RunDir:
        """Create the directory and its subdirectories (existing ones are fine); refuses
        symbolic links in it (see ``check_links``)."""
        self.check_links()
        for d in (self.path, self.checkpoints, self.plots):
            with writing(d):
                d.mkdir(parents=True, exist_ok=True)
        return self

    def lock(self) -> None:
        """Hold an exclusive lock on this run until ``unlock`` or the end of the process.

        Two processes writing one run (two ``--resume`` at once, or an orphaned sweep worker
        beside a resumed sweep) would interleave metrics rows and checkpoints; the second one
        is refused instead. The lock is the kernel's (flock) on the file ``.lock``, so a killed
        process never leaves a held one behind. Taking it again in the same process is a no-op.
        """
        import fcntl

        key = self.path.resolve()
        if key in _held:
            return
        path = self.path / LOCK_NAME
        while True:
            with writing(path):
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                raise StorageError(
                    f"{self.path} is in use by another bptrain process; wait for it to finish "
                    f"or stop it, then continue with: bptrain fit --resume {self.path}"
                ) from None
            if _is_file(fd, path):
                break
            # Its holder removed the file (``unlock``) after we opened it: a lock on it locks
            # nothing that a third process would see. Take the lock of the file there now.
            os.close(fd)
        _held[key] = fd

    def unlock(self) -> None:
        """Release the lock and remove ``.lock``: removed while still held, so a process that
        opened it meanwhile finds, once it has the lock, that the file is gone (``lock``)."""
        fd = _held.pop(self.path.resolve(), None)
        if fd is None:
            return
        path = self.path / LOCK_NAME
        if _is_file(fd, path):
            with contextlib.suppress(OSError):  # a directory made read-only since, say
                path.unlink()
        os.close(fd)

    def check_links(self) -> None:
        """Refuse a run directory whose entries are symbolic links: bptrain truncates, appends
        to and replaces these files, and must never do that to a file outside the run."""
        entries = (self.config, self.metrics, self.checkpoints, self.plots, self.eval)
        entries += (self.path / LOCK_NAME,)
        for p in (*entries, self.last, self.best):
            if p.is_symlink():
                raise StorageError(
                    f"{p} is a symbolic link (to {os.readlink(p)}); bptrain writes only real "
                    "files inside the run directory: replace the link by the file"
                )


def _is_file(fd: int, path: Path) -> bool:
    """Whether the open file ``fd`` is the one at ``path`` now."""
    try:
        there = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    here = os.fstat(fd)
    return (there.st_dev, there.st_ino) == (here.st_dev, here.st_ino)


def new_run_dir(root: str | os.PathLike, name: str, now: float | None = None) -> RunDir:
    """A fresh ``root/name/YYYYmmdd-HHMMSS`` run directory (see ``timestamped_dir``)."""
    parent = Path(root) / name
    with writing(parent):
        return RunDir(timestamped_dir(parent, now)).make()


def timestamped_dir(parent: Path, now: float | None = None) -> Path:
    """Create and return ``parent/YYYYmmdd-HHMMSS``; ``-2``, ``-3``, ... are appended when
    another one started in the same second (mkdir is atomic, so two processes never share one).
    """
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    parent.mkdir(parents=True, exist_ok=True)
    for n in range(1, 10_000):
        path = parent / (stamp if n == 1 else f"{stamp}-{n}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path
    raise RuntimeError(f"could not create a directory under {parent}")


def run_dir_of(checkpoint: str | os.PathLike) -> RunDir:
    """The run a checkpoint belongs to: ``RUN/checkpoints/x.safetensors`` -> ``RUN``; a
    checkpoint elsewhere counts its own folder as the run."""
    path = Path(checkpoint).resolve()
    parent = path.parent
    return RunDir(parent.parent if parent.name == "checkpoints" else parent)
