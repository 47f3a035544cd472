"""Shared test setup: where the real data lives, and small configs that train in milliseconds."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]

# `make test` exports these; set them for a bare `pytest` as well.
os.environ.setdefault("BPTRAIN_DATA_DIR", str(REPO.parent / "shared" / "data"))
os.environ.setdefault("MPLBACKEND", "Agg")

# A test run started in the background by a non-interactive shell (`cmd &`, as some CI
# runners do) inherits SIGINT ignored, and so would every bptrain process the tests start:
# Ctrl-C tests would then see nothing happen. Restore the usual disposition for them.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def small_config(**training) -> dict:
    """3-class spirals (180 points) and a 2-layer MLP: a full run takes ~20 ms."""
    return {
        "name": "tiny",
        "seed": 0,
        "data": {"dataset": "spirals", "size": 60, "noise": 0.05, "validation_split": 0.2},
        "model": {
            "layers": [
                {"type": "Dense", "units": 16, "activation": "relu"},
                {"type": "Dense", "units": 3, "activation": "softmax"},
            ]
        },
        "loss": "sparse_categorical_crossentropy",
        "optimizer": {"type": "adam", "learning_rate": 0.01},
        "metrics": ["accuracy"],
        "training": {"epochs": 3, "batch_size": 16, "plots": False, **training},
    }


@pytest.fixture(name="small_config")
def small_config_fixture():
    """``small_config(**training)``: a fresh tiny config (see small_config)."""
    return small_config


@pytest.fixture
def write_config(tmp_path):
    """Write a config mapping (or YAML text) to a file in tmp_path; returns its path."""

    def write(config, name: str = "config.yaml") -> Path:
        path = tmp_path / name
        text = config if isinstance(config, str) else yaml.safe_dump(config, sort_keys=False)
        path.write_text(text)
        return path

    return write


def parallel_mlp_config(name: str, **training) -> dict:
    """Spirals (115 training samples) and an MLP with an L2 penalty, BatchNorm and Dropout, for
    comparing data-parallel training (MPI ranks, thread replicas) with one model. Batches of 19
    split 9/10 over 2 workers, and each epoch ends with a batch of 1 sample."""
    layers = [
        {"type": "Dense", "units": 16, "activation": "relu", "kernel_regularizer": "l2"},
        {"type": "BatchNorm"},
        {"type": "Dropout", "rate": 0.3},
        {"type": "Dense", "units": 3, "activation": "softmax"},
    ]
    return {
        "name": name,
        "seed": 3,
        "data": {"dataset": "spirals", "size": 60, "noise": 0.05, "validation_split": 0.2},
        "model": {"layers": layers},
        "loss": "sparse_categorical_crossentropy",
        "optimizer": {"type": "adam", "learning_rate": 0.01},
        "metrics": ["accuracy"],
        "training": {"epochs": 3, "batch_size": 19, "plots": False, **training},
    }
