"""What ``training.diagnostics`` and ``training.tensorboard`` add to a run, behind the few
calls the trainer makes (``Diagnostics.of`` builds it; ``update`` wraps each optimizer step,
``end_epoch`` takes each metrics row, ``plot`` redraws with the other plots, ``resume`` and
``close``).

Every ``every`` optimizer updates (the 1st, then every+1, ...; by default 4 times an epoch)
the step is recorded: each parameter's values are copied before the update, and after it the
gradient and weight norms, the update ratios (``layer_stats.gradient_stats``) and each
layer's output statistics on the first ``PROBE_ROWS`` samples of the batch
(``layer_stats.activation_stats``) go to ``layers.csv`` and, with TensorBoard, to its event
files. Between records a step costs one integer test.
"""

from __future__ import annotations

import contextlib

from bptrain.nn import backend
from bptrain.runs import RunDir
from bptrain.runs.layers_log import LayersLog
from bptrain.train import layer_stats

NOTHING = contextlib.nullcontext()


class Diagnostics:
    """The diagnostics of one run: ``layers`` (layers.csv and its plots) and ``board`` (a
    TensorBoard writer, ``bptrain.runs.tensorboard.Board``), either or both None."""

    def __init__(self, model, run: RunDir, every: int, layers: bool, board=None):
        self.model, self.run, self.every = model, run, every
        self.layers = LayersLog(run.path / "layers.csv") if layers else None
        self.board = board
        self.grad_norms: dict[str, float] | None = None  # the last record's, by layer/param

    @classmethod
    def of(cls, config, model, run: RunDir, leader: bool, steps_per_epoch: int) -> Diagnostics:
        """The diagnostics ``config.training`` asks for (none on workers but the leader)."""
        t = config.training
        every = t.diagnostics_every or max(1, steps_per_epoch // 4)
        board = None
        if t.tensorboard and leader:
            from bptrain.runs.tensorboard import Board

            board = Board(run.path / "tensorboard")
        return cls(model, run, every, t.diagnostics and leader, board)

    @property
    def recording(self) -> bool:
        return self.layers is not None

    def start(self) -> None:
        """A new run: an empty layers.csv."""
        if self.layers is not None:
            self.layers.start()

    def resume(self, step: int) -> None:
        """Continue from optimizer update ``step``: drop what was recorded after it."""
        if self.layers is not None:
            self.layers.resume(step)
        if self.board is not None:
            self.board.resume(step)

    def update(self, epoch: int, xb):
        """A context around the optimizer step of 0-based ``epoch`` on batch ``xb``: records
        the step when one is due."""
        if self.layers is None or self.model.optimizer.iterations % self.every:
            return NOTHING
        return self._recorded(epoch, xb)

    @contextlib.contextmanager
    def _recorded(self, epoch: int, xb):
        rows = layer_stats.parameter_rows(self.model.network)
        before = [p.value.copy() for _, _, p in rows]
        yield
        step = int(self.model.optimizer.iterations)
        stats = layer_stats.gradient_stats(rows, before)
        probe = backend.asarray(xb[: layer_stats.PROBE_ROWS])
        stats += layer_stats.activation_stats(self.model.network, probe)
        for row in stats:
            row["step"], row["epoch"] = step, epoch + 1
        self.layers.append(stats)
        self.grad_norms = {
            f"{r['layer']}/{r['parameter']}": r["grad_norm"] for r in stats if r["parameter"]
        }
        if self.board is not None:
            self.board.layers(step, stats, rows)

    def end_epoch(self, row: dict) -> None:
        """Epoch metrics ``row`` (TensorBoard scalars at the current update)."""
        if self.board is not None:
            self.board.epoch(int(self.model.optimizer.iterations), row)

    def plot(self, title: str) -> None:
        """Redraw plots/gradients.png and plots/updates.png from layers.csv."""
        if self.layers is not None:
            from bptrain.runs import layers_log
            from bptrain.runs.layer_plots import plot_layers

            plot_layers(layers_log.read(self.layers.path), self.run.plots, title)

    def close(self) -> None:
        if self.board is not None:
            self.board.close()
