"""The IDX file format of MNIST-like datasets, gzip-compressed or raw.

An IDX file is: two zero bytes, a type byte, a byte with the number of dimensions, one
big-endian uint32 per dimension, then the data in C order, big-endian.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from bptrain.errors import DataError

# type byte -> big-endian dtype
IDX_TYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {dtype.newbyteorder("="): code for code, dtype in IDX_TYPES.items()}
_CHUNK = 1 << 20


def magic_number(code: int, ndim: int) -> int:
    """The 4-byte magic number as an int, e.g. 0x00000803 for a 3-D ubyte file."""
    return code << 8 | ndim


def read_idx(path: str | os.PathLike, ndim: int, limit: int | None = None) -> np.ndarray:
    """Read an unsigned-byte IDX file with ``ndim`` dimensions (gzip is detected by content).

    Returns a uint8 array of the declared shape, or only its first ``limit`` items (then only
    that prefix is decompressed). Raises DataError naming the file when the magic number is
    wrong or the data are shorter or longer than the header declares.
    """
    path = Path(path)
    expected = magic_number(0x08, ndim)
    what = {1: "label data", 3: "pixel data"}.get(ndim, "data")
    try:
        with _open(path) as f:
            head = _read_upto(f, path, 4)
            if len(head) < 4:
                raise DataError(f"{path} is truncated: it ends inside the IDX header")
            (magic,) = struct.unpack(">I", head)
            if magic != expected:
                raise DataError(
                    f"{path} is not the expected IDX file: magic number 0x{magic:08X}, "
                    f"expected 0x{expected:08X} (unsigned bytes, {ndim} dimension(s))"
                )
            dims_raw = _read_upto(f, path, 4 * ndim)
            if len(dims_raw) < 4 * ndim:
                raise DataError(f"{path} is truncated: it ends inside the IDX header")
            shape = struct.unpack(f">{ndim}I", dims_raw)
            count = shape[0] if limit is None else min(shape[0], limit)
            shape = (count, *shape[1:])
            wanted = int(np.prod(shape))
            data = _read_upto(f, path, wanted)
            if len(data) < wanted:
                raise DataError(
                    f"{path} is truncated: expected {wanted} bytes of {what}, found {len(data)}"
                )
            if limit is None and _read_upto(f, path, 1):
                raise DataError(
                    f"{path} has more bytes than its header declares for shape {shape}; "
                    "the file is corrupt or not an IDX file"
                )
    except OSError as exc:  # unreadable file; BadGzipFile is an OSError too
        raise DataError(f"{path} cannot be read: {exc}") from exc
    return np.frombuffer(data, dtype=np.uint8).reshape(shape)


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write ``array`` as an IDX file; gzip-compressed when ``path`` ends with ".gz"."""
    array = np.asarray(array)
    code = _CODES[array.dtype.newbyteorder("=")]
    header = struct.pack(f">I{array.ndim}I", magic_number(code, array.ndim), *array.shape)
    payload = header + np.ascontiguousarray(array, dtype=IDX_TYPES[code]).tobytes()
    path = Path(path)
    path.write_bytes(gzip.compress(payload) if path.suffix == ".gz" else payload)


def _open(path: Path):
    with open(path, "rb") as probe:
        is_gzip = probe.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if is_gzip else open(path, "rb")


def _read_upto(f, path: Path, size: int) -> memoryview:
    """Read up to ``size`` bytes; fewer only at the end of the data (a cut gzip stream too)."""
    buf = memoryview(bytearray(size))
    got = 0
    try:
        while got < size:
            n = f.readinto(buf[got : min(size, got + _CHUNK)])
            if not n:
                break
            got += n
    except EOFError:  # the gzip stream was cut short: the caller reports a truncated file
        return buf[:got]
    except zlib.error as exc:
        raise DataError(f"{path} is not a valid gzip file: {exc}") from exc
    return buf[:got]
