"""The training loop: epochs of minibatch steps, validation, callbacks and checkpoints.

One step is the strategy's ``compute_gradients`` and ``reduce`` (one model computes the batch
whole; replicas or MPI ranks compute slices and sum them: ``bptrain.train.strategy``) ->
divergence checks -> ``model.apply_gradients`` (the optimizer's update). The batch order
of epoch ``e`` is a permutation drawn from ``default_rng([seed, ORDER_STREAM, e])``, so the
position in training is just (epoch, step): a checkpoint taken anywhere, mid-epoch included,
resumes exactly.

Training metrics (``accuracy`` beside ``val_accuracy``) are summed from the outputs each step's
forward pass computed (``RunningMetrics``), over the epoch as its weights changed, like Keras'.

A checkpoint within or at the end of an epoch is encoded at once but written only when the next
batch's loss, computed with the weights it holds, has passed the divergence checks (or, at an
epoch's end, the validation loss has; at the end of training or on a stop signal it is written
then): the weights after an update that made the loss explode never reach a checkpoint, and the
one a divergence error names holds the last good weights.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from bptrain import faults
from bptrain.config import Config
from bptrain.config.run_length import run_length
from bptrain.data import Dataset, iterate_minibatches
from bptrain.data.augment import augmenter
from bptrain.data.dataset import read_as_needed
from bptrain.data.preprocess import unscale_targets
from bptrain.nn import backend
from bptrain.runs import MetricsLog, RunDir, checkpoint
from bptrain.runs.atomic import write_bytes
from bptrain.train import metrics as metrics_mod
from bptrain.train.accumulate import accumulated_gradients
from bptrain.train.callbacks import (
    BestTracker,
    EarlyStopping,
    ExplosionGuard,
    divergence,
    gradients_finite,
)
from bptrain.train.diagnostics import Diagnostics
from bptrain.train.metrics import RunningMetrics
from bptrain.train.progress import Reporter
from bptrain.train.signals import Interrupted, StopFlag
from bptrain.train.strategy import SingleProcess

ORDER_STREAM = 0x0BDE  # separates the batch-order stream from other uses of the seed
# Plots are redrawn after an epoch at most this often (a redraw costs ~0.1 s), and always
# after the last epoch.
PLOT_INTERVAL_S = 2.0


def epoch_order(seed: int, epoch: int, n: int, shuffle: bool) -> np.ndarray:
    """The sample order of 0-based ``epoch``: a fresh seeded permutation, or 0..n-1."""
    if not shuffle:
        return np.arange(n, dtype=np.int64)
    return np.random.default_rng([seed, ORDER_STREAM, epoch]).permutation(n)


@dataclass
class Position:
    """Where training stands: ``epoch`` epochs done, ``step`` steps into the next one, the
    running loss of that epoch (sum of batch loss x batch size, and samples seen) and its
    training metrics' sums (``RunningMetrics``)."""

    epoch: int = 0
    step: int = 0
    loss_sum: float = 0.0
    seen: int = 0
    metric_sums: np.ndarray = field(default_factory=lambda: np.zeros(0))
    stopped_early: bool = False
    history: list = field(default_factory=list)
    csv_bytes: int = 0

    def where(self, at_end: str = "epoch") -> str:
        """ "epoch 3, step 17" mid-epoch, else ``f"{at_end} {epoch}"`` for the last epoch done."""
        return (
            f"epoch {self.epoch + 1}, step {self.step}" if self.step else f"{at_end} {self.epoch}"
        )


class NullLog:
    """metrics.csv as workers other than the leader see it: nothing is written."""

    def start(self) -> int:
        return 0

    def append(self, row: dict) -> int:
        return 0

    def resume(self, length: int) -> None:
        pass


