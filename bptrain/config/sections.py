"""The resolved config as typed, frozen dataclasses: ``Config`` and the options of its
``training`` section (whose fields are also the schema of that section).

``resolve`` returns a ``Config``; code after it reads attributes
(``config.training.checkpoint.every_steps``). The sections that are keyword arguments of a
registry's classes (``data``, each of ``model.layers``, ``loss``, ``optimizer``,
``training.schedule``) stay mappings, read-only ones. ``Config.to_dict()`` is the plain
mapping that config.yaml and checkpoints store, key for key in the order resolve wrote it.

Monitors and modes left as None / "auto" are filled in by ``resolve``: the monitor is
``val_loss`` when there is a validation split and ``loss`` otherwise, the mode is "max" for
metrics that grow (accuracy, f1, r2, ...) and "min" otherwise.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

Mode = Literal["auto", "min", "max"]


@dataclass(frozen=True, kw_only=True)
class EarlyStoppingOptions:
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience``
    epochs; with ``restore_best`` the model ends with the weights of its best epoch."""

    monitor: str | None = None
    mode: Mode = "auto"
    patience: int = 5
    min_delta: float = 0.0
    restore_best: bool = True


@dataclass(frozen=True, kw_only=True)
class CheckpointOptions:
    """``checkpoints/last.safetensors`` is written after every epoch (and every
    ``every_steps`` steps if set); ``best.safetensors`` whenever ``monitor`` improves."""

    monitor: str | None = None
    mode: Mode = "auto"
    best: bool = True
    every_steps: int | None = None


@dataclass(frozen=True, kw_only=True)
class PipelineOptions:
    """Pipeline model parallelism (``bptrain.train.pipeline``): the layers split into
    ``stages`` consecutive stages on as many MPI ranks (times data-parallel replicas), each
    batch cut into ``micro_batches`` that flow through them in the ``schedule`` (gpipe: every
    forward, then every backward; 1f1b: one forward, one backward). ``stage_boundaries``: the
    layer index where each stage after the first begins (null: balanced by parameter count)."""

    stages: int = 2
    micro_batches: int = 4
    schedule: Literal["gpipe", "1f1b"] = "1f1b"
    stage_boundaries: tuple[int, ...] | None = None


@dataclass(frozen=True, kw_only=True)
class TrainingOptions:
    """epochs, batch_size: as in Keras' fit. shuffle: a new seeded order every epoch.
    threads: BLAS threads (null: one for small models, all cores for large ones).
    replicas: copies of the model that each compute a slice of every batch in a thread of
    their own (data parallelism in one process; each uses one BLAS thread, and ``threads`` is
    not used). 1 trains the single model; with more, results equal it to float32 round-off
    (as with MPI ranks) and are deterministic for the same number of replicas.
    eval_batch_size: batch size for validation and evaluation passes.
    schedule: learning-rate schedule (constant, step, exponential, cosine, reduce_on_plateau);
    its lengths in steps or epochs, ``decay_steps`` by default the whole run (see
    ``bptrain.config.run_length``).
    plots: redraw plots/*.png after every epoch.
    max_memory: the most memory the data and the model may take, as estimated from their
    sizes before anything is allocated: bytes, or text such as "8GiB" or "500MB"; null: the
    memory available when the command starts. Larger configs are refused.
    accumulate: update once every ``accumulate`` batches of ``batch_size``, with their summed
    gradient: a step is one batch that many times larger, of which only ``batch_size`` samples'
    activations are in memory at a time (see ``bptrain.train.accumulate``).
    class_weight: null; "balanced" (each class weighs n / (classes x its count) in the
    training part); or {label: weight} by class name, others weighing 1: each sample's loss
    is multiplied by its class's weight (see ``bptrain.data.weights``).
    diagnostics: record per-layer gradient and weight norms, update ratios, activation
    statistics and dead ReLUs every ``diagnostics_every`` steps (null: 4 times an epoch) into
    layers.csv and plots/gradients.png, plots/updates.png (see ``bptrain.train.diagnostics``).
    tensorboard: write TensorBoard event files into ``tensorboard/`` in the run (epoch
    metrics, learning rate, and the diagnostics if on); needs ``pip install
    bptrain[tensorboard]``.
    pipeline: null, or the stages that train the model on MPI ranks (``PipelineOptions``).

    device: where the model computes: cpu (NumPy) or gpu (CuPy, ``pip install bptrain[gpu]``;
    see ``bptrain.train.device``). Checkpoints do not depend on it.
    flush_denormals: train with floats too small to be normal (below 1.2e-38 in float32)
    flushed to zero, as TensorFlow and JAX do on the CPU: the optimizer's decaying moments make
    them, and they are slow (see ``bptrain.train.denormals``). false keeps IEEE denormals.
    second_core: a run on one BLAS thread by default (``threads`` null, a small model), of
    one model with Adam, SGD or RMSprop, shares its large Dense layers with a second core
    (those worth it: ``bptrain.train.threads.second_core_weights``): a partner thread computes
    half of their weights' rows in every pass and in the optimizer's update (see
    ``bptrain.nn.kernels.second_core``); results equal one core's to float32 round-off and
    are repeatable and resumable bit for bit. false keeps to one core."""

    epochs: int = 10
    batch_size: int = 32
    shuffle: bool = True
    threads: int | None = None
    replicas: int = 1
    eval_batch_size: int = 64
    schedule: Mapping[str, Any] | None = None
    early_stopping: EarlyStoppingOptions | None = None
    checkpoint: CheckpointOptions = field(default_factory=CheckpointOptions)
    plots: bool = True
    max_memory: int | str | None = None
    class_weight: str | dict | None = None
    accumulate: int = 1
    diagnostics: bool = False
    diagnostics_every: int | None = None
    tensorboard: bool = False
    pipeline: PipelineOptions | None = None
    device: Literal["cpu", "gpu"] = "cpu"
    flush_denormals: bool = True
    second_core: bool = True


