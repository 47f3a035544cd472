"""The .npy/.npz reader checks every header against the bytes that can hold its data before
NumPy allocates anything."""

import struct
import zipfile

import numpy as np
import pytest

from bptrain.data.npyfile import open_npz, read_npy
from bptrain.errors import DataError


def npy_bytes(shape, data: bytes = b"\0" * 16, descr: str = "<f4") -> bytes:
    """A version 1.0 .npy file whose header declares ``shape``, followed by ``data``."""
    header = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}"
    header += " " * (117 - len(header)) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + data


def test_reads_what_numpy_writes(tmp_path):
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.save(tmp_path / "a.npy", a)
    np.testing.assert_array_equal(read_npy(tmp_path / "a.npy"), a)
    np.savez_compressed(tmp_path / "b.npz", x=a, y=np.arange(3))
    with open_npz(tmp_path / "b.npz") as npz:
        assert npz.names == ["x", "y"]
        assert npz.nbytes("x") == 48 and npz.header("y") == ((3,), np.dtype(np.int64))
        np.testing.assert_array_equal(npz.load("x"), a)


def test_a_header_larger_than_the_file_is_refused_before_allocating(tmp_path):
    path = tmp_path / "crafted.npy"
    path.write_bytes(npy_bytes((100_000_000_000, 2)))
    assert path.stat().st_size == 144
    with pytest.raises(DataError) as err:
        read_npy(path)
    assert str(err.value) == (
        f"{path}: its header declares an array of shape (100000000000, 2) and dtype float32 "
        "(745 GiB), but only 16 bytes of data follow; the file is truncated or damaged"
    )


@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_a_member_header_larger_than_its_zip_entry_is_refused(tmp_path, method):
    path = tmp_path / "crafted.npz"
    with zipfile.ZipFile(path, "w", compression=method) as z:
        z.writestr("x.npy", npy_bytes((100_000_000_000, 2)))
    with open_npz(path) as npz, pytest.raises(DataError) as err:
        npz.load("x")
    assert str(err.value) == (
        f"{path}: array 'x': its header declares an array of shape (100000000000, 2) and dtype "
        "float32 (745 GiB), but only 16 bytes of data follow; the file is truncated or damaged"
    )


def test_a_zip_directory_claiming_an_impossible_size_is_refused(tmp_path):
    path = tmp_path / "lying.npz"
    np.savez(path, x=np.zeros((2, 2)))
    data = bytearray(path.read_bytes())
    entry = data.rfind(b"PK\x01\x02")  # the central directory's entry for x.npy
    struct.pack_into("<I", data, entry + 24, 10**9)  # its uncompressed size
    path.write_bytes(bytes(data))
    with open_npz(path) as npz, pytest.raises(DataError) as err:
        npz.load("x")
    assert str(err.value) == (
        f"{path}: array 'x': the zip directory says 1,000,000,000 bytes come from 160 stored "
        "bytes, which is impossible; the file is damaged"
    )


def test_object_arrays_and_other_files_are_refused(tmp_path):
    np.save(tmp_path / "o.npy", np.array([{}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match=r"o\.npy holds Python objects, which would need pickle"):
        read_npy(tmp_path / "o.npy")
    (tmp_path / "t.npy").write_bytes(b"hello")
    with pytest.raises(DataError, match=r"t\.npy is not a readable \.npy file"):
        read_npy(tmp_path / "t.npy")
    (tmp_path / "short.npy").write_bytes(npy_bytes((3, 2), data=b"\0" * 20))
    with pytest.raises(DataError, match=r"\(24 bytes\), but only 20 bytes of data follow"):
        read_npy(tmp_path / "short.npy")
