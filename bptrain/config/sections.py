"""The options of the ``model`` and ``training`` sections, as typed dataclasses (the schema is
the fields).

Monitors and modes left as None / "auto" are filled in by ``resolve``: the monitor is
``val_loss`` when there is a validation split and ``loss`` otherwise, the mode is "max" for
metrics that grow (accuracy, f1, r2, ...) and "min" otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Mode = Literal["auto", "min", "max"]


@dataclass(kw_only=True)
class EarlyStoppingOptions:
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience``
    epochs; with ``restore_best`` the model ends with the weights of its best epoch."""

    monitor: str | None = None
    mode: Mode = "auto"
    patience: int = 5
    min_delta: float = 0.0
    restore_best: bool = True


@dataclass(kw_only=True)
class CheckpointOptions:
    """``checkpoints/last.safetensors`` is written after every epoch (and every
    ``every_steps`` steps if set); ``best.safetensors`` whenever ``monitor`` improves."""

    monitor: str | None = None
    mode: Mode = "auto"
    best: bool = True
    every_steps: int | None = None


@dataclass(kw_only=True)
class ModelOptions:
    """The ``model`` section besides its ``layers``. fuse: run neighbours that compute faster
    together (Conv2D -> MaxPool2D, a ReLU before a MaxPool2D) as one fused layer with the same
    values (``bptrain.nn.fusion``); false runs the plain layers."""

    fuse: bool = True


@dataclass(kw_only=True)
class TrainingOptions:
    """epochs, batch_size: as in Keras' fit. shuffle: a new seeded order every epoch.
    threads: BLAS threads (null: one for small models, all cores for large ones).
    replicas: copies of the model that each compute a slice of every batch in a thread of
    their own (data parallelism in one process; each uses one BLAS thread, and ``threads`` is
    not used). 1 trains the single model; with more, results equal it to float32 round-off
    (as with MPI ranks) and are deterministic for the same number of replicas.
    eval_batch_size: batch size for validation and evaluation passes.
    schedule: learning-rate schedule (constant, step, exponential, cosine, reduce_on_plateau).
    plots: redraw plots/*.png after every epoch."""

    epochs: int = 10
    batch_size: int = 32
    shuffle: bool = True
    threads: int | None = None
    replicas: int = 1
    eval_batch_size: int = 1024
    schedule: str | dict | None = None
    early_stopping: dict | None = None
    checkpoint: dict = field(default_factory=dict)
    plots: bool = True


POSITIVE = {
    ("training", "epochs"),
    ("training", "batch_size"),
    ("training", "threads"),
    ("training", "replicas"),
    ("training", "eval_batch_size"),
    ("training", "checkpoint", "every_steps"),
}
NON_NEGATIVE = {
    ("training", "early_stopping", "patience"),
    ("training", "early_stopping", "min_delta"),
}

# Monitored quantities that improve upwards; everything else (losses, errors) improves down.
GROWING = ("accuracy", "precision", "recall", "f1", "r2")


def mode_for(monitor: str) -> str:
    """ "max" for accuracy-like monitors (val_accuracy, val_f1, ...), "min" for losses."""
    name = monitor[4:] if monitor.startswith("val_") else monitor
    return "max" if name in GROWING else "min"
