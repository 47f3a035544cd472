"""Keras 3 on JAX, the second CPU peer: the benchmark models and their step loop.

JAX compiles Keras' whole training step with XLA (one fused program per step), which makes it
the strongest CPU peer for small models. ``KERAS_BACKEND=jax`` is set before Keras is imported
(importing this module sets it unless the environment names a backend already). XLA picks its
own thread count at startup (every core); it cannot be changed inside a process, so Keras is
timed at that count while bptrain and PyTorch are scored at their best of ``thread_counts()``.

Images are NHWC here, Keras' native layout on the CPU; the same pixels and labels as the other
sides, in the same batch order.
"""

from __future__ import annotations

import os

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "jax")


def model(kind: str, lr: float = 1e-3, logits: bool = True):
    """The benchmark model ``kind`` (``mlp``, ``cnn``, ``lstm``), compiled with Adam(``lr``) on
    sparse cross-entropy; from logits (as the other sides' step loops) or, with
    ``logits=False``, with a softmax output as the Keras examples write it."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(0)
    head = layers.Dense(10, activation=None if logits else "softmax")
    body = {
        "mlp": lambda: [layers.Flatten(), layers.Dense(128, activation="relu")],
        "cnn": lambda: [
            layers.Conv2D(32, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Conv2D(64, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Flatten(),
            layers.Dense(128, activation="relu"),
        ],
        "lstm": lambda: [layers.Reshape((28, 28)), layers.LSTM(128)],
    }[kind]()
    shape = (28, 28, 1) if kind == "cnn" else (1, 28, 28)
    net = keras.Sequential([keras.Input(shape), *body, head])
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=logits)
    net.compile(optimizer=keras.optimizers.Adam(lr), loss=loss)
    return net


def images(x: np.ndarray, kind: str) -> np.ndarray:
    """x (N, 1, 28, 28) as the Keras model of ``kind`` takes it (NHWC for the CNN)."""
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if kind == "cnn" else x


def keras_loop(kind: str, x, y, order: np.ndarray, batch_size: int, lr: float = 1e-3):
    """``bench.common.bptrain_loop`` for Keras: one ``fit`` epoch over ``order`` in batches of
    ``batch_size`` (no shuffling), compiled by a warm-up epoch over the first batches. The
    rows are gathered once, outside the timed runs."""
    net = model(kind, lr)
    xs, ys = images(x[order], kind), y[order]
    net.fit(xs[: 3 * batch_size], ys[: 3 * batch_size], batch_size, shuffle=False, verbose=0)

    def run(threads):
        net.fit(xs, ys, batch_size=batch_size, epochs=1, shuffle=False, verbose=0)

    return run


def version() -> str:
    import jax
    import keras

    return f"keras {keras.__version__}, jax {jax.__version__} ({keras.backend.backend()})"
