"""TensorBoard event files of a run (``training.tensorboard``), in ``<run>/tensorboard/``:
the epoch metrics and learning rate as scalars at the optimizer update they were reached, and
with ``training.diagnostics`` each parameter's gradient norm and update ratio, each layer's
output statistics as scalars and the weights and gradients as histograms. A sweep's runs each
write their own, so ``tensorboard --logdir SWEEP_DIR`` compares the trials.

Written by tensorboardX (no TensorFlow needed): ``pip install bptrain[tensorboard]``.
"""

from __future__ import annotations

import math
from pathlib import Path

from bptrain.errors import ConfigError
from bptrain.nn import backend

FLUSH_SECONDS = 10


def summary_writer():
    """tensorboardX's SummaryWriter class, or a ConfigError saying how to install it."""
    try:
        from tensorboardX import SummaryWriter
    except ImportError:
        raise ConfigError(
            "training.tensorboard needs tensorboardX: pip install 'bptrain[tensorboard]' "
            "(or set training.tensorboard: false)"
        ) from None
    return SummaryWriter


class Board:
    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.writer_class = summary_writer()
        self.writer = None

    def _open(self, purge_step: int | None = None):
        if self.writer is None:
            # A resumed run's file is named after the first one, which it follows in the
            # order TensorBoard reads them (file names hold the time in seconds only).
            suffix = f".from-step-{purge_step:012d}" if purge_step is not None else ""
            self.writer = self.writer_class(
                str(self.directory), purge_step=purge_step, flush_secs=FLUSH_SECONDS,
                filename_suffix=suffix,
            )  # fmt: skip
        return self.writer

    def resume(self, step: int) -> None:
        """Continue after update ``step``: TensorBoard drops the events logged past it."""
        self._open(purge_step=step + 1)

    def epoch(self, step: int, row: dict) -> None:
        writer = self._open()
        for key, value in row.items():
            if key != "epoch" and value is not None and math.isfinite(value):
                writer.add_scalar(key, value, step)
        writer.add_scalar("epoch", row["epoch"], step)

    def layers(self, step: int, stats: list[dict], params) -> None:
        """The diagnostics of update ``step``: ``stats`` rows (``layer_stats``) and the
        (layer, name, Parameter) ``params`` for histograms."""
        writer = self._open()
        for row in stats:
            where = f"{row['layer']}/{row['parameter']}" if row["parameter"] else row["layer"]
            for key in ("grad_norm", "update_ratio", "act_mean", "act_std", "dead_fraction"):
                value = row.get(key)
                if value is not None and math.isfinite(value):
                    writer.add_scalar(f"{key}/{where}", value, step)
        for layer, name, p in params:
            writer.add_histogram(f"weights/{layer}/{name}", backend.to_numpy(p.value), step)
            writer.add_histogram(f"gradients/{layer}/{name}", backend.to_numpy(p.grad), step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
