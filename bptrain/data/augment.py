"""Random changes to training images, drawn per image and applied to a whole batch at once.

    data:
      augment:
        - {type: random_shift, pixels: 2}            # up to 2 pixels in each direction
        - {type: random_flip, mode: horizontal}      # or vertical, horizontal_and_vertical
        - {type: random_rotation, degrees: 10}       # an angle in [-10, 10] degrees
        - {type: random_crop, size: [24, 24]}        # a random 24x24 window, zoomed to fit

The transforms apply in the order listed, to training batches only (validation, evaluation
and prediction see the images as they are). Each one is an affine map, per image, from an
output pixel's coordinates to those of the pixel it is read from; ``Augmenter`` multiplies
the (N, 3, 3) maps of all transforms, computes the source of every pixel of the batch from
the product and reads them with one gather (nearest neighbour): no loop over images. Pixels
read from outside the image are 0 (in the scaled units: black for ``minmax``, the mean for
``standardize``). ``random_crop`` keeps the input shape: the window is scaled back to the
image size, a random zoom-in.

A step's draws come from ``default_rng([seed, AUGMENT_STREAM, epoch, step])``: the position
in training fixes them, so a resumed run repeats them bit for bit and the checkpoint needs
nothing more.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Literal

import numpy as np

from bptrain.errors import ConfigError, did_you_mean
from bptrain.typehints import check, describe

AUGMENT_STREAM = 0xA06  # separates the augmentation stream from other uses of the seed
FlipMode = Literal["horizontal", "vertical", "horizontal_and_vertical"]


def _affine(n: int) -> np.ndarray:
    """(n, 3, 3) identity maps of (y, x, 1) coordinates."""
    return np.broadcast_to(np.eye(3), (n, 3, 3)).copy()


@dataclass(frozen=True)
class RandomShift:
    """Shift by a whole number of pixels in [-pixels, pixels], down and right, per image."""

    pixels: int

    def source(self, rng, n: int, size) -> np.ndarray:
        m = _affine(n)
        m[:, :2, 2] = -rng.integers(-self.pixels, self.pixels + 1, (n, 2))
        return m


@dataclass(frozen=True)
class RandomFlip:
    """Mirror images, each with probability 1/2, left-right (``horizontal``), top-bottom
    (``vertical``) or each way independently (``horizontal_and_vertical``)."""

    mode: FlipMode = "horizontal"

    def source(self, rng, n: int, size) -> np.ndarray:
        flip = rng.random((n, 2)) < 0.5
        flip[:, 0] &= self.mode != "horizontal"
        flip[:, 1] &= self.mode != "vertical"
        m = _affine(n)
        for axis in (0, 1):  # (y, x): y' = (size - 1) - y where flipped
            m[:, axis, axis] = np.where(flip[:, axis], -1.0, 1.0)
            m[:, axis, 2] = np.where(flip[:, axis], size[axis] - 1, 0)
        return m


@dataclass(frozen=True)
class RandomRotation:
    """Rotate about the centre by an angle drawn from [-degrees, degrees]."""

    degrees: float

    def source(self, rng, n: int, size) -> np.ndarray:
        angle = np.deg2rad(rng.uniform(-self.degrees, self.degrees, n))
        cos, sin = np.cos(angle), np.sin(angle)
        cy, cx = (size[0] - 1) / 2, (size[1] - 1) / 2
        m = _affine(n)  # the source is the output pixel turned by +angle about the centre
        m[:, 0, :] = np.stack([cos, -sin, cy - cos * cy + sin * cx], axis=1)
        m[:, 1, :] = np.stack([sin, cos, cx - sin * cy - cos * cx], axis=1)
        return m


@dataclass(frozen=True)
class RandomCrop:
    """A random ``size`` = [height, width] window, scaled back to the image size."""

    size: list[int]

    def source(self, rng, n: int, size) -> np.ndarray:
        m = _affine(n)
        for axis in (0, 1):
            zoom = self.size[axis] / size[axis]
            start = rng.integers(0, size[axis] - self.size[axis] + 1, n)
            m[:, axis, axis] = zoom
            m[:, axis, 2] = start + 0.5 * zoom - 0.5  # pixel centres to pixel centres
        return m


TRANSFORMS = {
    "random_shift": RandomShift,
    "random_flip": RandomFlip,
    "random_rotation": RandomRotation,
    "random_crop": RandomCrop,
}


def parse(specs: list, image_size=None) -> list:
    """The transforms of the ``data.augment`` list; a ConfigError names a bad entry. With
    ``image_size`` ([H, W]) a crop larger than the image is refused too."""
    out = []
    for i, spec in enumerate(specs):
        where = f"data.augment.{i}"
        if not isinstance(spec, dict) or not isinstance(spec.get("type"), str):
            raise ConfigError(f"{where}: expected a mapping like {{type: random_flip}}")
        kind = spec["type"]
        if kind not in TRANSFORMS:
            raise ConfigError(
                f"{where}.type: unknown transform {kind!r}{did_you_mean(kind, TRANSFORMS)} "
                f"(known: {', '.join(TRANSFORMS)})"
            )
        cls = TRANSFORMS[kind]
        fields = {f.name: f for f in dataclasses.fields(cls)}
        hints = typing.get_type_hints(cls)
        kwargs = {}
        for key, value in spec.items():
            if key == "type":
                continue
            if key not in fields:
                raise ConfigError(
                    f"{where}.{key}: unknown option of {kind}{did_you_mean(key, fields)} "
                    f"(known: {', '.join(fields)})"
                )
            ok, value = check(value, hints[key])
            if not ok:
                raise ConfigError(f"{where}.{key}: expected {describe(hints[key])}, got {value!r}")
            kwargs[key] = value
        missing = [n for n, f in fields.items() if f.default is dataclasses.MISSING]
        missing = [n for n in missing if n not in kwargs]
        if missing:
            raise ConfigError(f"{where}: {kind} needs {missing[0]!r}")
        transform = cls(**kwargs)
        _check(transform, where, image_size)
        out.append(transform)
    return out


def _check(transform, where: str, image_size) -> None:
    if isinstance(transform, RandomShift) and transform.pixels < 0:
        raise ConfigError(f"{where}.pixels must not be negative, got {transform.pixels}")
    if isinstance(transform, RandomRotation) and not 0 <= transform.degrees <= 180:
        raise ConfigError(f"{where}.degrees must be in [0, 180], got {transform.degrees}")
    if isinstance(transform, RandomCrop):
        size = transform.size
        if len(size) != 2 or min(size) < 1:
            raise ConfigError(f"{where}.size must be [height, width], got {size}")
        if image_size is not None and (size[0] > image_size[0] or size[1] > image_size[1]):
            raise ConfigError(
                f"{where}.size {size} is larger than the images ({image_size[0]}x"
                f"{image_size[1]}); the window must fit inside them"
            )


class Augmenter:
    """The ``data.augment`` transforms of a run, applied to training batches (N, C, H, W)."""

    def __init__(self, specs: list, seed: int):
        self.transforms, self.seed = parse(specs), seed

    def __call__(self, x: np.ndarray, epoch: int, step: int) -> np.ndarray:
        """A new batch: x changed with the draws of (epoch, step)."""
        n, c, h, w = x.shape
        rng = np.random.default_rng([self.seed, AUGMENT_STREAM, epoch, step])
        maps = [t.source(rng, n, (h, w)) for t in self.transforms]
        # Output -> source: the first transform reads the original, the last one's output is
        # the batch, so a pixel's source is m_1 @ ... @ m_k applied to its coordinates.
        m = maps[0]
        for later in maps[1:]:
            m = m @ later
        m = m.astype(np.float32)
        ys, xs = np.arange(h, dtype=np.float32)[:, None], np.arange(w, dtype=np.float32)
        iy = m[:, 0, 0, None, None] * ys + m[:, 0, 1, None, None] * xs + m[:, 0, 2, None, None]
        ix = m[:, 1, 0, None, None] * ys + m[:, 1, 1, None, None] * xs + m[:, 1, 2, None, None]
        iy, ix = np.rint(iy).astype(np.int32), np.rint(ix).astype(np.int32)
        # Sources outside the image read a zero appended to each image's pixels (index h * w).
        inside = (iy >= 0) & (iy < h) & (ix >= 0) & (ix < w)
        flat = np.where(inside, iy * w + ix, h * w).reshape(n, 1, h * w)
        padded = np.zeros((n, c, h * w + 1), dtype=x.dtype)
        padded[:, :, :-1] = x.reshape(n, c, h * w)
        return np.take_along_axis(padded, flat, axis=2).reshape(n, c, h, w)


def augmenter(data_spec: dict, seed: int):
    """The run's augmentation as ``f(x, epoch, step) -> x``: an ``Augmenter``, or the identity
    without ``data.augment``."""
    specs = data_spec.get("augment")
    if not specs:
        return lambda x, epoch, step: x
    return Augmenter(specs, seed)
