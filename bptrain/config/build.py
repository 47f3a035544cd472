"""Objects from a resolved config: layers, the compiled model, optimizer, loss, schedule.

Every ValueError a constructor or ``build`` raises (a bad value, shapes that do not fit) becomes
a ConfigError naming the config entry, e.g. ``model.layers[2]: layer 'dense_1' (Dense): ...``.
"""

from __future__ import annotations

import re
import types
import typing

from bptrain.config.locations import config_error
from bptrain.config.run_length import RunLength, schedule_arguments
from bptrain.config.sections import Config
from bptrain.data.split import rng_for
from bptrain.nn import losses, optimizers, schedules
from bptrain.nn.layers import LAYERS, Sequential
from bptrain.nn.model import Model
from bptrain.typehints import constructor_params

OPTIMIZER_EXCLUDE = ("schedule",)  # the schedule is configured in training.schedule
SCHEDULE_EXTRA = ("monitor",)  # keys of training.schedule the trainer reads, not the class


def build_layer(spec: dict, path: tuple):
    """One layer from ``{"type": "Dense", "units": 10, ...}``; layers inside it (``layers`` of
    a nested Sequential, ``layer`` of a wrapper) are built first."""
    cls = LAYERS[spec["type"]]
    params = constructor_params(cls)
    kwargs = {}
    for key, value in spec.items():
        if key == "type":
            continue
        if key == "layers" and isinstance(value, list):  # a nested Sequential
            value = [build_layer(s, (*path, "layers", i)) for i, s in enumerate(value)]
        elif key == "layer" and isinstance(value, dict):  # a wrapper such as Bidirectional
            value = build_layer(value, (*path, "layer"))
        kwargs[key] = _as_hinted(value, params[key].hint if key in params else typing.Any)
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:
        message = str(exc) if spec["type"] in str(exc) else f"{spec['type']}: {exc}"
        raise config_error(_blame(path, spec, exc), message) from None


def build_model(
    config: Config,
    input_shape: tuple,
    num_outputs: int | None = None,
    run: RunLength | None = None,
) -> Model:
    """The compiled model of a resolved config: its layers built for per-sample
    ``input_shape`` as a ``Sequential`` network, with the config's loss and optimizer.

    Weights are drawn from a generator seeded by ``config.seed``; the same generator drives
    dropout (``model.network.rng``). ``num_outputs`` (classes, or regression targets) is checked
    against the model's output size. ``run``: the length of the run it will train in, which
    the schedule's lengths in epochs or of the whole run count in (None for a model that is
    not trained; see ``build_schedule``).
    """
    specs = config.model.layers
    layers = [build_layer(spec, ("model", "layers", i)) for i, spec in enumerate(specs)]
    network = Sequential(layers, fuse=config.model.fuse)
    try:
        network.build(tuple(input_shape), rng_for(config.seed, "model"))
        model = Model(network, build_loss(config.loss), build_optimizer(config, run))
    except (ValueError, MemoryError) as exc:  # MemoryError: weights larger than the memory
        failed = next((i for i, layer in enumerate(layers) if not layer.built), len(layers) - 1)
        raise config_error(
            ("model", "layers", failed), f"{exc} (input shape per sample: {tuple(input_shape)})"
        ) from None
    if num_outputs is not None:
        _check_outputs(network, config, num_outputs)
    return model


def _check_outputs(network: Sequential, config: Config, num_outputs: int) -> None:
    out = network.output_shape[-1] if network.output_shape else None
    loss = config.loss["type"]
    # two classes under binary cross-entropy: one sigmoid unit
    expected = 1 if loss == "binary_crossentropy" and num_outputs == 2 else num_outputs
    if out != expected:
        last = len(config.model.layers) - 1
        what = "classes" if loss.endswith("crossentropy") else "target values per sample"
        raise config_error(
            ("model", "layers", last),
            f"the model outputs {out} values per sample but the data has {num_outputs} {what}; "
            f"give the last layer units: {expected}",
        )


def build_loss(spec: dict) -> losses.Loss:
    kwargs = {k: v for k, v in spec.items() if k != "type"}
    try:
        return losses.LOSSES[spec["type"]](**kwargs)
    except (ValueError, TypeError) as exc:
        raise config_error(_blame(("loss",), spec, exc), str(exc)) from None


def build_optimizer(config: Config, run: RunLength | None = None) -> optimizers.Optimizer:
    spec = config.optimizer
    kwargs = {k: v for k, v in spec.items() if k != "type"}
    schedule = build_schedule(config.training.schedule, run)
    try:
        return optimizers.OPTIMIZERS[spec["type"]](**kwargs, schedule=schedule)
    except (ValueError, TypeError) as exc:
        raise config_error(_blame(("optimizer",), spec, exc), str(exc)) from None


def build_schedule(spec: dict | None, run: RunLength | None = None) -> schedules.Schedule:
    """The schedule of a resolved ``training.schedule``, its lengths counted in steps of
    ``run`` (see ``bptrain.config.run_length.schedule_steps``; None: a model that never
    steps, for which any length will do)."""
    if spec is None:
        return schedules.Constant()
    kwargs = schedule_arguments(spec, run, extra=SCHEDULE_EXTRA)
    try:
        return schedules.SCHEDULES[spec["type"]](**kwargs)
    except (ValueError, TypeError) as exc:
        raise config_error(_blame(("training", "schedule"), spec, exc), str(exc)) from None


def _blame(path: tuple, spec: dict, exc: Exception) -> tuple:
    """The path of the key a constructor's error message names ("units must be ..."), if any."""
    words = set(re.findall(r"\w+", str(exc)))
    key = next((k for k in spec if k != "type" and k in words), None)
    return (*path, key) if key else path


def _as_hinted(value, hint):
    """YAML lists become tuples where the constructor's hint asks for a tuple."""
    if isinstance(value, list) and _wants_tuple(hint):
        return tuple(value)
    return value


def _wants_tuple(hint) -> bool:
    origin = typing.get_origin(hint)
    if origin is tuple:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_wants_tuple(a) for a in typing.get_args(hint))
    return False


def check_buildable(config: Config) -> None:
    """Run every constructor of a resolved config (no weights are made), so bad values such
    as ``units: 0`` are found by ``bptrain config check``."""
    for i, spec in enumerate(config.model.layers):
        build_layer(spec, ("model", "layers", i))
    build_loss(config.loss)
    build_optimizer(config)
