import numpy as np
import pytest

from bptrain.nn.kernels.windows import Windows, pair

rng = np.random.default_rng(0)

GEOMETRIES = [
    # (in_hw, kernel, stride, dilation, padding)
    ((7, 8), (3, 3), (1, 1), (1, 1), "valid"),
    ((6, 7), (3, 3), (1, 1), (1, 1), "same"),
    ((7, 8), (3, 2), (2, 2), (1, 1), "same"),
    ((9, 6), (3, 3), (1, 2), (2, 1), 2),
    ((6, 6), (2, 2), (2, 2), (1, 1), "valid"),  # tiles: the reshape fast path
    ((7, 7), (2, 2), (2, 2), (1, 1), "valid"),  # tiles, last row and column left out
    ((5, 5), (5, 5), (3, 3), (1, 1), "same"),  # windows mostly padding
]


def test_output_sizes_follow_keras_and_pytorch():
    assert Windows.create((28, 28), (3, 3)).out_hw == (26, 26)
    # "same": ceil(size / stride); the odd extra padding goes after (bottom, right)
    g = Windows.create((7, 8), (3, 3), (2, 2), padding="same")
    assert g.out_hw == (4, 4)
    assert g.pad == (1, 1, 0, 1)
    assert Windows.create((5, 5), (3, 3), padding="same").pad == (1, 1, 1, 1)
    # int padding on every side, as PyTorch's padding=p
    g = Windows.create((9, 6), (3, 3), (1, 2), (2, 1), padding=2)
    assert g.pad == (2, 2, 2, 2)
    assert g.out_hw == ((9 + 4 - 5) // 1 + 1, (6 + 4 - 3) // 2 + 1)


def test_geometry_flags():
    assert Windows.create((6, 6), (2, 2), (2, 2)).tiles
    assert Windows.create((6, 6), (2, 2), (2, 2)).covers
    odd = Windows.create((7, 7), (2, 2), (2, 2))
    assert odd.tiles and not odd.covers and odd.disjoint
    overlapping = Windows.create((7, 7), (3, 3), (2, 2))
    assert not overlapping.tiles and not overlapping.disjoint
    assert Windows.create((7, 7), (3, 3), padding="same").padded
    assert not Windows.create((7, 7), (3, 3)).padded


def test_window_too_large_is_an_error():
    with pytest.raises(ValueError, match="does not fit"):
        Windows.create((4, 4), (5, 5))
    with pytest.raises(ValueError, match="does not fit"):
        Windows.create((5, 5), (3, 3), dilation=(3, 3))


def test_bad_arguments():
    with pytest.raises(ValueError, match="kernel_size must be positive"):
        pair(0, "kernel_size")
    with pytest.raises(ValueError, match="int or a pair"):
        pair("3", "strides")
    with pytest.raises(ValueError, match="'valid', 'same' or an int"):
        Windows.create((5, 5), (3, 3), padding="full")
    with pytest.raises(ValueError, match="non-negative"):
        Windows.create((5, 5), (3, 3), padding=-1)
    assert Windows.create((5, 5), (3, 3), padding="SAME").out_hw == (5, 5)
