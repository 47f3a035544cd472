"""The arrays a training run works on, with what a model and a trainer need to know about them."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Dataset:
    """Train, validation and test arrays of one dataset.

    x_*: (N, *input_shape), float32 (int64 token ids for text).
    y_*: classification: (N,) int64 class indices in [0, num_classes);
         regression: (N, outputs) float32.
    The validation arrays may have 0 rows. ``extra`` is JSON-serialisable (e.g. the text
    vocabulary, the scaling statistics). ``source`` is the absolute path of the directory or
    file the data were read from (None for generated sets); a run records it.
    w_*: (N,) float32 sample weights (``data.weight_column``, ``training.class_weight``; see
    ``bptrain.data.weights``), or None: every sample weighs 1.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    task: str
    num_classes: int | None
    class_names: list[str] | None
    input_shape: tuple
    name: str
    extra: dict = field(default_factory=dict)
    source: str | None = None
    w_train: np.ndarray | None = None
    w_val: np.ndarray | None = None
    w_test: np.ndarray | None = None

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(x, y) of the split called "train", "val" or "test"."""
        if name not in ("train", "val", "test"):
            raise ValueError(f"unknown split {name!r}: expected 'train', 'val' or 'test'")
        return getattr(self, f"x_{name}"), getattr(self, f"y_{name}")


def classification(
    name: str,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    class_names: list[str],
    extra: dict | None = None,
    x_dtype: type = np.float32,
) -> Dataset:
    """A classification Dataset with an empty validation split (load_dataset fills it).

    x is converted to ``x_dtype`` (float32; int64 for token ids), y to int64.
    """
    return _build(
        name, "classification", x_train, y_train, x_test, y_test, class_names, extra, x_dtype
    )


def regression(
    name: str,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    extra: dict | None = None,
) -> Dataset:
    """A regression Dataset with an empty validation split; x and y become float32 and
    1-D targets become (N, 1)."""
    y_train, y_test = (y if y.ndim > 1 else y[:, None] for y in (y_train, y_test))
    return _build(name, "regression", x_train, y_train, x_test, y_test, None, extra, np.float32)


def _build(name, task, x_train, y_train, x_test, y_test, class_names, extra, x_dtype) -> Dataset:
    y_dtype = np.int64 if task == "classification" else np.float32
    x_train, x_test = (_as_inputs(x, x_dtype) for x in (x_train, x_test))
    y_train, y_test = (np.ascontiguousarray(y, dtype=y_dtype) for y in (y_train, y_test))
    return Dataset(
        x_train=x_train,
        y_train=y_train,
        x_val=x_train[:0],
        y_val=y_train[:0],
        x_test=x_test,
        y_test=y_test,
        task=task,
        num_classes=len(class_names) if class_names is not None else None,
        class_names=class_names,
        input_shape=tuple(x_train.shape[1:]),
        name=name,
        extra=dict(extra or {}),
    )


def read_as_needed(x) -> bool:
    """Whether inputs ``x`` make their rows as they are read (``images.MappedImages``: pixels
    kept as bytes, or mapped from a file), with ``x.rows(idx)`` a subset that stays so."""
    return hasattr(x, "rows")


def _as_inputs(x, dtype):
    """x as a contiguous array of ``dtype``; inputs read as needed stay so when they come out
    in ``dtype``."""
    if read_as_needed(x) and x.dtype == dtype:
        return x
    return np.ascontiguousarray(x, dtype=dtype)
