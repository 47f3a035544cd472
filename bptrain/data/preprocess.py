"""Input and target scaling with statistics from the training part only.

Input statistics are per channel for images (N, C, H, W) and per feature (the last axis) for
tables (N, F) and sequences (N, T, F). Regression targets (N, outputs) are standardized per
output only when ``scale_target`` asks for it; class labels never are.
"""

from __future__ import annotations

import numpy as np

from bptrain.data.dataset import Dataset
from bptrain.data.options import check_scale_target
from bptrain.errors import ConfigError

_EPS = 1e-8
_ROWS_PER_CHUNK = 8192


def scale(ds: Dataset, method: str, saved: dict | None = None) -> Dataset:
    """Scale ds.x_train, ds.x_val and ds.x_test in place with the training statistics.

    "standardize": (x - mean) / std, with std < 1e-8 replaced by 1 (constant features).
    "minmax": (x - min) / (max - min) to [0, 1]; when the data have a known value range
        (``ds.extra["value_range"]``, e.g. [0, 255] for image bytes) that range is used
        instead of data statistics, so MNIST pixels become pixel / 255.
    The statistics go to ``ds.extra["scale"]`` as {"method", "shift", "divisor"} (lists, one
    entry per channel or feature) so new inputs can be scaled the same way. ``saved`` (such
    statistics, as a run recorded them) is applied instead of computing new ones.
    """
    if method == "none":
        return ds
    if method not in ("standardize", "minmax"):
        raise ConfigError(f"data.scale: expected 'none', 'standardize' or 'minmax', got {method!r}")
    if not np.issubdtype(ds.x_train.dtype, np.floating):
        raise ConfigError(
            f"data.scale: {ds.name} inputs are integer token ids and cannot be scaled; "
            "use scale: none"
        )
    x = ds.x_train
    axes = reduce_axes(x.ndim)
    if saved is not None:
        shift, divisor = (_statistic(saved[k], x.ndim) for k in ("shift", "divisor"))
    elif method == "standardize":
        shift = x.mean(axis=axes, dtype=np.float64, keepdims=True)
        divisor = _std(x, shift, axes)
        divisor[divisor < _EPS] = 1.0
    elif "value_range" in ds.extra:
        lo, hi = ds.extra["value_range"]
        shift = np.full([1] * x.ndim, lo, dtype=np.float64)
        divisor = np.full([1] * x.ndim, hi - lo, dtype=np.float64)
    else:
        shift = x.min(axis=axes, keepdims=True).astype(np.float64)
        divisor = x.max(axis=axes, keepdims=True).astype(np.float64) - shift
        divisor[divisor < _EPS] = 1.0
    ds.extra["scale"] = _standardize((ds.x_train, ds.x_val, ds.x_test), method, shift, divisor)
    return ds


def scale_targets(ds: Dataset, method: str, saved: dict | None = None) -> Dataset:
    """Standardize the regression targets ds.y_* in place: (y - mean) / std per output, with
    the training part's statistics (or ``saved`` ones), kept in ``ds.extra["scale_target"]``
    as {"method", "shift", "divisor"}; undone by ``unscale_targets``."""
    if method == "none":
        return ds
    if ds.task != "regression":
        check_scale_target(method, ds.name)
    y = ds.y_train
    if saved is not None:
        shift, divisor = (
            np.asarray(saved[k], dtype=np.float64).reshape(1, *y.shape[1:])
            for k in ("shift", "divisor")
        )
    else:
        shift = y.mean(axis=0, dtype=np.float64, keepdims=True)
        divisor = _std(y, shift, (0,))
        divisor[divisor < _EPS] = 1.0
    parts = (ds.y_train, ds.y_val, ds.y_test)
    ds.extra["scale_target"] = _standardize(parts, method, shift, divisor)
    return ds


def _standardize(parts, method: str, shift: np.ndarray, divisor: np.ndarray) -> dict:
    """(part - shift) / divisor in place for every part, in float32; returns the statistics
    as a checkpoint keeps them: {"method", "shift", "divisor"}."""
    shift32, divisor32 = shift.astype(np.float32), divisor.astype(np.float32)
    for part in parts:
        part -= shift32
        part /= divisor32
    return {"method": method, "shift": shift.ravel().tolist(), "divisor": divisor.ravel().tolist()}


def unscale_targets(values: np.ndarray, statistics: dict | None) -> np.ndarray:
    """Regression targets or outputs (N, outputs) in the data's own units again (float64),
    from the statistics ``scale_targets`` kept; unchanged without them."""
    if not statistics:
        return values
    shift = np.asarray(statistics["shift"], dtype=np.float64)
    divisor = np.asarray(statistics["divisor"], dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    return (values.reshape(len(values), -1) * divisor + shift).reshape(values.shape)


def _statistic(values: list, ndim: int) -> np.ndarray:
    """Saved statistics (one per channel or feature) shaped to broadcast over ndim-D data."""
    values = np.asarray(values, dtype=np.float64)
    shape = [1] * ndim
    if values.size > 1:
        shape[[a for a in range(ndim) if a not in reduce_axes(ndim)][0]] = values.size
    return values.reshape(shape)


def reduce_axes(ndim: int) -> tuple[int, ...]:
    """Axes the statistics are taken over: all but the channel axis (1) of images
    (ndim >= 4), all but the last axis otherwise."""
    if ndim >= 4:
        return (0, *range(2, ndim))
    return tuple(range(ndim - 1))


def _std(x: np.ndarray, mean: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """Two-pass std in float64, a chunk of rows at a time (no full-size float64 copy)."""
    total = np.zeros_like(mean)
    for start in range(0, len(x), _ROWS_PER_CHUNK):
        d = x[start : start + _ROWS_PER_CHUNK].astype(np.float64) - mean
        total += np.square(d, out=d).sum(axis=axes, keepdims=True)
    count = x.size // mean.size
    return np.sqrt(total / count)
