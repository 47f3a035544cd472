"""Train the seed MLP (Dense 128 relu, Dense 10 softmax; Adam 1e-3, batch 32, 10 epochs) on the
full MNIST training set through the Python API and print the test accuracy (target >= 97.5%).

    python -m bench.train_mnist_mlp
"""

from __future__ import annotations

import time

import numpy as np

from bench.common import mnist
from bptrain.data import iterate_minibatches
from bptrain.nn import Adam, Dense, Flatten, Model, Sequential


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
    for epoch in range(1, epochs + 1):
        order = rng.permutation(len(x))
        losses = [
            model.train_step(xb, yb) for xb, yb in iterate_minibatches(x, y, batch_size, order)
        ]
        accuracy = float((model.predict(x_test).argmax(axis=1) == y_test).mean())
        print(f"epoch {epoch:2d}  loss {np.mean(losses):.4f}  test accuracy {accuracy:.4f}")
    print(f"trained in {time.perf_counter() - start:.1f} s; final test accuracy {accuracy:.4f}")
    return accuracy


if __name__ == "__main__":
    main()
