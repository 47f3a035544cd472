"""``bptrain export``: a trained model for other runtimes.

ONNX (``pip install bptrain[onnx]``): the graph takes raw inputs ``x`` (N, *input shape),
float32, as ``bptrain predict`` reads them (token ids as floats for an Embedding), applies the
run's ``data.scale`` statistics, the layers in inference form, and for a regressor trained
with ``data.scale_target`` maps the outputs back to the targets' units: its output ``y`` is
what ``bptrain predict`` computes (class probabilities, or values).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bptrain.errors import ConfigError

FORMATS = ("onnx",)


@dataclass
class Exported:
    path: Path
    checkpoint: Path
    layers: int
    scale: bool
    input_shape: tuple


def onnx_modules():
    """(onnx, Graph, CONVERTERS), or a ConfigError saying how to install onnx."""
    try:
        import onnx

        from bptrain.export.graph import Graph
        from bptrain.export.onnx_layers import CONVERTERS
    except ImportError:
        raise ConfigError(
            "ONNX export needs the onnx package: pip install 'bptrain[onnx]'"
        ) from None
    return onnx, Graph, CONVERTERS


def export_onnx(path, output: str | os.PathLike) -> Exported:
    """Write the model of checkpoint (or run) ``path`` to ``output`` as ONNX."""
    from bptrain.runs import checkpoint
    from bptrain.runs.atomic import write_bytes
    from bptrain.train.evaluate import checkpoint_path, restore_model

    onnx_modules()  # the error saying how to install onnx comes before anything is read
    ckpt_path = checkpoint_path(path)
    ckpt = checkpoint.load(ckpt_path)
    config, model = restore_model(ckpt)
    info = ckpt.state["data"]
    proto = onnx_model(model.network, info, config.name)
    write_bytes(output, proto.SerializeToString())
    input_shape = tuple(info["input_shape"])
    return Exported(
        Path(output), ckpt_path, len(model.network.layers), bool(info.get("scale")), input_shape
    )


def onnx_model(model, info: dict, name: str = "bptrain"):
    """The checked ONNX model of built ``model``, for data ``info`` as a checkpoint records it
    (``input_shape``, ``task``, ``scale``, ``scale_target``)."""
    onnx, Graph, converters = onnx_modules()
    input_shape = tuple(info["input_shape"])
    g = Graph()
    y = _scaled(g, "x", info.get("scale"), len(input_shape) + 1)
    for layer in model.layers:
        convert = converters.get(type(layer).__name__)
        if convert is None:
            raise ConfigError(
                f"layer {layer.name!r} ({type(layer).__name__}) has no ONNX export; the types "
                f"that export are {', '.join(converters)}"
            )
        y = convert(g, layer, y)
    y = _unscaled(g, y, info.get("scale_target") if info.get("task") == "regression" else None)
    proto = g.model("x", y, (input_shape, model.output_shape), name)
    onnx.checker.check_model(proto)
    return proto


def _scaled(g, x: str, scale: dict | None, ndim: int) -> str:
    """(x - shift) / divisor with the statistics shaped as ``predict.apply_scale`` shapes them."""
    if not scale:
        return x
    from bptrain.data.preprocess import _statistic

    shift = _statistic(scale["shift"], ndim)[0].astype(np.float32)
    divisor = _statistic(scale["divisor"], ndim)[0].astype(np.float32)
    return g.op("Div", g.op("Sub", x, g.const(shift, "shift")), g.const(divisor, "divisor"))


def _unscaled(g, y: str, stats: dict | None) -> str:
    """y * divisor + shift: regression outputs in the targets' own units."""
    if not stats:
        return y
    divisor = np.asarray(stats["divisor"], dtype=np.float32)
    shift = np.asarray(stats["shift"], dtype=np.float32)
    return g.op("Add", g.op("Mul", y, g.const(divisor, "divisor")), g.const(shift, "shift"))
