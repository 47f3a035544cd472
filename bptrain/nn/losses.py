"""Losses: ``forward(y_pred, y_true, sample_weight=None) -> float`` (mean over the batch),
then ``backward()`` returns ``dL/dy_pred``. ``sample_weight`` (N,) weighs each sample's loss
as Keras does: sum_i w_i * loss_i / N (the plain mean when all weights are 1).

Cross-entropies take logits when ``from_logits=True`` and compute log-softmax (log-sigmoid) by
log-sum-exp. ``fused_with(activation)`` returns the from-logits twin of a probability loss when
the model ends in the activation it inverts, which is how ``Dense(10, activation="softmax")``
plus ``sparse_categorical_crossentropy`` trains stably. ``label_smoothing`` = e trains against
softened targets, as Keras does: (1 - e) times the one-hot target plus e / C for each of C
classes (e / 2 on each side for the binary one).
"""

from __future__ import annotations

from bptrain.nn import activations, backend, registry
from bptrain.nn.kernels import softmax_xent


def _softmax_terms(z):
    """(shifted, log_norm, p) over the last axis, with one exp: ``shifted`` is z minus its row
    maximum, ``log_norm`` the log of the row sums of exp(shifted), ``p`` = softmax(z); so
    log softmax(z) = shifted - log_norm, exact however large z is."""
    xp = backend.xp
    shifted = z - z.max(axis=-1, keepdims=True)
    p = xp.exp(shifted)
    norm = p.sum(axis=-1, keepdims=True)
    p /= norm
    return shifted, xp.log(norm), p


EPSILON = 1e-7  # probabilities are clipped to [EPSILON, 1 - EPSILON] before the log


def _inside_clip(p):
    """1 where the clip to [EPSILON, 1 - EPSILON] left ``p`` alone, else 0: the derivative of
    the clip, so an output far outside [0, 1] gets no push further out."""
    return (p > EPSILON) & (p < 1.0 - EPSILON)


def _match(y_true, y_pred):
    """Targets shaped like predictions ((N,) against (N, 1), say), in their dtype."""
    y = backend.asarray(y_true, dtype=y_pred.dtype)
    return y.reshape(y_pred.shape) if y.size == y_pred.size else y


class Loss:
    name = ""
    inverts: str | None = None  # the output activation this loss can absorb
    _w = None  # the sample weights of the last forward, shaped to broadcast, or None

    def __call__(self, y_pred, y_true, sample_weight=None) -> float:
        return self.forward(y_pred, y_true, sample_weight)

    def forward(self, y_pred, y_true, sample_weight=None) -> float:
        raise NotImplementedError

    def _mean(self, values, sample_weight) -> float:
        """The mean of per-sample (or per-element) ``values`` (N, ...), each sample's weighted
        by ``sample_weight`` (N,); keeps the weights for ``_weighted``."""
        if sample_weight is None:
            self._w = None
            return float(values.mean())
        w = backend.asarray(sample_weight, dtype=values.dtype)
        self._w = w.reshape((-1,) + (1,) * (values.ndim - 1))
        return float((values * self._w).mean())

    def _weighted(self, grad):
        """``grad`` (N, ...) with each sample's rows scaled by its weight."""
        if self._w is None:
            return grad
        return grad * self._w.reshape(self._w.shape + (1,) * (grad.ndim - self._w.ndim))

    def backward(self):
        raise NotImplementedError

    def fused_with(self, activation: str | None) -> Loss | None:
        """A from-logits version of this loss if ``activation`` is the one it inverts (only a
        cross-entropy inverts one)."""
        return None

    def __repr__(self) -> str:
        return self.name


class MeanSquaredError(Loss):
    """mean((y_pred - y)^2) over all elements."""

    name = "mean_squared_error"

    def forward(self, y_pred, y_true, sample_weight=None):
        self._diff = y_pred - _match(y_true, y_pred)
        return self._mean(self._diff * self._diff, sample_weight)

    def backward(self):
        return self._weighted(self._diff * (2.0 / self._diff.size))


class MeanAbsoluteError(Loss):
    """mean(|y_pred - y|) over all elements."""

    name = "mean_absolute_error"

    def forward(self, y_pred, y_true, sample_weight=None):
        self._diff = y_pred - _match(y_true, y_pred)
        return self._mean(abs(self._diff), sample_weight)

    def backward(self):
        return self._weighted(backend.xp.sign(self._diff) * (1.0 / self._diff.size))


class Huber(Loss):
    """0.5 r^2 where |r| <= delta, delta (|r| - delta/2) beyond, averaged over all elements."""

    name = "huber"

    def __init__(self, delta: float = 1.0):
        self.delta = delta

    def forward(self, y_pred, y_true, sample_weight=None):
        r = y_pred - _match(y_true, y_pred)
        self._r = r
        a = abs(r)
        d = self.delta
        return self._mean(backend.xp.where(a <= d, 0.5 * r * r, d * (a - 0.5 * d)), sample_weight)

    def backward(self):
        g = backend.xp.clip(self._r, -self.delta, self.delta) * (1.0 / self._r.size)
        return self._weighted(g)


class _CrossEntropy(Loss):
    """What the cross-entropies share: ``from_logits``, ``label_smoothing``, fusion with the
    output activation they invert, and the clip of probabilities away from 0 and 1."""

    def __init__(self, from_logits: bool = False, label_smoothing: float = 0.0):
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        self.from_logits, self.label_smoothing = from_logits, label_smoothing

    def fused_with(self, activation: str | None) -> Loss | None:
        if self.from_logits or activation != self.inverts:
            return None
        return type(self)(from_logits=True, label_smoothing=self.label_smoothing)

    def _smoothed(self, y, classes: int):
        """Targets y (..., classes) softened by ``label_smoothing``."""
        e = self.label_smoothing
        return y * (1.0 - e) + e / classes if e else y

    def _clipped(self, p):
        """p clipped to [EPSILON, 1 - EPSILON]; where the clip acts (``self._inside`` is 0)
        backward gives no gradient."""
        self._inside = _inside_clip(p)
        return backend.xp.clip(p, EPSILON, 1.0 - EPSILON)


