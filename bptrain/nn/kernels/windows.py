"""Sliding-window geometry, and ``gather`` / ``scatter``: windows out of an image and back.

A 2-D sliding window (a convolution or pooling kernel) is described by ``Windows``: input size,
kernel size, stride, dilation and padding, and from them the output size. For each kernel
offset (i, j) it knows which output positions see a real (unpadded) input pixel and which
pixels those are, as slices, so ``gather`` (windows out of an image) and ``scatter`` (its
adjoint, gradients back into the image) loop over kernel offsets only, never over batch items,
channels or positions. Padding is never materialised: padded positions are not read (their
entries in a reused buffer keep the fill value they were given once) and not written back.

Shapes: x (..., H, W) for any leading axes (N, C or C, N); windows (kh, kw, ..., H', W').
"""

from __future__ import annotations

import functools
import math
import operator
from dataclasses import dataclass


def _ints(value, what: str, expected: str) -> tuple[int, int]:
    """An int (used twice) or a pair of ints (a list from YAML too) as a pair of ints."""
    if isinstance(value, str | bool) or (isinstance(value, list | tuple) and len(value) != 2):
        raise ValueError(f"{what} must be {expected}, got {value!r}")
    both = value if isinstance(value, list | tuple) else (value, value)
    try:
        return operator.index(both[0]), operator.index(both[1])
    except TypeError:
        raise ValueError(f"{what} must be {expected}, got {value!r}") from None


def pair(value, what: str) -> tuple[int, int]:
    """An int or a pair of ints as a pair of positive ints (``what`` names it in errors)."""
    a, b = _ints(value, what, "an int or a pair of ints")
    if a < 1 or b < 1:
        raise ValueError(f"{what} must be positive, got {value!r}")
    return a, b


def check_padding(padding) -> str | tuple[int, int]:
    """``"valid"``, ``"same"`` (any case), or an int or pair of non-negative ints of zeros added
    on each side (top and bottom, left and right)."""
    expected = "'valid', 'same' or an int"
    if isinstance(padding, str):
        if padding.lower() not in ("valid", "same"):
            raise ValueError(f"padding must be {expected}, got {padding!r}")
        return padding.lower()
    a, b = _ints(padding, "padding", expected)
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


def seen(size: int, shift: int, step: int, n_out: int) -> tuple[slice, slice] | None:
    """Along one axis of ``size`` input pixels, outputs 0..n_out-1 that read input pixel
    ``shift + step * output``: (the outputs that read a real pixel, those pixels) as slices, or
    None when every one reads padding."""
    lo = max(0, math.ceil(-shift / step))
    hi = min(n_out, (size - 1 - shift) // step + 1)
    if hi <= lo:
        return None
    start = lo * step + shift
    return slice(lo, hi), slice(start, start + (hi - lo - 1) * step + 1, step)


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
        pad = (top, bottom, left, right)
        geometry = cls(tuple(in_hw), tuple(kernel), tuple(stride), tuple(dilation), pad)
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
            len(offsets) < self.kernel[axis]
            or any((out.start, out.stop) != (0, self.out_hw[axis]) for _, out, _ in offsets)
            for axis, offsets in enumerate(self._per_axis)
        )

    def axis_offsets(self, axis: int) -> list:
        """[(offset, output slice, input slice)] along ``axis`` (0: rows, 1: columns) for each
        kernel offset that some output position sees the input through."""
        return self._per_axis[axis]

    @functools.cached_property
    def _per_axis(self) -> tuple:
        result = []
        for axis in (0, 1):
            size, k = self.in_hw[axis], self.kernel[axis]
            s, d, n_out = self.stride[axis], self.dilation[axis], self.out_hw[axis]
            # shift: the input index that output 0 reads through kernel offset i
            found = [(i, seen(size, i * d - self.pad[2 * axis], s, n_out)) for i in range(k)]
            result.append([(i, *slices) for i, slices in found if slices])
        return tuple(result)

    @functools.cached_property
    def _offsets(self) -> list:
        return [
            (i, j, orow, ocol, irow, icol)
            for i, orow, irow in self.axis_offsets(0)
            for j, ocol, icol in self.axis_offsets(1)
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
    def two_pass(self) -> bool:
        """Whether ``gather`` and ``scatter`` go in two passes through a work array
        (kw, ..., H, W'): the kw column offsets of every input row, then the kh row offsets as
        whole (H', W') blocks, which are contiguous when the vertical stride is 1. That moves
        fewer short rows than kh*kw single passes, and short rows are where NumPy's time goes:
        for the 3x3, 32-channel layer of the benchmark, gather 0.52 ms instead of 0.68 and
        scatter 1.45 instead of 1.68. Not for windows that tile (pooling's fast path)."""
        return self.stride[0] == 1 and self.kernel[0] > 1 and not self.tiles

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


def gather(x, geometry: Windows, out, work=None):
    """Copy every window's pixels out of x (..., H, W) into ``out`` (kh, kw, ..., H', W').

    Entries whose pixel falls into the padding are not written: the caller fills ``out`` once
    with the padding value (0 for a convolution, -inf for max-pooling) and may then reuse it.
    With ``work`` (see ``two_pass``) the copy goes column offsets first, then row offsets.
    """
    if work is not None and geometry.two_pass:
        for j, ocol, icol in geometry.axis_offsets(1):
            work[j][..., :, ocol] = x[..., :, icol]
        for i, orow, irow in geometry.axis_offsets(0):
            out[i][..., orow, :] = work[..., irow, :]
        return out
    for i, j, region, view in geometry.window_views(x):
        out[i, j][region] = view
    return out


def scatter(parts, geometry: Windows, out, work=None):
    """The adjoint of ``gather``: add ``parts`` (kh, kw, ..., H', W') back into ``out``
    (..., H, W), which is overwritten. Overlapping windows accumulate, as ``np.add.at`` would,
    at the speed of whole-array additions; disjoint windows are assigned. With ``work`` (see
    ``two_pass``) the sums go row offsets first, then column offsets."""
    if work is not None and geometry.two_pass:
        _sum_along(work, -2, geometry.axis_offsets(0), lambda i, orow: parts[i][..., orow, :])
        _sum_along(out, -1, geometry.axis_offsets(1), lambda j, ocol: work[j][..., :, ocol])
        return out
    if not geometry.covers:
        out.fill(0)
    for i, j, region, view in geometry.window_views(out):
        if geometry.disjoint:
            view[...] = parts[i, j][region]
        else:
            view += parts[i, j][region]
    return out


def _sum_along(out, axis: int, offsets: list, part) -> None:
    """Overwrite ``out`` with the sum, over ``offsets`` [(k, out slice, in slice)] along
    ``axis`` (-2 or -1), of ``part(k, out slice)`` placed at the in slice; zero elsewhere.

    The first part is assigned, not added, and when its slice is contiguous only the rest of
    the axis is zeroed: for the 3x3 layer of the benchmark col2im takes 1.09 ms instead of
    1.36 (a fill and an addition pass fewer per axis).
    """

    def at(s: slice) -> tuple:
        return (Ellipsis, s) if axis == -1 else (Ellipsis, s, slice(None))

    (k, first_out, first_in), *rest = offsets
    if first_in.step == 1:
        out[at(slice(0, first_in.start))] = 0
        out[at(slice(first_in.stop, None))] = 0
        out[at(first_in)] = part(k, first_out)
    else:
        out.fill(0)
        rest = offsets
    for k, o, i in rest:
        out[at(i)] += part(k, o)
