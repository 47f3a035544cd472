"""Validation of an experiment config and filling in of every default.

``resolve(raw)`` returns the full config that ``bptrain config show`` prints and a run directory
stores; resolving a resolved config returns it unchanged. The schema comes from the code:
layer, optimizer, loss, schedule, initializer and regularizer keys from the constructors'
signatures and type hints (so new layers need no work here), dataset keys from the options
dataclasses in ``bptrain.data.DATASETS``, training keys from ``bptrain.config.sections``.
"""

from __future__ import annotations

import dataclasses
import math
import re
import typing

from bptrain.config import sections
from bptrain.config.build import OPTIMIZER_EXCLUDE, check_buildable
from bptrain.config.locations import Locations, locate_error
from bptrain.config.overrides import canonical_path
from bptrain.config.run_length import EPOCH_KEYS, WARMUP, WHOLE_RUN
from bptrain.config.sections import Config
from bptrain.data import DATASETS
from bptrain.errors import ConfigError, closest, did_you_mean
from bptrain.memory import parse_size
from bptrain.metric_names import EPOCH_METRICS
from bptrain.nn import activations, initializers, losses, optimizers, regularizers, schedules
from bptrain.nn.layers import LAYERS
from bptrain.typehints import (
    Param,
    check,
    constructor_params,
    dataclass_params,
    describe,
    first_bad_item,
    yaml_type,
)

SECTIONS = ("name", "seed", "data", "model", "loss", "optimizer", "metrics", "training")
REQUIRED = ("data", "model", "loss")
CLASSIFICATION_LOSSES = (
    "sparse_categorical_crossentropy",
    "categorical_crossentropy",
    "binary_crossentropy",
)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def resolve(raw: dict, where: Locations | None = None, default_name: str = "run") -> Config:
    """Validate ``raw`` and return the full config with defaults filled in, typed and frozen
    (a resolved ``Config`` given resolves to an equal one).

    Raises ConfigError naming the place (file and line when ``where`` knows it), the key path
    and, for a misspelt key or name, the closest valid one.
    """
    where = where if where is not None else Locations()
    if isinstance(raw, Config):
        raw = raw.to_dict()
    if not isinstance(raw, dict):
        raise where.error((), f"the config must be a mapping of sections, got {yaml_type(raw)}")
    reject_unknown_keys(raw, SECTIONS, (), where)
    for key in REQUIRED:
        if key not in raw:
            raise where.error((), f"missing section {key!r}; see configs/ for examples")
    out: dict = {}
    out["name"] = check_run_name(raw.get("name", default_name), where)
    out["seed"] = _seed(raw.get("seed", 0), where)
    out["data"] = _data(raw["data"], where)
    out["model"] = _model(raw["model"], where)
    out["loss"] = _typed(raw["loss"], losses.LOSSES, ("loss",), where, "loss", losses.ALIASES)
    out["optimizer"] = _optimizer(raw.get("optimizer", "adam"), where)
    out["metrics"] = _metrics(raw.get("metrics"), out["loss"]["type"], where)
    out["training"] = _training(raw.get("training", {}), out, where)
    config = Config.of(out)
    try:
        check_buildable(config)
    except ConfigError as exc:
        raise locate_error(exc, where) from None
    return config


# -- sections ---------------------------------------------------------------------------------
def check_run_name(value, where: Locations) -> str:
    """``value`` if it is a valid run name, else a ConfigError at ``name``."""
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise where.error(
            ("name",),
            f"expected a run name of letters, digits, '_', '.' and '-', got {yaml_type(value)}",
        )
    return value


def _seed(value, where: Locations) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise where.error(("seed",), f"expected a non-negative integer, got {yaml_type(value)}")
    return value


