"""Layers by name: the ``type`` a YAML model section uses is the class name."""

from bptrain.nn.layers.bidirectional import Bidirectional
from bptrain.nn.layers.conv import Conv2D
from bptrain.nn.layers.core import Activation, Dense
from bptrain.nn.layers.dropout import Dropout
from bptrain.nn.layers.embedding import Embedding
from bptrain.nn.layers.gru import GRU
from bptrain.nn.layers.lstm import LSTM
from bptrain.nn.layers.normalization import BatchNorm
from bptrain.nn.layers.pooling import AvgPool2D, GlobalAvgPool2D, MaxPool2D
from bptrain.nn.layers.reshaping import Flatten, Reshape
from bptrain.nn.layers.rnn import SimpleRNN
from bptrain.nn.layers.sequential import Sequential

LAYERS: dict[str, type] = {
    cls.__name__: cls
    for cls in (
        Dense,
        Activation,
        Flatten,
        Reshape,
        Dropout,
        Sequential,
        Conv2D,
        MaxPool2D,
        AvgPool2D,
        GlobalAvgPool2D,
        BatchNorm,
        Embedding,
        SimpleRNN,
        LSTM,
        GRU,
        Bidirectional,
    )
}

__all__ = [
    "GRU",
    "LAYERS",
    "LSTM",
    "Activation",
    "AvgPool2D",
    "BatchNorm",
    "Bidirectional",
    "Conv2D",
    "Dense",
    "Dropout",
    "Embedding",
    "Flatten",
    "GlobalAvgPool2D",
    "MaxPool2D",
    "Reshape",
    "Sequential",
    "SimpleRNN",
]
