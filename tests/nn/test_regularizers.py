import numpy as np
import pytest

from bptrain.nn import regularizers
from bptrain.nn.parameter import Parameter


def test_values_and_gradients():
    w = np.array([[1.0, -2.0], [0.5, 0.0]])
    l1, l2 = regularizers.L1(0.1), regularizers.L2(0.01)
    both = regularizers.L1L2(l1=0.1, l2=0.01)
    assert l1(w) == pytest.approx(0.1 * 3.5)
    assert l2(w) == pytest.approx(0.01 * 5.25)
    assert both(w) == pytest.approx(0.35 + 0.0525)
    np.testing.assert_allclose(l1.gradient(w), 0.1 * np.sign(w))
    np.testing.assert_allclose(l2.gradient(w), 0.02 * w)
    np.testing.assert_allclose(both.gradient(w), 0.1 * np.sign(w) + 0.02 * w)


def test_penalty_and_gradients_over_parameters():
    a = Parameter(np.ones((2, 2)), "a", regularizers.get({"type": "l2", "l2": 0.5}))
    b = Parameter(np.ones(3), "b")
    assert regularizers.penalty([a, b]) == pytest.approx(2.0)
    regularizers.add_gradients([a, b])
    np.testing.assert_allclose(a.grad, np.ones((2, 2)))
    np.testing.assert_allclose(b.grad, 0)


def test_get():
    assert regularizers.get(None) is None
    assert isinstance(regularizers.get("l1"), regularizers.L1)
    with pytest.raises(ValueError, match="unknown regularizer"):
        regularizers.get("l3")