class Trainer:
    """Trains ``model`` on ``data`` as the resolved ``config`` says, writing into ``run``;
    ``strategy`` shares the work of each step (default: ``SingleProcess``)."""

    def __init__(
        self,
        config: Config,
        data: Dataset,
        model,
        run: RunDir,
        reporter: Reporter,
        strategy: SingleProcess | None = None,
    ):
        self.config, self.data, self.model, self.run = config, data, model, run
        self.reporter = reporter
        self.strategy = strategy if strategy is not None else SingleProcess(model)
        t = config.training
        # A step's batch: accumulate x batch_size samples, computed batch_size at a time.
        self.slice_size, self.accumulate = t.batch_size, t.accumulate
        self.epochs, self.batch_size = t.epochs, t.batch_size * t.accumulate
        self.position = Position()
        # The arrays go to the model's device once (on the CPU: the same arrays); batches and
        # validation slices are cut there, and only losses and metrics come back.
        self.x_train, self.y_train = on_device(data.x_train), backend.asarray(data.y_train)
        self.x_val = on_device(data.x_val)
        self.has_val = len(data.x_val) > 0
        self.best = BestTracker(t.checkpoint.monitor, t.checkpoint.mode)
        es = t.early_stopping
        self.early = EarlyStopping(es.monitor, es.mode, es.patience, es.min_delta) if es else None
        self.schedule_monitor = (t.schedule or {}).get("monitor")
        self.guard = ExplosionGuard()
        self.augment = augmenter(config.data, config.seed)  # training batches only
        self.train_metrics = running_metrics(config, data, model)
        self.position.metric_sums = self.train_metrics.zeros()
        columns = log_columns(config.metrics, self.has_val)
        self.log = MetricsLog(run.metrics, columns) if self.strategy.leader else NullLog()
        self.saved_last: str | None = None
        self._held: tuple[bytes, tuple] | None = None  # a checkpoint not yet written (hold)
        self.plots = t.plots and self.strategy.leader
        self._plotted = -math.inf
        steps = run_length(config, len(data.x_train)).steps_per_epoch
        self.diagnostics = Diagnostics.of(config, model, run, self.strategy.leader, steps)

    # -- the step ---------------------------------------------------------------------------
    def compute_gradients(self, xb, yb, wb=None) -> tuple[float, np.ndarray]:
        """The loss of batch (xb, yb) (weighted by ``wb``), with its gradient in every
        parameter's ``grad``, and the batch's training-metric sums (``RunningMetrics.batch``),
        over all workers. Sample weights and gradient accumulation train a single model
        (``engine.check_single_model``): its batch is computed ``batch_size`` rows at a time."""
        if wb is not None or self.accumulate > 1:
            return accumulated_gradients(
                self.model, xb, yb, self.slice_size, wb, self.train_metrics
            )
        strategy = self.strategy
        return strategy.reduce(*strategy.compute_gradients(xb, yb, self.train_metrics))

    def train_step(self, xb, yb, wb=None) -> float:
        """One update; returns the batch loss. Raises DivergenceError, before the update, when
        the loss or a gradient is not finite or the loss has exploded."""
        model, pos = self.model, self.position
        loss, sums = self.compute_gradients(xb, yb, wb)
        params = model.parameters()
        if not (math.isfinite(loss) and gradients_finite(params)):
            raise divergence(model, loss, pos.epoch + 1, pos.step + 1, self.saved_last)
        exploded = self.guard.exploded(loss)
        if exploded:
            raise divergence(
                model, loss, pos.epoch + 1, pos.step + 1, self.saved_last, exploded,
                reference=self.diagnostics.grad_norms,
            )  # fmt: skip
        self.release()  # the held checkpoint's weights gave this loss: they are good
        self.guard.update(loss, len(xb))
        pos.metric_sums += sums
        faults.point("train.step")
        with self.diagnostics.update(pos.epoch, xb):  # records the step every so often
            model.apply_gradients()
        return loss

    # -- the loop ---------------------------------------------------------------------------
    def run_epochs(self, stop: StopFlag) -> None:
        """Train until ``epochs`` are done or early stopping; on a signal, checkpoint the
        current step and raise Interrupted."""
        with self.strategy.running():
            self._run_epochs(self.strategy.agreed_stop(stop))

    def _run_epochs(self, stop: StopFlag) -> None:
        pos, t = self.position, self.config.training
        x, y = self.x_train, self.y_train
        steps = run_length(self.config, len(x)).steps_per_epoch  # the schedule counts these
        every = t.checkpoint.every_steps
        while not self.finished:
            order = epoch_order(self.config.seed, pos.epoch, len(x), t.shuffle)
            self.reporter.start_epoch(pos.epoch + 1, self.epochs, steps, pos.step)
            started = time.perf_counter()
            rest = order[pos.step * self.batch_size :]
            batches = iterate_minibatches(x, y, self.batch_size, backend.asarray(rest))
            for (xb, yb), wb in zip(batches, self.batch_weights(rest), strict=True):
                xb = self.augment(xb, pos.epoch, pos.step)
                loss = self.train_step(xb, yb, wb)
                pos.loss_sum += loss * len(xb)
                pos.seen += len(xb)
                pos.step += 1
                self.reporter.step(loss)
                if stop:
                    self.save(self.run.last)
                    self._interrupted(stop)
                if every and pos.step % every == 0 and pos.step < steps:
                    self.hold(self.run.last)
            self.end_epoch(started)
            if stop:
                self._interrupted(stop)
        self.release()

    def batch_weights(self, order: np.ndarray):
        """The sample weights of each batch of ``order`` (None each without weights)."""
        w = self.data.w_train
        for start in range(0, len(order), self.batch_size):
            yield None if w is None else w[order[start : start + self.batch_size]]

    def end_epoch(self, started: float) -> dict:
        """Validate, log, run the callbacks and write checkpoints and plots. The epoch's time,
        as its line reports it, runs from ``started`` (``time.perf_counter()``) to the end of
        validation, as Keras counts it."""
        pos = self.position
        row = {"epoch": pos.epoch + 1, "loss": pos.loss_sum / max(pos.seen, 1)}
        row.update(self.train_metrics.scores(pos.metric_sums))
        if self.has_val:
            val_loss, outputs = self.validate()
            if not math.isfinite(val_loss):
                raise divergence(self.model, val_loss, pos.epoch + 1, pos.step, self.saved_last)
            exploded = self.guard.exploded(val_loss)
            if exploded:
                raise divergence(
                    self.model, val_loss, pos.epoch + 1, pos.step, self.saved_last, exploded,
                    quantity="validation loss",
                )  # fmt: skip
            row["val_loss"] = val_loss
            scores = metrics_mod.compute(
                self.config.metrics,
                *self.original_units(self.data.y_val, outputs),
                self.data.num_classes,
            )
            row.update({f"val_{k}": v for k, v in scores.items()})
        row["lr"] = float(self.model.optimizer.lr)
        seconds = time.perf_counter() - started
        pos.epoch, pos.step, pos.loss_sum, pos.seen = pos.epoch + 1, 0, 0.0, 0
        pos.metric_sums = self.train_metrics.zeros()
        pos.history.append(row)
        pos.csv_bytes = self.log.append(row)
        faults.point("metrics.appended")
        self.diagnostics.end_epoch(row)
        if self.schedule_monitor:
            self.model.optimizer.observe(row[self.schedule_monitor])
        improved = self.best.update(row)
        if self.early is not None and self.early.update(row):
            pos.stopped_early = True
        paths = [self.run.best] if improved and self.config.training.checkpoint.best else []
        # The validation loss has vetted these weights; without one, the next batch's loss will.
        (self.save if self.has_val else self.hold)(*paths, self.run.last)
        now = time.monotonic()
        if self.plots and (self.finished or now - self._plotted >= PLOT_INTERVAL_S):
            self._plot()
            self._plotted = now
        self.reporter.end_epoch(row, self.epochs, seconds)
        return row

    def validate(self) -> tuple[float, np.ndarray]:
        """(loss, outputs) of the model on the validation set (see ``Model.evaluate``)."""
        data = self.data
        batch_size = self.config.training.eval_batch_size
        if data.w_val is not None:  # (a single model: see compute_gradients)
            return self.model.evaluate(self.x_val, data.y_val, batch_size, data.w_val)
        return self.strategy.validate(self.x_val, data.y_val, batch_size)

    def original_units(self, *arrays: np.ndarray) -> tuple[np.ndarray, ...]:
        """Targets or outputs in the units of the data's files (``data.scale_target`` undone),
        which metrics are reported in."""
        stats = self.data.extra.get("scale_target")
        return tuple(unscale_targets(a, stats) for a in arrays)

    def _interrupted(self, stop: StopFlag):
        self.release()
        where = self.position.where()
        raise Interrupted(
            f"interrupted by {stop.name} after {where}; saved {self.run.last}; continue with: "
            f"bptrain fit --resume {self.run.path}",
            stop.signum,
        )

    def _plot(self) -> None:
        from bptrain.runs.plots import plot_history

        title = f"{self.config.name} ({self.run.path.name})"
        try:
            plot_history(
                self.position.history,
                self.run.plots,
                title=title,
                best_epoch=self.best.best_epoch,
                monitor=self.best.monitor,
            )
            self.diagnostics.plot(title)
        except Exception as exc:  # a plot must never cost a training run
            self.reporter.message(f"warning: could not draw plots ({exc})")
            self.plots = False

    # -- checkpoints ------------------------------------------------------------------------
    @property
    def finished(self) -> bool:
        """Whether training is over: every epoch done, or stopped early."""
        pos = self.position
        return pos.stopped_early or pos.epoch >= self.epochs

    def save(self, *paths) -> None:
        """Write one snapshot of the run into each of ``paths`` now (encoded once)."""
        self._write(self._encode(), paths)

    def hold(self, *paths) -> None:
        """Take a snapshot of the run for ``paths`` now; ``release`` writes it once the next
        batch's loss has shown its weights good (see the module docstring)."""
        self._held = (self._encode(), paths)

    def release(self) -> None:
        """Write the held snapshot, if there is one."""
        if self._held is not None:
            data, paths = self._held
            self._held = None
            self._write(data, paths)

    def _encode(self) -> bytes | None:
        snapshot = self.snapshot()  # on every worker: pipeline stages gather theirs here
        return checkpoint.encode(*snapshot) if self.strategy.leader else None

    def _write(self, data: bytes | None, paths) -> None:
        if self.strategy.leader:
            for path in paths:
                write_bytes(path, data)
        if self.run.last in paths:
            self.saved_last = str(self.run.last)

    def snapshot(self) -> tuple[dict, dict]:
        """(arrays, state) of everything a resumed run needs."""
        pos, data = self.position, self.data
        weights, opt, rng = self.strategy.model_state()
        arrays = {f"model/{k}": v for k, v in weights.items()}
        arrays.update({f"optimizer/{k}": v for k, v in opt["slots"].items()})
        state = {
            "config": self.config.to_dict(),
            "epoch": pos.epoch,
            "step": pos.step,
            "loss_sum": pos.loss_sum,
            "seen": pos.seen,
            "train_metrics": backend.to_numpy(pos.metric_sums).tolist(),
            "divergence_guard": self.guard.state(),
            "finished": self.finished,
            "stopped_early": pos.stopped_early,
            "history": pos.history,
            "metrics_csv_bytes": pos.csv_bytes,
            "optimizer": {"iterations": opt["iterations"], "schedule": opt["schedule"]},
            "rng": rng,
            "best": self.best.state(),
            "early_stopping": self.early.state() if self.early else None,
            "data": data_info(data),
        }
        return arrays, state

    def restore(self, ckpt: checkpoint.Checkpoint) -> None:
        """Continue from ``ckpt``: weights, optimizer, RNG, callbacks, position, metrics.csv."""
        s = ckpt.state
        opt_state = {
            "iterations": s["optimizer"]["iterations"],
            "schedule": s["optimizer"]["schedule"],
            "slots": ckpt.section("optimizer"),
        }
        self.strategy.load_model_state(ckpt.section("model"), opt_state, s["rng"])
        self.best.load_state(s["best"])
        if self.early is not None and s.get("early_stopping"):
            self.early.load_state(s["early_stopping"])
        if "train_metrics" not in s:
            # A run begun before training metrics were logged goes on as it began: the
            # columns of its metrics.csv, and no training metrics (its epoch in progress has
            # no sums for the steps done).
            self.train_metrics = RunningMetrics([], self.data.task)
            self.log.columns = log_columns(self.config.metrics, self.has_val, train=False)
        if s.get("divergence_guard"):
            self.guard.load_state(s["divergence_guard"])
        self.position = Position(
            epoch=s["epoch"],
            step=s["step"],
            loss_sum=s["loss_sum"],
            seen=s["seen"],
            metric_sums=backend.asarray(np.array(s.get("train_metrics", []), dtype=np.float64)),
            stopped_early=s["stopped_early"],
            history=list(s["history"]),
            csv_bytes=s["metrics_csv_bytes"],
        )
        self.log.resume(s["metrics_csv_bytes"])
        self.saved_last = str(self.run.last)


