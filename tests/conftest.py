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
