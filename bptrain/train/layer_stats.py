"""Per-layer statistics of a model in training, as plain numbers: what ``training.diagnostics``
records (``bptrain.train.diagnostics``) and ``bptrain inspect`` judges.

For each parameter: the norm of its gradient, the norm of its value, and the update ratio
||w_after - w_before|| / ||w_before|| of the optimizer step (about 1e-3 is healthy: far
smaller and the layer barely learns, far larger and it thrashes). For each layer that runs
(after fusion): the mean and standard deviation of its output on a probe batch, and for a
ReLU the fraction of dead units, those that output 0 for every sample (and position).
"""

from __future__ import annotations

import math

import numpy as np

from bptrain.nn import backend
from bptrain.nn.activations import ReLU

PROBE_ROWS = 256  # samples of the step's batch the activations are measured on


def norm(a) -> float:
    """The Euclidean norm of array ``a`` (inf or nan when it holds such values)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return math.sqrt(backend.squared_norm(a.reshape(-1)))


def parameter_rows(model) -> list[tuple[str, str, object]]:
    """(layer, parameter, Parameter) for every parameter, by the layer names of the config
    (``dense``, ``kernel``; a Bidirectional's ``forward_lstm/kernel``)."""
    return [(layer.name, name, p) for layer in model.layers for name, p in layer.named_parameters()]


def gradient_stats(rows, before: list) -> list[dict]:
    """grad_norm, weight_norm (before the step) and update_ratio of each of ``rows``
    (``parameter_rows``), ``before`` holding each value copied before the step."""
    out = []
    for (layer, name, p), old in zip(rows, before, strict=True):
        weight = norm(old)
        step = norm(p.value - old)
        out.append(
            {
                "layer": layer,
                "parameter": name,
                "grad_norm": norm(p.grad),
                "weight_norm": weight,
                "update_ratio": step / weight if weight > 0 else None,
            }
        )
    return out


def activation_stats(model, x) -> list[dict]:
    """act_mean, act_std and (for ReLU layers) dead_fraction of each layer in ``model.runs``
    on input ``x`` (inference mode: no dropout, BatchNorm's running statistics)."""
    out = []
    for layer in model.runs:
        x = layer.forward(x, training=False)
        y = backend.to_numpy(x)
        row = {"layer": layer.name, "parameter": "", "act_mean": float(y.mean())}
        row["act_std"] = float(y.std())
        if is_relu(layer):
            row["dead_fraction"] = dead_fraction(y)
        out.append(row)
    return out


def is_relu(layer) -> bool:
    """Whether ``layer``'s output is a ReLU's (a fused layer's: its first part's)."""
    parts = getattr(layer, "parts", None)
    act = parts[0].activation if parts else layer.activation
    return isinstance(act, ReLU)


def dead_fraction(y: np.ndarray) -> float:
    """The fraction of units of ``y`` that are 0 for every sample: channels of (N, C, H, W),
    features of (N, F) or (N, T, F)."""
    unit_axis = 1 if y.ndim == 4 else y.ndim - 1
    axes = tuple(a for a in range(y.ndim) if a != unit_axis)
    alive = (y > 0).any(axis=axes)
    return float(1.0 - alive.mean())


def steepest_gradient(model, reference: dict | None = None) -> str | None:
    """Where an exploding gradient is: the parameter whose gradient norm grew the most since
    ``reference`` (the last recorded norms by ``layer/parameter``), or without one the largest
    gradient for its weight's norm (zero weights, such as fresh biases, left out); as
    "'layer' (layer/parameter, gradient norm ...)"."""
    best, best_score, text = None, -math.inf, ""
    for layer, name, p in parameter_rows(model):
        key, grad, weight = f"{layer}/{name}", norm(p.grad), norm(p.value)
        old = (reference or {}).get(key)
        if reference is not None:
            if not old:
                continue
            score, why = grad / old, f"{grad / old:.3g} times its last recorded {old:.3g}"
        elif weight > 0:
            score, why = grad / weight, f"weight norm {weight:.3g}"
        else:
            continue
        if math.isfinite(score) and score > best_score:
            best, best_score, text = layer, score, f"{key}, gradient norm {grad:.3g}, {why}"
    return None if best is None else f"{best!r} ({text})"
