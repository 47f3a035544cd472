"""Datasets: from the YAML ``data:`` section to arrays and minibatches.

    ds = load_dataset({"dataset": "mnist", "validation_split": 0.1}, seed=0)
    for xb, yb in iterate_minibatches(ds.x_train, ds.y_train, 32, order):
        ...

``DATASETS`` maps each dataset name to the dataclass of its options (every key of the
``data:`` section but ``dataset``); the config validator reads their fields. ``footprint``
estimates what loading would take in memory without loading anything.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable

from bptrain.data.batches import iterate_minibatches
from bptrain.data.dataset import Dataset
from bptrain.data.images import ImagesOptions, load_images
from bptrain.data.mnist import (
    FashionMnistOptions,
    MnistOptions,
    load_fashion_mnist,
    load_mnist,
)
from bptrain.data.options import CommonOptions, Footprint, parse_options
from bptrain.data.preprocess import scale, scale_targets
from bptrain.data.split import holdout, kfold, rng_for
from bptrain.data.synthetic import (
    AddingOptions,
    LinearOptions,
    MoonsOptions,
    SineOptions,
    SpiralsOptions,
    load_adding,
    load_linear,
    load_moons,
    load_sine,
    load_spirals,
)
from bptrain.data.tabular import CsvOptions, NpzOptions, load_csv, load_npz
from bptrain.data.text import TextOptions, load_text
from bptrain.errors import ConfigError, did_you_mean

__all__ = [
    "DATASETS",
    "CommonOptions",
    "Dataset",
    "Footprint",
    "footprint",
    "iterate_minibatches",
    "load_dataset",
]

_LOADERS: dict[str, tuple[type, Callable[..., Dataset]]] = {
    "mnist": (MnistOptions, load_mnist),
    "fashion_mnist": (FashionMnistOptions, load_fashion_mnist),
    "csv": (CsvOptions, load_csv),
    "npz": (NpzOptions, load_npz),
    "images": (ImagesOptions, load_images),
    "spirals": (SpiralsOptions, load_spirals),
    "moons": (MoonsOptions, load_moons),
    "sine": (SineOptions, load_sine),
    "linear": (LinearOptions, load_linear),
    "adding": (AddingOptions, load_adding),
    "text": (TextOptions, load_text),
}

DATASETS: dict[str, type] = {name: options for name, (options, _) in _LOADERS.items()}


# Datasets read from files: a run records where (``Dataset.source``), and later commands look
# there too. MNIST-like sets keep their test split in files of their own.
_FROM_FILES = ("mnist", "fashion_mnist", "csv", "npz", "images", "text")
_TEST_FILES_APART = ("mnist", "fashion_mnist")


def footprint(spec: dict, recorded: dict | None = None) -> Footprint | None:
    """What loading the dataset ``spec`` describes would take in memory (see Footprint), from
    its options and file sizes, without reading or generating it; None where unknown."""
    options = dict(spec)
    options_cls, _ = _LOADERS[options.pop("dataset")]
    source = (recorded or {}).get("source") if spec["dataset"] in _FROM_FILES else None
    return parse_options(options_cls, options).footprint(source)


def load_dataset(
    spec: dict, seed: int = 0, *, recorded: dict | None = None, only: str | None = None
) -> Dataset:
    """Load the dataset that ``spec`` (the YAML ``data:`` mapping) describes.

    ``spec["dataset"]`` names it (a key of DATASETS); the other keys are its options. The
    validation split (or the k-fold partition, with ``folds``) and the scaling statistics are
    drawn from ``seed`` and the training part, so the same spec and seed always give the same
    arrays. Raises ConfigError for unknown keys or bad values and DataError for missing or
    malformed data.

    recorded: what a run recorded about its data (a checkpoint's ``data`` section): its files
        are also looked for where the run found them (``source``, after the configured places),
        and its scaling statistics are applied instead of new ones.
    only: "test" to load just what the test split needs (MNIST's two test files; the other
        splits then come back empty); None for everything.
    """
    if not isinstance(spec, dict):
        raise ConfigError(f"data: expected a mapping with a 'dataset' key, got {spec!r}")
    options = dict(spec)
    name = options.pop("dataset", None)
    if name is None:
        raise ConfigError(f"data.dataset is required: one of {', '.join(DATASETS)}")
    if name not in _LOADERS:
        hint = did_you_mean(name, DATASETS)
        raise ConfigError(
            f"data.dataset: unknown dataset {name!r}{hint} (known: {', '.join(DATASETS)})"
        )
    options_cls, loader = _LOADERS[name]
    opts = parse_options(options_cls, options)
    val_rng = rng_for(seed, "validation_split")  # also checks the seed before any work
    recorded = recorded or {}
    saved_scale, saved_target = (
        recorded.get(key) if (recorded.get(key) or {}).get("method") == method else None
        for key, method in (("scale", opts.scale), ("scale_target", opts.scale_target))
    )
    hints = {}
    if name in _FROM_FILES and recorded.get("source"):
        hints["source"] = recorded["source"]
    # (standardizing needs the training part's statistics: recorded ones, or the data)
    test_only = (
        only == "test"
        and name in _TEST_FILES_APART
        and (opts.scale != "standardize" or saved_scale is not None)
    )
    if test_only:
        hints["only_test"] = True
    ds = loader(opts, seed, **hints)
    if not test_only:  # (else there is no training part to split)
        ds = _split_training(ds, opts, seed, val_rng)
    ds = scale(ds, opts.scale, saved_scale)
    return scale_targets(ds, opts.scale_target, saved_target)


def _split_training(ds: Dataset, opts, seed: int, val_rng) -> Dataset:
    """``ds`` with its training part split into training and validation rows: a seeded
    hold-out of ``validation_split`` (drawn from ``val_rng``), or fold ``fold`` of ``folds``.
    Sample weights follow their rows (the same split from the same draws)."""
    w = ds.w_train
    if opts.folds is None:
        w_rng = copy.deepcopy(val_rng)
        x_train, y_train, x_val, y_val = holdout(
            ds.x_train, ds.y_train, opts.validation_split, val_rng, "validation_split"
        )
        if w is not None:
            _, w_train, _, w_val = holdout(w, w, opts.validation_split, w_rng, "")
    else:
        x_train, y_train, x_val, y_val = kfold(
            ds.x_train, ds.y_train, opts.folds, opts.fold, rng_for(seed, "folds")
        )
        if w is not None:
            _, w_train, _, w_val = kfold(w, w, opts.folds, opts.fold, rng_for(seed, "folds"))
    ds = dataclasses.replace(ds, x_train=x_train, y_train=y_train, x_val=x_val, y_val=y_val)
    if w is not None:
        ds = dataclasses.replace(ds, w_train=w_train, w_val=w_val)
    return ds
