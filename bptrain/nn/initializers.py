"""Weight initializers: ``init(shape, rng, dtype) -> array``.

Fan-in and fan-out follow Keras: for a (fan_in, fan_out) kernel they are the two dimensions; for a
convolution kernel (filters, channels, kh, kw) they are channels*kh*kw and filters*kh*kw.
"""

from __future__ import annotations

import math

import numpy as np

from bptrain.nn import backend, registry


def fans(shape: tuple) -> tuple[int, int]:
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = math.prod(shape[2:])  # (out_channels, in_channels, *kernel)
    return shape[1] * receptive, shape[0] * receptive


class Initializer:
    name = ""

    def __call__(self, shape: tuple, rng: np.random.Generator, dtype=np.float32):
        # Draw on the host with the model's seeded generator, so every backend gets equal weights.
        # C order always: a transposed sample (Orthogonal) would otherwise stay Fortran-ordered,
        # and in-place edits through ``reshape(-1)`` (gradient checks) would land in a copy.
        return backend.asarray(np.ascontiguousarray(self.sample(tuple(shape), rng), dtype=dtype))

    def sample(self, shape, rng) -> np.ndarray:
        raise NotImplementedError


class Zeros(Initializer):
    name = "zeros"

    def sample(self, shape, rng):
        return np.zeros(shape)


class Ones(Initializer):
    name = "ones"

    def sample(self, shape, rng):
        return np.ones(shape)


class Constant(Initializer):
    name = "constant"

    def __init__(self, value: float = 0.0):
        self.value = value

    def sample(self, shape, rng):
        return np.full(shape, self.value, dtype=np.float64)


class RandomUniform(Initializer):
    """Uniform in [minval, maxval); Keras' default for embeddings is [-0.05, 0.05)."""

    name = "random_uniform"

    def __init__(self, minval: float = -0.05, maxval: float = 0.05):
        self.minval, self.maxval = minval, maxval

    def sample(self, shape, rng):
        return rng.uniform(self.minval, self.maxval, size=shape)


class _VarianceScaling(Initializer):
    scale = 1.0
    mode = "fan_in"  # fan_in | fan_avg
    distribution = "uniform"  # uniform | normal

    def sample(self, shape, rng):
        fan_in, fan_out = fans(shape)
        n = fan_in if self.mode == "fan_in" else (fan_in + fan_out) / 2
        var = self.scale / max(1.0, n)
        if self.distribution == "uniform":
            limit = math.sqrt(3.0 * var)
            return rng.uniform(-limit, limit, size=shape)
        # truncated normal at two standard deviations, rescaled as in Keras
        std = math.sqrt(var) / 0.87962566103423978
        out = rng.normal(0.0, std, size=shape)
        bad = np.abs(out) > 2 * std
        while bad.any():
            out[bad] = rng.normal(0.0, std, size=int(bad.sum()))
            bad = np.abs(out) > 2 * std
        return out


class GlorotUniform(_VarianceScaling):
    name, mode, distribution = "glorot_uniform", "fan_avg", "uniform"


class GlorotNormal(_VarianceScaling):
    name, mode, distribution = "glorot_normal", "fan_avg", "normal"


class HeUniform(_VarianceScaling):
    name, scale, distribution = "he_uniform", 2.0, "uniform"


class HeNormal(_VarianceScaling):
    name, scale, distribution = "he_normal", 2.0, "normal"


class LecunNormal(_VarianceScaling):
    name, distribution = "lecun_normal", "normal"


class Orthogonal(Initializer):
    """A (semi-)orthogonal matrix from the QR decomposition of a Gaussian one."""

    name = "orthogonal"

    def __init__(self, gain: float = 1.0):
        self.gain = gain

    def sample(self, shape, rng):
        rows, cols = shape[0], math.prod(shape[1:])
        a = rng.normal(size=(max(rows, cols), min(rows, cols)))
        q, r = np.linalg.qr(a)
        q *= np.sign(np.diag(r))  # make the decomposition unique
        if rows < cols:
            q = q.T
        return self.gain * q.reshape(shape)


INITIALIZERS: dict[str, type[Initializer]] = {
    cls.name: cls
    for cls in (
        Zeros,
        Ones,
        Constant,
        RandomUniform,
        GlorotUniform,
        GlorotNormal,
        HeUniform,
        HeNormal,
        LecunNormal,
        Orthogonal,
    )
}
INITIALIZERS["uniform"] = RandomUniform  # Keras' alias


def get(initializer) -> Initializer:
    """An initializer from a name, a ``{"type": name, **kwargs}`` mapping or an instance."""
    return registry.build(initializer, INITIALIZERS, "initializer", Initializer)
