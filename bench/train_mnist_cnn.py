"""Train configs/mnist_cnn.yaml through bptrain's Python API and print the MNIST test accuracy
(target: >= 99.0% after its 5 epochs).

    python -m bench.train_mnist_cnn [--config PATH] [--threads N] [key.path=value ...]

``bptrain.train.fit`` is what ``bptrain fit`` runs: the config is validated and built by
``bptrain.config``, the run directory goes to a temporary folder, and the trained model is
scored here on the 10,000 test images.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np

from bptrain.config import load_config
from bptrain.data import load_dataset
from bptrain.train.fit import fit


def main() -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/mnist_cnn.yaml")
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads (training.threads)")
    parser.add_argument("overrides", nargs="*", help="key.path=value overrides")
    args = parser.parse_args()
    config = load_config(args.config)
    overrides = [f"training.threads={args.threads}", *args.overrides]
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as runs:
        result = fit(config, runs_root=runs, progress="plain", overrides=overrides)
    seconds = time.perf_counter() - start
    data = load_dataset(dict(config.data), config.seed)
    predicted = result.model.predict(data.x_test, batch_size=500).argmax(axis=1)
    accuracy = float((predicted == np.asarray(data.y_test)).mean())
    for row in result.history:
        print({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()})
    print(f"{config.name}: trained in {seconds:.0f} s; test accuracy {accuracy:.4f}")
    return accuracy


if __name__ == "__main__":
    main()
