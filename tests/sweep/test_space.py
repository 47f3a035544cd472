"""Search-space expansion: grid products, seeded sampling, distribution parsing, value text."""

import math

import numpy as np
import pytest

from bptrain.config import parse_override
from bptrain.errors import ConfigError
from bptrain.sweep.space import (
    format_value,
    grid_trials,
    is_log_spaced,
    parse_distribution,
    random_trials,
)


def test_grid_is_the_product_first_key_slowest():
    trials = grid_trials({"a": [1, 2], "b": ["x", "y", "z"]})
    assert trials == [
        {"a": 1, "b": "x"},
        {"a": 1, "b": "y"},
        {"a": 1, "b": "z"},
        {"a": 2, "b": "x"},
        {"a": 2, "b": "y"},
        {"a": 2, "b": "z"},
    ]
    assert grid_trials({}) == []


def test_grid_values_are_copies():
    grid = {"model.layers": [[{"type": "Flatten"}]]}
    trials = grid_trials(grid)
    trials[0]["model.layers"][0]["type"] = "changed"
    assert grid["model.layers"][0][0]["type"] == "Flatten"


SPACE = {
    "lr": parse_distribution({"loguniform": [1e-4, 1e-1]}, "t"),
    "drop": parse_distribution({"uniform": [0.0, 0.5]}, "t"),
    "units": parse_distribution({"int": [16, 20]}, "t"),
    "batch": parse_distribution({"choice": [32, 64, 128]}, "t"),
}


def test_sampling_is_deterministic_per_seed_and_prefix_stable():
    a = random_trials(SPACE, 20, seed=3)
    assert a == random_trials(SPACE, 20, seed=3)
    assert a != random_trials(SPACE, 20, seed=4)
    assert random_trials(SPACE, 7, seed=3) == a[:7]  # --max-trials keeps a prefix
    assert all(type(t["lr"]) is float and type(t["units"]) is int for t in a)


def test_distributions_cover_their_ranges():
    draws = random_trials(SPACE, 4000, seed=0)
    lr = np.array([t["lr"] for t in draws])
    assert lr.min() >= 1e-4 and lr.max() < 1e-1
    # log-uniform: each decade holds a third of the draws
    decades = np.histogram(np.log10(lr), bins=[-4, -3, -2, -1])[0] / len(lr)
    np.testing.assert_allclose(decades, 1 / 3, atol=0.03)
    drop = np.array([t["drop"] for t in draws])
    assert 0.0 <= drop.min() and drop.max() < 0.5 and abs(drop.mean() - 0.25) < 0.01
    units = [t["units"] for t in draws]
    assert set(units) == {16, 17, 18, 19, 20}  # both ends included
    counts = np.bincount([t["batch"] for t in draws])[[32, 64, 128]] / len(draws)
    np.testing.assert_allclose(counts, 1 / 3, atol=0.03)


def test_randint_is_int():
    assert parse_distribution({"randint": [1, 3]}, "t") == parse_distribution({"int": [1, 3]}, "t")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"logunifrom": [1, 2]}, "unknown distribution 'logunifrom'; did you mean 'loguniform'"),
        ({"beta": [0, 1]}, "unknown distribution 'beta'; expected one of loguniform"),
        ({"loguniform": [0.0, 1.0]}, "loguniform needs low > 0, got 0.0"),
        ({"uniform": [1.0, 1.0]}, r"uniform needs low < high, got \[1.0, 1.0\]"),
        ({"uniform": [1.0]}, r"uniform needs \[low, high\], two numbers"),
        ({"int": [1.5, 4]}, "int needs integer bounds"),
        ({"choice": []}, "choice needs a non-empty list"),
        ([1, 2, 3], "expected a distribution like"),
        ({"uniform": [0, 1], "int": [0, 1]}, "expected a distribution like"),
    ],
)
def test_bad_distributions(value, message):
    with pytest.raises(ConfigError, match=message) as err:
        parse_distribution(value, "sweep.yaml:7: random.space.x")
    assert str(err.value).startswith("sweep.yaml:7: random.space.x: ")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    "value",
    [
        0.001,
        1e-05,
        3.1622776601683795e-05,
        0.1 + 0.2,
        2.0,
        64,
        True,
        None,
        "relu",
        "1e-3",
        "",
        "a: b",
        [64, 32],
        {"type": "adam", "lr": 0.01},
        math.inf,
    ],
)
def test_format_value_reads_back_as_the_same_value(value):
    path, parsed = parse_override(f"optimizer.lr={format_value(value)}")
    assert parsed == value and type(parsed) is type(value)


def test_log_axis_detection():
    assert is_log_spaced([0.1, 0.01, 0.001])
    assert is_log_spaced([1e-3, 1e-2])
    assert not is_log_spaced([0.01, 0.05])  # less than a decade
    assert not is_log_spaced(list(range(1, 21)))  # evenly spaced
    assert not is_log_spaced([-1.0, 10.0, 100.0])
    assert not is_log_spaced(["relu", "tanh"])
    assert is_log_spaced([0.01, 0.02], SPACE["lr"])  # sampled log-uniformly
    assert not is_log_spaced([0.01, 0.5], SPACE["drop"])