def _data(value, where: Locations) -> dict:
    path = ("data",)
    if not isinstance(value, dict):
        raise where.error(path, f"expected a mapping with a 'dataset' key, got {yaml_type(value)}")
    if "dataset" not in value:
        raise where.error(path, f"missing 'dataset' (one of {', '.join(DATASETS)})")
    name = value["dataset"]
    if not isinstance(name, str) or name not in DATASETS:
        raise where.error(
            (*path, "dataset"),
            _unknown_name("dataset", name, DATASETS)
            if isinstance(name, str)
            else f"expected a dataset name, got {yaml_type(name)}",
        )
    cls = DATASETS[name]
    options = {k: v for k, v in value.items() if k != "dataset"}
    kwargs = _kwargs(options, dataclass_params(cls), path, where, f"dataset {name}")
    try:
        opts = cls(**kwargs)
    except ConfigError as exc:  # range checks in __post_init__ name the key: "data.size must ..."
        match = re.match(r"data\.(\w+)", str(exc))
        place = where.of((*path, match.group(1)) if match else path)
        raise ConfigError(f"{place}: {exc}" if place else str(exc)) from None
    return {"dataset": name, **_plain(dataclasses.asdict(opts))}


def _model(value, where: Locations) -> dict:
    path = ("model",)
    if not isinstance(value, dict):
        raise where.error(path, f"expected a mapping with 'layers', got {yaml_type(value)}")
    params = {k: p for k, p in dataclass_params(sections.ModelOptions).items() if k != "layers"}
    reject_unknown_keys(value, ("layers", *params), path, where)
    layers = value.get("layers")
    if not isinstance(layers, list) or not layers:
        raise where.error(
            (*path, "layers"), "expected a non-empty list of layers like {type: Dense, units: 10}"
        )
    options = {k: v for k, v in value.items() if k != "layers"}
    return {
        "layers": _layers(layers, (*path, "layers"), where),
        **_kwargs(options, params, path, where, "model"),
    }


def _layers(specs: list, path: tuple, where: Locations) -> list:
    out = []
    for i, spec in enumerate(specs):
        if not isinstance(spec, dict):
            raise where.error(
                (*path, i),
                f"expected a layer like {{type: Dense, units: 10}}, got {yaml_type(spec)}",
            )
        out.append(_typed(spec, LAYERS, (*path, i), where, "layer"))
    return out


def _optimizer(value, where: Locations) -> dict:
    path = ("optimizer",)
    if isinstance(value, dict):
        value = _canonical_keys(value, path, where)
    return _typed(
        value,
        optimizers.OPTIMIZERS,
        path,
        where,
        "optimizer",
        exclude=OPTIMIZER_EXCLUDE,
        aliases_with_defaults={"momentum": ("sgd", {"momentum": 0.9})},
    )


def _canonical_keys(spec: dict, path: tuple, where: Locations) -> dict:
    """``spec`` (the mapping at ``path``) with each key spelt by an alias under the name it
    stands for (``lr`` -> ``learning_rate``); its location moves along."""
    out = {}
    for key, value in spec.items():
        name = canonical_path((*path, key))[-1] if isinstance(key, str) else key
        if name != key:
            if name in spec:
                raise where.error((*path, key), f"give either {key} or {name}, not both")
            if where.exact((*path, key)) is not None:
                where.set((*path, name), where.exact((*path, key)))
        out[name] = value
    return out


def _metrics(value, loss: str, where: Locations) -> list:
    if value is None:
        return ["accuracy"] if loss in CLASSIFICATION_LOSSES else ["mse", "mae", "r2"]
    if not isinstance(value, list):
        raise where.error(("metrics",), f"expected a list of metric names, got {yaml_type(value)}")
    for i, name in enumerate(value):
        if not isinstance(name, str):
            raise where.error(
                ("metrics", i),
                f"expected a metric name ({', '.join(EPOCH_METRICS)}), got {yaml_type(name)}",
            )
        if name not in EPOCH_METRICS:
            raise where.error(("metrics", i), _unknown_name("metric", name, EPOCH_METRICS))
    if len(set(value)) != len(value):
        raise where.error(("metrics",), "a metric is listed twice")
    return list(value)