def log_columns(metrics, has_val: bool, train: bool = True) -> list[str]:
    """The columns of metrics.csv: ``epoch, loss, <metric>..., val_loss, val_<metric>..., lr``
    (without validation, no val_ columns; ``train=False``: no training metrics, as runs begun
    before they were logged have them)."""
    columns = ["epoch", "loss", *(metrics if train else [])]
    if has_val:
        columns += ["val_loss", *(f"val_{m}" for m in metrics)]
    return [*columns, "lr"]


def running_metrics(config: dict, data: Dataset, model) -> RunningMetrics:
    """The accumulator of the config's metrics on the training batches."""
    shift, unit = 0.0, 1.0
    if data.task == "regression" and len(data.y_train):
        y = np.asarray(data.y_train, dtype=np.float64)
        shift = y.reshape(len(y), -1).mean(axis=0)
        unit = (data.extra.get("scale_target") or {}).get("divisor", 1.0)
    return RunningMetrics(
        config.metrics,
        data.task,
        data.num_classes,
        num_outputs(data),
        shift,
        threshold=0.0 if model.fused else 0.5,  # a fused sigmoid's outputs are logits
        unit=unit,
    )


def data_info(data: Dataset) -> dict:
    """What eval and predict need to know about the data without loading it."""
    return {
        "name": data.name,
        "task": data.task,
        "num_classes": data.num_classes,
        "class_names": data.class_names,
        "input_shape": list(data.input_shape),
        "num_outputs": num_outputs(data),
        "scale": data.extra.get("scale"),
        "scale_target": data.extra.get("scale_target"),
        "source": data.source,
        "class_weight": data.extra.get("class_weight"),
    }


def num_outputs(data: Dataset) -> int:
    """Classes for classification, target values per sample for regression."""
    if data.task == "classification":
        return int(data.num_classes)
    return int(np.prod(data.y_train.shape[1:])) if data.y_train.ndim > 1 else 1


def on_device(x):
    """Inputs on the model's device. On the CPU, inputs whose rows are made as they are read
    (``MappedImages``: MNIST's and image folders' pixels, kept as bytes) stay so: each batch
    becomes float32 when it is cut, and the whole set is never copied as float32."""
    if backend.name == "numpy" and read_as_needed(x):
        return x
    return backend.asarray(x)
