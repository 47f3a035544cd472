"""bptrain on a GPU (CuPy) against PyTorch CUDA eager, and the checks that it computes right.

    cd REPO && PYTHONPATH=. python -m bench.bench_gpu [DATA_DIR] [--rounds 2] [--batches N]

DATA_DIR holds mnist/ (default: $BPTRAIN_DATA_DIR, else ../shared/data). Needs CuPy, PyTorch
with CUDA and bptrain's own dependencies; nothing is installed. In under five minutes on one
H200 it prints:

1. the float64 finite-difference gradient check of every layer of the core on the GPU (the
   cases of ``tests/nn/layer_cases.py``, which the CPU tests run on the checked namespace);
2. for each workload, the first training steps' losses on the GPU against the same steps on
   the CPU (NumPy), from the same weights and batches: they must agree to 1e-4 relative;
3. one MNIST epoch of each workload, data already on the GPU, bptrain against PyTorch eager on
   the same model, batch size and batch order, alternating, best of ``--rounds``; and one epoch
   of ``bptrain fit`` itself (validation, metrics.csv and checkpoints included);
4. the table of epoch times and ratios bptrain / PyTorch, with the goals.

A section that fails prints its error and the rest still run, so one run tells everything.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

from bptrain import nn
from bptrain.data import load_dataset
from bptrain.nn import backend
from bptrain.train import device

REPO = Path(__file__).resolve().parents[1]
TORCH_DEVICE = "cuda"  # tests/test_bench_gpu.py runs the whole script on the CPU with "cpu"
GOALS = {"mlp": 1.0, "cnn": 1.3, "lstm": 2.0}  # bptrain / PyTorch eager epoch time, at most
WORKLOADS = [("mlp", 32), ("mlp", 512), ("cnn", 64), ("cnn", 256), ("lstm", 64)]
FIRST_STEPS, LR = 5, 1e-3


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("data_dir", nargs="?", default=None, help="the folder that holds mnist/")
    p.add_argument("--rounds", type=int, default=2, help="alternating timed rounds (best kept)")
    p.add_argument(
        "--batches", type=int, default=None,
        help="time only the first N x 512 samples (N batches of the largest batch size)",
    )  # fmt: skip
    p.add_argument("--gradcheck-elements", type=int, default=60, help="entries per array")
    return p.parse_args(argv)


def data_dir(given: str | None) -> Path:
    """The folder holding mnist/: the argument, else $BPTRAIN_DATA_DIR, else ../shared/data
    (or shared/data inside the checkout, where a copy of the tree keeps it)."""
    if given:
        return Path(given)
    if "BPTRAIN_DATA_DIR" in os.environ:
        return Path(os.environ["BPTRAIN_DATA_DIR"])
    candidates = [REPO.parent / "shared" / "data", REPO / "shared" / "data"]
    return next((c for c in candidates if (c / "mnist").is_dir()), candidates[0])


def mnist(root: Path) -> tuple[np.ndarray, np.ndarray]:
    spec = {"dataset": "mnist", "validation_split": 0.0, "root": str(root / "mnist")}
    data = load_dataset({**spec, "download": False}, seed=0)
    return np.asarray(data.x_train), data.y_train  # (whole: the arrays go to the GPU)


# -- the models, on both sides ---------------------------------------------------------------------
def bptrain_model(kind: str) -> nn.Sequential:
    """The benchmark's networks (configs/mnist_*.yaml), built on the current backend."""
    layers = {
        "mlp": lambda: [nn.Flatten(), nn.Dense(128, activation="relu")],
        "cnn": lambda: [
            nn.Conv2D(32, 3, activation="relu"),
            nn.MaxPool2D(2),
            nn.Conv2D(64, 3, activation="relu"),
            nn.MaxPool2D(2),
            nn.Flatten(),
            nn.Dense(128, activation="relu"),
        ],  # fmt: skip
        "lstm": lambda: [nn.Reshape([28, 28]), nn.LSTM(128)],
    }[kind]() + [nn.Dense(10, activation="softmax")]  # fused into the loss, as on PyTorch's side
    network = nn.Sequential(layers)
    network.build((1, 28, 28), np.random.default_rng(0))
    return nn.Model(network, "sparse_categorical_crossentropy", nn.Adam(LR))


