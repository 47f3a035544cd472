"""Where a run computes: ``training.device: cpu`` (NumPy) or ``gpu`` (CuPy).

``on_device(device)`` switches the core's array module (``bptrain.nn.backend``) for the run and
back afterwards. On a GPU the trainer copies the dataset to the device once and slices batches
there; losses, metrics and weights come back to the host only to be logged or written, so
checkpoints are the same files whichever device wrote them.
"""

from __future__ import annotations

import contextlib
import importlib

from bptrain.errors import DeviceError
from bptrain.nn import backend

DEVICES = ("cpu", "gpu")
INSTALL_HINT = "pip install 'bptrain[gpu]' (CuPy for CUDA 12)"


def gpu_module():
    """The CuPy module, once it has found a GPU; DeviceError (one line) saying what is missing:
    CuPy, or a GPU that CuPy can use."""
    try:
        cupy = importlib.import_module("cupy")
    except ImportError as exc:  # CuPy missing, or its CUDA libraries (a message of many lines)
        raise DeviceError(
            f"training.device: gpu needs CuPy ({_first_line(exc)}): {INSTALL_HINT}"
        ) from None
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDA driver missing or broken: CuPy raises its own types
        raise DeviceError(
            f"training.device: gpu, but CuPy finds no GPU: {_first_line(exc)}"
        ) from None
    if count < 1:
        raise DeviceError("training.device: gpu, but CuPy finds no GPU on this machine")
    return cupy


def _first_line(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def array_module(device: str):
    """What ``backend.use`` takes for ``device`` ("cpu" or "gpu"): "numpy", "cupy", or the
    stand-in namespace that tests put in ``gpu_module``'s place."""
    if device not in DEVICES:
        raise DeviceError(f"unknown device {device!r}: expected cpu or gpu")
    if device == "cpu":
        return "numpy"
    module = gpu_module()
    return "cupy" if getattr(module, "__name__", "") == "cupy" else module  # (tests: a stand-in)


@contextlib.contextmanager
def on_device(device: str):
    """Run the block with the core on ``device``; the previous array module afterwards."""
    before = backend.name if backend.name in ("numpy", "cupy") else backend.xp
    backend.use(array_module(device))
    try:
        yield
    finally:
        backend.use(before)
