"""Finite-difference gradient checks in float64.

Each check compares the analytic gradient from ``backward`` with central differences
``(f(x + eps) - f(x - eps)) / 2 eps`` and reports, per input and parameter, the relative error
``max|analytic - numeric| / max(max|analytic|, max|numeric|)``. A layer is checked through the
scalar ``sum(forward(x) * r)`` for a fixed random ``r``, so every output element contributes.
Random state (dropout masks) is restored before each forward pass, so the function is fixed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bptrain.nn import backend, regularizers


@dataclass
class GradcheckReport:
    """Relative error by name (``"input"``, ``"dense/kernel"``, ...)."""

    errors: dict[str, float] = field(default_factory=dict)

    @property
    def max_error(self) -> float:
        return max(self.errors.values(), default=0.0)

    def passed(self, tolerance: float = 1e-6) -> bool:
        return self.max_error < tolerance

    def __str__(self) -> str:
        width = max((len(k) for k in self.errors), default=4)
        return "\n".join(f"{k:<{width}}  {v:.2e}" for k, v in self.errors.items())


def relative_error(analytic, numeric) -> float:
    analytic, numeric = np.asarray(analytic), np.asarray(numeric)
    scale = max(np.abs(analytic).max(initial=0.0), np.abs(numeric).max(initial=0.0), 1e-12)
    return float(np.abs(analytic - numeric).max(initial=0.0) / scale)


def _indices(size: int, max_elements: int, rng: np.random.Generator) -> np.ndarray:
    if size <= max_elements:
        return np.arange(size)
    return np.sort(rng.choice(size, max_elements, replace=False))


def numeric_gradient(f, array, indices, eps: float):
    """Central differences of scalar ``f()`` with respect to ``array`` (modified in place)."""
    flat = array.reshape(-1)
    grad = np.zeros(len(indices))
    for j, i in enumerate(indices):
        old = float(flat[i])
        flat[i] = old + eps
        plus = f()
        flat[i] = old - eps
        minus = f()
        flat[i] = old
        grad[j] = (plus - minus) / (2 * eps)
    return grad


def _check(objective, analytic_grads, arrays, eps, max_elements, seed) -> GradcheckReport:
    rng = np.random.default_rng(seed + 1)
    report = GradcheckReport()
    for name, array in arrays.items():
        if not np.issubdtype(array.dtype, np.floating):
            continue  # integer inputs (token ids, class labels) have no gradient
        idx = _indices(array.size, max_elements, rng)
        numeric = numeric_gradient(objective, array, idx, eps)
        analytic = backend.to_numpy(analytic_grads[name]).reshape(-1)[idx]
        report.errors[name] = relative_error(analytic, numeric)
    return report


def check_layer(
    layer,
    x,
    training: bool = False,
    eps: float = 1e-6,
    max_elements: int = 200,
    seed: int = 0,
    rng: np.random.Generator | None = None,
) -> GradcheckReport:
    """Check ``layer`` (built or not; cast to float64 here) on input ``x`` of shape (N, ...).

    Parameter penalties from regularizers are part of the checked function.
    """
    rng = rng if rng is not None else np.random.default_rng(seed)
    x = np.array(x, dtype=np.float64) if np.issubdtype(np.asarray(x).dtype, np.floating) else x
    layer.needs_input_grad = True
    if not layer.built:
        layer.dtype = np.float64
        layer.output_shape = layer.build(x.shape[1:], rng)
        layer.built = True
    layer.cast(np.float64)
    rng_state = rng.bit_generator.state
    params = dict(layer.named_parameters())
    r = np.random.default_rng(seed + 2).standard_normal(
        np.shape(_forward(layer, x, training, rng, rng_state))
    )

    def objective():
        y = _forward(layer, x, training, rng, rng_state)
        return float((backend.to_numpy(y) * r).sum()) + regularizers.penalty(params.values())

    _forward(layer, x, training, rng, rng_state)
    for p in params.values():
        p.zero_grad()
    dx = layer.backward(backend.asarray(r))
    regularizers.add_gradients(params.values())
    grads = {"input": dx, **{name: p.grad for name, p in params.items()}}
    arrays = {"input": x, **{name: p.value for name, p in params.items()}}
    return _check(objective, grads, arrays, eps, max_elements, seed)


def _forward(layer, x, training, rng, rng_state):
    rng.bit_generator.state = rng_state  # the same dropout mask on every evaluation
    return layer.forward(x, training)


def check_loss(loss, y_pred, y_true, eps: float = 1e-6, max_elements: int = 200, seed: int = 0):
    """Check ``loss.backward()`` against differences of ``loss.forward`` in ``y_pred``."""
    y_pred = np.array(y_pred, dtype=np.float64)
    loss.forward(y_pred, y_true)
    grad = loss.backward()
    return _check(
        lambda: loss.forward(y_pred, y_true),
        {"y_pred": grad},
        {"y_pred": y_pred},
        eps,
        max_elements,
        seed,
    )


def check_model(
    model, x, y, eps: float = 1e-6, max_elements: int = 50, seed: int = 0, training: bool = False
) -> GradcheckReport:
    """Check a compiled ``Model``'s full loss (fused output, penalties) against every parameter.

    The model is cast to float64. ``training=True`` includes dropout (with a fixed mask).
    """
    model.cast(np.float64)
    x = np.array(x, dtype=np.float64) if np.issubdtype(np.asarray(x).dtype, np.floating) else x
    rng = model.network.rng
    rng_state = rng.bit_generator.state
    params = dict(model.network.named_parameters())
    loss = model.step_loss

    def objective():
        rng.bit_generator.state = rng_state
        return loss.forward(model.forward(x, training), y) + model.penalty()

    objective()
    model.zero_grad()
    model.backward(loss.backward())
    grads = {name: p.grad.copy() for name, p in params.items()}
    arrays = {name: p.value for name, p in params.items()}
    return _check(objective, grads, arrays, eps, max_elements, seed)
