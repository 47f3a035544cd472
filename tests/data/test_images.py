"""Image folders: classes from sub-folders, decoding through Pillow once into a memory-mapped
cache, bad files, and the split and scaling of mapped rows."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

from bptrain.data import footprint, load_dataset
from bptrain.data import images as images_mod
from bptrain.data.images import MappedImages
from bptrain.errors import DataError

Image = pytest.importorskip("PIL.Image")


def write_folder(root, counts=None, size=(12, 10), seed=0, mode="RGB") -> dict:
    """Random PNG images (one JPEG) in root/<class>/; returns {relative path: uint8 HxWxC}."""
    rng = np.random.default_rng(seed)
    written = {}
    for name, count in (counts or {"dog": 4, "cat": 3, "bird": 2}).items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            shape = (*size, 3) if mode == "RGB" else size
            pixels = rng.integers(0, 256, shape, dtype=np.uint8)
            suffix = ".jpg" if (name, i) == ("cat", 0) else ".png"
            Image.fromarray(pixels, mode).save(root / name / f"{i}{suffix}")
            written[f"{name}/{i}{suffix}"] = pixels
    return written


@pytest.fixture
def folder(tmp_path):
    write_folder(tmp_path / "photos")
    return tmp_path / "photos"


def spec(path, **options) -> dict:
    return {"dataset": "images", "path": str(path), "image_size": [12, 10], **options}


def test_classes_are_the_sorted_folder_names_and_pixels_are_the_files(folder):
    ds = load_dataset(spec(folder, scale="none"))
    assert ds.class_names == ["bird", "cat", "dog"]
    assert ds.y_train.tolist() == [0, 0, 1, 1, 1, 2, 2, 2, 2]
    assert ds.input_shape == (3, 12, 10) and ds.x_train.shape == (9, 3, 12, 10)
    assert isinstance(ds.x_train, MappedImages) and ds.x_train.nbytes == 9 * 8
    first_dog = np.asarray(Image.open(folder / "dog" / "0.png")).transpose(2, 0, 1)
    np.testing.assert_array_equal(ds.x_train[5:6][0], first_dog.astype(np.float32))
    assert len(ds.x_test) == 0 and ds.source == str(folder.resolve())


def test_minmax_is_pixel_over_255_and_batches_are_float32(folder):
    ds = load_dataset(spec(folder))
    raw = load_dataset(spec(folder, scale="none"))
    batch = np.take(ds.x_train, [8, 0, 3], axis=0)
    assert batch.dtype == np.float32 and batch.shape == (3, 3, 12, 10)
    np.testing.assert_array_equal(batch, np.take(raw.x_train, [8, 0, 3], axis=0) / np.float32(255))


def test_resize_and_grayscale(folder):
    ds = load_dataset(spec(folder, image_size=[6, 5], color="grayscale", scale="none"))
    assert ds.x_train.shape == (9, 1, 6, 5)
    img = Image.open(folder / "bird" / "0.png").convert("L").resize((5, 6), Image.BILINEAR)
    np.testing.assert_array_equal(ds.x_train[:1][0, 0], np.asarray(img, np.float32))


def test_validation_split_stays_mapped_and_standardize_matches_in_memory(folder):
    ds = load_dataset(spec(folder, validation_split=0.34, scale="standardize"), seed=3)
    assert (len(ds.x_train), len(ds.x_val)) == (6, 3)
    assert isinstance(ds.x_val, MappedImages)
    raw = load_dataset(spec(folder, validation_split=0.34, scale="none"), seed=3)
    x = np.asarray(raw.x_train, dtype=np.float64)
    mean, std = x.mean(axis=(0, 2, 3)), x.std(axis=(0, 2, 3))
    np.testing.assert_allclose(ds.extra["scale"]["shift"], mean, rtol=1e-12)
    np.testing.assert_allclose(ds.extra["scale"]["divisor"], std, rtol=1e-6)
    np.testing.assert_allclose(
        ds.x_val[:], (raw.x_val[:] - mean[:, None, None]) / std[:, None, None], rtol=1e-5, atol=1e-5
    )


def test_decoded_once_then_read_from_the_cache_until_a_file_changes(folder, monkeypatch):
    load_dataset(spec(folder))
    calls = []
    real = images_mod.decode
    monkeypatch.setattr(images_mod, "decode", lambda *a: calls.append(a) or real(*a))
    again = load_dataset(spec(folder))
    assert calls == [] and len(again.x_train) == 9
    path = folder / "dog" / "1.png"
    Image.fromarray(np.zeros((12, 10, 3), np.uint8)).save(path)
    os.utime(path, ns=(1, 1))  # another modification time (and size)
    changed = load_dataset(spec(folder, scale="none"))
    assert len(calls) == 9
    assert changed.x_train[6:7].max() == 0.0
    cache = list((folder.parent / "xdg-cache" / "bptrain" / "images").iterdir())
    assert sorted(p.suffix for p in cache) == [".json", ".json", ".npy", ".npy"]  # no temp left


def test_a_corrupt_image_is_an_error_naming_it_or_skipped_with_a_count(folder):
    (folder / "cat" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(DataError, match=r"cat/broken\.png is not a readable image.*skip_bad"):
        load_dataset(spec(folder))
    ds = load_dataset(spec(folder, skip_bad_images=True, scale="none"))
    assert len(ds.x_train) == 9 and ds.y_train.tolist() == [0, 0, 1, 1, 1, 2, 2, 2, 2]
    assert ds.extra["skipped_images"] == {"count": 1, "first": str(folder / "cat" / "broken.png")}
    with pytest.raises(DataError, match=r"broken\.png"):  # the cache remembers it
        load_dataset(spec(folder))


def test_test_path_maps_its_classes_to_the_training_ones(folder, tmp_path):
    write_folder(tmp_path / "test", {"dog": 2, "bird": 1}, seed=1)
    ds = load_dataset(spec(folder, test_path=str(tmp_path / "test")))
    assert ds.y_test.tolist() == [0, 2, 2] and ds.x_test.shape == (3, 3, 12, 10)
    write_folder(tmp_path / "test", {"fish": 1}, seed=2)
    with pytest.raises(DataError, match="class folder 'fish'"):
        load_dataset(spec(folder, test_path=str(tmp_path / "test")))


@pytest.mark.parametrize(
    "layout, message",
    [
        (None, "no such folder"),
        ({}, "has no class folders"),
        ({"cat": 0}, "holds no .png"),
    ],
)
def test_folder_errors(tmp_path, layout, message):
    root = tmp_path / "photos"
    if layout is not None:
        root.mkdir()
        for name in layout:
            (root / name).mkdir()
    with pytest.raises(DataError, match=message):
        load_dataset(spec(root))


def test_without_pillow_the_error_says_what_to_install(folder, monkeypatch):
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(DataError, match=r"pip install bptrain\[images\]"):
        load_dataset(spec(folder))


def test_footprint_counts_files_not_pixels(folder):
    need = footprint(spec(folder, image_size=[1000, 1000]))
    assert need.nbytes == 9 * images_mod.BYTES_PER_FILE
    assert "9 image files" in need.what


@pytest.mark.parametrize("shift, divisor", [(0.0, 255.0), (3.3, 7.1)])
def test_mapped_rows_are_the_same_bits_compiled_or_not(monkeypatch, shift, divisor):
    pytest.importorskip("numba", reason="the compiled pass needs Numba (the fast extra)")
    from bptrain.nn.kernels import compiled

    # rows of 130 pixels (three cache lines to fetch ahead), batches of fewer and more rows
    # than the compiled pass fetches ahead (AHEAD)
    pixels = np.random.default_rng(0).integers(0, 256, (40, 1, 10, 13), dtype=np.uint8)
    expected = (pixels.astype(np.float32) - np.float32(shift)) / np.float32(divisor)
    rows = np.array([7, 3, 39, 0, 3])
    for min_size in (0, 1 << 60):  # the compiled pass, then NumPy's calls
        monkeypatch.setattr(compiled, "MIN_SIZE", min_size)
        x = MappedImages(pixels, np.arange(40))
        x -= shift
        x /= divisor
        np.testing.assert_array_equal(np.take(x, rows, axis=0), expected[rows])
        np.testing.assert_array_equal(x[2:9], expected[2:9])
        np.testing.assert_array_equal(x[4, 0, 1], expected[4, 0, 1])
        np.testing.assert_array_equal(x.rows(rows)[1:3], expected[rows[1:3]])
        assert x[:0].shape == (0, 1, 10, 13)


def test_in_memory_pixels_count_once_over_the_splits():
    pixels = np.zeros((10, 1, 4, 4), dtype=np.uint8)  # MNIST's kind: read into memory
    x = MappedImages(pixels, np.arange(10))
    kept, held = x.rows(np.arange(8)), x.rows(np.arange(8, 10))
    assert x.nbytes == pixels.nbytes + 10 * 8
    assert kept.nbytes + held.nbytes == pixels.nbytes + 10 * 8
