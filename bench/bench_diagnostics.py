"""What ``training.diagnostics`` costs: the MNIST CNN (configs/mnist_cnn.yaml, one model, one
BLAS thread) trained step by step through ``Trainer.train_step``, with the diagnostics off and
on at their default interval (4 records an epoch), in alternating blocks of one interval each
in one process. Prints the step time of each, the cost of one record, and the overhead: the
record's cost spread over its interval, as a share of the step time (goal: under 3%).

    python -m bench.bench_diagnostics [--blocks N] [--limit SAMPLES]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from bench.common import DATA_DIR, blas_description
from bptrain.config import load_config
from bptrain.runs import RunDir
from bptrain.train.diagnostics import Diagnostics
from bptrain.train.loop import Trainer
from bptrain.train.prepare import prepare
from bptrain.train.progress import reporter as make_reporter


def trainer_for(run: Path, limit: int | None) -> tuple[Trainer, Diagnostics]:
    overrides = ["training.replicas=1", "training.diagnostics=true", "training.plots=false"]
    overrides += [f"data.root={DATA_DIR / 'mnist'}"]
    overrides += [f"data.limit={limit}"] if limit else []
    config = load_config(Path(__file__).resolve().parents[1] / "configs/mnist_cnn.yaml", overrides)
    data, model = prepare(config)
    trainer = Trainer(config, data, model, RunDir(run).make(), make_reporter("none"))
    trainer.diagnostics.start()
    return trainer, trainer.diagnostics


def block(trainer: Trainer, batches, steps: int) -> tuple[float, list[float], list[float]]:
    """Seconds for ``steps`` steps, and the seconds of each step that did not record and of
    each that did."""
    plain, recorded = [], []
    for _ in range(steps):
        xb, yb = next(batches)
        due = (
            trainer.diagnostics.recording
            and trainer.model.optimizer.iterations % (trainer.diagnostics.every) == 0
        )
        start = time.perf_counter()
        trainer.train_step(xb, yb)
        (recorded if due else plain).append(time.perf_counter() - start)
    return sum(plain) + sum(recorded), plain, recorded


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--blocks", type=int, default=3, help="blocks of each side")
    parser.add_argument("--limit", type=int, default=None, help="MNIST samples (default all)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, threadpool_limits(1, user_api="blas"):
        trainer, on = trainer_for(Path(tmp), args.limit)
        off = Diagnostics(trainer.model, trainer.run, on.every, layers=False)
        x, y, batch = trainer.data.x_train, trainer.data.y_train, trainer.batch_size
        rng = np.random.default_rng(0)
        batches = iter(lambda: (lambda i: (x[i], y[i]))(rng.integers(0, len(x), batch)), None)
        print(f"MNIST CNN, batch {batch}, one BLAS thread ({blas_description()})")
        print(f"diagnostics every {on.every} steps (the default for {len(x)} training samples)")
        block(trainer, batches, 20)  # warm up
        totals = {"off": [], "on": []}
        records = []
        for _ in range(args.blocks):
            for name, diag in (("off", off), ("on", on)):
                trainer.diagnostics = diag
                seconds, plain, recorded = block(trainer, batches, on.every)
                totals[name].append(seconds / on.every)
                records += [t - float(np.median(plain)) for t in recorded]
        step_off, step_on = min(totals["off"]), min(totals["on"])
        record = float(np.median(records))
        print(f"step, diagnostics off: {step_off * 1e3:.2f} ms   on: {step_on * 1e3:.2f} ms "
              f"(best block each; ratio on/off {step_on / step_off:.4f})")  # fmt: skip
        share = 100 * record / (on.every * step_off)
        print(f"one record (a recording step less the median step, median of {len(records)}): "
              f"{record * 1e3:.1f} ms = {record / step_off:.2f} steps")  # fmt: skip
        print(f"overhead at the default interval: {share:.2f}% of the step time")


if __name__ == "__main__":
    main()