def _training(value, config: dict, where: Locations) -> dict:
    path = ("training",)
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise where.error(path, f"expected a mapping, got {yaml_type(value)}")
    params = dataclass_params(sections.TrainingOptions)
    # as written in YAML; the schedule and the two sections are checked below, key by key
    params["schedule"] = Param("schedule", str | dict | None, None)
    params["early_stopping"] = Param("early_stopping", dict | None, None)
    params["checkpoint"] = Param("checkpoint", dict, {})
    params["pipeline"] = Param("pipeline", dict | None, None)
    out = _kwargs(value, params, path, where, "training")
    _positive(out, path, where)
    if out["max_memory"] is not None:
        try:
            parse_size(out["max_memory"])
        except ValueError as exc:
            raise where.error((*path, "max_memory"), str(exc)) from None
    _class_weight(out["class_weight"], (*path, "class_weight"), where)
    data = config["data"]  # a validation set comes from validation_split or k-fold (sweeps)
    has_val = data.get("validation_split", 0.0) > 0.0 or data.get("folds") is not None
    monitors = ["loss"] + (
        ["val_loss"] + [f"val_{m}" for m in config["metrics"]] if has_val else []
    )
    default_monitor = "val_loss" if has_val else "loss"

    if out["schedule"] is not None:
        out["schedule"] = _schedule(
            out["schedule"], (*path, "schedule"), where, monitors, default_monitor, out["epochs"]
        )
    out["early_stopping"] = _early_stopping(
        out["early_stopping"], (*path, "early_stopping"), where, monitors, default_monitor
    )
    out["checkpoint"] = _checkpoint(
        out["checkpoint"], out["early_stopping"], (*path, "checkpoint"), where, monitors,
        default_monitor,
    )  # fmt: skip
    out["pipeline"] = _pipeline(out["pipeline"], (*path, "pipeline"), where, config["model"])
    return out


def _pipeline(given, sub: tuple, where: Locations, model: dict) -> dict | None:
    """training.pipeline (null: off) with its defaults; stage_boundaries, if given, are
    increasing layer indices that leave every stage at least one layer."""
    if given is None:
        return None
    spec = _kwargs(given, dataclass_params(sections.PipelineOptions), sub, where, "pipeline")
    _positive(spec, sub, where)
    layers, stages = len(model["layers"]), spec["stages"]
    if stages > layers:
        raise where.error(
            (*sub, "stages"),
            f"{stages} stages need at least {stages} layers; the model has {layers}",
        )
    bounds = spec["stage_boundaries"]
    if bounds is not None:
        bounds = list(bounds)
        ok = all(isinstance(b, int) and not isinstance(b, bool) for b in bounds)
        if not ok or len(bounds) != stages - 1 or bounds != sorted(set(bounds)):
            raise where.error(
                (*sub, "stage_boundaries"),
                f"expected a list of {stages - 1} increasing layer indices (where stages "
                f"2..{stages} begin), got {bounds}",
            )
        if bounds and not (0 < bounds[0] and bounds[-1] < layers):
            raise where.error(
                (*sub, "stage_boundaries"),
                f"layer indices must be between 1 and {layers - 1} (every stage keeps a layer), "
                f"got {bounds}",
            )
        spec["stage_boundaries"] = bounds
    return spec


def _early_stopping(stop, sub: tuple, where: Locations, monitors, default_monitor):
    """training.early_stopping (null: off) with its defaults, monitor and mode filled in."""
    if stop is None:
        return None
    options = dataclass_params(sections.EarlyStoppingOptions)
    stop = _kwargs(stop, options, sub, where, "early_stopping")
    _positive(stop, sub, where)
    return _monitored(stop, sub, where, monitors, default_monitor, fill_mode=stop["mode"] == "auto")


