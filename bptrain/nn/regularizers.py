"""Weight penalties: a value added to the loss and its gradient added to ``grad``."""

from __future__ import annotations

from bptrain.nn import backend, registry


class Regularizer:
    def __call__(self, w) -> float:
        raise NotImplementedError

    def gradient(self, w):
        raise NotImplementedError


class L1L2(Regularizer):
    """``l1 * sum|w| + l2 * sum(w^2)`` (Keras' convention: no 1/2 on the L2 term)."""

    name = "l1_l2"

    def __init__(self, l1: float = 0.0, l2: float = 0.0):
        self.l1, self.l2 = float(l1), float(l2)

    def __call__(self, w) -> float:
        value = 0.0
        if self.l1:
            value += self.l1 * float(abs(w).sum())
        if self.l2:
            value += self.l2 * backend.squared_norm(w)
        return value

    def gradient(self, w):
        """l1 sign(w) + 2 l2 w, in w's dtype (a float32 kernel gets no float64 temporaries)."""
        if not self.l1:
            return 2.0 * self.l2 * w
        g = backend.xp.sign(w)
        g *= w.dtype.type(self.l1)
        if self.l2:
            g += 2.0 * self.l2 * w
        return g


class L1(L1L2):
    name = "l1"

    def __init__(self, l1: float = 0.01):
        super().__init__(l1=l1)


class L2(L1L2):
    name = "l2"

    def __init__(self, l2: float = 0.01):
        super().__init__(l2=l2)


REGULARIZERS: dict[str, type[Regularizer]] = {"l1": L1, "l2": L2, "l1_l2": L1L2}


def get(regularizer) -> Regularizer | None:
    """None, a name (``"l2"``), a ``{"type": "l2", "l2": 1e-4}`` mapping or an instance."""
    if regularizer is None:
        return None
    return registry.build(regularizer, REGULARIZERS, "regularizer", Regularizer)


def penalty(params) -> float:
    """The summed penalty of every regularized parameter."""
    return sum(p.regularizer(p.value) for p in params if p.regularizer is not None)


def add_gradients(params, scale: float = 1.0) -> None:
    """Add each regularized parameter's penalty gradient (times ``scale``) into its ``grad``."""
    for p in params:
        if p.regularizer is not None:
            g = p.regularizer.gradient(p.value)
            p.grad += g if scale == 1.0 else scale * g