def torch_model(kind: str):
    import torch
    from torch import nn as tnn

    class RowLSTM(tnn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = tnn.LSTM(28, 128, batch_first=True)
            self.head = tnn.Linear(128, 10)

        def forward(self, images):
            out, _ = self.lstm(images.reshape(-1, 28, 28))
            return self.head(out[:, -1])

    torch.manual_seed(0)
    if kind == "mlp":
        net = tnn.Sequential(tnn.Flatten(), tnn.Linear(784, 128), tnn.ReLU(), tnn.Linear(128, 10))
    elif kind == "cnn":
        net = tnn.Sequential(
            tnn.Conv2d(1, 32, 3), tnn.ReLU(), tnn.MaxPool2d(2),
            tnn.Conv2d(32, 64, 3), tnn.ReLU(), tnn.MaxPool2d(2),
            tnn.Flatten(), tnn.Linear(1600, 128), tnn.ReLU(), tnn.Linear(128, 10),
        )  # fmt: skip
    else:
        net = RowLSTM()
    return net.to(TORCH_DEVICE)


# -- 1. gradient checks ----------------------------------------------------------------------------
def gradient_checks(max_elements: int) -> list[str]:
    """Every layer case's float64 gradient check on the GPU; returns the failures."""
    sys.path.insert(0, str(REPO))
    from tests.nn.layer_cases import LAYERS, inputs

    failures, worst = [], 0.0
    with device.on_device("gpu"):
        for name, make, shape, high, training in LAYERS:
            report = nn.check_layer(
                make(), inputs(shape, high), training=training, max_elements=max_elements
            )
            worst = max(worst, report.max_error)
            if not report.passed(1e-6):
                failures.append(f"{name}: {report.max_error:.2e}")
    print(f"gradient checks on the GPU, float64: {len(LAYERS) - len(failures)}/{len(LAYERS)} "
          f"layers pass (worst relative error {worst:.1e})")  # fmt: skip
    for f in failures:
        print(f"  FAILED {f}")
    return failures


# -- 2. first steps against the CPU ----------------------------------------------------------------
def first_losses(kind: str, x, y, order, batch: int) -> list[float]:
    model = bptrain_model(kind)
    xs, ys = (
        backend.asarray(x[order[: FIRST_STEPS * batch]]),
        backend.asarray(y[order[: FIRST_STEPS * batch]]),
    )
    return [
        model.train_step(xs[i : i + batch], ys[i : i + batch])
        for i in range(0, FIRST_STEPS * batch, batch)
    ]


def losses_agree(kind: str, x, y, order, batch: int) -> float:
    """The largest relative difference of the first steps' losses, GPU against CPU."""
    cpu = first_losses(kind, x, y, order, batch)
    with device.on_device("gpu"):
        gpu = first_losses(kind, x, y, order, batch)
    return max(abs(g - c) / abs(c) for g, c in zip(gpu, cpu, strict=True))


# -- 3. epochs -------------------------------------------------------------------------------------
def bptrain_epoch(kind: str, x_gpu, y_gpu, order_gpu, batch: int):
    """``run()``: one pass over ``order_gpu`` with ``model.train_step``, data on the GPU."""
    model = bptrain_model(kind)
    take = backend.xp.take

    def run():
        for i in range(0, len(order_gpu), batch):
            idx = order_gpu[i : i + batch]
            model.train_step(take(x_gpu, idx, axis=0), take(y_gpu, idx, axis=0))
        synchronize()

    return run


def torch_epoch(kind: str, x_t, y_t, order_t, batch: int):
    import torch

    net = torch_model(kind)
    opt = torch.optim.Adam(net.parameters(), lr=LR)
    loss_fn = torch.nn.CrossEntropyLoss()

    def run():
        for i in range(0, len(order_t), batch):
            idx = order_t[i : i + batch]
            opt.zero_grad(set_to_none=True)
            loss_fn(net(x_t[idx]), y_t[idx]).backward()
            opt.step()
        if TORCH_DEVICE == "cuda":
            torch.cuda.synchronize()

    return run


def synchronize() -> None:
    """Wait for the GPU's queued work (CuPy's stream)."""
    import cupy

    cupy.cuda.Device().synchronize()


def describe_gpu() -> str:
    import cupy

    name = cupy.cuda.runtime.getDeviceProperties(0)["name"]
    return f"{name.decode() if isinstance(name, bytes) else name}; CuPy {cupy.__version__}"


def timed(run) -> float:
    t = time.perf_counter()
    run()
    return time.perf_counter() - t


def race(kind: str, batch: int, gpu_data, torch_data, rounds: int, warm: int) -> tuple:
    """(bptrain seconds, PyTorch seconds or None without PyTorch's data on the GPU): best of
    ``rounds`` alternating epochs, after ``warm`` batches each (CuPy compiles its kernels on
    first use)."""
    xg, yg, og = gpu_data
    with device.on_device("gpu"):
        runs = [bptrain_epoch(kind, xg, yg, og, batch)]
        bptrain_epoch(kind, xg, yg, og[: warm * batch], batch)()
        if torch_data is not None:
            xt, yt, ot = torch_data
            runs.append(torch_epoch(kind, xt, yt, ot, batch))
            torch_epoch(kind, xt, yt, ot[: warm * batch], batch)()
        best = [float("inf")] * len(runs)
        for _ in range(rounds):
            best = [min(b, timed(run)) for b, run in zip(best, runs, strict=True)]
    return best[0], (best[1] if len(best) > 1 else None)


def fit_epoch(root: Path, limit: int | None) -> float:
    """Seconds of one ``bptrain fit configs/mnist_mlp.yaml`` epoch on the GPU (validation,
    metrics.csv, checkpoints and the summary included; plots off)."""
    from bptrain.config import read_config
    from bptrain.train import fit

    overrides = ["training.epochs=1", "training.device=gpu", "training.plots=false"]
    overrides.append(f"data.root={root / 'mnist'}")
    if limit:
        overrides.append(f"data.limit={limit}")
    config, _ = read_config(str(REPO / "configs" / "mnist_mlp.yaml"), overrides)
    with tempfile.TemporaryDirectory() as tmp:
        fit(config, run_dir=Path(tmp) / "warm", progress="none")  # kernels compiled, caches warm
        t = time.perf_counter()
        fit(config, run_dir=Path(tmp) / "run", progress="none")
        return time.perf_counter() - t


# -- the report ------------------------------------------------------------------------------------
def guarded(what: str, f, *args):
    """``f(*args)``, or None after printing what failed (the other sections still run)."""
    try:
        return f(*args)
    except Exception as exc:
        print(f"  {what} FAILED: {type(exc).__name__}: {exc}")
        traceback.print_exc(limit=-3, file=sys.stdout)
        return None


def table(rows: list[tuple]) -> str:
    lines = [
        "| workload | batch | bptrain GPU (s) | PyTorch eager (s) | ratio | goal | met "
        "| first steps |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for kind, batch, ours, theirs, diff in rows:
        ratio = f"{ours / theirs:.2f}" if ours and theirs else "-"
        met = "-" if ratio == "-" else ("yes" if ours / theirs <= GOALS[kind] else "no")
        times = [f"{t:.3f}" if t else "failed" for t in (ours, theirs)]
        agree = "failed" if diff is None else f"{diff:.1e} {'ok' if diff <= 1e-4 else 'OFF'}"
        lines.append(
            f"| {kind} | {batch} | {times[0]} | {times[1]} | {ratio} | <= {GOALS[kind]} | {met} "
            f"| {agree} |"
        )
    return "\n".join(lines)


def main(args) -> int:
    import torch

    root = data_dir(args.data_dir)
    print(f"GPU: {describe_gpu()}, PyTorch {torch.__version__} (CUDA {torch.version.cuda}), "
          f"NumPy {np.__version__}; MNIST from {root}")  # fmt: skip
    started = time.perf_counter()
    guarded("gradient checks", gradient_checks, args.gradcheck_elements)
    x, y = mnist(root)
    shuffled = np.random.default_rng(0).permutation(len(x))  # the first steps take its start
    order = shuffled[: args.batches * max(b for _, b in WORKLOADS)] if args.batches else shuffled
    with device.on_device("gpu"):
        gpu_data = backend.asarray(x), backend.asarray(y), backend.asarray(order)
    torch_data = guarded(
        "PyTorch on the GPU",
        lambda: tuple(torch.from_numpy(a).to(TORCH_DEVICE) for a in (x, y, order)),
    )  # without it, bptrain's times alone
    rows = []
    for kind, batch in WORKLOADS:
        diff = guarded(f"{kind} b{batch} first steps", losses_agree, kind, x, y, shuffled, batch)
        times = guarded(
            f"{kind} b{batch} epoch", race, kind, batch, gpu_data, torch_data, args.rounds, 5
        )
        ours, theirs = times or (None, None)
        rows.append((kind, batch, ours, theirs, diff))
        print(f"  {kind} b{batch}: bptrain {ours or 0:.3f} s, PyTorch {theirs or 0:.3f} s, "
              f"first steps {diff if diff is None else f'{diff:.1e}'}", flush=True)  # fmt: skip
    seconds = guarded("bptrain fit", fit_epoch, root, len(order) if args.batches else None)
    print(f"\nOne epoch each, {len(order)} MNIST samples, data on the GPU; best of {args.rounds}:")
    print(table(rows))
    mlp32 = rows[0][3]
    if seconds and mlp32:
        print(f"\n`bptrain fit configs/mnist_mlp.yaml` (1 epoch, validation and checkpoints "
              f"included) on the GPU: {seconds:.2f} s, {seconds / mlp32:.2f}x PyTorch's bare "
              "MLP b32 epoch")  # fmt: skip
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(parse_args()))
