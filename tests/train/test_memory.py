"""The memory estimates of data and models hold what loading and training take (tracemalloc
counts NumPy's allocations); tests/cli/test_memory_limits.py has the refusals."""

import tracemalloc

import numpy as np
import pytest

from bptrain.config import resolve
from bptrain.data import footprint, load_dataset
from bptrain.train import fit
from bptrain.train.memory import Budget, check_model


# -- the estimates hold what loading and training take (tracemalloc counts NumPy's memory) ------
def measured(load):
    tracemalloc.start()
    try:
        result = load()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize(
    "spec",
    [
        {"dataset": "spirals", "classes": 4, "size": 20_000, "validation_split": 0.1},
        {"dataset": "moons", "size": 50_000, "scale": "standardize"},
        {"dataset": "sine", "size": 100_000},
        {"dataset": "linear", "size": 20_000, "features": 10, "scale": "standardize"},
        {"dataset": "adding", "size": 2_000, "length": 50, "validation_split": 0.1},
    ],
    ids=lambda spec: spec["dataset"],
)
def test_data_estimates_cover_what_loading_takes(spec):
    need = footprint(spec)
    _, peak = measured(lambda: load_dataset(spec))
    assert peak <= need.nbytes <= 3 * peak + (1 << 20)


def test_file_estimates_cover_what_loading_takes(tmp_path):
    rng = np.random.default_rng(0)
    table = np.c_[rng.standard_normal((20_000, 6)), rng.integers(0, 3, 20_000)]
    np.savetxt(tmp_path / "t.csv", table, delimiter=",", fmt="%.3f", header="a,b,c,d,e,f,y")
    (tmp_path / "t.txt").write_text("".join(rng.choice(list("abcdef \n"), 50_000)))
    np.savez(tmp_path / "t.npz", x_train=table[:, :6], y_train=table[:, 6])
    for spec in (
        {"dataset": "csv", "path": str(tmp_path / "t.csv"), "scale": "standardize"},
        {"dataset": "text", "path": str(tmp_path / "t.txt"), "step": 1},
        {"dataset": "npz", "path": str(tmp_path / "t.npz"), "validation_split": 0.2},
    ):
        need = footprint(spec)
        _, peak = measured(lambda spec=spec: load_dataset(spec))
        assert peak <= need.nbytes <= 4 * peak + (1 << 20), spec["dataset"]


def test_the_model_estimate_covers_what_training_takes(tmp_path):
    config = resolve(
        {
            "data": {"dataset": "spirals", "size": 500, "validation_split": 0.2},
            "model": {
                "layers": [
                    {"type": "Dense", "units": 1500, "activation": "relu"},
                    {"type": "Dense", "units": 1500, "activation": "relu"},
                    {"type": "Dense", "units": 3, "activation": "softmax"},
                ]
            },
            "loss": "sparse_categorical_crossentropy",
            "training": {"epochs": 1, "plots": False},
        }
    )
    data = load_dataset(dict(config.data))
    refused = []
    for limit in range(1 << 20, 1 << 30, 1 << 20):  # the smallest limit the estimate passes
        try:
            check_model(config, data, Budget(limit, "a test limit"))
            break
        except Exception as exc:  # noqa: BLE001
            refused.append(exc)
    assert refused  # the search started below the estimate
    _, peak = measured(lambda: fit(config, run_dir=tmp_path / "r", progress="none"))
    assert peak <= limit <= 2 * peak
