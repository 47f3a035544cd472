"""Seeded random streams and hold-out splits (validation and test)."""

from __future__ import annotations

import zlib

import numpy as np

from bptrain.data.dataset import read_as_needed
from bptrain.errors import ConfigError, DataError


def rng_for(seed: int, purpose: str) -> np.random.Generator:
    """An independent generator per (seed, purpose), e.g. ("validation_split", "spirals").

    Separate streams keep, say, the validation split unchanged when a generated dataset
    draws one more number.
    """
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    return np.random.default_rng([int(seed), zlib.crc32(purpose.encode())])


def holdout_indices(n: int, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Split range(n) into (kept, held_out) index arrays, each in increasing order.

    The held-out part is the last ``round(n * fraction)`` entries of a permutation drawn from
    ``rng``; sorting keeps both parts in their original order.
    """
    n_out = int(round(n * fraction))
    if n_out == 0:
        return np.arange(n, dtype=np.int64), np.empty(0, dtype=np.int64)
    perm = rng.permutation(n)
    return np.sort(perm[: n - n_out]), np.sort(perm[n - n_out :])


def holdout(
    x: np.ndarray, y: np.ndarray, fraction: float, rng: np.random.Generator, what: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_kept, y_kept, x_out, y_out); ``what`` names the option for the error message."""
    kept, out = holdout_indices(len(x), fraction, rng)
    if len(out) == 0:
        return x, y, x[:0], y[:0]
    if len(kept) == 0:
        raise DataError(
            f"data.{what}={fraction} holds out all {len(x)} samples and leaves none to train "
            "on; use a smaller fraction or more data"
        )
    return _take(x, y, kept, out)


def hold_out_test_set(x: np.ndarray, y: np.ndarray, fraction: float, seed: int) -> tuple:
    """``holdout`` of a dataset's test set (``data.test_split``), seeded by the run's seed."""
    return holdout(x, y, fraction, rng_for(seed, "test_split"), "test_split")


def fold_indices(n: int, folds: int, fold: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Split range(n) into (kept, held_out) index arrays for k-fold cross-validation.

    A permutation drawn from ``rng`` is cut into ``folds`` parts whose sizes differ by at most
    one; part ``fold`` is held out. Over fold = 0..folds-1 (same rng state) the held-out parts
    are disjoint and cover range(n). Both arrays are in increasing order.
    """
    perm = rng.permutation(n)
    held = np.zeros(n, dtype=bool)
    held[np.array_split(perm, folds)[fold]] = True
    return np.flatnonzero(~held), np.flatnonzero(held)


def kfold(
    x: np.ndarray, y: np.ndarray, folds: int, fold: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_kept, y_kept, x_out, y_out) with fold ``fold`` of ``folds`` held out."""
    if len(x) < folds:
        raise DataError(
            f"data.folds={folds} needs at least {folds} training samples, got {len(x)}; "
            "use fewer folds or more data"
        )
    kept, out = fold_indices(len(x), folds, fold, rng)
    return _take(x, y, kept, out)


def _take(x, y, kept, out) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_kept, y_kept, x_out, y_out): the rows of ``x`` and ``y`` at two index arrays
    (memory-mapped images stay mapped: ``MappedImages.rows``)."""
    rows = x.rows if read_as_needed(x) else lambda idx: np.take(x, idx, axis=0)
    return rows(kept), np.take(y, kept, axis=0), rows(out), np.take(y, out, axis=0)
