"""Sliding-window geometry, and im2col / col2im for convolutions.

A 2-D sliding window (a convolution or pooling kernel) is described by ``Windows``: input size,
kernel size, stride, dilation and padding, and from them the output size. ``Windows.offsets()``
says, for each kernel offset (i, j), which output positions see a real (unpadded) input pixel and
which input pixels those are, as slices. Everything here loops over kernel offsets only
(kh * kw iterations), never over batch items, channels or output positions, and padding is never
materialised: positions that fall into the padding are simply not read (their column entries
stay zero) or not written back.

Column layout. ``im2col`` writes ``cols`` of shape (C, kh, kw, N, Ho, Wo), used as the matrix
(C*kh*kw, N*Ho*Wo). With the kernel as (F, C*kh*kw) the forward GEMM ``kernel @ cols`` is one
large product whose rows are filters; the two other layouts one could pick are slower here:

- per-sample (N, C*kh*kw, Ho*Wo) gives NCHW output directly, but it is N small GEMMs;
- position-major (N*Ho*Wo, C*kh*kw) scatters every im2col write across the row.

In this layout each kernel offset is a single strided copy whose innermost run is a row of the
output, and the GEMM result (F, N, Ho, Wo) needs one transposed copy to become NCHW, which the
layer fuses with the bias addition.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

from bptrain.nn import backend


def pair(value, what: str) -> tuple[int, int]:
    """An int or a pair of ints as a pair of positive ints (``what`` names it in errors)."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value, value)
    try:
        a, b = (int(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be an int or a pair of ints, got {value!r}") from None
    if a < 1 or b < 1:
        raise ValueError(f"{what} must be positive, got {value!r}")
    return a, b


def check_padding(padding) -> str | tuple[int, int]:
    """``"valid"``, ``"same"`` (any case), an int or a pair of non-negative ints."""
    if isinstance(padding, str):
        if padding.lower() not in ("valid", "same"):
            raise ValueError(f"padding must be 'valid', 'same' or an int, got {padding!r}")
        return padding.lower()
    if isinstance(padding, int) and not isinstance(padding, bool):
        padding = (padding, padding)
    try:
        a, b = (int(v) for v in padding)
    except (TypeError, ValueError):
        raise ValueError(f"padding must be 'valid', 'same' or an int, got {padding!r}") from None
    if a < 0 or b < 0:
        raise ValueError(f"padding must be non-negative, got {padding!r}")
    return a, b


def _pad_1d(padding, size: int, kernel: int, stride: int, dilation: int, axis: int):
    """(before, after) padding along one axis. "same" follows Keras: the output has
    ceil(size / stride) positions and an odd total pads one more after than before."""
    if padding == "valid":
        return 0, 0
    if padding == "same":
        out = -(-size // stride)
        total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
        return total // 2, total - total // 2
    return padding[axis], padding[axis]


@dataclass(frozen=True)
class Windows:
    """The geometry of a 2-D sliding window over an (H, W) input.

    ``pad`` is (top, bottom, left, right); ``out_hw`` is the output size.
    """

    in_hw: tuple[int, int]
    kernel: tuple[int, int]
    stride: tuple[int, int]
    dilation: tuple[int, int]
    pad: tuple[int, int, int, int]

    @classmethod
    def create(cls, in_hw, kernel, stride=(1, 1), dilation=(1, 1), padding="valid") -> Windows:
        padding = check_padding(padding)
        (h, w), (kh, kw), (sh, sw), (dh, dw) = in_hw, kernel, stride, dilation
        top, bottom = _pad_1d(padding, h, kh, sh, dh, 0)
        left, right = _pad_1d(padding, w, kw, sw, dw, 1)
        geometry = cls(tuple(in_hw), tuple(kernel), tuple(stride), tuple(dilation),
                       (top, bottom, left, right))  # fmt: skip
        ho, wo = geometry.out_hw
        if ho < 1 or wo < 1:
            raise ValueError(
                f"a {kh}x{kw} window (dilation {dh}x{dw}) does not fit the {h}x{w} input "
                f"with padding {padding!r}"
            )
        return geometry

    @functools.cached_property
    def out_hw(self) -> tuple[int, int]:
        (h, w), (kh, kw), (sh, sw), (dh, dw) = self.in_hw, self.kernel, self.stride, self.dilation
        top, bottom, left, right = self.pad
        return (
            (h + top + bottom - (kh - 1) * dh - 1) // sh + 1,
            (w + left + right - (kw - 1) * dw - 1) // sw + 1,
        )

    @functools.cached_property
    def padded(self) -> bool:
        """True when some window reaches into the padding (so some column entries are zero)."""
        return any(
            out is None or (out.start, out.stop) != (0, self.out_hw[axis])
            for axis in (0, 1)
            for _, out, _ in self._axis_offsets(axis)
        )

    def _axis_offsets(self, axis: int):
        """For each kernel offset along ``axis``: (offset, output slice, input slice);
        the slices are None when no output position of this offset sees the input."""
        size, k, s, d = self.in_hw[axis], self.kernel[axis], self.stride[axis], self.dilation[axis]
        before = self.pad[2 * axis]
        n_out = self.out_hw[axis]
        result = []
        for i in range(k):
            shift = i * d - before  # input index of output position 0 at this offset
            lo = max(0, math.ceil(-shift / s))
            hi = min(n_out, (size - 1 - shift) // s + 1)
            if hi <= lo:
                result.append((i, None, None))
                continue
            start = lo * s + shift
            result.append((i, slice(lo, hi), slice(start, start + (hi - lo - 1) * s + 1, s)))
        return result

    @functools.cached_property
    def _offsets(self) -> list:
        return [
            (i, j, orow, ocol, irow, icol)
            for i, orow, irow in self._axis_offsets(0)
            if orow is not None
            for j, ocol, icol in self._axis_offsets(1)
            if ocol is not None
        ]

    def offsets(self) -> list:
        """(i, j, out_rows, out_cols, in_rows, in_cols) for every kernel offset that sees some
        input: output positions [out_rows, out_cols] read input pixels [in_rows, in_cols]."""
        return self._offsets

    @functools.cached_property
    def tiles(self) -> bool:
        """True when the windows tile the input: stride == kernel, no dilation, no padding."""
        return self.stride == self.kernel and self.dilation == (1, 1) and not self.padded

    @functools.cached_property
    def disjoint(self) -> bool:
        """True when no input pixel is in two windows (so backward may assign, not add)."""
        return all(
            s >= (k - 1) * d + 1
            for s, k, d in zip(self.stride, self.kernel, self.dilation, strict=True)
        )

    @functools.cached_property
    def covers(self) -> bool:
        """True when every input pixel is in some window (so backward needs no zero-fill)."""
        (ho, wo), (kh, kw) = self.out_hw, self.kernel
        return self.tiles and (ho * kh, wo * kw) == self.in_hw

    def window_views(self, a) -> list:
        """[(i, j, region, view)]: for each kernel offset (i, j), the view of ``a`` (..., H, W)
        holding that offset's pixel of every window whose output position is in ``region``
        (an index into (..., H', W'))."""
        if self.tiles:  # fast path: one reshape, (..., H'*kh, W'*kw) -> (..., H', kh, W', kw)
            (ho, wo), (kh, kw) = self.out_hw, self.kernel
            a6 = a[..., : ho * kh, : wo * kw].reshape(*a.shape[:-2], ho, kh, wo, kw)
            return [(i, j, _ALL, a6[..., i, :, j]) for i in range(kh) for j in range(kw)]
        return [
            (i, j, (Ellipsis, orow, ocol), a[..., irow, icol])
            for i, j, orow, ocol, irow, icol in self._offsets
        ]


_ALL = (Ellipsis,)


def gather(x, geometry: Windows, out):
    """Copy every window's pixels out of x (..., H, W) into ``out`` (kh, kw, ..., H', W').

    Entries whose pixel falls into the padding are not written: the caller fills ``out`` once
    with the padding value (0 for a convolution, -inf for max-pooling) and may then reuse it.
    """
    for i, j, region, view in geometry.window_views(x):
        out[i, j][region] = view
    return out


def scatter(parts, geometry: Windows, out):
    """The adjoint of ``gather``: add ``parts`` (kh, kw, ..., H', W') back into ``out``
    (..., H, W), which is overwritten. Overlapping windows accumulate, as ``np.add.at`` would,
    at the speed of whole-array additions; disjoint windows are assigned."""
    if not geometry.covers:
        out.fill(0)
    for i, j, region, view in geometry.window_views(out):
        if geometry.disjoint:
            view[...] = parts[i, j][region]
        else:
            view += parts[i, j][region]
    return out


def im2col(x, geometry: Windows, out=None):
    """x: (N, C, H, W) -> cols (C*kh*kw, N*H'*W'), rows ordered (c, i, j), columns (n, h', w').

    ``out`` (C, kh, kw, N, H', W') may be a reused buffer, zeroed once when allocated if the
    geometry is padded.
    """
    n, c = x.shape[:2]
    (kh, kw), (ho, wo) = geometry.kernel, geometry.out_hw
    if out is None:
        out = backend.xp.zeros((c, kh, kw, n, ho, wo), dtype=x.dtype)
    gather(x.transpose(1, 0, 2, 3), geometry, out.transpose(1, 2, 0, 3, 4, 5))
    return out.reshape(c * kh * kw, n * ho * wo)


def col2im(cols, x_shape: tuple, geometry: Windows, out=None):
    """The adjoint of ``im2col``: cols (C*kh*kw, N*H'*W') -> dx (N, C, H, W)."""
    n, c = x_shape[:2]
    (kh, kw), (ho, wo) = geometry.kernel, geometry.out_hw
    dx = out if out is not None else backend.xp.empty(x_shape, dtype=cols.dtype)
    cols = cols.reshape(c, kh, kw, n, ho, wo).transpose(1, 2, 0, 3, 4, 5)
    scatter(cols, geometry, dx.transpose(1, 0, 2, 3))
    return dx
