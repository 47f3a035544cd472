"""The sweep file: loading and strict validation, before any trial starts.

```yaml
base: mnist_mlp.yaml            # experiment file, relative to this file
name: mnist_mlp_search          # optional; default: this file's name
metric: val_accuracy            # what ranks trials
mode: max                       # optional; default: max for accuracy-like metrics, min for losses
fixed:                          # optional; set for every trial
  training.epochs: 3
grid:                           # every combination
  optimizer.lr: [0.01, 0.001]
  model.layers.1.units: [64, 128]
random:                         # sampled trials, alone or besides the grid
  trials: 20
  seed: 0                       # optional; which samples
  space:
    optimizer.lr: {loguniform: [1.0e-4, 1.0e-1]}
    training.batch_size: {choice: [32, 64, 128]}
cv: {folds: 5}                  # optional; k-fold on the training set
seeds: [0, 1, 2]                # optional; default: the base config's seed
```

The trials are the grid's combinations followed by the random samples; a key set by neither
keeps the base config's value (or the ``fixed`` one). Each fixed or swept key path must already
be in the base config (as written, or as resolved with defaults, e.g.
``optimizer.learning_rate``; ``optimizer.lr`` is the same key, as in ``fit``'s overrides),
and every trial's config is resolved (validated) here, so a typo or a bad value is a
ConfigError naming the sweep file's line before anything runs.

Overrides on the command line (``bptrain sweep sweep.yaml training.epochs=3``) change the base
config of every trial, as ``fit``'s do, and win over ``fixed`` values; one naming what the
sweep sets per trial or run (a swept key, ``seed`` under ``seeds``, the validation split under
``cv``) is an error.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

from bptrain.config import Locations, default_name, format_path, load_file, resolve
from bptrain.config.overrides import (
    apply_overrides,
    canonical_path,
    parse_override,
    parse_path,
    set_path,
)
from bptrain.config.schema import check_run_name, reject_unknown_keys
from bptrain.config.sections import mode_for
from bptrain.errors import ConfigError, did_you_mean
from bptrain.sweep.space import Distribution, Params, grid_trials, parse_distribution, random_trials
from bptrain.typehints import yaml_type

KEYS = ("base", "name", "metric", "mode", "fixed", "grid", "random", "cv", "seeds")
RANDOM_KEYS = ("trials", "seed", "space")
CV_KEYS = ("folds",)


@dataclass
class SweepSpec:
    """A validated sweep file. ``fixed``, ``grid`` and ``space`` are keyed by the key paths as
    written."""

    path: Path
    name: str
    base_path: Path
    base: dict  # the base experiment file as written, with the overrides (not resolved)
    base_where: Locations
    base_resolved: dict
    metric: str
    mode: str  # "min" or "max"
    fixed: dict[str, object] = field(default_factory=dict)
    grid: dict[str, list] = field(default_factory=dict)
    random_trials: int = 0
    random_seed: int = 0
    space: dict[str, Distribution] = field(default_factory=dict)
    folds: int | None = None
    seeds: list[int] = field(default_factory=list)
    where: Locations = field(default_factory=Locations)
    overrides: list[str] = field(default_factory=list)  # KEY.PATH=VALUE from the command line

    @property
    def swept(self) -> list[str]:
        """Every swept key path, grid first, each once."""
        return list(dict.fromkeys([*self.grid, *self.space]))

    def trials(self, max_trials: int | None = None) -> list[Params]:
        """The parameter sets: grid combinations, then random samples; at most ``max_trials``."""
        out = grid_trials(self.grid) + random_trials(
            self.space, self.random_trials, self.random_seed
        )
        if not out:
            out = [{}]  # neither grid nor random: cross-validate the base config itself
        return out if max_trials is None else out[:max_trials]

    def base_value(self, key: str):
        """The base config's value at a swept key path: as written, else as resolved."""
        path = canonical_path(parse_path(key))
        for config in (self.base, self.base_resolved):
            node = config
            try:
                for part in path:
                    node = node[part]
            except (KeyError, IndexError, TypeError):
                continue
            return node
        return None

    def run_config(self, params: Params, seed: int, fold: int | None, threads: int | None) -> dict:
        """The resolved config of one run: the base, the fixed values, the command line's
        overrides (again: they win over fixed values), the trial's values, then the sweep's own
        settings (seed, the cross-validation fold, BLAS threads per worker; replica threads too
        are capped at the threads a worker may use)."""
        raw = copy.deepcopy(self.base)
        where = copy.deepcopy(self.base_where)
        self._set(raw, where, self.fixed)
        raw = apply_overrides(raw, self.overrides, where)
        self._set(raw, where, params)
        raw["seed"] = seed
        if fold is not None:
            data = raw["data"]
            data.update(folds=self.folds, fold=fold, validation_split=0.0)
        if threads is not None:
            training = raw.setdefault("training", {}) or {}
            raw["training"] = training
            given = training.get("threads")
            training["threads"] = threads if given is None else min(given, threads)
            if (training.get("replicas") or 1) > threads:
                training["replicas"] = threads
        # plain data: a run's config crosses process and machine boundaries (RunTask)
        return resolve(raw, where, default_name=default_name(self.base_path)).to_dict()

    def _set(self, raw: dict, where: Locations, values: Params) -> None:
        for key, value in values.items():
            path = canonical_path(parse_path(key))
            set_path(raw, path, copy.deepcopy(value), f"{self.path}: {key}")
            where.forget(path)  # errors in this value point at the sweep file
            section = next((s for s, keys in self._sections() if key in keys), None)
            place = self.where.of((*section.split("."), key)) if section else str(self.path)
            where.set(path, place)

    def _sections(self):
        return (("fixed", self.fixed), ("grid", self.grid), ("random.space", self.space))


