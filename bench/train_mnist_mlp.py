"""Train the seed MLP (Dense 128 relu, Dense 10 softmax; Adam 1e-3, batch 32, 10 epochs) on the
full MNIST training set through the Python API and print the test accuracy (target >= 97.5%).
It trains as ``bptrain fit`` would: with the BLAS threads ``fit`` picks for this model and
denormals flushed to zero.

    python -m bench.train_mnist_mlp
"""

from __future__ import annotations

import time

import numpy as np
from threadpoolctl import threadpool_limits

from bench.common import mnist
from bptrain.data import iterate_minibatches
from bptrain.nn import Adam, Dense, Flatten, Model, Sequential
from bptrain.train.denormals import flush_denormals
from bptrain.train.threads import default_threads


def main(epochs: int = 10, batch_size: int = 32, seed: int = 0) -> float:
    x, y = mnist("train")
    x_test, y_test = mnist("test")
    network = Sequential(
        [Flatten(), Dense(128, activation="relu"), Dense(10, activation="softmax")]
    )
    network.build(x.shape[1:], np.random.default_rng(seed))
    model = Model(network, "sparse_categorical_crossentropy", Adam(1e-3))
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    threads = default_threads(network, batch_size)
    for epoch in range(1, epochs + 1):
        order = rng.permutation(len(x))
        with threadpool_limits(threads), flush_denormals():
            losses = [
                model.train_step(xb, yb) for xb, yb in iterate_minibatches(x, y, batch_size, order)
            ]
            accuracy = float((model.predict(x_test).argmax(axis=1) == y_test).mean())
        print(f"epoch {epoch:2d}  loss {np.mean(losses):.4f}  test accuracy {accuracy:.4f}")
    print(f"trained in {time.perf_counter() - start:.1f} s; final test accuracy {accuracy:.4f}")
    return accuracy


if __name__ == "__main__":
    main()
