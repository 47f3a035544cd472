"""Refusing what would not fit in memory, from sizes alone, before anything is allocated.

A config that asks for 300 million generated points or a Dense layer of ten million units
would otherwise be found out by allocating it: minutes of swapping, then a MemoryError
traceback or the OOM killer. ``fit``, ``config check --build`` and ``gradcheck`` estimate
first (``prepare``): the data from their options and file sizes, then the model from its
config (``bptrain.config.footprint``), against ``training.max_memory`` or the memory
available when the command started. A refusal is a ConfigError naming the data option or the
layer that takes the most.

And the memory policy of a training process (``keep_step_memory``).
"""

from __future__ import annotations

from dataclasses import dataclass

from bptrain.config.build import build_optimizer
from bptrain.config.footprint import layer_footprints
from bptrain.config.locations import config_error
from bptrain.config.sections import Config
from bptrain.data import Dataset, footprint
from bptrain.memory import available, format_bytes, parse_size
from bptrain.nn import backend

VALUE_BYTES = 4  # float32
# Each parameter is a value and a gradient plus the optimizer's slots, and about as much again
# while a checkpoint is encoded (measured with tracemalloc: 38 bytes per parameter with Adam,
# 18 with plain SGD, against the 16 and 8 resident).
COPIES_WHILE_SAVING = 2


@dataclass(frozen=True)
class Budget:
    """``limit`` bytes (None: unknown, nothing is refused) and how to say where it comes from."""

    limit: int | None
    source: str

    @classmethod
    def of(cls, config: Config) -> Budget:
        setting = config.training.max_memory
        if setting is not None:
            limit = parse_size(setting)
            return cls(limit, f"training.max_memory ({format_bytes(limit)})")
        limit = available()
        return cls(limit, f"the {format_bytes(limit)} of memory available" if limit else "")

    def exceeded_by(self, nbytes: int) -> bool:
        return self.limit is not None and nbytes > self.limit

    @property
    def advice(self) -> str:
        if self.source.startswith("training.max_memory"):
            return "raise training.max_memory if the machine has room"
        return "or set training.max_memory if more memory will be free"


def check_data(config: Config, budget: Budget, recorded: dict | None = None) -> None:
    """Refuse a dataset whose loading would take more than the budget, naming its options."""
    need = footprint(config.data, recorded)
    if need is None or not budget.exceeded_by(need.nbytes):
        return
    data = config.data
    keys = " and ".join(f"data.{k}" for k in need.keys)
    # blame the largest of the numbers that decide the size (the one most likely mistyped)
    blamed = max(need.keys, key=lambda k: data.get(k) if isinstance(data.get(k), int) else 0)
    name = data["dataset"]
    raise config_error(
        ("data", blamed),
        f"{name} with {need.what} takes about {format_bytes(need.nbytes)} to load, more than "
        f"{budget.source}; make it smaller with {keys} ({budget.advice})",
    )


def check_model(config: Config, data: Dataset, budget: Budget) -> None:
    """Refuse a model whose parameters (with gradients, optimizer slots and a checkpoint's
    copy) and activations for a batch, with the data already loaded, exceed the budget; the
    layer that takes the most is named."""
    layers = layer_footprints(config.model.layers, data.input_shape)
    if not layers or budget.limit is None:
        return
    t = config.training
    slots = len(build_optimizer(config).slot_names)
    per_param = VALUE_BYTES * (2 + slots) * COPIES_WHILE_SAVING + VALUE_BYTES * (t.replicas - 1)
    batch = max(t.batch_size, t.eval_batch_size)
    sizes = [layer.params * per_param + layer.values * VALUE_BYTES * batch for layer in layers]
    data_bytes = sum(a.nbytes for a in (data.x_train, data.y_train, data.x_val, data.y_val))
    data_bytes += data.x_test.nbytes + data.y_test.nbytes
    total = sum(sizes) + data_bytes
    if not budget.exceeded_by(total):
        return
    worst = max(range(len(layers)), key=sizes.__getitem__)
    layer = layers[worst]
    weights, activations = layer.params * per_param, layer.values * VALUE_BYTES * batch
    if weights >= activations:
        what = (
            f"{layer.params:,} parameters, which with their gradients, "
            f"{config.optimizer['type']}'s {slots} slot(s) and a checkpoint's copy take "
            f"about {format_bytes(weights)}"
        )
        fix = "make the layer smaller"
    else:
        what = (
            f"inputs of shape {layer.input_shape} and outputs of shape {layer.output_shape}: "
            f"a training step keeps {layer.values:,} values per sample for it, which for "
            f"batches of {batch} (training.batch_size, eval_batch_size) take about "
            f"{format_bytes(activations)}"
        )
        fix = "make the layer or the batches smaller"
    raise config_error(
        layer.path,
        f"{layer.type} has {what}; the model and the data ({format_bytes(data_bytes)}) need "
        f"about {format_bytes(total)}, more than {budget.source}; {fix} ({budget.advice})",
    )


def keep_step_memory() -> None:
    """The process's memory policy for training: each step frees and reallocates the same large
    arrays, so keep that memory in the process instead of faulting fresh zeroed pages in every
    step (~15% of a CNN step; see ``backend.keep_freed_memory``)."""
    backend.keep_freed_memory()
