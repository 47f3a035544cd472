"""Small generated datasets for quick experiments, seeded and vectorised.

Each draws its samples from a generator seeded by the run's seed, then holds out
``test_split`` of them (seeded too) as the test set.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bptrain.data.dataset import Dataset, classification, regression
from bptrain.data.options import CommonOptions, Footprint, check_fraction, check_positive
from bptrain.data.split import hold_out_test_set, rng_for
from bptrain.errors import ConfigError

# Memory generating a set takes at its peak (float64 draws and their float32 copies, the test
# and validation splits, scaling), measured with tracemalloc and given a margin: spirals 106
# and moons 112 bytes per 2-D point, sine 32 bytes per sample, linear 13 bytes per value of a
# sample (features, target, noise), adding 40 bytes per time step.
PEAK_BYTES_PER_POINT = 160
PEAK_BYTES_PER_SINE_SAMPLE = 48
PEAK_BYTES_PER_LINEAR_VALUE = 20
PEAK_BYTES_PER_STEP = 56


@dataclass(kw_only=True)
class GeneratedOptions(CommonOptions):
    """test_split: fraction of the generated samples held out as the test set, in [0, 1)."""

    test_split: float = 0.2

    def __post_init__(self) -> None:
        super().__post_init__()
        check_fraction("test_split", self.test_split)


@dataclass(kw_only=True)
class SpiralsOptions(GeneratedOptions):
    """Interleaved 2-D spirals, one arm per class (the cs231n toy problem).

    classes: number of arms; size: points per arm; noise: std of the Gaussian noise added to
    each coordinate (the arms reach radius 1); turns: revolutions of each arm.
    x: (classes * size, 2) float32; y: (N,) int64 arm index.
    """

    task = "classification"

    classes: int = 3
    size: int = 100
    noise: float = 0.1
    turns: float = 1.0

    def footprint(self, source=None) -> Footprint:
        n = self.classes * self.size
        what = f"{n:,} points (classes: {self.classes} x size: {self.size})"
        return Footprint(n * PEAK_BYTES_PER_POINT, ("classes", "size"), what)

    def __post_init__(self) -> None:
        super().__post_init__()
        for key in ("classes", "size", "turns"):
            check_positive(key, getattr(self, key))


@dataclass(kw_only=True)
class MoonsOptions(GeneratedOptions):
    """Two interleaving half circles (as scikit-learn's make_moons).

    size: total number of points (the upper moon gets size // 2); noise: std of the Gaussian
    noise added to each coordinate. x: (size, 2) float32; y: (size,) int64, 0 upper, 1 lower.
    """

    task = "classification"

    size: int = 200
    noise: float = 0.1

    def footprint(self, source=None) -> Footprint:
        return Footprint(self.size * PEAK_BYTES_PER_POINT, ("size",), f"{self.size:,} points")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive("size", self.size)


@dataclass(kw_only=True)
class SineOptions(GeneratedOptions):
    """Regression of y = sin(x) + noise, x drawn uniformly from [x_min, x_max).

    size: number of samples; noise: std of the Gaussian noise on y.
    x: (size, 1) float32; y: (size, 1) float32.
    """

    task = "regression"

    size: int = 200
    noise: float = 0.05
    x_min: float = -math.pi
    x_max: float = math.pi

    def footprint(self, source=None) -> Footprint:
        what = f"{self.size:,} samples"
        return Footprint(self.size * PEAK_BYTES_PER_SINE_SAMPLE, ("size",), what)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive("size", self.size)
        if self.x_max <= self.x_min:
            raise ConfigError(f"data.x_max ({self.x_max}) must exceed data.x_min ({self.x_min})")


@dataclass(kw_only=True)
class LinearOptions(GeneratedOptions):
    """Regression y = x @ w + b + noise with x ~ N(0, 1) and true w, b ~ N(0, 1) from the seed.

    size: number of samples; features: number of inputs; noise: std of the noise on y.
    x: (size, features) float32; y: (size, 1) float32. ``extra`` holds "true_weights"
    (features floats) and "true_bias".
    """

    task = "regression"

    size: int = 200
    features: int = 3
    noise: float = 0.1

    def footprint(self, source=None) -> Footprint:
        values = self.size * (self.features + 2)  # (x, y and the noise)
        what = f"{self.size:,} samples of {self.features:,} features"
        return Footprint(values * PEAK_BYTES_PER_LINEAR_VALUE, ("size", "features"), what)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive("size", self.size)
        check_positive("features", self.features)


@dataclass(kw_only=True)
class AddingOptions(GeneratedOptions):
    """The adding problem (Hochreiter & Schmidhuber, 1997), a long-memory test for RNNs.

    Each sequence has ``length`` steps of 2 channels: a value uniform in [0, 1) and a marker
    that is 1 at exactly two steps (one in each half of the sequence) and 0 elsewhere. The
    target is the sum of the two marked values. x: (size, length, 2) float32;
    y: (size, 1) float32.
    """

    task = "regression"

    length: int = 50
    size: int = 1000

    def footprint(self, source=None) -> Footprint:
        values = self.size * self.length
        what = f"{self.size:,} sequences of length {self.length:,}"
        return Footprint(values * PEAK_BYTES_PER_STEP, ("size", "length"), what)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive("size", self.size)
        if self.length < 2:
            raise ConfigError(f"data.length must be at least 2, got {self.length}")


def load_spirals(opts: SpiralsOptions, seed: int) -> Dataset:
    rng = rng_for(seed, "spirals")
    arm = np.repeat(np.arange(opts.classes), opts.size)
    radius = np.tile(np.arange(1, opts.size + 1) / opts.size, opts.classes)
    angle = 2 * np.pi * (opts.turns * radius + arm / opts.classes)
    x = radius[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    x += opts.noise * rng.standard_normal(x.shape)
    names = [str(k) for k in range(opts.classes)]
    return _classification("spirals", x, arm, opts, rng, seed, names)


def load_moons(opts: MoonsOptions, seed: int) -> Dataset:
    rng = rng_for(seed, "moons")
    n_upper = opts.size // 2
    t_upper = np.linspace(0.0, np.pi, n_upper)
    t_lower = np.linspace(0.0, np.pi, opts.size - n_upper)
    upper = np.stack([np.cos(t_upper), np.sin(t_upper)], axis=1)
    lower = np.stack([1.0 - np.cos(t_lower), 0.5 - np.sin(t_lower)], axis=1)
    x = np.concatenate([upper, lower]) + opts.noise * rng.standard_normal((opts.size, 2))
    y = np.repeat([0, 1], [n_upper, opts.size - n_upper])
    return _classification("moons", x, y, opts, rng, seed, ["0", "1"])


def load_sine(opts: SineOptions, seed: int) -> Dataset:
    rng = rng_for(seed, "sine")
    x = rng.uniform(opts.x_min, opts.x_max, (opts.size, 1)).astype(np.float32)
    y = np.sin(x.astype(np.float64)) + opts.noise * rng.standard_normal((opts.size, 1))
    return _regression("sine", x, y, opts, seed, {})


def load_linear(opts: LinearOptions, seed: int) -> Dataset:
    rng = rng_for(seed, "linear")
    w = rng.standard_normal((opts.features, 1))
    b = rng.standard_normal()
    # y is computed from the float32 inputs the model will see, so a noise-free fit is exact.
    x = rng.standard_normal((opts.size, opts.features)).astype(np.float32)
    y = x.astype(np.float64) @ w + b + opts.noise * rng.standard_normal((opts.size, 1))
    extra = {"true_weights": w.ravel().tolist(), "true_bias": float(b)}
    return _regression("linear", x, y, opts, seed, extra)


def load_adding(opts: AddingOptions, seed: int) -> Dataset:
    rng = rng_for(seed, "adding")
    n, length, half = opts.size, opts.length, opts.length // 2
    values = rng.random((n, length))
    rows = np.arange(n)
    first = rng.integers(0, half, n)
    second = rng.integers(half, length, n)
    markers = np.zeros((n, length))
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    x = np.stack([values, markers], axis=2).astype(np.float32)
    # The sum of the float32 values the model sees, not of the float64 draws.
    y = x[rows, first, 0].astype(np.float64) + x[rows, second, 0]
    return _regression("adding", x, y, opts, seed, {})


def _classification(name, x, y, opts, rng, seed, class_names) -> Dataset:
    order = rng.permutation(len(x))  # mix the classes, which were generated in blocks
    x, y = x[order], y[order]
    x_train, y_train, x_test, y_test = hold_out_test_set(x, y, opts.test_split, seed)
    return classification(name, x_train, y_train, x_test, y_test, class_names)


def _regression(name, x, y, opts, seed, extra) -> Dataset:
    x_train, y_train, x_test, y_test = hold_out_test_set(x, y, opts.test_split, seed)
    return regression(name, x_train, y_train, x_test, y_test, extra)
