"""Dataset options: plain dataclasses that the YAML ``data:`` section fills in.

Every dataset's options class derives from ``CommonOptions``, so ``dataclasses.fields(cls)``
lists every key a ``data:`` section may hold for that dataset (besides ``dataset`` itself).
``parse_options`` turns a mapping into an options object and rejects unknown keys and wrong
types with a ``ConfigError``, so ``load_dataset`` is safe to call without the config validator.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from bptrain.errors import ConfigError, did_you_mean
from bptrain.memory import format_bytes
from bptrain.typehints import check, dataclass_params, describe

Scale = Literal["none", "standardize", "minmax"]
ScaleTarget = Literal["none", "standardize"]


@dataclass(frozen=True)
class Footprint:
    """The memory loading a dataset takes at its peak, estimated from its options (and file
    sizes) before anything is read or generated: ``nbytes``; the options that decide it
    (``keys``, the first one named in errors) and ``what`` they make, in words."""

    nbytes: int
    keys: tuple[str, ...]
    what: str


@dataclass(kw_only=True)
class CommonOptions:
    """Keys every dataset accepts.

    validation_split: fraction of the training set held out for validation, in [0, 1); the
        last fraction of a permutation seeded by the run's seed.
    scale: "none"; "standardize" (zero mean, unit std); or "minmax" (to [0, 1]). Statistics
        come from the training part only (per channel for images, per feature otherwise).
    scale_target: "none", or "standardize" for regression targets: the model learns
        (y - mean) / std with the statistics of the training part; metrics, ``eval`` and
        ``predict`` report values in the original units, while the loss stays in the
        standardized ones.
    folds, fold: k-fold cross-validation instead of validation_split: the training set is
        split into ``folds`` parts by a permutation seeded by the run's seed, and part
        ``fold`` (0-based) is the validation set. ``bptrain sweep`` sets these per trial.
    """

    # The task of every dataset of this kind where the options decide it (None: the data do);
    # not annotated, so not an option.
    task = None

    validation_split: float = 0.0
    scale: Scale = "none"
    scale_target: ScaleTarget = "none"
    folds: int | None = None
    fold: int = 0

    def footprint(self, source: str | None = None) -> Footprint | None:
        """What loading takes (see Footprint), or None where unknown; ``source`` as for the
        loader."""
        return None

    def __post_init__(self) -> None:
        check_fraction("validation_split", self.validation_split)
        if self.task == "classification":
            check_scale_target(self.scale_target, "this dataset")
        if self.folds is None:
            if self.fold != 0:
                raise ConfigError("data.fold needs data.folds (the number of folds)")
            return
        if self.folds < 2:
            raise ConfigError(f"data.folds must be at least 2, got {self.folds}")
        if not 0 <= self.fold < self.folds:
            raise ConfigError(
                f"data.fold must be in [0, {self.folds}) for data.folds={self.folds}, "
                f"got {self.fold}"
            )
        if self.validation_split:
            raise ConfigError(
                "data.folds and data.validation_split both choose the validation set; "
                "set validation_split: 0 when using folds"
            )


def data_file(path: str, source: str | None = None) -> Path:
    """The file ``data.path`` names (``~`` expanded), or where a run found it before
    (``source``, an absolute path) when ``path`` is relative to another working directory or
    the file moved."""
    configured = Path(os.path.expanduser(path))
    if source and not configured.exists() and Path(source).is_file():
        return Path(source)
    return configured


def file_footprint(path: Path, keys: tuple[str, ...], per_byte: float) -> Footprint | None:
    """The Footprint of reading the file at ``path``: ``per_byte`` bytes of memory per byte of
    file (None while the file is missing: the loader says so)."""
    try:
        size = path.stat().st_size
    except OSError:
        return None
    return Footprint(int(size * per_byte), keys, f"{path} ({format_bytes(size)})")


def check_scale_target(method: str, dataset: str) -> None:
    """``scale_target`` is for regression targets: refused for a classification dataset."""
    if method != "none":
        raise ConfigError(
            f"data.scale_target: {method} is for regression targets, but {dataset} is a "
            "classification dataset (its targets are class labels); leave it at none"
        )


def check_fraction(key: str, value: float) -> None:
    """A split fraction must lie in [0, 1)."""
    if not 0.0 <= value < 1.0:
        raise ConfigError(f"data.{key} must be in [0, 1), got {value}")


def check_positive(key: str, value: int | float | None) -> None:
    """Sizes, lengths and counts must be positive (None passes: 'no limit')."""
    if value is not None and value <= 0:
        raise ConfigError(f"data.{key} must be positive, got {value}")


def parse_options(cls: type, spec: dict) -> CommonOptions:
    """Build options ``cls`` from ``spec`` (the ``data:`` mapping without ``dataset``)."""
    known = dataclass_params(cls)
    values = {}
    for key, value in spec.items():
        if key not in known:
            hint = did_you_mean(key, known)
            raise ConfigError(
                f"data.{key}: unknown option for this dataset{hint} "
                f"(known: {', '.join(sorted(known))})"
            )
        values[key] = _check_type(key, value, known[key].hint)
    missing = [name for name, p in known.items() if p.required and name not in values]
    if missing:
        raise ConfigError(f"data.{missing[0]} is required")
    return cls(**values)


def _check_type(key: str, value, hint):
    """Return ``value`` (ints widened to float where a float is wanted) or raise ConfigError."""
    ok, value = check(value, hint)
    if not ok:
        raise ConfigError(f"data.{key}: expected {describe(hint)}, got {value!r}")
    return value