def load_sweep(path: str | Path, overrides=()) -> SweepSpec:
    """Read and validate a sweep file and its base config, with ``key.path=value`` overrides
    of the base; resolves every trial's config."""
    path = Path(path)
    raw, where = load_file(path)
    reject_unknown_keys(raw, KEYS, (), where)
    if "base" not in raw:
        raise where.error((), "missing 'base' (the experiment file to sweep, e.g. base: mlp.yaml)")
    if "metric" not in raw:
        raise where.error((), "missing 'metric' (what ranks trials, e.g. metric: val_accuracy)")
    base_name = raw["base"]
    if not isinstance(base_name, str):
        raise where.error(("base",), f"expected a file name, got {yaml_type(base_name)}")
    base_path = path.parent / base_name
    base, base_where = load_file(base_path)
    base = apply_overrides(base, overrides, base_where)
    resolved = resolve(copy.deepcopy(base), copy.deepcopy(base_where), default_name(base_path))
    resolved = resolved.to_dict()  # looked up by the sweep's key paths

    spec = SweepSpec(
        path=path,
        name=check_run_name(raw.get("name", default_name(path)), where),
        base_path=base_path,
        base=base,
        base_where=base_where,
        base_resolved=resolved,
        metric="",
        mode="",
        where=where,
        overrides=list(overrides),
    )
    spec.fixed = _fixed(raw.get("fixed"), where)
    spec.grid = _grid(raw.get("grid"), where)
    _random(raw.get("random"), where, spec)
    spec.folds = _folds(raw.get("cv"), where)
    spec.seeds = _seeds(raw.get("seeds", [resolved["seed"]]), where)
    _check_paths(spec, base, resolved)
    _check_overrides(spec, raw)
    has_val = spec.folds is not None or resolved["data"].get("validation_split", 0) > 0
    spec.metric = _metric(raw["metric"], resolved, has_val, where)
    spec.mode = _mode(raw.get("mode", "auto"), spec.metric, where)
    fold = 0 if spec.folds else None
    for params in spec.trials():  # every trial's config must resolve before any run starts
        spec.run_config(params, spec.seeds[0], fold, threads=None)
    return spec


# -- sections ---------------------------------------------------------------------------------
def _fixed(value, where: Locations) -> dict[str, object]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise where.error(
            ("fixed",), f"expected a mapping of key paths to values, got {yaml_type(value)}"
        )
    return dict(value)


def _grid(value, where: Locations) -> dict[str, list]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise where.error(
            ("grid",), f"expected a mapping of key paths to lists, got {yaml_type(value)}"
        )
    for key, values in value.items():
        if not isinstance(values, list) or not values:
            raise where.error(
                ("grid", key), f"expected a non-empty list of values, got {yaml_type(values)}"
            )
    return dict(value)


def _random(value, where: Locations, spec: SweepSpec) -> None:
    if value is None:
        return
    path = ("random",)
    if not isinstance(value, dict):
        raise where.error(path, f"expected a mapping with trials and space, got {yaml_type(value)}")
    reject_unknown_keys(value, RANDOM_KEYS, path, where)
    for key in ("trials", "space"):
        if key not in value:
            raise where.error(path, f"missing {key!r}")
    trials, seed, space = value["trials"], value.get("seed", 0), value["space"]
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise where.error(
            (*path, "trials"), f"expected a positive integer, got {yaml_type(trials)}"
        )
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise where.error(
            (*path, "seed"), f"expected a non-negative integer, got {yaml_type(seed)}"
        )
    if not isinstance(space, dict) or not space:
        raise where.error(
            (*path, "space"),
            f"expected a mapping of key paths to distributions, got {yaml_type(space)}",
        )
    spec.random_trials, spec.random_seed = trials, seed
    spec.space = {
        key: parse_distribution(dist, _place(where, (*path, "space", key)))
        for key, dist in space.items()
    }


