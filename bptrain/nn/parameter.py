"""A trainable array and the gradient that backward accumulates into it."""

from __future__ import annotations

from bptrain.nn import backend


def flat_views(flat, params) -> list:
    """Consecutive pieces of the 1-D array ``flat``, one per parameter, each shaped like it."""
    views, offset = [], 0
    for p in params:
        views.append(flat[offset : offset + p.size].reshape(p.shape))
        offset += p.size
    return views


class Parameter:
    """``value`` and ``grad`` arrays of one shape, and a name.

    Gradients accumulate (``grad += ...``); whoever steps the optimizer zeroes them. ``fresh``
    is True from ``zero_grad`` until a kernel of ``kernels.grads`` adds into ``grad``: the
    gradient counts as zeros, so that first addition writes instead (other writers leave the
    flag alone, so only those kernels may write a parameter's gradient before it). ``value`` is
    updated in place and never rebound by layers, so a model may pack all its parameters as views
    of one flat buffer (see ``Model``) and an optimizer may update them in one pass.
    ``regularizer`` (or None) adds its penalty to the loss and its gradient to ``grad``.
    """

    __slots__ = ("name", "value", "grad", "regularizer", "fresh")

    def __init__(self, value, name: str = "", regularizer=None):
        self.name = name
        self.value = value
        self.grad = backend.xp.zeros_like(value)
        self.regularizer = regularizer
        self.fresh = False

    @property
    def shape(self) -> tuple:
        return self.value.shape

    @property
    def size(self) -> int:
        return self.value.size

    def zero_grad(self) -> None:
        self.grad.fill(0)
        self.fresh = True

    def __repr__(self) -> str:
        return f"Parameter({self.name!r}, shape={self.value.shape}, dtype={self.value.dtype})"


class ParameterList(list):
    """A list of parameters, optionally backed by two flat buffers.

    When ``flat_value`` and ``flat_grad`` are set, every parameter's ``value`` and ``grad`` are
    views of them, laid out in list order without gaps; an optimizer can then update all
    parameters with a handful of large array operations instead of a few per parameter.
    """

    def __init__(self, params=(), flat_value=None, flat_grad=None):
        super().__init__(params)
        self.flat_value = flat_value
        self.flat_grad = flat_grad
