"""The numbers training.diagnostics records: norms, update ratios, activation statistics, dead
units, and where an exploding gradient is."""

import math

import numpy as np
import pytest

from bptrain.nn import Conv2D, Dense, Flatten, MaxPool2D, Sequential
from bptrain.nn.activations import ReLU
from bptrain.train import layer_stats


def test_dead_fraction_counts_units_that_are_zero_for_every_sample_and_position():
    y = np.zeros((3, 4, 2, 2))
    y[0, 1, 1, 0] = 0.5  # channel 1 lives at one position of one sample
    y[2, 3] = 1.0
    assert layer_stats.dead_fraction(y) == 0.5
    dense = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    assert layer_stats.dead_fraction(dense) == pytest.approx(2 / 3)
    assert layer_stats.dead_fraction(np.ones((2, 5, 3))) == 0.0


def model_of(*layers, shape=(1, 6, 6)):
    model = Sequential(list(layers))
    model.build(shape, np.random.default_rng(0))
    return model


def test_gradient_stats_are_the_norms_and_the_step_over_the_weight():
    model = model_of(Dense(3), Dense(2), shape=(4,))
    rows = layer_stats.parameter_rows(model)
    assert [(layer, name) for layer, name, _ in rows] == [
        ("dense", "kernel"), ("dense", "bias"), ("dense_1", "kernel"), ("dense_1", "bias"),
    ]  # fmt: skip
    before = [p.value.copy() for _, _, p in rows]
    for _, _, p in rows:
        p.grad[...] = 2.0
        p.value -= 0.5 * p.grad  # SGD at 0.5
    stats = layer_stats.gradient_stats(rows, before)
    kernel = before[0]
    assert stats[0]["grad_norm"] == pytest.approx(2.0 * math.sqrt(12))
    assert stats[0]["weight_norm"] == pytest.approx(np.linalg.norm(kernel))
    assert stats[0]["update_ratio"] == pytest.approx(math.sqrt(12) / np.linalg.norm(kernel))
    assert stats[1]["weight_norm"] == 0.0 and stats[1]["update_ratio"] is None  # zero biases


def test_activation_stats_follow_the_layers_that_run_and_know_fused_relus():
    model = model_of(Conv2D(3, 3, activation="relu"), MaxPool2D(2), Flatten(), Dense(2))
    x = np.random.default_rng(1).normal(size=(8, 1, 6, 6)).astype(np.float32)
    stats = layer_stats.activation_stats(model, x)
    assert [r["layer"] for r in stats] == [layer.name for layer in model.runs]
    assert stats[0]["layer"] == "conv2_d+max_pool2_d"  # fused, and still a ReLU
    out = model.runs[0].forward(x)
    assert stats[0]["act_mean"] == pytest.approx(float(out.mean()))
    assert stats[0]["act_std"] == pytest.approx(float(out.std()))
    assert stats[0]["dead_fraction"] == layer_stats.dead_fraction(np.asarray(out))
    assert "dead_fraction" not in stats[-1]
    assert layer_stats.is_relu(model.runs[0]) and isinstance(model.layers[0].activation, ReLU)


def test_steepest_gradient_is_the_one_that_grew_most_since_the_last_record():
    model = model_of(Dense(3), Dense(2), shape=(4,))
    for _, _, p in layer_stats.parameter_rows(model):
        p.grad[...] = 1.0
    model.layers[1].kernel.grad[...] = 50.0
    reference = {"dense/kernel": 1.0, "dense_1/kernel": 1e-3}
    text = layer_stats.steepest_gradient(model, reference)
    assert text.startswith("'dense_1' (dense_1/kernel, gradient norm 122, 1.22e+05 times its")
    assert layer_stats.steepest_gradient(model).startswith("'dense_1' (dense_1/kernel")
