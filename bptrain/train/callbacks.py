"""What happens between epochs and steps besides the update itself: tracking the best epoch,
early stopping, and the guards that stop a run at the first non-finite loss or gradient, or at
a loss that explodes while still finite.

Each keeps its state in a small dict (``state()`` / ``load_state()``), which goes into the
checkpoint so a resumed run decides exactly as an uninterrupted one would.
"""

from __future__ import annotations

import math

from bptrain.errors import DivergenceError
from bptrain.nn import backend
from bptrain.nn.kernels import second_core
from bptrain.train.layer_stats import steepest_gradient


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

    def __init__(self, monitor: str, mode: str, patience: int, min_delta: float):
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
    """Whether every gradient is finite: one sum of squares over the flat gradient buffer (NaN
    and inf propagate into it, and squares cannot cancel an inf), so the check costs one pass: a
    BLAS dot, 6.7 against 17.6 us for NumPy's sum over the MNIST MLP's 101,770 float32
    gradients, or, where a second core shares the update (``second_core.squared_norm``), each
    core's sum over its own part. A sum that is not finite is checked element by element, since
    huge but finite float32 gradients can square and add up to inf."""
    flat = getattr(params, "flat_grad", None)
    arrays = [flat] if flat is not None else [p.grad for p in params]
    xp = backend.xp  # (BLAS raises no overflow warning: no errstate needed on this hot path)
    return all(
        math.isfinite(second_core.squared_norm(a)) or bool(xp.isfinite(a).all()) for a in arrays
    )


def first_nonfinite_layer(model) -> str | None:
    """The layer whose gradient went non-finite first in the backward pass (the one nearest
    the output), as ``layer (layer/param)``; None if all are finite."""
    for layer in reversed(model.network.layers):
        for name, p in layer.named_parameters(f"{layer.name}/"):
            if not bool(backend.xp.isfinite(p.grad).all()):
                return f"{layer.name!r} ({name})"
    return None


class ExplosionGuard:
    """Tells a loss that explodes while still finite (Adam at a learning rate of 1e6 settles
    near 1e19 and never overflows) from a loss that merely rises.

    The reference is the run's starting level: the highest batch loss of its first
    ``WARMUP_STEPS`` steps (the highest, so that a lucky first batch of one sample does not set
    it). A loss more than ``FACTOR`` times that level has exploded; until the reference holds
    ``MIN_SAMPLES`` samples, only one ``FACTOR`` squared times it. A run's loss starts near its
    highest: on the shipped configs no batch loss came above 1.13 times the reference, while a
    learning rate far too high overshoots it 1e3 to 1e15 times within a step or two. A loss may
    fall by orders of magnitude and come back to where it began (a spike, a warm restart)
    without nearing the limit.
    """

    FACTOR = 1e3
    WARMUP_STEPS = 10
    MIN_SAMPLES = 32

    def __init__(self):
        self.load_state({"level": None, "steps": 0, "samples": 0})

    def exploded(self, loss: float) -> str | None:
        """Why finite ``loss`` has exploded (for the divergence error), or None if it has not."""
        if self.limit is None or loss <= self.limit:
            return None
        power = round(math.log10(self.limit / self.level))
        return f"more than 1e{power} times the run's starting level {self.level:.4g}"

    def update(self, loss: float, samples: int) -> None:
        """Record the accepted loss of a batch of ``samples``."""
        if self.steps < self.WARMUP_STEPS:
            self.level = loss if self.level is None else max(self.level, loss)
            self.samples += samples
            self.steps += 1
            self.limit = self._limit()

    def _limit(self) -> float | None:
        """The largest loss that has not exploded; None while there is no reference."""
        if self.level is None or self.level <= 0:
            return None
        factor = self.FACTOR if self.samples >= self.MIN_SAMPLES else self.FACTOR**2
        return factor * self.level

    def state(self) -> dict:
        return {"level": self.level, "steps": self.steps, "samples": self.samples}

    def load_state(self, state: dict) -> None:
        self.level, self.steps, self.samples = state["level"], state["steps"], state["samples"]
        self.limit = self._limit()


def divergence(
    model,
    loss: float,
    epoch: int,
    step: int,
    last_good: str | None,
    exploded: str | None = None,
    quantity: str = "loss",
    reference: dict | None = None,
) -> DivergenceError:
    """The error that stops a run whose loss or gradient is not finite, or whose finite
    ``quantity`` (the loss, or the validation loss) has exploded (``exploded``: how, from
    ``ExplosionGuard.exploded``). It names the layer where the gradient went non-finite first
    in the backward pass, or for an exploded training loss the one whose gradient grew most
    since ``reference`` (the last diagnostics record; ``layer_stats.steepest_gradient``)."""
    layer = None if exploded else first_nonfinite_layer(model)
    if exploded:
        what = f"the {quantity} is {loss:.4g}, {exploded}"
        steepest = steepest_gradient(model.network, reference) if quantity == "loss" else None
        if steepest:
            what += f"; the steepest gradient is in layer {steepest}"
    elif not math.isfinite(loss):
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
