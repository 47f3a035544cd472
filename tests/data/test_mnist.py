import os
from pathlib import Path

import numpy as np
import pytest

from bptrain.data import load_dataset, mnist
from bptrain.data.download import download
from bptrain.data.idx import read_idx, write_idx
from bptrain.errors import DataError

from .conftest import make_mnist_arrays, write_mnist_dir


def test_loads_generated_files_from_root(tmp_path):
    arrays = write_mnist_dir(tmp_path / "m", n_train=20, n_test=8)
    ds = load_dataset({"dataset": "mnist", "root": str(tmp_path / "m"), "scale": "none"})
    assert ds.x_train.shape == (20, 1, 28, 28) and ds.x_train.dtype == np.float32
    assert ds.x_test.shape == (8, 1, 28, 28)
    np.testing.assert_array_equal(ds.x_train[:, 0], arrays[mnist.TRAIN_IMAGES])
    np.testing.assert_array_equal(ds.y_test, arrays[mnist.TEST_LABELS])
    assert ds.y_train.dtype == np.int64
    assert ds.task == "classification" and ds.num_classes == 10
    assert ds.class_names == [str(d) for d in range(10)]
    assert ds.input_shape == (1, 28, 28) and ds.name == "mnist"
    assert ds.x_val.shape == (0, 1, 28, 28) and ds.y_val.shape == (0,)


def test_raw_files_and_default_minmax_is_pixel_over_255(tmp_path):
    arrays = write_mnist_dir(tmp_path, gz=False)
    ds = load_dataset({"dataset": "mnist", "root": str(tmp_path)})
    expected = arrays[mnist.TEST_IMAGES].astype(np.float32) / np.float32(255)
    np.testing.assert_array_equal(ds.x_test[:, 0], expected)
    assert ds.extra["scale"] == {"method": "minmax", "shift": [0.0], "divisor": [255.0]}


def test_limit_sequence_and_fashion_class_names(tmp_path):
    arrays = write_mnist_dir(tmp_path, n_train=30, n_test=10)
    ds = load_dataset(
        {
            "dataset": "fashion_mnist",
            "root": str(tmp_path),
            "limit": 12,
            "test_limit": 3,
            "sequence": True,
            "scale": "none",
        }
    )
    assert ds.x_train.shape == (12, 28, 28) and ds.input_shape == (28, 28)
    np.testing.assert_array_equal(ds.y_train, arrays[mnist.TRAIN_LABELS][:12])
    assert ds.x_test.shape == (3, 28, 28)
    assert ds.class_names[0] == "T-shirt/top" and ds.class_names[9] == "Ankle boot"


def test_lookup_order_root_then_env_then_cache(tmp_path, monkeypatch):
    root, env, cache = tmp_path / "root", tmp_path / "env", tmp_path / "xdg-cache"
    write_mnist_dir(root, n_train=3)
    write_mnist_dir(env / "mnist", n_train=4)
    write_mnist_dir(cache / "bptrain" / "mnist", n_train=5)
    monkeypatch.setenv("BPTRAIN_DATA_DIR", str(env))

    def n_train(**spec):
        return len(load_dataset({"dataset": "mnist", **spec}).x_train)

    assert n_train(root=str(root)) == 3
    assert n_train() == 4
    assert n_train(root=str(tmp_path / "empty")) == 4  # an incomplete root falls through
    monkeypatch.delenv("BPTRAIN_DATA_DIR")
    assert n_train() == 5


def test_cache_defaults_to_home(tmp_path, monkeypatch):
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    write_mnist_dir(tmp_path / "home" / ".cache" / "bptrain" / "mnist", n_train=6)
    assert len(load_dataset({"dataset": "mnist"}).x_train) == 6


def test_missing_everywhere_says_which_files_go_where(tmp_path):
    with pytest.raises(DataError) as err:
        load_dataset({"dataset": "mnist", "download": False})
    message = str(err.value)
    assert "\n" not in message
    for stem in mnist.FILES:
        assert f"{stem}.gz" in message
    assert str(tmp_path / "xdg-cache" / "bptrain" / "mnist") in message
    assert "BPTRAIN_DATA_DIR" in message


