"""Gradient accumulation: K slices give the gradient of one batch K times larger (float64),
a run with ``accumulate: 2`` trains as one with batches twice as large, and resumes exactly."""

from __future__ import annotations

import numpy as np
import pytest

from bptrain.errors import ConfigError
from bptrain.nn import Adam, Dense, Model, Sequential
from bptrain.train import fit
from bptrain.train.accumulate import accumulated_gradients
from tests.train.test_fit import assert_crash_resume_exact


def float64_model() -> Model:
    network = Sequential(
        [
            Dense(7, activation="tanh", kernel_regularizer={"type": "l2", "l2": 0.01}),
            Dense(3, activation="softmax"),
        ]
    )
    network.build((5,), np.random.default_rng(0), dtype=np.float64)
    return Model(network, "sparse_categorical_crossentropy", Adam(1e-3))


@pytest.mark.parametrize("weighted", [False, True])
def test_slices_sum_to_the_gradient_of_the_whole_batch_in_float64(weighted):
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(10, 5)), rng.integers(0, 3, 10)
    w = rng.uniform(0, 2, 10) if weighted else None
    model = float64_model()
    whole = model.compute_gradients(x, y, sample_weight=w)
    expected = [p.grad.copy() for p in model.parameters()]
    loss, _ = accumulated_gradients(model, x, y, 4, w)  # slices of 4, 4 and 2
    assert loss == pytest.approx(whole, rel=1e-13)
    for p, g in zip(model.parameters(), expected, strict=True):
        assert p.grad.dtype == np.float64
        np.testing.assert_allclose(p.grad, g, rtol=1e-12, atol=1e-15)


def test_a_run_accumulating_two_batches_trains_as_batches_twice_as_large(tmp_path, small_config):
    big = fit(small_config(batch_size=16), run_dir=tmp_path / "big", progress="none")
    two = fit(small_config(batch_size=8, accumulate=2), run_dir=tmp_path / "two", progress="none")
    assert two.model.optimizer.iterations == big.model.optimizer.iterations
    for a, b in zip(two.history, big.history, strict=True):
        for key in ("loss", "val_loss", "accuracy", "val_accuracy"):
            assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-6), key


def test_resume_with_accumulation_is_exact(tmp_path, monkeypatch, small_config):
    config = small_config(batch_size=8, accumulate=2, checkpoint={"every_steps": 3})
    # crashes in epoch 2, after its checkpoint at step 3
    assert_crash_resume_exact(config, tmp_path, monkeypatch, 13)


def test_accumulation_is_refused_with_replicas(tmp_path, small_config):
    with pytest.raises(ConfigError, match="training.accumulate"):
        fit(small_config(accumulate=2, replicas=2), run_dir=tmp_path / "run", progress="none")
