"""The core goes through ``backend`` for every array: proven by running it on a namespace that is
not NumPy (``tests/checked_xp.py``), where a stray NumPy call raises, and by getting NumPy's
numbers bit for bit there. What a GPU adds beyond this (CuPy's own kernels) is measured by
``bench/bench_gpu.py`` on the same cases."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

from bptrain import nn
from bptrain.nn import backend
from bptrain.nn.kernels.im2col import col2im, col2im_reference, im2col, im2col_reference
from bptrain.nn.kernels.pooling import max_pool_backward_reference, max_pool_reference
from bptrain.nn.kernels.windows import Windows
from tests.checked_xp import Escaped, namespace
from tests.nn.layer_cases import LAYERS, MODELS, OPTIMIZERS, inputs, labels, train_steps


@contextlib.contextmanager
def checked():
    backend.use(namespace)
    try:
        yield namespace
    finally:
        backend.use("numpy")


def test_the_namespace_refuses_numpy_on_device_arrays():
    with checked() as xp:
        a = xp.ones(3)
        for stray in (
            lambda: np.exp(a),
            lambda: np.add.at(a, [0], 1.0),
            lambda: np.asarray(a),
            lambda: np.concatenate([a, a]),
            lambda: a + np.zeros(3),
            lambda: xp.concatenate([a, np.zeros(3)]),
            lambda: a.__setitem__(Ellipsis, np.zeros(3)),
            lambda: a[np.array([0, 1])],
        ):
            with pytest.raises(Escaped):
                stray()
        # The ways that are allowed: through backend, scalars, and NumPy scalars.
        b = backend.asarray(np.arange(3.0)) * np.float32(2) + 1
        assert isinstance(b.sum(), type(a)) and float(b.sum()) == 9.0
        np.testing.assert_array_equal(backend.to_numpy(b), [1.0, 3.0, 5.0])


class StrayLayer(nn.Layer):
    """x -> max(x, 0) written with ``np.maximum``, as a slip would write it."""

    def forward(self, x, training=False):
        self._x = x
        return np.maximum(x, 0.0)

    def backward(self, dy):
        return dy * (self._x > 0)


def test_a_stray_numpy_call_in_a_layer_is_caught():
    x = inputs((3, 4), None)
    assert nn.check_layer(StrayLayer(), x + 0.1).passed()  # fine on NumPy...
    with checked(), pytest.raises(Escaped, match=r"numpy.maximum called on a device array"):
        nn.check_layer(StrayLayer(), x + 0.1)  # ...and caught here


def _gradcheck(make, shape, high, training):
    layer = make()
    report = nn.check_layer(layer, inputs(shape, high), training=training)
    out = layer.forward(backend.asarray(inputs(shape, high)), training=False)
    return report, backend.to_numpy(out)


@pytest.mark.parametrize("name, make, shape, high, training", LAYERS, ids=[c[0] for c in LAYERS])
def test_every_layer_passes_its_gradient_check_off_numpy(name, make, shape, high, training):
    expected, expected_out = _gradcheck(make, shape, high, training)
    with checked():
        report, out = _gradcheck(make, shape, high, training)
    assert report.passed(1e-6), str(report)
    assert report.errors == expected.errors  # the same numbers as on NumPy, bit for bit
    np.testing.assert_array_equal(out, expected_out)


def _train(make, shape, high, optimizer):
    model, network, losses = train_steps(make, shape, high, optimizer)
    x = backend.asarray(inputs((8, *shape), high, seed=2).astype(np.float32))
    x = x.astype(np.int64) if high is not None else x
    probabilities = backend.to_numpy(model.predict(x, batch_size=5))
    return losses, network.weights(), model.optimizer.state()["slots"], probabilities


@pytest.mark.parametrize(
    "name, make, shape, high, optimizer",
    [(*m, OPTIMIZERS[i % len(OPTIMIZERS)]) for i, m in enumerate(MODELS)]
    + [("mlp", MODELS[0][1], MODELS[0][2], None, opt) for opt in OPTIMIZERS],
    ids=[m[0] for m in MODELS] + [f"mlp-{o['type']}" for o in OPTIMIZERS],
)
def test_training_steps_off_numpy_equal_numpy(name, make, shape, high, optimizer):
    expected = _train(make, shape, high, optimizer)
    with checked():
        got = _train(make, shape, high, optimizer)
    # An Embedding's gradient is summed by scatter_add off NumPy and by sorted runs on NumPy
    # (layers/embedding.py): the same sums in another order. Everything else is bit for bit.
    same = np.testing.assert_array_equal if high is None else _close
    same(got[0], expected[0])  # losses
    for want, have in zip(expected[1:], got[1:], strict=True):
        if isinstance(want, dict):
            assert set(have) == set(want)
            for key in want:
                same(have[key], want[key], err_msg=key)
        else:
            same(have, want)


def _close(actual, desired, err_msg=""):
    np.testing.assert_allclose(actual, desired, rtol=1e-5, atol=1e-7, err_msg=err_msg)


LOSSES = [
    ("sparse_categorical_crossentropy", labels(4), {"label_smoothing": 0.1}),
    ("sparse_categorical_crossentropy", labels(4), {"from_logits": True}),
    ("categorical_crossentropy", np.eye(3)[labels(4)], {"from_logits": True}),
    ("binary_crossentropy", np.eye(3)[labels(4)], {}),
    ("binary_crossentropy", np.eye(3)[labels(4)], {"from_logits": True}),
    ("mean_squared_error", inputs((4, 3), None, seed=5), {}),
    ("mean_absolute_error", inputs((4, 3), None, seed=5), {}),
    ("huber", inputs((4, 3), None, seed=5), {}),
]


@pytest.mark.parametrize("name, y, kwargs", LOSSES, ids=[f"{c[0]}-{c[2]}" for c in LOSSES])
def test_every_loss_off_numpy(name, y, kwargs):
    rng = np.random.default_rng(2)
    y_pred = rng.uniform(0.1, 0.9, (4, 3))

    def run():
        loss = nn.losses.get({"type": name, **kwargs})
        report = nn.check_loss(loss, y_pred, y)
        weighted = loss.forward(backend.asarray(y_pred), y, sample_weight=np.arange(1.0, 5.0))
        return report, weighted, backend.to_numpy(loss.backward())

    expected = run()
    with checked():
        report, weighted, grad = run()
    assert report.passed(1e-6) and report.errors == expected[0].errors
    assert weighted == expected[1]
    np.testing.assert_array_equal(grad, expected[2])


@pytest.mark.parametrize(
    "geometry",
    [((6, 6), (3, 3)), ((7, 7), (3, 3), (2, 2), (1, 1), "same"), ((6, 6), (2, 2), (2, 2))],
)
def test_kernels_match_their_references_off_numpy(geometry):
    g = Windows.create(*geometry)
    x = inputs((2, 3, *g.in_hw), None)
    cols_ref = im2col_reference(x, g)
    back_ref = col2im_reference(cols_ref, x.shape, g)
    y_ref, argmax_ref = max_pool_reference(x, g)
    dx_ref = max_pool_backward_reference(y_ref, argmax_ref, x.shape, g)
    with checked():
        xd = backend.asarray(x)
        cols = im2col(xd, g)
        assert isinstance(cols, type(xd))
        back = col2im(cols, x.shape, g)
        y, argmax = max_pool_reference(xd, g)  # the references run off NumPy too
        dx = max_pool_backward_reference(y, argmax, x.shape, g)
    np.testing.assert_array_equal(backend.to_numpy(cols), cols_ref)
    np.testing.assert_allclose(backend.to_numpy(back), back_ref, rtol=1e-12)
    np.testing.assert_array_equal(backend.to_numpy(y), y_ref)
    np.testing.assert_array_equal(backend.to_numpy(dx), dx_ref)


def test_the_functions_the_namespace_admits_exist_in_cupy():
    cupy = pytest.importorskip("cupy", reason="CuPy is not installed (pip install bptrain[gpu])")
    from tests.checked_xp import CUPY_FUNCTIONS

    assert sorted(n for n in CUPY_FUNCTIONS if not hasattr(cupy, n)) == []
    assert type(cupy.matmul).__name__ == "_GUFunc"  # takes no positional output
