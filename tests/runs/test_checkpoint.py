import json
import struct

import numpy as np
import pytest

from bptrain.errors import CheckpointError
from bptrain.runs import checkpoint

ARRAYS = {
    "model/dense/kernel": np.arange(12, dtype=np.float32).reshape(3, 4),
    "model/dense/bias": np.zeros(4, dtype=np.float32),
    "optimizer/m": np.linspace(0, 1, 16, dtype=np.float32),
}
STATE = {"epoch": 3, "step": 7, "loss_sum": 0.1 + 0.2, "rng": {"state": 2**127 + 5}, "x": None}


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "last.safetensors"
    checkpoint.save(path, ARRAYS, STATE)
    return path


def test_round_trip_is_exact(saved):
    ckpt = checkpoint.load(saved)
    assert ckpt.state == STATE  # floats and 128-bit RNG integers survive JSON exactly
    assert set(ckpt.arrays) == set(ARRAYS)
    for name, array in ARRAYS.items():
        assert ckpt.arrays[name].dtype == array.dtype
        np.testing.assert_array_equal(ckpt.arrays[name], array)
    assert set(ckpt.section("model")) == {"dense/kernel", "dense/bias"}


def test_writes_leave_no_temporary_files(saved):
    checkpoint.save(saved, ARRAYS, STATE)  # overwrite in place
    assert [p.name for p in saved.parent.iterdir()] == ["last.safetensors"]


def test_truncated_files_are_refused(saved):
    data = saved.read_bytes()
    for cut in (4, 100, len(data) - 1):
        saved.write_bytes(data[:cut])
        with pytest.raises(CheckpointError, match="truncated"):
            checkpoint.load(saved)


def test_a_changed_weight_fails_the_checksum(saved):
    data = bytearray(saved.read_bytes())
    data[-5] ^= 0x01  # a bit of the last tensor's data
    saved.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="fails its SHA-256 check"):
        checkpoint.load(saved)


def test_changed_metadata_fails_the_checksum(saved):
    data = saved.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = data[8 : 8 + n].replace(b'\\"epoch\\": 3', b'\\"epoch\\": 9')
    assert header != data[8 : 8 + n]
    saved.write_bytes(data[:8] + header + data[8 + n :])
    with pytest.raises(CheckpointError, match="SHA-256"):
        checkpoint.load(saved)


def _rewrite_metadata(path, **changes):
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    header["__metadata__"].update(changes)
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data[8 + n :])


def test_unsupported_versions_are_refused_with_the_supported_ones(saved):
    _rewrite_metadata(saved, format_version="99")
    with pytest.raises(CheckpointError, match=r"format version 99, .* \(supported: 1, 2\)"):
        checkpoint.load(saved)


def test_other_safetensors_files_are_refused(tmp_path):
    import safetensors.numpy

    path = tmp_path / "other.safetensors"
    path.write_bytes(safetensors.numpy.save({"w": np.ones(2, dtype=np.float32)}))
    with pytest.raises(CheckpointError, match="not a bptrain checkpoint"):
        checkpoint.load(path)


@pytest.mark.parametrize("content", [b"", b"hello world, not a checkpoint"])
def test_garbage_is_refused(tmp_path, content):
    path = tmp_path / "x.safetensors"
    path.write_bytes(content)
    with pytest.raises(CheckpointError):
        checkpoint.load(path)


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        checkpoint.load(tmp_path / "nope.safetensors")
