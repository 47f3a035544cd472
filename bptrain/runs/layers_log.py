"""``layers.csv``: the per-layer diagnostics of a run (``training.diagnostics``), one row per
parameter and one per layer output at each recorded step, appended.

Columns: ``step`` (optimizer updates done), ``epoch``, ``layer``, ``parameter`` (empty on a
layer's output row), ``grad_norm``, ``weight_norm``, ``update_ratio`` (parameter rows),
``act_mean``, ``act_std``, ``dead_fraction`` (output rows; dead_fraction for ReLUs only).
A resumed run first drops the rows recorded after its checkpoint's step.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from bptrain.runs.atomic import write_bytes, writing
from bptrain.runs.metrics_log import cell_text

COLUMNS = [
    "step",
    "epoch",
    "layer",
    "parameter",
    "grad_norm",
    "weight_norm",
    "update_ratio",
    "act_mean",
    "act_std",
    "dead_fraction",
]
NUMBERS = COLUMNS[4:]


class LayersLog:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def start(self) -> None:
        """Write the header (replacing any file)."""
        write_bytes(self.path, _lines([dict(zip(COLUMNS, COLUMNS, strict=True))]))

    def resume(self, step: int) -> None:
        """Keep the rows of steps up to ``step`` (a run without the file starts one)."""
        if not self.path.exists():
            return self.start()
        kept = [r for r in read(self.path) if r["step"] <= step]
        write_bytes(self.path, _lines([dict(zip(COLUMNS, COLUMNS, strict=True)), *kept]))

    def append(self, rows: list[dict]) -> None:
        with writing(self.path), open(self.path, "ab") as f:
            f.write(_lines(rows))
            f.flush()


def _lines(rows: list[dict]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    for row in rows:
        writer.writerow([cell_text(row.get(c)) for c in COLUMNS])
    return buf.getvalue().encode()


def read(path: str | os.PathLike) -> list[dict]:
    """The rows of a layers.csv: ints for step and epoch, floats (or None where empty)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        row["step"], row["epoch"] = int(row["step"]), int(row["epoch"])
        for key in NUMBERS:
            row[key] = float(row[key]) if row[key] else None
    return rows