@dataclass(frozen=True, kw_only=True)
class ModelOptions:
    """``layers``: each layer's spec, ``{type: Dense, units: 10, ...}`` with every default.
    fuse: run neighbours that compute faster together (Conv2D -> MaxPool2D, a ReLU before a
    MaxPool2D) as one fused layer with the same values (``bptrain.nn.fusion``); false runs
    the plain layers."""

    layers: tuple[Mapping[str, Any], ...]
    fuse: bool = True


@dataclass(frozen=True, kw_only=True)
class Config:
    """A resolved experiment config (see ``bptrain.config.resolve``)."""

    name: str
    seed: int
    data: Mapping[str, Any]
    model: ModelOptions
    loss: Mapping[str, Any]
    optimizer: Mapping[str, Any]
    metrics: tuple[str, ...]
    training: TrainingOptions

    @classmethod
    def of(cls, resolved: dict) -> Config:
        """The Config of the plain mapping that ``resolve`` validated and filled in."""
        t = resolved["training"]
        stop, pipe = t["early_stopping"], t.get("pipeline")
        training = TrainingOptions(
            **{
                **t,
                "schedule": _frozen(t["schedule"]),
                "early_stopping": EarlyStoppingOptions(**stop) if stop is not None else None,
                "checkpoint": CheckpointOptions(**t["checkpoint"]),
                "pipeline": PipelineOptions(**_pipeline_fields(pipe)) if pipe else None,
            }
        )
        return cls(
            name=resolved["name"],
            seed=resolved["seed"],
            data=_frozen(resolved["data"]),
            model=ModelOptions(
                layers=tuple(_frozen(s) for s in resolved["model"]["layers"]),
                fuse=resolved["model"].get("fuse", True),
            ),
            loss=_frozen(resolved["loss"]),
            optimizer=_frozen(resolved["optimizer"]),
            metrics=tuple(resolved["metrics"]),
            training=training,
        )

    def __reduce__(self):  # read-only mappings do not pickle; their plain copies do
        return Config.of, (self.to_dict(),)

    def to_dict(self) -> dict:
        """The plain mapping (lists, dicts, scalars) that config.yaml and checkpoints hold."""
        return _plain(self)

    def replace(self, **sections) -> Config:
        """A copy with whole sections replaced (see ``dataclasses.replace``)."""
        return dataclasses.replace(self, **sections)


def _pipeline_fields(spec: Mapping) -> dict:
    bounds = spec.get("stage_boundaries")
    return {**spec, "stage_boundaries": tuple(bounds) if bounds is not None else None}


def _frozen(spec):
    """A read-only view of a mapping (its values are not copied), or None."""
    return None if spec is None else MappingProxyType(dict(spec))


def _plain(value):
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


POSITIVE = {
    ("training", "epochs"),
    ("training", "batch_size"),
    ("training", "threads"),
    ("training", "replicas"),
    ("training", "accumulate"),
    ("training", "eval_batch_size"),
    ("training", "checkpoint", "every_steps"),
    ("training", "diagnostics_every"),
    ("training", "pipeline", "stages"),
    ("training", "pipeline", "micro_batches"),
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