def _checkpoint(given, stop, sub: tuple, where: Locations, monitors, default_monitor) -> dict:
    """training.checkpoint with its defaults; with early stopping's ``restore_best`` it must
    keep the best checkpoint by the same monitor."""
    options = dataclass_params(sections.CheckpointOptions)
    ckpt = _kwargs(given, options, sub, where, "checkpoint")
    _positive(ckpt, sub, where)
    if stop is not None and stop["restore_best"] and ckpt["monitor"] is None:
        # restore_best reloads checkpoints/best, so "best" must mean what early stopping means
        ckpt["monitor"], ckpt["mode"] = stop["monitor"], stop["mode"]
    ckpt = _monitored(ckpt, sub, where, monitors, default_monitor, fill_mode=ckpt["mode"] == "auto")
    if stop is not None and stop["restore_best"]:
        if not ckpt["best"]:
            raise where.error(
                (*sub, "best"), "early_stopping.restore_best needs the best checkpoint; set it true"
            )
        if (ckpt["monitor"], ckpt["mode"]) != (stop["monitor"], stop["mode"]):
            raise where.error(
                (*sub, "monitor"),
                f"early_stopping.restore_best reloads the best checkpoint, so both must monitor "
                f"the same: {stop['monitor']!r} ({stop['mode']}) here too",
            )
    return ckpt


def _class_weight(value, path: tuple, where: Locations) -> None:
    """null, "balanced", or {label: positive number} (labels are checked against the data's
    classes when it loads)."""
    if value is None or value == "balanced":
        return
    if isinstance(value, str):
        raise where.error(path, f"expected 'balanced' or {{label: weight}}, got {value!r}")
    for label, weight in value.items():
        if isinstance(weight, bool) or not isinstance(weight, int | float) or weight < 0:
            raise where.error(
                (*path, label), f"expected a non-negative number, got {yaml_type(weight)}"
            )


def _schedule(value, path, where, monitors, default_monitor, epochs: int) -> dict:
    kind = value.get("type") if isinstance(value, dict) else value
    plateau = kind == "reduce_on_plateau"
    extra = [Param("monitor", str | None, None)] if plateau else []
    if isinstance(kind, str) and kind in schedules.SCHEDULES:
        extra += _length_params(schedules.SCHEDULES[kind])
    spec = _typed(value, schedules.SCHEDULES, path, where, "schedule", extra=extra)
    spec = _lengths(spec, path, where, epochs)
    if plateau:
        given_mode = isinstance(value, dict) and "mode" in value
        spec = _monitored(spec, path, where, monitors, default_monitor, fill_mode=not given_mode)
    return spec


def _length_params(cls) -> list[Param]:
    """A schedule's lengths in steps as optional keys, each with its twin in epochs."""
    out = []
    for name in constructor_params(cls):
        if name in EPOCH_KEYS:
            out += [
                Param(name, int | None, None),
                Param(EPOCH_KEYS[name], int | float | None, None),
            ]
    return out


def _lengths(spec: dict, path: tuple, where: Locations, epochs: int) -> dict:
    """Check a schedule's lengths, given in steps or in epochs (not both), and put each twin in
    epochs beside its key in steps. Left out, ``decay_steps`` stays null (the whole run, counted
    when the data is loaded: see ``bptrain.config.run_length``) and ``warmup_steps`` is 0."""
    out = {}
    for key, value in spec.items():
        if key in EPOCH_KEYS.values():
            continue
        out[key] = value
        if key not in EPOCH_KEYS:
            continue
        epoch_key = EPOCH_KEYS[key]
        in_epochs = spec[epoch_key]
        if value is not None and in_epochs is not None:
            raise where.error((*path, epoch_key), f"give either {key} or {epoch_key}, not both")
        for name, given in ((key, value), (epoch_key, in_epochs)):
            if given is not None and (given < 0 or (given == 0 and key != WARMUP)):
                bound = "must not be negative" if key == WARMUP else "must be positive"
                raise where.error((*path, name), f"{bound}, got {given}")
        if value is None and in_epochs is None:
            if key == WARMUP:
                out[key] = 0
            elif key != WHOLE_RUN:
                raise where.error(path, f"{spec['type']} needs {key!r} or {epoch_key!r}")
        out[epoch_key] = in_epochs
    warmup = out.get(EPOCH_KEYS[WARMUP])
    whole_run = out.get(WHOLE_RUN, 0) is None and out.get(EPOCH_KEYS[WHOLE_RUN]) is None
    if whole_run and warmup is not None and warmup >= epochs:
        raise where.error(
            (*path, EPOCH_KEYS[WARMUP]),
            f"the warmup ({warmup:g} epochs) takes the whole run (training.epochs: {epochs}), "
            "leaving none to decay over",
        )
    return out


