"""The public API: the registry, option dataclasses and load_dataset's checks."""

import dataclasses
import typing

import numpy as np
import pytest

from bptrain.data import DATASETS, Dataset, load_dataset
from bptrain.errors import ConfigError

EXPECTED = {
    "mnist",
    "fashion_mnist",
    "csv",
    "npz",
    "images",
    "spirals",
    "moons",
    "sine",
    "linear",
    "adding",
    "text",
}


def test_registry_holds_plain_typed_dataclasses():
    assert set(DATASETS) == EXPECTED
    for name, cls in DATASETS.items():
        assert dataclasses.is_dataclass(cls) and cls.__doc__, name
        hints = typing.get_type_hints(cls)
        fields = {f.name for f in dataclasses.fields(cls)}
        assert fields == set(hints), name
        assert {"validation_split", "scale"} <= fields, name
    assert dataclasses.fields(DATASETS["mnist"])  # instantiable with defaults
    assert DATASETS["mnist"]().scale == "minmax" and DATASETS["moons"]().scale == "none"
    assert typing.get_type_hints(DATASETS["mnist"])["limit"] == int | None


def test_unknown_key_names_the_key_and_suggests():
    with pytest.raises(
        ConfigError,
        match=r"data.valdation_split: unknown option .* did you mean "
        r"'validation_split'",
    ):
        load_dataset({"dataset": "moons", "valdation_split": 0.1})


def test_unknown_dataset_and_missing_keys():
    with pytest.raises(ConfigError, match="unknown dataset 'mnsit'; did you mean 'mnist'"):
        load_dataset({"dataset": "mnsit"})
    with pytest.raises(ConfigError, match="data.dataset is required"):
        load_dataset({"validation_split": 0.1})
    with pytest.raises(ConfigError, match="data.path is required"):
        load_dataset({"dataset": "csv"})


def test_types_and_ranges_are_checked():
    with pytest.raises(
        ConfigError,
        match=r"data.scale: expected one of 'none', 'standardize', "
        r"'minmax', got 'std'",
    ):
        load_dataset({"dataset": "moons", "scale": "std"})
    with pytest.raises(ConfigError, match="data.size: expected an integer, got 1.5"):
        load_dataset({"dataset": "moons", "size": 1.5})
    with pytest.raises(ConfigError, match="data.validation_split must be in"):
        load_dataset({"dataset": "moons", "validation_split": 1.0})
    with pytest.raises(ConfigError, match="data.sequence: expected true or false"):
        load_dataset({"dataset": "mnist", "sequence": "yes"})
    ds = load_dataset({"dataset": "moons", "noise": 0})  # an int where a float is wanted
    assert isinstance(ds, Dataset)


def test_dataset_split_accessor():
    ds = load_dataset({"dataset": "moons", "validation_split": 0.1})
    x, y = ds.split("val")
    assert x is ds.x_val and y is ds.y_val
    with pytest.raises(ValueError):
        ds.split("dev")


def test_extra_is_json_serialisable():
    import json

    ds = load_dataset({"dataset": "linear", "scale": "standardize"})
    assert json.loads(json.dumps(ds.extra))["true_bias"] == ds.extra["true_bias"]
    assert ds.x_test.dtype == np.float32
