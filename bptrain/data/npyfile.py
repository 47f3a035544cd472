""".npy and .npz files read without pickle, and without allocating what a file cannot hold.

A .npy header declares a shape and a dtype, and NumPy allocates that much before it reads a
byte of data: a 145-byte file declaring 10^11 rows asks for 745 GiB. Every header is checked
against the bytes that can hold its data first: the rest of the file for .npy, the member's
size in the zip directory for .npz (which itself must be possible for its compressed size).
Object arrays are refused: they would need pickle.

    x = read_npy("inputs.npy")
    pixels = map_npy("cache.npy")  # memory-mapped, read-only
    with open_npz("data.npz") as npz:
        npz.names, npz.nbytes("x_train"), npz.load("x_train")
"""

from __future__ import annotations

import contextlib
import math
import os
import zipfile
from pathlib import Path

import numpy as np

from bptrain.errors import DataError
from bptrain.memory import format_bytes

_HEADER_READERS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
}
# Deflate expands at most 1032:1 (a run of equal bytes); a member claiming more is damaged.
MAX_DEFLATE_RATIO = 1032
_ZIP_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)  # what np.savez(_compressed) writes


def read_npy(path: str | os.PathLike) -> np.ndarray:
    """The array in a .npy file; DataError naming the file when it is not one, holds objects,
    or is shorter than its header says."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            shape, dtype = _header(f, path)
            _check_size(path, shape, dtype, os.fstat(f.fileno()).st_size - f.tell())
            f.seek(0)
            return np.lib.format.read_array(f, allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"{path} is not a readable .npy file: {_one_line(exc)}") from None


def map_npy(path: str | os.PathLike) -> np.memmap:
    """The array in a .npy file, memory-mapped read-only (pages are read as rows are used);
    its header is checked as ``read_npy`` checks it."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            shape, dtype = _header(f, path)
            _check_size(path, shape, dtype, os.fstat(f.fileno()).st_size - f.tell())
        return np.lib.format.open_memmap(path, mode="r")
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"{path} is not a readable .npy file: {_one_line(exc)}") from None


def open_npz(path: str | os.PathLike) -> Npz:
    """An open .npz archive (use it in a ``with`` block)."""
    path = Path(path)
    try:
        return Npz(path, zipfile.ZipFile(path))
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path} is not a readable .npz file: {_one_line(exc)}") from None


class Npz:
    """The arrays of a .npz archive by name (``x`` for the member ``x.npy``), as np.load names
    them; each header is checked against the zip directory before its data is read."""

    def __init__(self, path: Path, archive: zipfile.ZipFile):
        self.path, self.archive = path, archive
        self.members = {
            info.filename[: -len(".npy")]: info
            for info in archive.infolist()
            if info.filename.endswith(".npy")
        }

    @property
    def names(self) -> list[str]:
        return list(self.members)

    def header(self, name: str) -> tuple[tuple, np.dtype]:
        """(shape, dtype) that member ``name`` declares, checked against its size."""
        info = self.members[name]
        where = f"{self.path}: array {name!r}"
        if info.compress_type not in _ZIP_METHODS:
            raise DataError(
                f"{where} is compressed with zip method {info.compress_type}; bptrain reads "
                "the archives np.savez and np.savez_compressed write (stored or deflated)"
            )
        stored = info.compress_type == zipfile.ZIP_STORED
        if info.file_size > (1 if stored else MAX_DEFLATE_RATIO) * info.compress_size + 64:
            raise DataError(
                f"{where}: the zip directory says {info.file_size:,} bytes come from "
                f"{info.compress_size:,} stored bytes, which is impossible; the file is damaged"
            )
        with self._reading(name), self.archive.open(info) as member:
            shape, dtype = _header(member, where)
            _check_size(where, shape, dtype, info.file_size - member.tell())
        return shape, dtype

    def nbytes(self, name: str) -> int:
        """The size of array ``name`` in memory, from its checked header."""
        shape, dtype = self.header(name)
        return math.prod(shape) * dtype.itemsize

    def load(self, name: str) -> np.ndarray:
        self.header(name)
        with self._reading(name), self.archive.open(self.members[name]) as member:
            return np.lib.format.read_array(member, allow_pickle=False)

    def _reading(self, name: str):
        return _errors_as_data_errors(f"{self.path}: array {name!r} cannot be read")

    def close(self) -> None:
        self.archive.close()

    def __enter__(self) -> Npz:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@contextlib.contextmanager
def _errors_as_data_errors(what: str):
    """Turn what NumPy and zipfile raise for a damaged member into a DataError."""
    try:
        yield
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{what}: {_one_line(exc)}") from None


def _header(f, where) -> tuple[tuple, np.dtype]:
    """(shape, dtype) from the .npy header at the start of ``f``; refuses object dtypes."""
    version = np.lib.format.read_magic(f)
    if version not in _HEADER_READERS:
        raise ValueError(f".npy format version {version[0]}.{version[1]} is not supported")
    shape, _, dtype = _HEADER_READERS[version](f)
    if dtype.hasobject:
        raise DataError(
            f"{where} holds Python objects, which would need pickle to load; bptrain never "
            "loads pickles; save it as a numeric array"
        )
    return tuple(shape), dtype


def _check_size(where, shape: tuple, dtype: np.dtype, available: int) -> None:
    need = math.prod(shape) * dtype.itemsize
    if need > available:
        raise DataError(
            f"{where}: its header declares an array of shape {shape} and dtype {dtype} "
            f"({format_bytes(need)}), but only {available:,} bytes of data follow; the file is "
            "truncated or damaged"
        )


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
