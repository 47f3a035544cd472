import math
import warnings

import numpy as np
import pytest

from bptrain.nn import Dense, Model, Sequential
from bptrain.train.callbacks import (
    BestTracker,
    EarlyStopping,
    ExplosionGuard,
    divergence,
    first_nonfinite_layer,
    gradients_finite,
)


def rows(key, values):
    return [{"epoch": i + 1, key: v} for i, v in enumerate(values)]


def test_early_stopping_counts_epochs_without_improvement():
    es = EarlyStopping("val_loss", "min", patience=2, min_delta=0.1)
    decisions = [es.update(r) for r in rows("val_loss", [1.0, 0.95, 0.85, 0.84, 0.8])]
    # 0.95 is not better than 1.0 by more than 0.1; 0.85 is; then two epochs without
    assert decisions == [False, False, False, False, True]
    assert es.stopped_epoch == 5 and es.best == 0.85


def test_early_stopping_state_round_trip():
    es = EarlyStopping("val_accuracy", "max", patience=3, min_delta=0)
    for r in rows("val_accuracy", [0.5, 0.6, 0.55]):
        es.update(r)
    again = EarlyStopping("val_accuracy", "max", patience=3, min_delta=0)
    again.load_state(es.state())
    assert again.state() == {"best": 0.6, "wait": 1, "stopped_epoch": None}


def test_best_tracker_ignores_nan_and_ties():
    best = BestTracker("val_accuracy", "max")
    flags = [best.update(r) for r in rows("val_accuracy", [0.5, math.nan, 0.7, 0.7, 0.6])]
    assert flags == [True, False, True, False, False]
    assert (best.best, best.best_epoch) == (0.7, 3)


def model():
    network = Sequential([Dense(4, activation="relu"), Dense(2)])
    network.build((3,), np.random.default_rng(0))
    return Model(network, "mse", "sgd")


def test_gradients_finite_and_first_bad_layer():
    m = model()
    params = m.parameters()
    assert gradients_finite(params) and first_nonfinite_layer(m) is None
    m.network.layers[0].kernel.grad[1, 2] = -np.inf  # a sum of squares: +inf, never cancelled
    assert not gradients_finite(params)
    m.network.layers[0].kernel.grad[1, 2] = np.inf
    assert not gradients_finite(params)
    assert first_nonfinite_layer(m) == "'dense' (dense/kernel)"
    m.network.layers[1].bias.grad[0] = (
        np.nan
    )  # nearer the output: the first the backward pass reached
    assert first_nonfinite_layer(m) == "'dense_1' (dense_1/bias)"


def test_huge_finite_gradients_are_finite_even_when_their_sum_is_not():
    m = model()
    params = m.parameters()
    params.flat_grad[:] = 3e38  # float32: the sum overflows to inf, every element is finite
    with np.errstate(over="ignore"):
        assert np.isinf(params.flat_grad.sum())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warning reaches the user either
        assert gradients_finite(params)
        assert gradients_finite(list(params))  # parameters without a flat buffer, one by one
    params.flat_grad[3] = np.nan
    assert not gradients_finite(params) and not gradients_finite(list(params))


def test_divergence_message():
    m = model()
    m.network.layers[1].kernel.grad[0, 0] = np.nan
    err = divergence(m, float("nan"), 3, 17, "runs/x/checkpoints/last.safetensors")
    assert str(err) == (
        "training diverged at epoch 3, step 17: the loss is nan and the first non-finite "
        "gradient is in layer 'dense_1' (dense_1/kernel); the last good checkpoint is "
        "runs/x/checkpoints/last.safetensors. Lower optimizer.learning_rate or set "
        "optimizer.clipnorm"
    )


def guard_after(losses, samples=32) -> ExplosionGuard:
    guard = ExplosionGuard()
    for loss in losses:
        assert guard.exploded(loss) is None, loss
        guard.update(loss, samples)
    return guard


def test_a_loss_that_falls_and_rises_back_has_not_exploded():
    """Down four decades, a spike back above the start, and a rise 2000 times the best."""
    losses = [2.3, 2.1, 2.25, 1.9, 1.5, 1.2, 0.9, 0.5, 0.3, 0.2, 0.1, 1e-2, 1e-3, 1e-4]
    guard = guard_after(losses + [2.6, 0.2, 1e-4, 0.2])
    assert guard.level == 2.3 and guard.limit == pytest.approx(2300)  # the first 10 steps'
    assert guard.exploded(2299.0) is None


def test_a_loss_far_above_the_starting_level_has_exploded():
    guard = guard_after([2.3, 2.2] + [2.0] * 20)
    assert guard.exploded(6.1e19) == "more than 1e3 times the run's starting level 2.3"
    assert guard.exploded(2301.0) is not None
    # the reference is frozen after 10 steps: a loss creeping up stays measured against it
    creeping = guard_after([1.0] * 10 + [10.0, 100.0, 999.0])
    assert creeping.exploded(1001.0) is not None


def test_a_reference_of_few_samples_needs_a_million_fold_explosion():
    """Batches of one sample: a lucky first loss of 1e-6 does not make 0.5 an explosion."""
    guard = guard_after([1e-6, 0.5], samples=1)
    assert guard.limit == pytest.approx(0.5e6)
    assert guard.exploded(4e5) is None
    assert guard.exploded(1e6) == "more than 1e6 times the run's starting level 0.5"
    assert guard_after([1e-6, 0.5] + [0.3] * 30, samples=1).limit == pytest.approx(0.5e6)
    assert guard_after([0.5] * 8, samples=4).limit == pytest.approx(500)  # 32 samples


def test_no_reference_no_verdict():
    assert ExplosionGuard().exploded(1e30) is None  # the first batch has nothing to compare
    assert guard_after([0.0]).exploded(1.0) is None  # a start of 0: no factor of it


def test_the_guard_state_resumes_its_decisions():
    guard = guard_after([3.0, 1.0, 0.5])
    again = ExplosionGuard()
    again.load_state(guard.state())
    for loss in (0.4, 0.3, 0.2, 0.1, 0.1, 0.1, 0.1, 5.0):
        assert again.exploded(loss) is guard.exploded(loss) is None
        again.update(loss, 32), guard.update(loss, 32)
    # 5.0 came in step 11, after the reference was set
    assert again.state() == guard.state() == {"level": 3.0, "steps": 10, "samples": 320}
    assert again.exploded(3001.0) == guard.exploded(3001.0) is not None
