import math

import numpy as np
import pytest

from bptrain.data import load_dataset
from bptrain.errors import ConfigError


@pytest.mark.parametrize("name", ["spirals", "moons", "sine", "linear", "adding"])
def test_deterministic_per_seed(name):
    a = load_dataset({"dataset": name, "validation_split": 0.1}, seed=7)
    b = load_dataset({"dataset": name, "validation_split": 0.1}, seed=7)
    c = load_dataset({"dataset": name, "validation_split": 0.1}, seed=8)
    for split in ("train", "val", "test"):
        for array_a, array_b in zip(a.split(split), b.split(split), strict=True):
            np.testing.assert_array_equal(array_a, array_b)
    assert not np.array_equal(a.x_train, c.x_train)
    assert a.x_train.dtype == np.float32


def test_spirals_shapes_and_geometry():
    ds = load_dataset(
        {"dataset": "spirals", "classes": 4, "size": 50, "noise": 0.0, "test_split": 0.0}
    )
    assert ds.x_train.shape == (200, 2) and ds.num_classes == 4
    np.testing.assert_array_equal(np.bincount(ds.y_train), [50, 50, 50, 50])
    radius = np.hypot(ds.x_train[:, 0], ds.x_train[:, 1])
    assert radius.max() == pytest.approx(1.0) and radius.min() == pytest.approx(1 / 50)
    # Without noise each arm is a spiral: angle = 2 pi (turns * r + k / classes) (mod 2 pi).
    angle = np.arctan2(ds.x_train[:, 1], ds.x_train[:, 0])
    expected = 2 * np.pi * (radius + ds.y_train / 4)
    np.testing.assert_allclose(np.cos(angle - expected), 1.0, atol=1e-5)


def test_moons_halves():
    ds = load_dataset({"dataset": "moons", "size": 101, "noise": 0.0, "test_split": 0.0})
    assert ds.x_train.shape == (101, 2)
    np.testing.assert_array_equal(np.bincount(ds.y_train), [50, 51])
    upper = ds.x_train[ds.y_train == 0]
    np.testing.assert_allclose(np.hypot(upper[:, 0], upper[:, 1]), 1.0, atol=1e-6)
    lower = ds.x_train[ds.y_train == 1]
    np.testing.assert_allclose(np.hypot(lower[:, 0] - 1, lower[:, 1] - 0.5), 1.0, atol=1e-6)


def test_sine_range_and_values():
    ds = load_dataset({"dataset": "sine", "size": 500, "noise": 0.0, "x_min": 0, "x_max": 2})
    assert ds.task == "regression" and ds.x_train.shape == (400, 1) and ds.y_test.shape == (100, 1)
    assert ds.x_train.min() >= 0 and ds.x_train.max() < 2
    np.testing.assert_allclose(ds.y_train, np.sin(ds.x_train), atol=1e-6)
    noisy = load_dataset({"dataset": "sine", "size": 4000, "noise": 0.1, "test_split": 0.0})
    assert np.std(noisy.y_train - np.sin(noisy.x_train)) == pytest.approx(0.1, rel=0.05)
    assert noisy.x_train.min() >= -math.pi


def test_linear_least_squares_recovers_true_weights():
    ds = load_dataset({"dataset": "linear", "size": 300, "features": 4, "noise": 0.0})
    w, b = np.array(ds.extra["true_weights"]), ds.extra["true_bias"]
    design = np.hstack([ds.x_train.astype(np.float64), np.ones((len(ds.x_train), 1))])
    fit, *_ = np.linalg.lstsq(design, ds.y_train.astype(np.float64), rcond=None)
    np.testing.assert_allclose(fit[:4, 0], w, atol=1e-5)
    assert fit[4, 0] == pytest.approx(b, abs=1e-5)
    noisy = load_dataset({"dataset": "linear", "size": 5000, "features": 2, "noise": 0.5})
    design = np.hstack([noisy.x_train, np.ones((len(noisy.x_train), 1))])
    fit, *_ = np.linalg.lstsq(design, noisy.y_train, rcond=None)
    np.testing.assert_allclose(fit[:2, 0], noisy.extra["true_weights"], atol=0.05)


def test_adding_problem_target_is_the_marked_sum():
    ds = load_dataset({"dataset": "adding", "length": 20, "size": 300})
    x, y = ds.x_train, ds.y_train
    assert x.shape == (240, 20, 2) and y.shape == (240, 1) and ds.input_shape == (20, 2)
    markers = x[:, :, 1]
    assert set(np.unique(markers)) == {0.0, 1.0}
    np.testing.assert_array_equal(markers.sum(axis=1), 2)
    np.testing.assert_array_equal(markers[:, :10].sum(axis=1), 1)  # one marker per half
    np.testing.assert_allclose(y[:, 0], (x[:, :, 0] * markers).sum(axis=1), rtol=1e-6)
    assert 0 <= x[:, :, 0].min() and x[:, :, 0].max() < 1
    assert y.mean() == pytest.approx(1.0, abs=0.1)


def test_bad_generator_options():
    with pytest.raises(ConfigError, match="data.x_max"):
        load_dataset({"dataset": "sine", "x_min": 1, "x_max": 0})
    with pytest.raises(ConfigError, match="data.length must be at least 2"):
        load_dataset({"dataset": "adding", "length": 1})
    with pytest.raises(ConfigError, match=r"data.size must be positive, got 0"):
        load_dataset({"dataset": "moons", "size": 0})
