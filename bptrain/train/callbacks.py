"""What happens between epochs and steps besides the update itself: tracking the best epoch,
early stopping, and the guard that stops a run at the first non-finite loss or gradient.

Each keeps its state in a small dict (``state()`` / ``load_state()``), which goes into the
checkpoint so a resumed run decides exactly as an uninterrupted one would.
"""

from __future__ import annotations

import math

import numpy as np

from bptrain.errors import DivergenceError


def improves(value: float, best: float | None, mode: str, delta: float = 0.0) -> bool:
    """Whether finite ``value`` beats ``best`` (None: nothing yet) by more than ``delta``,
    downwards for mode "min", upwards for "max"."""
    if not math.isfinite(value):
        return False
    return best is None or (value < best - delta if mode == "min" else value > best + delta)


class BestTracker:
    """The best value of ``monitor`` so far and its epoch. Any strict improvement counts."""

    def __init__(self, monitor: str, mode: str):
        self.monitor, self.mode = monitor, mode
        self.best: float | None = None
        self.best_epoch: int | None = None

    def update(self, row: dict) -> bool:
        """Record epoch ``row``; True when it is the new best."""
        value = row[self.monitor]
        if improves(value, self.best, self.mode):
            self.best, self.best_epoch = float(value), int(row["epoch"])
            return True
        return False

    def state(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch}

    def load_state(self, state: dict) -> None:
        self.best, self.best_epoch = state["best"], state["best_epoch"]


class EarlyStopping:
    """Keras' EarlyStopping: stop after ``patience`` epochs without an improvement of more
    than ``min_delta`` in ``monitor``."""

    def __init__(self, monitor: str, mode: str, patience: int, min_delta: float, **_):
        self.monitor, self.mode = monitor, mode
        self.patience, self.min_delta = patience, abs(min_delta)
        self.best: float | None = None
        self.wait = 0
        self.stopped_epoch: int | None = None

    def update(self, row: dict) -> bool:
        """Record epoch ``row``; True when training should stop now."""
        value = row[self.monitor]
        if improves(value, self.best, self.mode, self.min_delta):
            self.best, self.wait = float(value), 0
            return False
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = int(row["epoch"])
            return True
        return False

    def state(self) -> dict:
        return {"best": self.best, "wait": self.wait, "stopped_epoch": self.stopped_epoch}

    def load_state(self, state: dict) -> None:
        self.best, self.wait = state["best"], state["wait"]
        self.stopped_epoch = state["stopped_epoch"]


def gradients_finite(params) -> bool:
    """Whether every gradient is finite: one sum over the flat gradient buffer (NaN and inf
    propagate through a sum), so the check costs one pass. A sum that is not finite is checked
    element by element, since huge but finite float32 gradients can add up to inf."""
    flat = getattr(params, "flat_grad", None)
    arrays = [flat] if flat is not None else [p.grad for p in params]
    with np.errstate(over="ignore", invalid="ignore"):  # an overflowing sum is the question
        return all(math.isfinite(float(a.sum())) or bool(np.isfinite(a).all()) for a in arrays)


def first_nonfinite_layer(model) -> str | None:
    """The layer whose gradient went non-finite first in the backward pass (the one nearest
    the output), as ``layer (layer/param)``; None if all are finite."""
    for layer in reversed(model.layers):
        for name, p in layer.named_parameters(f"{layer.name}/"):
            if not np.all(np.isfinite(p.grad)):
                return f"{layer.name!r} ({name})"
    return None


def divergence(model, loss: float, epoch: int, step: int, last_good: str | None) -> DivergenceError:
    """The error that stops a run whose loss or gradient is not finite."""
    layer = first_nonfinite_layer(model)
    if not math.isfinite(loss):
        what = f"the loss is {loss}"
        if layer:
            what += f" and the first non-finite gradient is in layer {layer}"
    else:
        what = f"the gradient of layer {layer} is not finite (loss {loss:.4g})"
    kept = (
        f"the last good checkpoint is {last_good}"
        if last_good
        else "no checkpoint was written before it"
    )
    return DivergenceError(
        f"training diverged at epoch {epoch}, step {step}: {what}; {kept}. "
        "Lower optimizer.learning_rate or set optimizer.clipnorm"
    )