def _folds(value, where: Locations) -> int | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise where.error(("cv",), f"expected a mapping like {{folds: 5}}, got {yaml_type(value)}")
    reject_unknown_keys(value, CV_KEYS, ("cv",), where)
    folds = value.get("folds")
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise where.error(
            ("cv", "folds"), f"expected an integer of at least 2, got {yaml_type(folds)}"
        )
    return folds


def _seeds(value, where: Locations) -> list[int]:
    ok = (
        isinstance(value, list)
        and value
        and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in value)
    )
    if not ok:
        raise where.error(
            ("seeds",), f"expected a list of non-negative integers, got {yaml_type(value)}"
        )
    if len(set(value)) != len(value):
        raise where.error(("seeds",), "a seed is listed twice")
    return list(value)


def _metric(value, resolved: dict, has_val: bool, where: Locations) -> str:
    names = ["loss", *resolved["metrics"]]
    available = names + ([f"val_{n}" for n in names] if has_val else [])
    if value in available:
        return value
    if isinstance(value, str) and value.startswith("val_") and value[4:] in names:
        hint = "; there is no validation set: use cv: {folds: 5} or data.validation_split"
    else:
        hint = did_you_mean(value, available)
    raise where.error(
        ("metric",), f"unknown metric {value!r}{hint} (available: {', '.join(available)})"
    )


def _mode(value, metric: str, where: Locations) -> str:
    if value == "auto":
        return mode_for(metric)
    if value not in ("min", "max"):
        raise where.error(("mode",), f"expected min, max or auto, got {yaml_type(value)}")
    return value


# -- key paths --------------------------------------------------------------------------------
def _check_paths(spec: SweepSpec, base: dict, resolved: dict) -> None:
    """Each fixed or swept key path must exist in the base config as written or as resolved;
    a key path and its alias (optimizer.lr, optimizer.learning_rate) are one key."""
    known = sorted({_dotted(canonical_path(p)) for p in [*_all_paths(base), *_all_paths(resolved)]})
    seen: dict[tuple, tuple[str, str]] = {}  # path -> (key as written, section)
    for section, keys in spec._sections():
        for key in keys:
            at = (*section.split("."), key)
            try:
                path = canonical_path(parse_path(key))
            except ConfigError:
                raise spec.where.error(at, "not a key path like model.layers.1.units") from None
            if path in seen:  # the same key in grid and random: two sources of trials
                first, first_section = seen[path]
                if first != key or first_section == "fixed":
                    what = "fixed" if first_section == "fixed" else "swept"
                    raise spec.where.error(at, f"{first!r} is {what} already")
            seen[path] = (key, section)
            if _dotted(path) not in known:
                hint = did_you_mean(_dotted(path), known)
                raise spec.where.error(
                    at, f"not a key of the base config {spec.base_path.name}{hint}"
                )


def _check_overrides(spec: SweepSpec, raw: dict) -> None:
    """An override must not name what the sweep sets for each trial or run: it would be
    replaced there without a word."""
    owned = {}  # canonical path -> (where the sweep file sets it, for what)
    for section, keys in spec._sections()[1:]:
        for key in keys:
            at = (*section.split("."), key)
            owned[canonical_path(parse_path(key))] = (_place(spec.where, at), "each trial")
    if "seeds" in raw:
        owned[("seed",)] = (_place(spec.where, ("seeds",)), "each run")
    if spec.folds is not None:
        cv = (_place(spec.where, ("cv",)), "each run (the fold is the validation set)")
        for key in ("folds", "fold", "validation_split"):
            owned[("data", key)] = cv
    for text in spec.overrides:
        path = canonical_path(parse_override(text)[0])
        for at, (place, what) in owned.items():
            if path[: len(at)] == at:
                raise ConfigError(f"override {text}: {place} sets it for {what}; change it there")


def _all_paths(node, prefix: tuple = ()):
    """Every key path in a nested config, as tuples (("model", "layers", 1, "units"))."""
    items = (
        node.items()
        if isinstance(node, dict)
        else enumerate(node)
        if isinstance(node, list)
        else ()
    )
    for key, value in items:
        path = (*prefix, key)
        yield path
        yield from _all_paths(value, path)


def _dotted(path: tuple) -> str:
    return ".".join(str(p) for p in path)


def _place(where: Locations, path: tuple) -> str:
    place = where.of(path)
    return f"{place}: {format_path(path)}" if place else format_path(path)
