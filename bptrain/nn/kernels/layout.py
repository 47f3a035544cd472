"""How image batches are stored between the convolution layers.

Every image array a layer takes or returns is indexed (N, C, H, W), as the layer contract says.
Between Conv2D and the pools it is *stored* channel-major, as a transposed view of a contiguous
(C, N, H, W) array: that is the order a convolution's GEMM produces ((F, K) @ (K, N*H*W)) and
the order the next convolution's im2col reads, so no layer has to copy the batch into NCHW
order and back (two transposed copies per layer and pass: measured at 0.05-0.1 ms each on the
benchmark CNN's first layer output, 32x32x26x26 float32, and more where the data is not in
cache). NumPy computes the same values in any storage order, so a layer that does not care
(Dropout, BatchNorm, Flatten's copying reshape) simply gets a strided array.
"""

from __future__ import annotations

from bptrain.nn import backend


def channel_major(x) -> bool:
    """True when the (N, C, H, W) array ``x`` is stored as (C, N, H, W) and not also as NCHW
    (as it is when N or C is 1); a layer then works on ``x.transpose(1, 0, 2, 3)``."""
    return not x.flags.c_contiguous and x.transpose(1, 0, 2, 3).flags.c_contiguous


def as_channel_major(x):
    """``x`` (N, C, H, W) as a contiguous (C, N, H, W) array: a view when ``x`` is stored
    channel-major, else a copy."""
    return backend.xp.ascontiguousarray(x.transpose(1, 0, 2, 3))


def in_storage_order(f, *arrays, like):
    """``f(*arrays)`` for an elementwise ``f`` on (N, C, H, W) arrays, computed in the order
    ``like`` is stored: on their (C, N, H, W) views when it is channel-major, so the result
    is channel-major too. NumPy runs an elementwise operation several times slower when its
    operands' orders differ, and the layer that gets the result then works in the wrong order:
    the benchmark CNN's second ReLU and max pool measured 0.4 ms slower a step that way."""
    if channel_major(like):
        return f(*(a.transpose(1, 0, 2, 3) for a in arrays)).transpose(1, 0, 2, 3)
    return f(*arrays)
