"""The backprop core: layers with hand-written backward passes, losses, optimizers, and the
compiled ``Model`` that trains a network of layers.

Imports only NumPy (through ``backend``) and the standard library; knows nothing of files,
YAML or the command line.
"""

from bptrain.nn import (
    activations,
    backend,
    initializers,
    losses,
    optimizers,
    regularizers,
    schedules,
)
from bptrain.nn.gradcheck import check_layer, check_loss, check_model
from bptrain.nn.layer import Layer
from bptrain.nn.layers import (
    GRU,
    LAYERS,
    LSTM,
    Activation,
    AvgPool2D,
    BatchNorm,
    Bidirectional,
    Conv2D,
    Dense,
    Dropout,
    Embedding,
    Flatten,
    GlobalAvgPool2D,
    MaxPool2D,
    Reshape,
    Sequential,
    SimpleRNN,
)
from bptrain.nn.losses import (
    BinaryCrossentropy,
    CategoricalCrossentropy,
    Huber,
    MeanAbsoluteError,
    MeanSquaredError,
    SparseCategoricalCrossentropy,
)
from bptrain.nn.model import Model
from bptrain.nn.optimizers import SGD, Adagrad, Adam, AdamW, RMSprop
from bptrain.nn.parameter import Parameter, ParameterList
from bptrain.nn.regularizers import L1, L1L2, L2
from bptrain.nn.schedules import (
    CosineDecay,
    ExponentialDecay,
    ReduceLROnPlateau,
    StepDecay,
)

__all__ = [
    "GRU",
    "LAYERS",
    "LSTM",
    "SGD",
    "Activation",
    "Adagrad",
    "Adam",
    "AdamW",
    "AvgPool2D",
    "BatchNorm",
    "Bidirectional",
    "BinaryCrossentropy",
    "CategoricalCrossentropy",
    "Conv2D",
    "CosineDecay",
    "Dense",
    "Dropout",
    "Embedding",
    "ExponentialDecay",
    "Flatten",
    "GlobalAvgPool2D",
    "Huber",
    "L1",
    "L1L2",
    "L2",
    "Layer",
    "MaxPool2D",
    "MeanAbsoluteError",
    "MeanSquaredError",
    "Model",
    "Parameter",
    "ParameterList",
    "RMSprop",
    "ReduceLROnPlateau",
    "Reshape",
    "Sequential",
    "SimpleRNN",
    "SparseCategoricalCrossentropy",
    "StepDecay",
    "activations",
    "backend",
    "check_layer",
    "check_loss",
    "check_model",
    "initializers",
    "losses",
    "optimizers",
    "regularizers",
    "schedules",
]
