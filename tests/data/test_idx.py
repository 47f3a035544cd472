import gzip
import struct

import numpy as np
import pytest

from bptrain.data.idx import read_idx, write_idx
from bptrain.errors import DataError


@pytest.mark.parametrize("name", ["images.idx3-ubyte", "images.idx3-ubyte.gz"])
def test_round_trip_raw_and_gzip(tmp_path, name):
    images = np.arange(3 * 4 * 5, dtype=np.uint8).reshape(3, 4, 5)
    write_idx(tmp_path / name, images)
    raw = (tmp_path / name).read_bytes()
    assert (raw[:2] == b"\x1f\x8b") == name.endswith(".gz")
    back = read_idx(tmp_path / name, ndim=3)
    assert back.dtype == np.uint8
    np.testing.assert_array_equal(back, images)


def test_header_layout_matches_the_idx_spec(tmp_path):
    write_idx(tmp_path / "labels", np.array([7, 1, 9], dtype=np.uint8))
    raw = (tmp_path / "labels").read_bytes()
    assert raw == b"\x00\x00\x08\x01" + struct.pack(">I", 3) + bytes([7, 1, 9])


def test_gzip_is_detected_by_content_not_name(tmp_path):
    labels = np.array([3, 1, 4], dtype=np.uint8)
    write_idx(tmp_path / "labels.gz", labels)
    (tmp_path / "labels.gz").rename(tmp_path / "labels-no-suffix")
    np.testing.assert_array_equal(read_idx(tmp_path / "labels-no-suffix", ndim=1), labels)


def test_limit_reads_only_the_first_items(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (10, 2, 2), dtype=np.uint8)
    write_idx(tmp_path / "x.gz", images)
    np.testing.assert_array_equal(read_idx(tmp_path / "x.gz", ndim=3, limit=4), images[:4])
    assert read_idx(tmp_path / "x.gz", ndim=3, limit=99).shape == (10, 2, 2)


@pytest.mark.parametrize("gz", [False, True])
def test_truncated_file_names_file_and_byte_counts(tmp_path, gz):
    images = np.zeros((5, 28, 28), dtype=np.uint8)
    payload = b"\x00\x00\x08\x03" + struct.pack(">3I", 5, 28, 28) + images.tobytes()[:1000]
    path = tmp_path / ("train-images-idx3-ubyte" + (".gz" if gz else ""))
    path.write_bytes(gzip.compress(payload) if gz else payload)
    with pytest.raises(DataError) as err:
        read_idx(path, ndim=3)
    assert str(err.value) == (f"{path} is truncated: expected 3920 bytes of pixel data, found 1000")


def test_cut_gzip_stream_is_reported_as_truncated(tmp_path):
    images = np.random.default_rng(1).integers(0, 256, (50, 28, 28), dtype=np.uint8)
    write_idx(tmp_path / "x.gz", images)
    data = (tmp_path / "x.gz").read_bytes()
    (tmp_path / "x.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"x\.gz is truncated: expected 39200 bytes of pixel data"):
        read_idx(tmp_path / "x.gz", ndim=3)


def test_wrong_magic_names_expected_and_actual(tmp_path):
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(4, dtype=np.uint8))
    with pytest.raises(DataError) as err:
        read_idx(tmp_path / "train-labels-idx1-ubyte", ndim=3)
    message = str(err.value)
    assert "train-labels-idx1-ubyte" in message
    assert "0x00000801" in message and "expected 0x00000803" in message


def test_extra_bytes_are_an_error(tmp_path):
    path = tmp_path / "labels"
    path.write_bytes(b"\x00\x00\x08\x01" + struct.pack(">I", 2) + bytes([1, 2, 3]))
    with pytest.raises(DataError, match="labels has more bytes than its header declares"):
        read_idx(path, ndim=1)


def test_header_cut_short(tmp_path):
    (tmp_path / "h").write_bytes(b"\x00\x00\x08\x03\x00\x00")
    with pytest.raises(DataError, match="h is truncated: it ends inside the IDX header"):
        read_idx(tmp_path / "h", ndim=3)


def test_corrupt_gzip_names_the_file(tmp_path):
    (tmp_path / "bad.gz").write_bytes(b"\x1f\x8b" + b"\xff" * 40)
    with pytest.raises(DataError, match=r"bad\.gz"):
        read_idx(tmp_path / "bad.gz", ndim=1)