class SparseCategoricalCrossentropy(_CrossEntropy):
    """Integer targets y: (N, ...) against scores y_pred: (N, ..., C)."""

    name = "sparse_categorical_crossentropy"
    inverts = "softmax"
    # The parameter count of the Model this loss trains: from logits, unweighted and unsmoothed,
    # a model big enough for compiled kernels runs kernels.softmax_xent's fused loop.
    model_size = 0

    def forward(self, y_pred, y_true, sample_weight=None):
        xp = backend.xp
        c = y_pred.shape[-1]
        p2 = y_pred.reshape(-1, c)
        y = backend.asarray(y_true).reshape(-1).astype(xp.int64, copy=False)
        self._shape, self._y = y_pred.shape, y
        e = self.label_smoothing  # the target: 1 - e on class y, plus e / c on every class
        self._g = None
        fusable = self.from_logits and not e and sample_weight is None
        if fusable and softmax_xent.usable(p2, self.model_size):  # one compiled loop, both ways
            self._w = None
            value, self._g = softmax_xent.softmax_xent_fused(p2, y)
            return value
        rows = self._rows = xp.arange(len(y))
        if self.from_logits:
            shifted, log_norm, self._p = _softmax_terms(p2)
            loss = log_norm[:, 0] - shifted[rows, y]
            if e:
                loss = (1.0 - e) * loss + e * (log_norm[:, 0] - shifted.mean(axis=-1))
            return self._mean(loss.reshape(self._shape[:-1]), sample_weight)
        self._p = self._clipped(p2)
        log_p = xp.log(self._p)
        loss = -log_p[rows, y]
        if e:
            loss = (1.0 - e) * loss - e * log_p.mean(axis=-1)
        return self._mean(loss.reshape(self._shape[:-1]), sample_weight)

    def backward(self):
        if self._g is not None:
            return self._g.reshape(self._shape)
        n, e = len(self._y), self.label_smoothing
        c = self._p.shape[-1]
        if self.from_logits:  # softmax minus the target
            g = self._p - e / c if e else self._p.copy()
            g[self._rows, self._y] -= 1.0 - e
            g *= 1.0 / n
        else:
            # The value is -log(clip(p)); clipping is flat, so where it acts the gradient is 0.
            g = self._inside * (e / c) / (-n * self._p) if e else backend.xp.zeros_like(self._p)
            p = self._p[self._rows, self._y]
            g[self._rows, self._y] += (1.0 - e) * self._inside[self._rows, self._y] / (-n * p)
        return self._weighted(g.reshape(self._shape))


class CategoricalCrossentropy(_CrossEntropy):
    """One-hot (or soft) targets y: (N, ..., C) against scores y_pred: (N, ..., C)."""

    name = "categorical_crossentropy"
    inverts = "softmax"

    def forward(self, y_pred, y_true, sample_weight=None):
        xp = backend.xp
        y = self._smoothed(_match(y_true, y_pred), y_pred.shape[-1])
        self._y = y
        self._n = y_pred.size // y_pred.shape[-1]
        if self.from_logits:
            shifted, log_norm, self._p = _softmax_terms(y_pred)
            return self._mean(-(y * (shifted - log_norm)).sum(axis=-1), sample_weight)
        self._p = self._clipped(y_pred)
        return self._mean(-(y * xp.log(self._p)).sum(axis=-1), sample_weight)

    def backward(self):
        if self.from_logits:
            # d/dz of -sum_i y_i log softmax(z)_i = softmax(z) * sum(y) - y
            g = (self._p * self._y.sum(axis=-1, keepdims=True) - self._y) / self._n
        else:
            g = -self._y * self._inside / (self._p * self._n)
        return self._weighted(g)


class BinaryCrossentropy(_CrossEntropy):
    """Targets in [0, 1] against scores of the same shape, averaged over all elements."""

    name = "binary_crossentropy"
    inverts = "sigmoid"

    def forward(self, y_pred, y_true, sample_weight=None):
        xp = backend.xp
        y = self._smoothed(_match(y_true, y_pred), 2)
        self._y = y
        if self.from_logits:
            z = y_pred
            self._p = activations.sigmoid(z)
            # max(z, 0) - z*y + log(1 + e^-|z|): log-sigmoid without overflow
            values = xp.maximum(z, 0) - z * y + xp.log1p(xp.exp(-abs(z)))
            return self._mean(values, sample_weight)
        p = self._p = self._clipped(y_pred)
        return self._mean(-(y * xp.log(p) + (1 - y) * xp.log(1 - p)), sample_weight)

    def backward(self):
        if self.from_logits:
            return self._weighted((self._p - self._y) / self._y.size)
        p = self._p
        return self._weighted(self._inside * (p - self._y) / (p * (1 - p) * self._y.size))


LOSSES: dict[str, type[Loss]] = {
    cls.name: cls
    for cls in (
        MeanSquaredError,
        MeanAbsoluteError,
        Huber,
        SparseCategoricalCrossentropy,
        CategoricalCrossentropy,
        BinaryCrossentropy,
    )
}
ALIASES = {"mse": "mean_squared_error", "mae": "mean_absolute_error"}


def get(loss) -> Loss:
    """A loss from a name (``"mse"``), a ``{"type": name, **kwargs}`` mapping or an instance."""
    return registry.build(loss, LOSSES, "loss", Loss, ALIASES)
