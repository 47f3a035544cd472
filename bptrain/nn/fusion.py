"""Fusion: the one pass from the layer list a model is written as to the list that runs.

``fuse`` replaces neighbours that compute faster together by one fused layer
(``layers.fused``) with the same values and its own forward and backward:

- Conv2D -> MaxPool2D whose windows tile the output, when the columns are smaller than the
  output (``writes_pool_windows``): ``ConvMaxPool2D``.
- any layer with a ReLU activation -> MaxPool2D: ``ReLUAfterMaxPool``.

The fused softmax (or sigmoid) and cross-entropy are the loss's business (``losses``). A model
built with ``fuse=False`` (``model.fuse: false`` in a config) runs its plain layers.
"""

from __future__ import annotations

from bptrain.nn.activations import ReLU, Softmax
from bptrain.nn.layer import Layer
from bptrain.nn.layers.conv import Conv2D
from bptrain.nn.layers.fused import ConvMaxPool2D, ReLUAfterMaxPool
from bptrain.nn.layers.pooling import MaxPool2D


def fuse(layers: list[Layer]) -> list[Layer]:
    """The layers that run for built ``layers``: each fusable pair replaced by its fused layer
    (whose ``describe()`` says what it does), every other layer as it is."""
    runs, i = [], 0
    while i < len(layers):
        fused = _fused_pair(layers[i], layers[i + 1]) if i + 1 < len(layers) else None
        runs.append(fused or layers[i])
        i += 2 if fused else 1
    return runs


def _fused_pair(layer: Layer, after: Layer) -> Layer | None:
    if not isinstance(after, MaxPool2D):
        return None
    if isinstance(layer, Conv2D) and writes_pool_windows(layer, after):
        return ConvMaxPool2D(layer, after)
    if isinstance(layer.activation, ReLU):
        return ReLUAfterMaxPool(layer, after)
    return None


def writes_pool_windows(conv: Conv2D, pool: MaxPool2D) -> bool:
    """Whether ``conv`` should compute its output directly as the windows of ``pool``: the
    windows tile the output, the columns are smaller than it (C*kh*kw < filters) and the
    activation is elementwise (softmax over the last axis of windows would mix positions).
    For the benchmark CNN's second layer (32 -> 64) the columns are 4.5x the output and the
    pool's own gather is cheaper."""
    return (
        pool.geometry.tiles
        and conv.kernel.value[0].size < conv.filters
        and not isinstance(conv.activation, Softmax)
    )
