"""A small builder for ONNX graphs: named constants and nodes with one or more outputs, then
``model()``. Only ``bptrain.export`` imports it, and it imports ``onnx`` (an optional extra)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17  # LSTM, GRU, RNN and Softmax over the last axis as used here; any current runtime
IR_VERSION = 8  # the oldest IR of opset 17, for older runtimes


class Graph:
    def __init__(self):
        self.nodes: list = []
        self.constants: list = []
        self._count = 0

    def name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def const(self, array, hint: str = "c") -> str:
        """A constant tensor (weights: float32; shapes and indexes: int64 arrays as given)."""
        array = np.asarray(array)
        if array.dtype.kind == "f":
            array = array.astype(np.float32)
        name = self.name(hint)
        self.constants.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def op(self, op_type: str, *inputs: str, outputs: int = 1, **attrs):
        """Add a node; returns its output's name (a list of names for ``outputs`` > 1)."""
        names = [self.name(op_type.lower()) for _ in range(outputs)]
        self.nodes.append(helper.make_node(op_type, list(inputs), names, **attrs))
        return names[0] if outputs == 1 else names

    def model(self, x: str, y: str, shapes: tuple, graph_name: str) -> onnx.ModelProto:
        """The model from input ``x`` to output ``y``, of per-sample ``shapes`` (input shape,
        output shape), for any batch size."""
        input_shape, output_shape = shapes
        self.nodes.append(helper.make_node("Identity", [y], ["y"]))
        inputs = [helper.make_tensor_value_info(x, TensorProto.FLOAT, ["N", *input_shape])]
        outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", *output_shape])]
        graph = helper.make_graph(self.nodes, graph_name, inputs, outputs, self.constants)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
        model.ir_version = IR_VERSION
        model.producer_name = "bptrain"
        return model
