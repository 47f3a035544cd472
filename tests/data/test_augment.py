"""Augmentation: each transform moves pixels as it says, for the whole batch at once; draws
follow (seed, epoch, step) alone; bad entries are config errors."""

from __future__ import annotations

import numpy as np
import pytest

from bptrain.data.augment import Augmenter, parse
from bptrain.errors import ConfigError


def batch(n=8, c=2, h=6, w=5) -> np.ndarray:
    return np.arange(n * c * h * w, dtype=np.float32).reshape(n, c, h, w) + 1


def rows_and_columns(x):
    """(row index, column index) of each output pixel, read back from pixel values 1.."""
    h, w = x.shape[-2:]
    flat = x[:, 0].astype(int) - 1
    return (flat % (h * w)) // w, flat % w


def test_shift_moves_whole_images_by_at_most_pixels_and_fills_zeros():
    x = batch()
    out = Augmenter([{"type": "random_shift", "pixels": 2}], seed=0)(x, 0, 0)
    assert out.shape == x.shape and out.dtype == np.float32
    seen = set()
    for i in range(len(x)):
        inside = out[i, 0] > 0
        ys, xs = np.nonzero(inside)
        rows, cols = rows_and_columns(out[i : i + 1])
        dy, dx = ys - rows[0][inside], xs - cols[0][inside]
        assert len(set(dy)) == 1 and len(set(dx)) == 1  # one shift per image
        assert abs(dy[0]) <= 2 and abs(dx[0]) <= 2
        seen.add((dy[0], dx[0]))
        np.testing.assert_array_equal(out[i, 1][inside], out[i, 0][inside] + 30)  # channels too
    assert len(seen) > 1


@pytest.mark.parametrize("mode", ["horizontal", "vertical", "horizontal_and_vertical"])
def test_flip_mirrors_some_images_and_keeps_the_others(mode):
    x = batch(n=32)
    out = Augmenter([{"type": "random_flip", "mode": mode}], seed=1)(x, 2, 3)
    kinds = set()
    for i in range(len(x)):
        for name, flipped in (
            ("none", x[i]),
            ("h", x[i, :, :, ::-1]),
            ("v", x[i, :, ::-1, :]),
            ("hv", x[i, :, ::-1, ::-1]),
        ):
            if np.array_equal(out[i], flipped):
                kinds.add(name)
                break
        else:
            raise AssertionError(f"image {i} is no flip of the input")
    expected = {"horizontal": {"none", "h"}, "vertical": {"none", "v"}}
    assert kinds == expected.get(mode, {"none", "h", "v", "hv"})


def test_rotation_by_90_degrees_turns_a_square_image():
    x = batch(n=64, c=1, h=5, w=5)
    out = Augmenter([{"type": "random_rotation", "degrees": 90}], seed=0)(x, 0, 0)
    # every image is some rotation; those near +-90 degrees are np.rot90 of the input
    turned = [i for i in range(64) if np.array_equal(out[i, 0], np.rot90(x[i, 0]))]
    turned += [i for i in range(64) if np.array_equal(out[i, 0], np.rot90(x[i, 0], -1))]
    assert turned  # angles near 90 land on the exact quarter turn at this size
    assert all(np.isin(out[i, 0][out[i, 0] > 0], x[i, 0]).all() for i in range(64))


def test_crop_keeps_the_shape_and_reads_inside_the_window():
    x = batch(n=16, c=1, h=8, w=8)
    out = Augmenter([{"type": "random_crop", "size": [4, 4]}], seed=0)(x, 0, 0)
    assert out.shape == x.shape and (out > 0).all()
    rows, cols = rows_and_columns(out)
    assert ((rows.max(axis=(1, 2)) - rows.min(axis=(1, 2))) == 3).all()
    assert ((cols.max(axis=(1, 2)) - cols.min(axis=(1, 2))) == 3).all()


def test_draws_follow_seed_epoch_and_step_only():
    specs = [
        {"type": "random_shift", "pixels": 1},
        {"type": "random_flip"},
        {"type": "random_rotation", "degrees": 15},
    ]
    x = batch(n=16, h=9, w=9)
    a, b = Augmenter(specs, seed=4), Augmenter(specs, seed=4)
    np.testing.assert_array_equal(a(x, 1, 5), b(x, 1, 5))
    b(x, 0, 0)  # nothing carried between calls
    np.testing.assert_array_equal(a(x, 1, 5), b(x, 1, 5))
    assert not np.array_equal(a(x, 1, 5), a(x, 1, 6))
    assert not np.array_equal(a(x, 1, 5), Augmenter(specs, seed=5)(x, 1, 5))


@pytest.mark.parametrize(
    "specs, message",
    [
        ([{"type": "random_flip", "mode": "sideways"}], r"data.augment.0.mode"),
        ([{"type": "random_zoom"}], r"data.augment.0.type: unknown transform 'random_zoom'"),
        ([{"type": "random_shift"}], r"random_shift needs 'pixels'"),
        ([{"type": "random_shift", "pixel": 2}], r"did you mean 'pixels'"),
        ([{"type": "random_rotation", "degrees": 200}], r"degrees must be in \[0, 180\]"),
        ([{"type": "random_crop", "size": [40, 4]}], r"larger than the images"),
        (["random_flip"], r"data.augment.0: expected a mapping"),
    ],
)
def test_bad_entries_are_config_errors(specs, message):
    with pytest.raises(ConfigError, match=message):
        parse(specs, [28, 28])
