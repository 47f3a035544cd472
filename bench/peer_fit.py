"""A peer's standard MNIST training script, for ``bench.bench_fit`` to race ``bptrain fit``.

    python -m bench.peer_fit torch mlp --epochs 2     # or keras; models mlp, cnn, lstm

The models, batch sizes and optimizers of ``configs/mnist_{mlp,cnn,lstm}.yaml`` (the LSTM's
cosine schedule left out; its Adam clips each gradient's norm to 1), trained the way each
framework's documentation does it: Keras ``model.fit(x, y, validation_split=0.1)`` with a
softmax output, PyTorch a ``DataLoader`` over a ``TensorDataset`` (shuffled) and an evaluation
of the 10% validation part after every epoch. Prints one line per epoch with its seconds
(training and validation), as ``bptrain fit --progress plain`` does. ``--threads N`` sets
PyTorch's thread count (its default, every core, collapses when other processes load the
machine: OpenMP threads wait for each other); XLA keeps its own.
"""

from __future__ import annotations

import argparse
import time

from bench.common import mnist
from bench.keras_peer import images, model

BATCH = {"mlp": 32, "cnn": 64, "lstm": 64}
LR = {"mlp": 1e-3, "cnn": 1e-3, "lstm": 2e-3}


def fit_keras(kind: str, x, y, epochs: int, threads: int | None) -> None:
    import keras  # on JAX: importing bench.keras_peer set KERAS_BACKEND; XLA picks its threads

    net = model(kind, LR[kind], logits=False)
    if kind == "lstm":
        net.optimizer.clipnorm = 1.0

    class EpochTimes(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            print(f"epoch {epoch + 1}/{epochs}  ({time.perf_counter() - self.start:.2f}s)")

    net.fit(
        images(x, kind),
        y,
        batch_size=BATCH[kind],
        epochs=epochs,
        verbose=0,
        callbacks=[EpochTimes()],
        validation_split=0.1,
    )


def torch_model(kind: str):
    from torch import nn

    class Rows(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm, self.head = nn.LSTM(28, 128, batch_first=True), nn.Linear(128, 10)

        def forward(self, images):
            return self.head(self.lstm(images.reshape(-1, 28, 28))[0][:, -1])

    if kind == "lstm":
        return Rows()
    if kind == "mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))
    convs = [nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3), nn.ReLU()]
    head = [nn.MaxPool2d(2), nn.Flatten(), nn.Linear(1600, 128), nn.ReLU(), nn.Linear(128, 10)]
    return nn.Sequential(*convs, *head)


def fit_torch(kind: str, x, y, epochs: int, threads: int | None) -> None:
    import torch
    from torch.utils.data import DataLoader, TensorDataset, random_split

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = torch_model(kind)
    data = TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    train, val = random_split(data, [len(x) - len(x) // 10, len(x) // 10])
    loader = DataLoader(train, batch_size=BATCH[kind], shuffle=True)
    opt = torch.optim.Adam(net.parameters(), lr=LR[kind])
    loss_fn = torch.nn.CrossEntropyLoss()
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        net.train()
        for xb, yb in loader:
            opt.zero_grad()
            loss = loss_fn(net(xb), yb)
            loss.backward()
            if kind == "lstm":
                torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
        net.eval()
        with torch.no_grad():
            correct = sum((net(xb).argmax(1) == yb).sum().item() for xb, yb in DataLoader(val, 500))
        took = time.perf_counter() - start
        print(f"epoch {epoch}/{epochs}  val_accuracy {correct / len(val):.4f}  ({took:.2f}s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("framework", choices=["torch", "keras"])
    parser.add_argument("model", choices=sorted(BATCH))
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--limit", type=int, default=None, help="the first N training images")
    parser.add_argument("--threads", type=int, default=None, help="PyTorch's threads")
    args = parser.parse_args()
    x, y = mnist("train")
    x, y = x[: args.limit], y[: args.limit]
    (fit_torch if args.framework == "torch" else fit_keras)(
        args.model, x, y, args.epochs, args.threads
    )


if __name__ == "__main__":
    main()
