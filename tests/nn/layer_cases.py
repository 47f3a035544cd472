"""Every layer of the core, and the models and optimizers that train them, on tiny inputs.

The checked-backend tests (``tests/nn/test_checked_backend.py``) run them on the CPU with a
strict non-NumPy array namespace, and ``bench/bench_gpu.py`` runs the same list on a GPU.
``LAYERS``: (name, make layer, input shape with the batch axis, integer inputs below this
bound or None, training mode). ``MODELS``: (name, make layer list, per-sample input shape,
integer inputs or None).
"""

from __future__ import annotations

import numpy as np

from bptrain import nn
from bptrain.nn import backend


def _seq(*makes):
    """A factory of a Sequential made of fresh layers from ``makes``."""
    return lambda: nn.Sequential([make() for make in makes])


LAYERS = [
    ("dense_relu", lambda: nn.Dense(5, activation="relu"), (3, 4), None, False),
    ("dense_l2_softmax", lambda: nn.Dense(4, activation="softmax", kernel_regularizer="l2"),
     (3, 6), None, False),
    ("activation_gelu", lambda: nn.Activation("gelu"), (3, 5), None, False),
    ("activation_elu", lambda: nn.Activation("elu"), (3, 5), None, False),
    ("flatten", lambda: nn.Flatten(), (2, 2, 3, 3), None, False),
    ("reshape", lambda: nn.Reshape([3, 4]), (2, 12), None, False),
    ("dropout", lambda: nn.Dropout(0.4), (4, 6), None, True),
    ("batchnorm_train", lambda: nn.BatchNorm(), (6, 5), None, True),
    ("batchnorm_images", lambda: nn.BatchNorm(), (3, 2, 4, 4), None, True),
    ("conv_valid", lambda: nn.Conv2D(3, 3, activation="tanh"), (2, 2, 6, 6), None, False),
    ("conv_same_stride", lambda: nn.Conv2D(2, 3, strides=2, padding="same"), (2, 2, 7, 7),
     None, False),
    ("conv_dilated", lambda: nn.Conv2D(2, 2, dilation=2, padding=1), (2, 1, 6, 6), None, False),
    ("maxpool", lambda: nn.MaxPool2D(2), (2, 2, 6, 6), None, False),
    ("maxpool_overlap_same", lambda: nn.MaxPool2D(3, strides=2, padding="same"), (2, 2, 7, 7),
     None, False),
    ("avgpool_same", lambda: nn.AvgPool2D(3, strides=2, padding="same"), (2, 2, 7, 7), None,
     False),
    ("global_avgpool", lambda: nn.GlobalAvgPool2D(), (2, 3, 4, 4), None, False),
    ("conv_relu_maxpool_fused", _seq(lambda: nn.Conv2D(10, 3, activation="relu"),
     lambda: nn.MaxPool2D(2)), (2, 1, 8, 8), None, False),
    ("conv_conv_pool_fused", _seq(lambda: nn.Conv2D(4, 3), lambda: nn.Conv2D(3, 3),
     lambda: nn.Activation("relu"), lambda: nn.MaxPool2D(2)), (2, 2, 9, 9), None, False),
    ("simple_rnn", lambda: nn.SimpleRNN(4, return_sequences=True), (2, 3, 3), None, False),
    ("lstm", lambda: nn.LSTM(4), (2, 4, 3), None, False),
    ("lstm_sequences_backwards", lambda: nn.LSTM(3, return_sequences=True, go_backwards=True),
     (2, 3, 2), None, False),
    ("gru_reset_after", lambda: nn.GRU(4), (2, 4, 3), None, False),
    ("gru_reset_before", lambda: nn.GRU(3, reset_after=False, return_sequences=True),
     (2, 3, 2), None, False),
    ("bidirectional_lstm", lambda: nn.Bidirectional(nn.LSTM(3)), (2, 3, 2), None, False),
    ("embedding", lambda: nn.Embedding(7, 3), (3, 5), 7, False),
]  # fmt: skip

MODELS = [
    ("mlp", lambda: [
        nn.Flatten(), nn.Dense(16, activation="relu", kernel_regularizer="l2"), nn.BatchNorm(),
        nn.Dropout(0.3), nn.Dense(3, activation="softmax")], (4, 5), None),
    ("cnn", lambda: [
        nn.Conv2D(10, 3, activation="relu"), nn.MaxPool2D(2), nn.Conv2D(4, 3, padding="same"),
        nn.Activation("relu"), nn.MaxPool2D(2), nn.Flatten(), nn.Dense(3, activation="softmax")],
     (1, 10, 10), None),
    ("cnn_avg", lambda: [
        nn.Conv2D(3, 3, padding="same"), nn.BatchNorm(), nn.AvgPool2D(2, padding="same"),
        nn.GlobalAvgPool2D(), nn.Dense(3, activation="softmax")], (2, 7, 7), None),
    ("lstm", lambda: [nn.LSTM(8), nn.Dense(3, activation="softmax")], (5, 4), None),
    ("gru_rnn", lambda: [
        nn.GRU(6, return_sequences=True), nn.SimpleRNN(5), nn.Dense(3, activation="softmax")],
     (5, 4), None),
    ("embedding_bilstm", lambda: [
        nn.Embedding(10, 4), nn.Bidirectional(nn.LSTM(4)), nn.Dense(3, activation="softmax")],
     (6,), 10),
]  # fmt: skip

OPTIMIZERS = [
    {"type": "sgd", "learning_rate": 0.05, "momentum": 0.9, "nesterov": True},
    {"type": "rmsprop", "centered": True, "momentum": 0.5, "clipvalue": 0.5},
    {"type": "adam", "clipnorm": 1.0},
    {"type": "adamw", "global_clipnorm": 1.0},
    {"type": "adagrad", "learning_rate": 0.05},
]


def inputs(shape: tuple, high: int | None, seed: int = 0) -> np.ndarray:
    """Host inputs of ``shape``: floats (float64), or integer ids below ``high``."""
    rng = np.random.default_rng(seed)
    if high is not None:
        return rng.integers(0, high, shape)
    return rng.standard_normal(shape)


def labels(n: int, classes: int = 3, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, classes, n)


def train_steps(make, shape, high, optimizer, steps: int = 3):
    """(model, network, losses) after ``steps`` training steps of the model case on batches of
    8 put on the current backend (``inputs``, ``labels``)."""
    network = nn.Sequential(make())
    network.build(shape, np.random.default_rng(0))
    model = nn.Model(network, "sparse_categorical_crossentropy", optimizer)
    losses = []
    for step in range(steps):
        x = backend.asarray(inputs((8, *shape), high, seed=step).astype(np.float32))
        x = x.astype(np.int64) if high is not None else x
        losses.append(model.train_step(x, backend.asarray(labels(8, seed=step))))
    return model, network, losses
