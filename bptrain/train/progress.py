"""Progress output: a tqdm bar per epoch in a terminal, one plain line per epoch otherwise,
or nothing (sweep workers)."""

from __future__ import annotations

import shutil
import sys

MODES = ("auto", "bar", "plain", "none")


def reporter(mode: str = "auto"):
    """A Reporter for ``mode``: "bar", "plain", "none" or "auto" (bar when stderr is a TTY)."""
    if mode not in MODES:
        raise ValueError(f"progress must be one of {', '.join(MODES)}, got {mode!r}")
    return {"bar": BarReporter, "plain": PlainReporter, "none": Reporter}[choose(mode)]()


def choose(mode: str) -> str:
    """The mode "auto" stands for: "bar" in a terminal, else "plain" (other modes are returned
    as they are). ``bptrain sweep`` decides its bar over runs with it too."""
    if mode != "auto":
        return mode
    # a bar needs a terminal with some width (a pty without a size reports 0 columns)
    wide = shutil.get_terminal_size((0, 0)).columns >= 40
    return "bar" if sys.stderr.isatty() and wide else "plain"


def format_row(row: dict) -> str:
    """``loss 0.1234  val_loss 0.1100  val_accuracy 0.9700  lr 0.001``."""
    parts = []
    for key, value in row.items():
        if key == "epoch" or value is None:
            continue
        parts.append(f"{key} {value:.4g}" if key == "lr" else f"{key} {value:.4f}")
    return "  ".join(parts)


class Reporter:
    """Silent; the base for the others."""

    def start(self, run_dir, summary: str, resumed_from: str | None) -> None:
        pass

    def start_epoch(self, epoch: int, epochs: int, steps: int, done: int) -> None:
        pass

    def step(self, loss: float) -> None:
        pass

    def end_epoch(self, row: dict, epochs: int, seconds: float) -> None:
        pass

    def message(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass


class PlainReporter(Reporter):
    """Prints the run directory, the model and one line per epoch to stdout."""

    def start(self, run_dir, summary, resumed_from):
        print(f"run directory: {run_dir}", flush=True)
        if resumed_from:
            print(f"resuming from {resumed_from}", flush=True)
        print(summary, flush=True)

    def end_epoch(self, row, epochs, seconds):
        took = f"{seconds:.1f}s" if seconds >= 1 else f"{seconds * 1000:.0f}ms"
        width = len(str(epochs))
        print(f"epoch {row['epoch']:>{width}}/{epochs}  {format_row(row)}  ({took})", flush=True)

    def message(self, text):
        print(text, flush=True)


class BarReporter(PlainReporter):
    """A tqdm bar on stderr for each epoch, left on screen with the epoch's metrics."""

    def __init__(self):
        self._bar = None
        self._loss = 0.0
        self._n = 0

    def start_epoch(self, epoch, epochs, steps, done):
        from tqdm import tqdm

        width = len(str(epochs))
        self._bar = tqdm(
            total=steps,
            initial=done,
            desc=f"epoch {epoch:>{width}}/{epochs}",
            unit="batch",
            file=sys.stderr,
            dynamic_ncols=True,
            leave=True,
            mininterval=0.2,
        )
        self._loss, self._n = 0.0, 0

    def step(self, loss):
        self._loss += loss
        self._n += 1
        bar = self._bar
        bar.update(1)
        if self._n % 50 == 0:
            bar.set_postfix_str(f"loss {self._loss / self._n:.4f}", refresh=False)

    def end_epoch(self, row, epochs, seconds):
        if self._bar is not None:
            self._bar.set_postfix_str(format_row(row), refresh=False)
            self._bar.close()
            self._bar = None

    def close(self):
        if self._bar is not None:
            self._bar.close()
            self._bar = None