def _monitored(spec: dict, path, where, monitors, default_monitor, fill_mode: bool) -> dict:
    """Fill in ``monitor`` (default: val_loss, or loss without validation) and, when
    ``fill_mode``, the ``mode`` that suits it ("max" for accuracy, "min" for a loss)."""
    monitor = spec.get("monitor") or default_monitor
    if monitor not in monitors:
        if monitor.startswith("val_") and len(monitors) == 1:
            hint = "; there is no validation set: set data.validation_split (e.g. 0.1)"
        else:
            hint = did_you_mean(monitor, monitors)
        raise where.error(
            (*path, "monitor"),
            f"cannot monitor {monitor!r}{hint} (available: {', '.join(monitors)})",
        )
    spec = dict(spec, monitor=monitor)
    if fill_mode:
        spec["mode"] = sections.mode_for(monitor)
    return spec


# -- generic checks ---------------------------------------------------------------------------
def _typed(
    value,
    registry: dict,
    path: tuple,
    where: Locations,
    kind: str,
    aliases: dict | None = None,
    exclude: tuple = (),
    extra: list[Param] = (),
    aliases_with_defaults: dict | None = None,
) -> dict:
    """``name`` or ``{type: name, **kwargs}`` of a class in ``registry`` -> full mapping."""
    if isinstance(value, str):
        name, spec = value, {}
    elif isinstance(value, dict):
        if "type" not in value:
            _colon_keys(value, path, where)
            raise where.error(path, f"missing 'type' (the {kind}: one of {', '.join(registry)})")
        name, spec = value["type"], {k: v for k, v in value.items() if k != "type"}
    else:
        raise where.error(
            path, f"expected a {kind} name or a mapping with 'type', got {yaml_type(value)}"
        )
    if not isinstance(name, str):
        raise where.error((*path, "type"), f"expected a {kind} name, got {yaml_type(name)}")
    name = (aliases or {}).get(name, name)
    if aliases_with_defaults and name in aliases_with_defaults:
        name, defaults = aliases_with_defaults[name]
        spec = {**defaults, **spec}
    if name not in registry:
        type_path = (*path, "type") if isinstance(value, dict) else path
        raise where.error(type_path, _unknown_name(kind, name, registry))
    params = constructor_params(registry[name], exclude=exclude)
    params.update({p.name: p for p in extra})
    kwargs = _kwargs(spec, params, path, where, name, nested=True)
    return {"type": name, **kwargs}


def _kwargs(spec: dict, params: dict[str, Param], path, where, what: str, nested=False) -> dict:
    """Check ``spec`` against ``params`` (unknown keys, types, required keys); fill defaults."""
    if not isinstance(spec, dict):
        raise where.error(path, f"expected a mapping, got {yaml_type(spec)}")
    reject_unknown_keys(spec, params, path, where)
    missing = [p.name for p in params.values() if p.required and p.name not in spec]
    if missing:
        raise where.error(path, f"{what} needs {missing[0]!r}")
    out = {}
    for name, param in params.items():
        if name in spec:
            out[name] = _value(spec[name], param, (*path, name), where, nested)
        elif _representable(param.default):
            out[name] = _plain(param.default)
    return out


