"""``metrics.csv``: one row per epoch, appended, flushed and fsynced, never rewritten.

Values are written with ``repr`` (the shortest text that reads back as the same float), so two
runs with equal numbers write equal bytes. A resumed run first cuts the file back to the length
its checkpoint recorded, dropping any row written after that checkpoint.
"""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path

from bptrain import faults
from bptrain.errors import CheckpointError
from bptrain.runs.atomic import writing


class MetricsLog:
    def __init__(self, path: str | os.PathLike, columns: list[str]):
        self.path = Path(path)
        self.columns = list(columns)

    def start(self) -> int:
        """Write the header (replacing any file); returns the file's length in bytes."""
        with writing(self.path), open(self.path, "wb") as f:
            f.write(self._line(self.columns))
            f.flush()
            os.fsync(f.fileno())
        return self.path.stat().st_size

    def resume(self, length: int) -> None:
        """Cut the file back to ``length`` bytes (the rows of the checkpoint being resumed)."""
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            raise CheckpointError(
                f"{self.path} is missing; the run directory is incomplete, cannot resume"
            ) from None
        if size < length:
            raise CheckpointError(
                f"{self.path} has {size} bytes but the checkpoint recorded {length}; "
                "it was changed since, cannot resume exactly"
            )
        with writing(self.path), open(self.path, "r+b") as f:
            header = f.readline()
            if header != self._line(self.columns):
                raise CheckpointError(
                    f"{self.path} has other columns than this run logs; cannot resume"
                )
            f.truncate(length)
            f.flush()
            os.fsync(f.fileno())
        faults.point("metrics.truncated")

    def append(self, row: dict) -> int:
        """Append one row (keys: the columns) durably; returns the file's new length."""
        line = self._line([cell_text(row.get(c)) for c in self.columns])
        with writing(self.path), open(self.path, "ab") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
            return f.tell()

    @staticmethod
    def _line(cells) -> bytes:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow(cells)
        return buf.getvalue().encode("utf-8")


def cell_text(value) -> str:
    """A CSV cell: empty for None, a float's shortest repr that reads back exactly."""
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    return str(value)


def read(path: str | os.PathLike) -> list[dict]:
    """The rows of a metrics.csv as dicts of floats (ints for ``epoch``)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return [
        {k: (int(v) if k == "epoch" else float(v) if v else None) for k, v in r.items()}
        for r in rows
    ]
