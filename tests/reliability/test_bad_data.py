"""Broken data files through the command line (``main()`` in this process, and the executable
for a sample): truncated or mislabelled IDX files, wrong shapes, labels out of range, NaN and
damaged rows in CSV, NPZ files that disagree with themselves or hold pickles. Each is one line
naming the file, exit status 1, and no run directory (the data are read before the run
directory is made)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import yaml

from bptrain.data.idx import write_idx
from tests.reliability.conftest import bptrain

IMAGES, LABELS = "train-images-idx3-ubyte", "train-labels-idx1-ubyte"
TEST_IMAGES, TEST_LABELS = "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"


def mnist_like(root, n=40, size=28, labels=None) -> None:
    """Four small IDX files of the MNIST layout in ``root`` (training files gzip-compressed)."""
    rng = np.random.default_rng(0)
    root.mkdir(exist_ok=True)
    y = np.arange(n, dtype=np.uint8) % 10 if labels is None else labels
    write_idx(root / f"{IMAGES}.gz", rng.integers(0, 256, (n, size, size), dtype=np.uint8))
    write_idx(root / f"{LABELS}.gz", y)
    write_idx(root / TEST_IMAGES, rng.integers(0, 256, (10, 28, 28), dtype=np.uint8))
    write_idx(root / TEST_LABELS, np.arange(10, dtype=np.uint8))


def config(data: dict, units: int = 10) -> dict:
    flatten = [{"type": "Flatten"}] if data["dataset"] == "mnist" else []
    return {
        "name": "data",
        "data": data,
        "model": {"layers": [*flatten, {"type": "Dense", "units": units}]},
        "loss": "sparse_categorical_crossentropy",
        "training": {"epochs": 1, "plots": False},
    }


@pytest.fixture
def run(cli):
    """``run(tmp_path, data, units)``: ``bptrain fit`` on a config of ``data`` and a linear
    model of ``units`` outputs."""

    def fit(tmp_path, data: dict, units: int = 10):
        (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(config(data, units)))
        return cli("fit", "cfg.yaml", "--progress", "none", cwd=tmp_path)

    return fit


def assert_names_the_file(proc, path, *words):
    """One line starting with the file's path (as the config gave it), exit status 1, no
    run directory."""
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith(f"error: {path}"), proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    for word in words:
        assert word in proc.stderr, proc.stderr
    assert not (Path(proc.cwd) / "runs").exists()


def cut(path, keep: int) -> None:
    path.write_bytes(path.read_bytes()[:keep])


def test_a_valid_mnist_like_set_trains(run, tmp_path):
    """The files the other tests break are themselves good."""
    mnist_like(tmp_path / "mnist")
    done = run(tmp_path, {"dataset": "mnist", "root": "mnist", "download": False})
    assert done.returncode == 0, done.stderr


@pytest.mark.timeout(60)
def test_truncated_idx_files(run, tmp_path):
    root = tmp_path / "mnist"
    mnist_like(root)
    data = {"dataset": "mnist", "root": "mnist", "download": False}
    raw = gzip.decompress((root / f"{IMAGES}.gz").read_bytes())
    (root / f"{IMAGES}.gz").write_bytes(gzip.compress(raw[: len(raw) // 2]))
    run(tmp_path, data)  # writes cfg.yaml; the same through the real executable:
    proc = bptrain("fit", "cfg.yaml", "--progress", "none", cwd=tmp_path)
    assert_names_the_file(proc, f"mnist/{IMAGES}.gz", "is truncated: expected 31360 bytes")

    mnist_like(root)
    cut(root / f"{IMAGES}.gz", 100)  # the gzip stream itself cut short
    proc = run(tmp_path, data)
    assert_names_the_file(proc, f"mnist/{IMAGES}.gz", "truncated")

    mnist_like(root)
    cut(root / TEST_LABELS, 6)  # inside the header
    proc = run(tmp_path, data)
    assert_names_the_file(proc, f"mnist/{TEST_LABELS}", "ends inside the IDX header")


@pytest.mark.timeout(60)
def test_wrong_idx_magic_numbers(run, tmp_path):
    root = tmp_path / "mnist"
    mnist_like(root)
    (root / TEST_LABELS).write_bytes((root / TEST_IMAGES).read_bytes())  # images as labels
    proc = run(tmp_path, {"dataset": "mnist", "root": "mnist", "download": False})
    assert_names_the_file(
        proc, f"mnist/{TEST_LABELS}", "magic number 0x00000803, expected 0x00000801"
    )
    data = bytearray((root / TEST_IMAGES).read_bytes())
    data[2] = 0x0D  # float32 pixels
    (root / TEST_IMAGES).write_bytes(bytes(data))
    proc = run(tmp_path, {"dataset": "mnist", "root": "mnist", "download": False})
    assert_names_the_file(proc, f"mnist/{TEST_IMAGES}", "magic number 0x00000D03")


@pytest.mark.timeout(60)
def test_wrong_shapes(run, tmp_path):
    data = {"dataset": "mnist", "root": "mnist", "download": False}
    mnist_like(tmp_path / "mnist", size=20)
    proc = run(tmp_path, data)
    assert_names_the_file(proc, f"mnist/{IMAGES}.gz", "holds 20x20 images")
    mnist_like(tmp_path / "mnist", labels=np.zeros(39, dtype=np.uint8))
    proc = run(tmp_path, data)
    assert_names_the_file(proc, f"mnist/{LABELS}.gz", "has 39 labels but", "40 images")
    np.savez(tmp_path / "d.npz", x_train=np.zeros((10, 3)), y_train=np.zeros(9))
    proc = run(tmp_path, {"dataset": "npz", "path": "d.npz"}, units=1)
    assert_names_the_file(proc, "d.npz", "'x_train' has 10 rows but 'y_train' has 9")
    np.savez(tmp_path / "d.npz", x_train=np.zeros((10, 3)), y_train=np.zeros((10, 2, 2)))
    proc = run(tmp_path, {"dataset": "npz", "path": "d.npz", "task": "classification"}, units=1)
    assert_names_the_file(proc, "d.npz", "one label per sample")


@pytest.mark.timeout(60)
def test_labels_out_of_range(run, tmp_path):
    labels = np.arange(40, dtype=np.uint8) % 10
    labels[17] = 12
    mnist_like(tmp_path / "mnist", labels=labels)
    proc = run(tmp_path, {"dataset": "mnist", "root": "mnist", "download": False})
    assert_names_the_file(proc, f"mnist/{LABELS}.gz", "has label 12 at index 17")


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "cell, words",
    [
        ("nan", ["row 3 (line 4), column 'b' is 'nan'", "finite number"]),
        ("inf", ["row 3 (line 4), column 'b' is 'inf'"]),
        ("", ["row 3 (line 4), column 'b' is empty"]),
        ("1.2.3", ["row 3 (line 4), column 'b' is '1.2.3', not a number"]),
    ],
)
def test_bad_csv_features(run, tmp_path, cell, words):
    rows = ["a,b,label", "0.1,0.2,0", "0.3,0.4,1", f"0.5,{cell},0", "0.7,0.8,1", "0.2,0.9,0"]
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    proc = run(tmp_path, {"dataset": "csv", "path": "t.csv"}, units=2)
    assert_names_the_file(proc, "t.csv", *words)


@pytest.mark.timeout(60)
def test_damaged_csv_rows_and_bytes(run, tmp_path):
    (tmp_path / "t.csv").write_text("a,b,label\n0.1,0.2,0\n0.3,0.4,1\n0.5,0.")  # cut mid-row
    proc = run(tmp_path, {"dataset": "csv", "path": "t.csv"}, units=2)
    assert_names_the_file(proc, "t.csv", "line 4: 2 fields, expected the 3 of the header")
    (tmp_path / "t.csv").write_bytes(b"a,b,label\n0.1,0.2,0\n\xff\xfe,0.4,1\n")
    proc = run(tmp_path, {"dataset": "csv", "path": "t.csv"}, units=2)
    assert_names_the_file(proc, "t.csv", "is not UTF-8 text")


@pytest.mark.timeout(60)
def test_npz_with_nan_or_a_pickle(run, tmp_path):
    x = np.ones((10, 3))
    x[4, 1] = np.nan
    np.savez(tmp_path / "d.npz", x_train=x, y_train=np.arange(10) % 2)
    proc = run(tmp_path, {"dataset": "npz", "path": "d.npz"}, units=2)
    assert_names_the_file(proc, "d.npz", "'x_train' holds NaN or infinite values")
    np.savez(tmp_path / "d.npz", x_train=np.ones((10, 3)), y_train=np.array([{}] * 10))
    proc = run(tmp_path, {"dataset": "npz", "path": "d.npz"}, units=2)
    assert_names_the_file(proc, "d.npz", "holds Python objects", "never loads pickles")
    (tmp_path / "d.npz").write_bytes(b"PK\x03\x04 not really a zip")
    proc = run(tmp_path, {"dataset": "npz", "path": "d.npz"}, units=2)
    assert_names_the_file(proc, "d.npz", "is not a readable .npz file")


@pytest.mark.timeout(60)
def test_eval_on_a_broken_data_file(run, tmp_path):
    mnist_like(tmp_path / "mnist")
    done = run(tmp_path, {"dataset": "mnist", "root": "mnist", "download": False})
    assert done.returncode == 0, done.stderr
    cut(tmp_path / "mnist" / TEST_IMAGES, 5000)
    (run_dir,) = (tmp_path / "runs" / "data").iterdir()
    proc = bptrain("eval", run_dir, cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"error: mnist/{TEST_IMAGES} is truncated"), proc.stderr
    assert proc.stderr.count("\n") == 1
