"""The core's hooks for data-parallel training, with workers simulated by threads of this
process: the share of the batch that ``bptrain.nn.context.sharing`` tells the layers (BatchNorm's
reducer for synchronized statistics, Dropout's rows of the whole batch's mask), and
``Model.compute_gradients(scale=...)``. Each worker's part must add up to the whole batch."""

from __future__ import annotations

import copy
import threading

import numpy as np
import pytest

from bptrain.nn import BatchNorm, Dense, Dropout, Model, Sequential
from bptrain.nn.context import BatchShare, sharing

SLICES = [(0, 5), (5, 13)]  # two workers, uneven slices of a batch of 13


class ThreadSum:
    """A reducer for workers that are threads: each passes its vector, each gets the sum (added
    in worker order, the same on every worker)."""

    def __init__(self, workers: int):
        self.parts = [None] * workers
        self.barrier = threading.Barrier(workers, timeout=10)

    def worker(self, i: int):
        def reduce(a):
            self.parts[i] = a.copy()
            self.barrier.wait()
            total = sum(self.parts[1:], self.parts[0].copy())
            self.barrier.wait()  # everyone has read the parts before they are replaced
            return total

        return reduce


def on_workers(fn, n: int, shares=None) -> list:
    """[fn(0), ..., fn(n - 1)], each called in a thread of its own (within ``sharing`` its
    share of ``shares``, if given)."""
    results, errors = [None] * n, []

    def run(i):
        try:
            if shares is None:
                results[i] = fn(i)
            else:
                with sharing(shares[i]):
                    results[i] = fn(i)
        except BaseException as exc:  # re-raised in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


def batchnorm(shape) -> BatchNorm:
    layer = BatchNorm(momentum=0.5, gamma_initializer="glorot_uniform")
    layer.build(shape[1:], np.random.default_rng(1))
    layer.cast(np.float64)
    return layer


def synced(layer: BatchNorm, slices) -> tuple[list[BatchNorm], list[BatchShare]]:
    """Copies of ``layer``, one per worker, and the workers' shares of the batch, whose
    reducers sum the statistics across the workers."""
    reducer = ThreadSum(len(slices))
    total = slices[-1][1]
    shares = [BatchShare(a, b, total, reducer.worker(i)) for i, (a, b) in enumerate(slices)]
    return [copy.deepcopy(layer) for _ in slices], shares


@pytest.mark.parametrize("shape", [(13, 4), (13, 3, 4, 5)])
def test_synchronized_batchnorm_equals_batchnorm_on_the_whole_batch(shape):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape) * 2.0 + 3.0
    dy = rng.standard_normal(shape)
    whole = batchnorm(shape)
    workers, shares = synced(whole, SLICES)
    y, dx = whole.forward(x, training=True), whole.backward(dy)

    def step(i):
        (a, b), layer = SLICES[i], workers[i]
        return layer.forward(x[a:b], training=True), layer.backward(dy[a:b])

    parts = on_workers(step, len(SLICES), shares)
    np.testing.assert_allclose(np.concatenate([p[0] for p in parts]), y, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(np.concatenate([p[1] for p in parts]), dx, rtol=1e-10, atol=1e-12)
    for name in ("gamma", "beta"):  # each worker holds its share; the trainer sums them
        total = sum(getattr(w, name).grad for w in workers)
        np.testing.assert_allclose(total, getattr(whole, name).grad, rtol=1e-12)
    for w in workers:
        np.testing.assert_allclose(w.moving_mean, whole.moving_mean, rtol=1e-12)
        np.testing.assert_allclose(w.moving_variance, whole.moving_variance, rtol=1e-12)


@pytest.mark.parametrize("shape", [(7, 3), (7, 2, 3, 3)])
def test_synchronized_batchnorm_gradients_match_finite_differences(shape):
    """The gradient of the two workers' total loss sum(r * y) with respect to each worker's
    inputs and to gamma and beta, in float64: every input moves both workers' outputs through
    the shared statistics, which the hooked backward pass must account for."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal(shape)
    r = rng.standard_normal(shape)
    slices = [(0, 3), (3, shape[0])]
    layer = batchnorm(shape)

    def total_loss(x, gamma, beta) -> float:
        workers, shares = synced(layer, slices)

        def forward(i):
            (a, b), w = slices[i], workers[i]
            w.gamma.value[...], w.beta.value[...] = gamma, beta
            return float((w.forward(x[a:b], training=True) * r[a:b]).sum())

        return sum(on_workers(forward, 2, shares))

    workers, shares = synced(layer, slices)

    def backward(i):
        (a, b), w = slices[i], workers[i]
        w.forward(x[a:b], training=True)
        return w.backward(r[a:b])

    dx = np.concatenate(on_workers(backward, 2, shares))
    analytic = {
        "x": dx,
        "gamma": sum(w.gamma.grad for w in workers),
        "beta": sum(w.beta.grad for w in workers),
    }
    values = {"x": x, "gamma": layer.gamma.value.copy(), "beta": layer.beta.value.copy()}
    eps = 1e-6
    for name, value in values.items():
        numeric = np.zeros_like(value)
        for i in np.ndindex(value.shape):
            saved = value[i]
            value[i] = saved + eps
            up = total_loss(values["x"], values["gamma"], values["beta"])
            value[i] = saved - eps
            down = total_loss(values["x"], values["gamma"], values["beta"])
            value[i] = saved
            numeric[i] = (up - down) / (2 * eps)
        error = np.abs(numeric - analytic[name]).max() / max(np.abs(numeric).max(), 1e-12)
        assert error < 1e-6, f"{name}: relative error {error:.2e}"


def test_dropout_slices_are_the_rows_of_the_whole_batch_mask():
    x = np.ones((13, 6), dtype=np.float32)
    whole = Dropout(0.4)
    whole.build((6,), np.random.default_rng(5))
    workers = [copy.deepcopy(whole) for _ in SLICES]  # each worker's generator, in step
    masks = [whole.forward(x, training=True) for _ in range(2)]
    for w, (a, b) in zip(workers, SLICES, strict=True):
        for mask in masks:
            with sharing(BatchShare(a, b, 13)):
                np.testing.assert_array_equal(w.forward(x[a:b], training=True), mask[a:b])
        assert w.rng.bit_generator.state == whole.rng.bit_generator.state
    assert not np.array_equal(masks[0], masks[1])


def test_scaled_gradients_of_the_slices_add_up_to_the_batch_gradient():
    """With scale = slice size / batch size, the slices' losses and gradients (an L2 penalty
    included) sum to the whole batch's."""
    rng = np.random.default_rng(3)
    network = Sequential([Dense(5, activation="tanh", kernel_regularizer="l2"), Dense(3)])
    network.build((4,), np.random.default_rng(0))
    model = Model(network, "sparse_categorical_crossentropy", "sgd")
    model.cast(np.float64)
    x, y = rng.standard_normal((13, 4)), rng.integers(0, 3, 13)
    loss = model.compute_gradients(x, y)
    grad = model.parameters().flat_grad.copy()
    losses, grads = [], []
    for a, b in SLICES:
        losses.append(model.compute_gradients(x[a:b], y[a:b], scale=(b - a) / 13))
        grads.append(model.parameters().flat_grad.copy())
    assert sum(losses) == pytest.approx(loss, rel=1e-12)
    np.testing.assert_allclose(sum(grads), grad, rtol=1e-10, atol=1e-14)
