"""Fixtures for the data tests: an isolated environment and small generated IDX files."""

from __future__ import annotations

import numpy as np
import pytest

from bptrain.data import mnist
from bptrain.data.idx import write_idx


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    """No test sees the real BPTRAIN_DATA_DIR or user cache, or reaches the network."""
    monkeypatch.delenv("BPTRAIN_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.setattr(
        mnist, "MIRRORS", {name: ["file:///nonexistent-mirror/"] for name in mnist.MIRRORS}
    )


def make_mnist_arrays(n_train: int = 20, n_test: int = 8, seed: int = 0, size: int = 28):
    """Random uint8 images (N, size, size) and labels 0..9 for a train and a test set."""
    rng = np.random.default_rng(seed)
    return {
        mnist.TRAIN_IMAGES: rng.integers(0, 256, (n_train, size, size), dtype=np.uint8),
        mnist.TRAIN_LABELS: rng.integers(0, 10, n_train, dtype=np.uint8),
        mnist.TEST_IMAGES: rng.integers(0, 256, (n_test, size, size), dtype=np.uint8),
        mnist.TEST_LABELS: rng.integers(0, 10, n_test, dtype=np.uint8),
    }


def write_mnist_dir(directory, arrays=None, gz: bool = True, **kwargs) -> dict:
    """Write the four IDX files into ``directory``; returns the arrays written."""
    arrays = arrays if arrays is not None else make_mnist_arrays(**kwargs)
    directory.mkdir(parents=True, exist_ok=True)
    for stem, array in arrays.items():
        write_idx(directory / (stem + (".gz" if gz else "")), array)
    return arrays