def test_failed_download_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="could not download train-images-idx3-ubyte.gz"):
        load_dataset({"dataset": "mnist"})
    assert not any((tmp_path / "xdg-cache" / "bptrain" / "mnist").iterdir())


def test_wrong_image_shape_names_the_file(tmp_path):
    arrays = make_mnist_arrays()
    arrays[mnist.TRAIN_IMAGES] = np.zeros((20, 32, 32), dtype=np.uint8)
    write_mnist_dir(tmp_path, arrays)
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz holds 32x32 images"):
        load_dataset({"dataset": "mnist", "root": str(tmp_path)})


def test_label_count_must_match_image_count(tmp_path):
    arrays = make_mnist_arrays(n_test=8)
    arrays[mnist.TEST_LABELS] = arrays[mnist.TEST_LABELS][:7]
    write_mnist_dir(tmp_path, arrays)
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz has 7 labels but .* 8 images"):
        load_dataset({"dataset": "mnist", "root": str(tmp_path)})


def test_labels_out_of_range_name_the_file(tmp_path):
    arrays = make_mnist_arrays()
    arrays[mnist.TRAIN_LABELS][5] = 12
    write_mnist_dir(tmp_path, arrays)
    with pytest.raises(
        DataError, match=r"train-labels-idx1-ubyte\.gz has label 12 at index 5; labels must be 0..9"
    ):
        load_dataset({"dataset": "mnist", "root": str(tmp_path)})


def test_truncated_images_through_load_dataset(tmp_path):
    write_mnist_dir(tmp_path)
    path = tmp_path / "t10k-images-idx3-ubyte"
    write_idx(path, make_mnist_arrays()[mnist.TEST_IMAGES])
    path.write_bytes(path.read_bytes()[:-100])
    (tmp_path / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(DataError, match=f"{path} is truncated: expected 6272 bytes"):
        load_dataset({"dataset": "mnist", "root": str(tmp_path)})


def _real_mnist_dir() -> Path | None:
    candidates = [Path(__file__).resolve().parents[3] / "shared" / "data" / "mnist"]
    if os.environ.get("BPTRAIN_DATA_DIR"):
        candidates.insert(0, Path(os.environ["BPTRAIN_DATA_DIR"]) / "mnist")
    for d in candidates:
        if (d / "train-labels-idx1-ubyte.gz").is_file():
            return d
    return None


def test_real_mnist_train_labels():
    real = _real_mnist_dir()
    if real is None:
        pytest.skip("real MNIST files not present (../shared/data/mnist)")
    labels = read_idx(real / "train-labels-idx1-ubyte.gz", ndim=1)
    assert labels.shape == (60000,)
    assert labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert np.bincount(labels, minlength=10).tolist() == [
        5923,
        6742,
        5958,
        6131,
        5842,
        5421,
        5918,
        6265,
        5851,
        5949,
    ]


def test_real_mnist_first_samples_and_label_digests(tmp_path):
    real = _real_mnist_dir()
    if real is None:
        pytest.skip("real MNIST files not present (../shared/data/mnist)")
    ds = load_dataset({"dataset": "mnist", "root": str(real), "limit": 10, "test_limit": 5})
    assert ds.y_train.tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    x = np.asarray(ds.x_train)  # (kept as bytes, made float32 as read)
    assert x.dtype == np.float32 and x.min() == 0.0 and x.max() == 1.0
    # The local archives' gzip wrappers differ from the mirrors'; the content digests match.
    for stem in (mnist.TRAIN_LABELS, mnist.TEST_LABELS):
        source = (real / f"{stem}.gz").as_uri()
        download([source], tmp_path / f"{stem}.gz", mnist.DIGESTS["mnist"][stem])
        assert (tmp_path / f"{stem}.gz").is_file()
