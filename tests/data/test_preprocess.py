import numpy as np
import pytest

from bptrain.data import load_dataset
from bptrain.data.dataset import regression
from bptrain.data.preprocess import reduce_axes, scale


def _dataset(x_train, x_test):
    ds = regression("t", x_train, np.zeros(len(x_train)), x_test, np.zeros(len(x_test)))
    return ds


def test_standardize_uses_training_statistics_only():
    rng = np.random.default_rng(0)
    x_train = rng.normal([10.0, -3.0], [2.0, 0.5], (500, 2)).astype(np.float32)
    x_test = np.array([[10.0, -3.0], [12.0, -2.5]], dtype=np.float32)
    mean, std = x_train.astype(np.float64).mean(0), x_train.astype(np.float64).std(0)
    ds = scale(_dataset(x_train.copy(), x_test.copy()), "standardize")
    np.testing.assert_allclose(ds.x_train.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(ds.x_train.std(0), 1, atol=1e-5)
    np.testing.assert_allclose(ds.x_test, (x_test - mean) / std, rtol=1e-5)
    np.testing.assert_allclose(ds.extra["scale"]["shift"], mean)
    np.testing.assert_allclose(ds.extra["scale"]["divisor"], std)


def test_standardize_guards_constant_features():
    x = np.array([[1.0, 5.0], [3.0, 5.0]], dtype=np.float32)
    ds = scale(_dataset(x, np.array([[2.0, 7.0]], dtype=np.float32)), "standardize")
    np.testing.assert_array_equal(ds.x_train, [[-1, 0], [1, 0]])
    np.testing.assert_array_equal(ds.x_test, [[0, 2]])


def test_minmax_from_training_data():
    x = np.array([[0.0, 10.0], [4.0, 20.0], [2.0, 15.0]], dtype=np.float32)
    ds = scale(_dataset(x, np.array([[8.0, 10.0]], dtype=np.float32)), "minmax")
    np.testing.assert_allclose(ds.x_train, [[0, 0], [1, 1], [0.5, 0.5]])
    np.testing.assert_allclose(ds.x_test, [[2.0, 0.0]])  # outside [0, 1]: train range rules


def test_images_are_scaled_per_channel():
    assert reduce_axes(4) == (0, 2, 3) and reduce_axes(3) == (0, 1) and reduce_axes(2) == (0,)
    rng = np.random.default_rng(1)
    x = rng.normal(0, 1, (20, 3, 4, 4)).astype(np.float32) * np.float32([1, 10, 100])[:, None, None]
    ds = scale(_dataset(x, x[:2].copy()), "standardize")
    np.testing.assert_allclose(ds.x_train.std(axis=(0, 2, 3)), 1, rtol=1e-4)
    assert len(ds.extra["scale"]["shift"]) == 3


def test_validation_rows_do_not_leak_into_statistics():
    spec = {"dataset": "linear", "size": 400, "validation_split": 0.5, "scale": "standardize"}
    ds = load_dataset(spec, seed=3)
    raw = load_dataset({**spec, "scale": "none"}, seed=3)
    train_mean = raw.x_train.astype(np.float64).mean(0)
    np.testing.assert_allclose(ds.extra["scale"]["shift"], train_mean)
    np.testing.assert_allclose(ds.x_train.mean(0), 0, atol=1e-5)
    assert np.abs(ds.x_val.mean(0)).max() > 1e-3  # val is shifted by train's mean, not its own
    np.testing.assert_allclose(
        ds.x_val,
        (raw.x_val - train_mean) / np.array(ds.extra["scale"]["divisor"]),
        rtol=1e-5,
        atol=1e-6,
    )


@pytest.mark.parametrize("method", ["standardize", "minmax"])
def test_scaling_keeps_float32(method):
    ds = load_dataset({"dataset": "moons", "scale": method, "validation_split": 0.2})
    assert ds.x_train.dtype == ds.x_val.dtype == ds.x_test.dtype == np.float32
