import numpy as np
import pytest

from bptrain.nn import Flatten, Reshape
from bptrain.nn.gradcheck import check_layer

rng = np.random.default_rng(0)


def test_flatten_and_reshape():
    x = rng.normal(size=(2, 3, 4, 5))
    flat = Flatten()
    assert flat.build((3, 4, 5), rng) == (60,)
    assert flat.forward(x).shape == (2, 60)
    assert flat.backward(np.ones((2, 60))).shape == (2, 3, 4, 5)
    assert check_layer(Flatten(), x).passed(1e-6)
    reshape = Reshape([-1, 5])
    assert reshape.build((3, 4, 5), rng) == (12, 5)
    assert check_layer(Reshape([4, 15]), x).passed(1e-6)
    with pytest.raises(ValueError, match="cannot reshape"):
        Reshape([7, -1]).build((3, 4, 5), rng)
