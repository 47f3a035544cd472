"""Train one of the recurrent configs through the Python API and report its test score.

    python bench/train_rnn_config.py configs/mnist_lstm.yaml     # test accuracy per epoch
    python bench/train_rnn_config.py configs/adding_gru.yaml     # test MSE per epoch
    python bench/train_rnn_config.py configs/char_lstm.yaml --sample "The "

The config is read, validated and built by ``bptrain.config`` (exactly what ``bptrain fit``
builds); the loop is a plain one (a seeded permutation per epoch, ``model.train_step`` per
batch), so the numbers show what the layers can do without the trainer's callbacks.
``--sample PROMPT`` (text data) generates characters after each epoch from the model's
next-character probabilities.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from threadpoolctl import threadpool_limits

from bptrain.config import build_model, load_config
from bptrain.config.run_length import RunLength
from bptrain.data import iterate_minibatches, load_dataset


def score(model, ds, split: str) -> tuple[str, float]:
    x, y = ds.split(split)
    out = model.predict(x, batch_size=500)
    if ds.task == "classification":
        return "accuracy", float((out.argmax(-1) == y).mean())
    return "mse", float(((out - y) ** 2).mean())


def sample(model, vocab: str, prompt: str, length: int, seq_len: int, rng) -> str:
    """Characters drawn one by one from the model's next-character distribution."""
    ids = [vocab.index(c) for c in prompt if c in vocab]
    for _ in range(length):
        window = np.array([ids[-seq_len:]], dtype=np.int64)
        p = model.predict(window)[0].astype(np.float64)
        ids.append(int(rng.choice(len(p), p=p / p.sum())))
    return "".join(vocab[i] for i in ids)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("config")
    p.add_argument("--epochs", type=int, default=None, help="override training.epochs")
    p.add_argument("--sample", default=None, help="prompt for text generation after each epoch")
    p.add_argument("--threads", type=int, default=1, help="BLAS threads (small GEMMs: 1 is best)")
    args = p.parse_args()
    with threadpool_limits(args.threads):
        train(args)


def train(args) -> None:

    cfg = load_config(args.config)
    seed = cfg.seed
    ds = load_dataset(dict(cfg.data), seed)
    epochs = args.epochs or cfg.training.epochs
    batch_size = cfg.training.batch_size
    # the schedule's lengths (the whole run, epochs) count steps of this run, as in fit
    model = build_model(cfg, ds.input_shape, run=RunLength(len(ds.x_train), batch_size, epochs))
    print(f"{cfg.name}: {len(ds.x_train)} training samples, input {ds.input_shape}")
    print(model.summary())
    rng = np.random.default_rng(seed)
    for epoch in range(1, epochs + 1):
        start, losses = time.perf_counter(), []
        order = rng.permutation(len(ds.x_train))
        for xb, yb in iterate_minibatches(ds.x_train, ds.y_train, batch_size, order):
            losses.append(model.train_step(xb, yb))
        seconds = time.perf_counter() - start
        splits = [s for s in ("val", "test") if len(ds.split(s)[0])]
        text = ", ".join("{} {} {:.4f}".format(s, *score(model, ds, s)) for s in splits)
        print(f"epoch {epoch}: loss {np.mean(losses):.4f}, {text} ({seconds:.0f} s)", flush=True)
        if args.sample is not None and "vocab" in ds.extra:
            seq_len = cfg.data.get("seq_len", 40)
            print("  " + repr(sample(model, ds.extra["vocab"], args.sample, 120, seq_len, rng)))


if __name__ == "__main__":
    main()
