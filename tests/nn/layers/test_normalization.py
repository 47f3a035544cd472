import numpy as np
import pytest

from bptrain.nn import BatchNorm, Conv2D, Dense, Flatten, Sequential, check_layer

rng = np.random.default_rng(0)


def built(shape, **kwargs):
    layer = BatchNorm(**kwargs)
    layer.build(shape, rng)
    return layer


@pytest.mark.parametrize("shape", [(8, 5), (4, 3, 5, 6), (16, 1)])
@pytest.mark.parametrize("center, scale", [(True, True), (False, True), (True, False)])
def test_gradient_in_training(shape, center, scale):
    layer = BatchNorm(center=center, scale=scale, gamma_initializer="glorot_uniform")
    report = check_layer(layer, rng.normal(size=shape), training=True)
    assert report.passed(1e-6), report
    assert set(report.errors) == {"input", *(["beta"] if center else []), *(["gamma"] * scale)}


@pytest.mark.parametrize("shape", [(8, 5), (4, 3, 5, 6)])
def test_gradient_in_inference(shape):
    layer = BatchNorm(gamma_initializer="glorot_uniform", moving_mean_initializer="glorot_uniform")
    report = check_layer(layer, rng.normal(size=shape), training=False)
    assert report.passed(1e-6), report


def test_training_normalizes_each_channel_with_batch_statistics():
    layer = built((3, 4, 4), epsilon=1e-5)
    x = rng.normal(loc=[2.0, -1.0, 0.5], scale=[3.0, 0.5, 1.0], size=(8, 4, 4, 3))
    x = x.transpose(0, 3, 1, 2).astype(np.float32)  # (N, C, H, W) with per-channel stats
    layer.gamma.value[...] = [1.0, 2.0, 0.5]
    layer.beta.value[...] = [0.0, 1.0, -1.0]
    y = layer.forward(x, training=True)
    mean = x.mean(axis=(0, 2, 3), keepdims=True)
    var = x.var(axis=(0, 2, 3), keepdims=True)
    expected = (x - mean) / np.sqrt(var + 1e-5) * layer.gamma.value.reshape(1, 3, 1, 1)
    expected += layer.beta.value.reshape(1, 3, 1, 1)
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), [0.0, 1.0, -1.0], atol=1e-5)
    np.testing.assert_allclose(y.std(axis=(0, 2, 3)), [1.0, 2.0, 0.5], rtol=1e-3)
    assert y.dtype == np.float32


def test_running_statistics_follow_keras_momentum():
    layer = built((2,), momentum=0.9)
    x1 = np.array([[1.0, 10.0], [3.0, 20.0]], dtype=np.float32)  # means 2, 15; variances 1, 25
    layer.forward(x1, training=True)
    np.testing.assert_allclose(layer.moving_mean, [0.1 * 2.0, 0.1 * 15.0], rtol=1e-6)
    np.testing.assert_allclose(layer.moving_variance, [0.9 + 0.1 * 1.0, 0.9 + 0.1 * 25.0])
    x2 = np.array([[0.0, 0.0], [0.0, 4.0]], dtype=np.float32)  # means 0, 2; variances 0, 4
    layer.forward(x2, training=True)
    np.testing.assert_allclose(layer.moving_mean, [0.9 * 0.2, 0.9 * 1.5 + 0.1 * 2.0], rtol=1e-6)
    np.testing.assert_allclose(layer.moving_variance, [0.9 * 1.0, 0.9 * 3.4 + 0.1 * 4.0])
    layer.forward(x2, training=False)  # inference leaves them alone
    np.testing.assert_allclose(layer.moving_mean, [0.18, 1.55], rtol=1e-6)


def test_inference_uses_running_statistics():
    layer = built((2, 3, 3), epsilon=1e-3)
    layer.moving_mean[...] = [1.0, -2.0]
    layer.moving_variance[...] = [4.0, 0.25]
    layer.gamma.value[...] = [2.0, 1.0]
    layer.beta.value[...] = [0.5, 0.0]
    x = rng.normal(size=(3, 2, 3, 3)).astype(np.float32)
    y = layer.forward(x, training=False)
    expected = np.stack(
        [
            2.0 * (x[:, 0] - 1.0) / np.sqrt(4.0 + 1e-3) + 0.5,
            (x[:, 1] + 2.0) / np.sqrt(0.25 + 1e-3),
        ],
        axis=1,
    )
    np.testing.assert_allclose(y, expected, rtol=1e-5)
    dx = layer.backward(np.ones_like(y))  # the statistics are constants here
    np.testing.assert_allclose(dx[:, 0], 2.0 / np.sqrt(4.0 + 1e-3), rtol=1e-6)
    np.testing.assert_allclose(dx[:, 1], 1.0 / np.sqrt(0.25 + 1e-3), rtol=1e-6)


def test_state_is_saved_and_loaded_in_place():
    model = Sequential([Conv2D(2, 3), BatchNorm(), Flatten(), Dense(2)])
    model.build((1, 5, 5), np.random.default_rng(0))
    bn = model.layers[1]
    assert set(bn.state()) == {"moving_mean", "moving_variance"}
    assert {"batch_norm/moving_mean", "batch_norm/moving_variance"} <= set(model.weights())
    assert model.summary().splitlines()[-1] == "Non-trainable params: 4"
    mean = bn.moving_mean
    model.load_state({"batch_norm/moving_mean": np.array([1.0, 2.0])})
    assert bn.moving_mean is mean
    np.testing.assert_array_equal(mean, [1.0, 2.0])
    model.cast(np.float64)
    assert bn.moving_mean.dtype == bn.moving_variance.dtype == np.float64
    np.testing.assert_array_equal(bn.moving_mean, [1.0, 2.0])


def test_bad_configuration_errors():
    with pytest.raises(ValueError, match="momentum must be in"):
        BatchNorm(momentum=1.5)
    with pytest.raises(ValueError, match="epsilon must be positive"):
        BatchNorm(epsilon=0)
    layer = built((3,))
    with pytest.raises(ValueError, match="expects \\(N, C\\) or \\(N, C, H, W\\) inputs"):
        layer.forward(np.zeros(3))
    with pytest.raises(ValueError, match="got inputs of shape \\('N', 5, 3\\)"):
        BatchNorm().build((5, 3), rng)