def _value(value, param: Param, path: tuple, where: Locations, nested: bool):
    """Check one keyword value; names of activations, initializers, regularizers and nested
    layers are checked against their registries."""
    name = param.name
    if nested and value is not None:
        if name == "activation" or name.endswith("_activation"):
            if not isinstance(value, str):
                raise where.error(path, f"expected an activation name, got {yaml_type(value)}")
            if value not in activations.ACTIVATIONS:
                raise where.error(path, _unknown_name("activation", value, activations.ACTIVATIONS))
            return value
        if name.endswith("initializer"):
            return _nested(value, initializers.INITIALIZERS, path, where, "initializer")
        if name.endswith("regularizer"):
            return _nested(value, regularizers.REGULARIZERS, path, where, "regularizer")
        if name == "layers" and isinstance(value, list):
            return _layers(value, path, where)  # a nested Sequential
        if name == "layer" and isinstance(value, dict):
            return _typed(value, LAYERS, path, where, "layer")  # a wrapper (Bidirectional)
    unusable = _unusable_number(value)
    if unusable:
        raise where.error(path, unusable)
    ok, converted = check(value, param.hint)
    if not ok:
        bad = first_bad_item(value, param.hint)
        if bad is not None:  # name the item, not "got a list"
            i, item_hint = bad
            path, value, param = (*path, i), value[i], Param(name, item_hint, None)
        message = f"expected {describe(param.hint)}, got {yaml_type(value)}"
        choices = _literal_choices(param.hint)
        if isinstance(value, str) and choices:
            message += did_you_mean(value, choices)
        raise where.error(path, message)
    return converted


def _unusable_number(value) -> str | None:
    """Why a number in ``value`` (or in a list or mapping in it) cannot be used: NaN or
    infinite (``.inf``, ``1e400``), or an integer beyond 64 bits."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"expected a finite number, got {value}"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**63:
        return f"an integer of {len(str(abs(value)))} digits is too large (64 bits at most)"
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    return next(filter(None, map(_unusable_number, items)), None)


def _nested(value, registry, path, where, kind):
    """An initializer or regularizer: a name stays a name, a mapping gets its defaults."""
    spec = _typed(value, registry, path, where, kind)
    return value if isinstance(value, str) else spec


def _colon_keys(spec: dict, path: tuple, where: Locations) -> None:
    """YAML reads {type:adam} as the key "type:adam"; say so rather than "unknown key"."""
    for key in spec:
        if isinstance(key, str) and ":" in key:
            raise where.error(
                (*path, key),
                "a key with ':' in it; in YAML write 'key: value' with a space after the colon",
            )


def reject_unknown_keys(spec: dict, known, path: tuple, where: Locations) -> None:
    """A ConfigError at the first key of ``spec`` (at ``path``) not in ``known``, with a hint."""
    _colon_keys({k: v for k, v in spec.items() if k not in known}, path, where)
    for key in spec:
        if key not in known:
            close = closest(key, known)
            if close:
                hint = f"did you mean {close!r}?"
            elif known:
                hint = f"expected one of {', '.join(known)}"
            else:
                hint = "this entry takes no options"
            raise where.error((*path, key), f"unknown key; {hint}")


def _unknown_name(kind: str, name, registry) -> str:
    names = list(registry)
    lower = {n.lower(): n for n in names}
    text = str(name)
    close = (
        lower.get(text.lower())
        or closest(text, names)
        or next((n for n in names if n.lower().startswith(text.lower())), None)
    )
    hint = f"; did you mean {close!r}?" if close else ""
    return f"unknown {kind} {name!r}{hint} (known: {', '.join(names)})"


def _positive(spec: dict, path: tuple, where: Locations) -> None:
    for key, value in spec.items():
        full = (*path, key)
        if full in sections.POSITIVE and value is not None and value < 1:
            raise where.error(full, f"must be at least 1, got {value}")
        if full in sections.NON_NEGATIVE and value is not None and value < 0:
            raise where.error(full, f"must not be negative, got {value}")


def _literal_choices(hint) -> list[str]:
    if typing.get_origin(hint) is typing.Literal:
        return [str(a) for a in typing.get_args(hint)]
    out = []
    for arg in typing.get_args(hint):
        out += _literal_choices(arg)
    return out


def _representable(value) -> bool:
    if value is None or isinstance(value, bool | int | float | str):
        return True
    if isinstance(value, list | tuple):
        return all(_representable(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _representable(v) for k, v in value.items())
    return False


def _plain(value):
    """Tuples as lists, so the config is plain YAML."""
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value
