"""Checkpoint files: arrays in safetensors, everything else as JSON in its metadata; no pickle.

Arrays are named ``model/<layer>/<param>`` (weights and buffers such as BatchNorm statistics)
and ``optimizer/<slot>`` (flat slot buffers). The metadata holds ``format`` and
``format_version``, a JSON document ``state`` (resolved config, epoch, step, optimizer scalars,
schedule, callbacks, RNG, history, metrics.csv length, ...) and ``sha256``, a digest of the state
text and of every array's name, dtype, shape and bytes. Files are written atomically; a file that
is truncated, altered or of another version is refused with a CheckpointError saying so.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import safetensors.numpy

from bptrain.errors import CheckpointError
from bptrain.runs.atomic import write_bytes

FORMAT = "bptrain-checkpoint"
FORMAT_VERSION = 2
SUPPORTED_VERSIONS = (1, 2)
# Version 1 stored Adam's (and AdamW's) slots as m / (1 - beta_1) and v / (1 - beta_2); version
# 2 stores the moments m and v themselves. ``load`` converts version 1 files.
ADAM_DEFAULT_BETAS = {"beta_1": 0.9, "beta_2": 0.999}
# Leading bytes of files people may pass by mistake (or malice), for a clearer refusal.
FOREIGN = {
    b"PK": " but a zip archive (.npz, .pt)",
    b"\x93NUMPY": " but a .npy array",
    b"\x80": " but a pickle",
}


@dataclass
class Checkpoint:
    """``arrays``: name -> NumPy array; ``state``: JSON-ready metadata."""

    arrays: dict[str, np.ndarray]
    state: dict

    def section(self, prefix: str) -> dict[str, np.ndarray]:
        """The arrays under ``prefix/``, with the prefix removed."""
        n = len(prefix) + 1
        return {k[n:]: v for k, v in self.arrays.items() if k.startswith(prefix + "/")}


def save(path: str | os.PathLike, arrays: dict[str, np.ndarray], state: dict) -> None:
    """Write a checkpoint atomically (temp file, fsync, rename, fsync of the directory)."""
    write_bytes(path, encode(arrays, state))


def encode(arrays: dict[str, np.ndarray], state: dict) -> bytes:
    """A checkpoint file's bytes: the arrays, and the state as JSON with a checksum of both."""
    arrays = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
    text = json.dumps(state, sort_keys=True, allow_nan=True)
    metadata = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "state": text,
        "sha256": _digest(text, arrays),
    }
    return safetensors.numpy.save(arrays, metadata=metadata)


def load(path: str | os.PathLike) -> Checkpoint:
    """Read and verify a checkpoint; raises CheckpointError naming what is wrong."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint") from None
    except IsADirectoryError:
        raise CheckpointError(f"{path} is a directory, not a checkpoint file") from None
    except OSError as exc:
        raise CheckpointError(f"{path} cannot be read ({exc.strerror})") from None
    metadata = _header_metadata(path, data)
    if metadata.get("format") != FORMAT:
        raise CheckpointError(f"{path} is a safetensors file but not a bptrain checkpoint")
    version = metadata.get("format_version")
    if version not in {str(v) for v in SUPPORTED_VERSIONS}:
        supported = ", ".join(str(v) for v in SUPPORTED_VERSIONS)
        raise CheckpointError(
            f"{path} has checkpoint format version {version}, which this bptrain cannot read "
            f"(supported: {supported})"
        )
    try:
        arrays = safetensors.numpy.load(data)
    except Exception as exc:  # the library raises its own error types for malformed files
        raise CheckpointError(f"{path} is corrupt: {exc}") from None
    text = metadata.get("state", "")
    if _digest(text, arrays) != metadata.get("sha256"):
        raise CheckpointError(
            f"{path} fails its SHA-256 check: the file was modified or damaged; use another "
            "checkpoint (checkpoints/best.safetensors or last.safetensors)"
        )
    try:
        state = json.loads(text)
    except ValueError:
        raise CheckpointError(f"{path} has unreadable metadata") from None
    if version == "1":
        arrays = _adam_moments_from_version_1(arrays, state)
    return Checkpoint(arrays, state)


def _adam_moments_from_version_1(arrays: dict, state: dict) -> dict:
    """Version 1's Adam slots m / (1 - beta_1) and v / (1 - beta_2) as the moments m and v
    (equal to float32 rounding: one multiplication each)."""
    optimizer = state.get("config", {}).get("optimizer", {})
    if optimizer.get("type") not in ("adam", "adamw"):
        return arrays
    arrays = dict(arrays)
    for slot, beta in (("m", "beta_1"), ("v", "beta_2")):
        name = f"optimizer/{slot}"
        if name in arrays:
            factor = 1.0 - optimizer.get(beta, ADAM_DEFAULT_BETAS[beta])
            arrays[name] = arrays[name] * arrays[name].dtype.type(factor)
    return arrays


def _header_metadata(path: Path, data: bytes) -> dict:
    """Check the safetensors framing (header length, data length) and return the metadata."""
    if len(data) < 8:
        raise CheckpointError(f"{path} is truncated ({len(data)} bytes): not a checkpoint")
    if len(data) > 8 and data[8:9] != b"{":  # a safetensors header is JSON: it starts with {
        kind = next((k for magic, k in FOREIGN.items() if data.startswith(magic)), "")
        raise CheckpointError(
            f"{path} is not a bptrain checkpoint{kind} (no safetensors header); bptrain reads "
            "only its own safetensors checkpoints and never unpickles a file"
        )
    (n,) = struct.unpack("<Q", data[:8])
    if 8 + n > len(data):
        raise CheckpointError(
            f"{path} is truncated: its header needs {8 + n} bytes, the file has {len(data)}"
        )
    try:
        header = json.loads(data[8 : 8 + n])
    except ValueError:
        raise CheckpointError(f"{path} is not a safetensors checkpoint (bad header)") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path} is not a safetensors checkpoint (bad header)")
    ends = [
        int(v["data_offsets"][1])
        for k, v in header.items()
        if k != "__metadata__" and isinstance(v, dict) and "data_offsets" in v
    ]
    expected = 8 + n + max(ends, default=0)
    if len(data) < expected:
        raise CheckpointError(
            f"{path} is truncated: {len(data)} bytes of the {expected} its header declares"
        )
    if len(data) > expected:
        raise CheckpointError(
            f"{path} has {len(data) - expected} bytes more than its header declares; "
            "the file is damaged"
        )
    metadata = header.get("__metadata__") or {}
    return metadata if isinstance(metadata, dict) else {}


def _digest(text: str, arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256(text.encode("utf-8"))
    for name in sorted(arrays):
        a = arrays[name]
        h.update(f"\0{name}\0{a.dtype.str}\0{a.shape}\0".encode())
        h.update(np.ascontiguousarray(a).data)
    return h.hexdigest()
