import numpy as np
import pytest

from bptrain.nn import Dense
from bptrain.nn.gradcheck import check_layer, relative_error
from bptrain.nn.layer import Layer


class WrongBackward(Layer):
    """y = x^2 with a deliberately wrong derivative (x instead of 2x)."""

    def forward(self, x, training=False):
        self._x = x
        return x * x

    def backward(self, dy):
        return dy * self._x


def test_detects_a_wrong_backward():
    report = check_layer(WrongBackward(), np.random.default_rng(0).normal(size=(3, 4)))
    assert not report.passed(1e-6)
    assert report.errors["input"] > 0.4


def test_relative_error():
    assert relative_error([1.0, 2.0], [1.0, 2.0]) == 0.0
    assert relative_error([1.0, 2.0], [1.0, 2.2]) == pytest.approx(0.2 / 2.2)
    assert relative_error([0.0], [0.0]) == 0.0


def test_samples_large_tensors_and_reports_every_tensor():
    report = check_layer(Dense(40), np.random.default_rng(0).normal(size=(2, 30)), max_elements=25)
    assert set(report.errors) == {"input", "kernel", "bias"}
    assert report.passed(1e-6)
    assert "kernel" in str(report)
