"""A learning rate of 1e3: training stops at the first non-finite loss or gradient, names the
layer whose gradient went non-finite first, and keeps the last good checkpoint, which loads and
evaluates."""

from __future__ import annotations

import re

import numpy as np
import pytest

from bptrain.runs import checkpoint, metrics_log
from tests.reliability.conftest import bptrain

# Regression with two hidden layers: plain SGD at a learning rate of 1e3 overflows within a
# few steps. A checkpoint every 3 steps and after every epoch.
CONFIG = """\
name: diverge
seed: 0
data: {dataset: linear, size: 200, noise: 0.1, validation_split: 0.2}
model:
  layers:
    - {type: Dense, units: 16, activation: relu}
    - {type: Dense, units: 16, activation: relu}
    - {type: Dense, units: 1}
loss: mse
optimizer: {type: sgd, learning_rate: 0.001}
training: {epochs: 1, batch_size: 16, plots: false, checkpoint: {every_steps: 3}}
"""
STEPS_PER_EPOCH = 10  # 160 training samples
MESSAGE = re.compile(
    r"error: training diverged at epoch (\d+), step (\d+): "
    r"(the loss is (inf|nan) and the first non-finite gradient is in layer '(\w+)' \(\5/\w+\)"
    r"|the gradient of layer '(\w+)' \(\6/\w+\) is not finite \(loss [^)]+\)); "
    r"the last good checkpoint is run/checkpoints/last\.safetensors\. "
    r"Lower optimizer\.learning_rate or set optimizer\.clipnorm\n"
)


def assert_good_checkpoint(run, at: tuple[int, int]) -> float:
    """The last checkpoint is at ``at``, its arrays finite, and eval scores it; its test MSE
    (which may overflow: weights one step before divergence can be huge yet finite)."""
    ckpt = checkpoint.load(run / "checkpoints" / "last.safetensors")
    assert (ckpt.state["epoch"], ckpt.state["step"]) == at
    assert all(np.all(np.isfinite(a)) for a in ckpt.arrays.values())
    scored = bptrain("eval", run / "checkpoints" / "last.safetensors", cwd=run.parent)
    assert scored.returncode == 0, scored.stderr
    return float(re.search(r"^mse +(\S+)$", scored.stdout, re.M)[1])


@pytest.mark.timeout(60)
def test_the_first_non_finite_step_stops_the_run_and_names_the_layer(tmp_path):
    """A checkpoint after every step: the last one is the step before the reported one and
    holds finite weights, so every earlier step was finite (a non-finite gradient would have
    made the weights non-finite through the update)."""
    (tmp_path / "diverge.yaml").write_text(CONFIG)
    diverged = bptrain(
        "fit", "diverge.yaml", "optimizer.learning_rate=1000", "training.checkpoint.every_steps=1",
        "--run-dir", "run", "--progress", "none", cwd=tmp_path,
    )  # fmt: skip
    assert diverged.returncode == 1
    match = MESSAGE.fullmatch(diverged.stderr)
    assert match, diverged.stderr
    epoch, step = int(match[1]), int(match[2])
    assert epoch == 1 and step > 1
    assert (match[5] or match[6]) == "dense_2"  # the output layer: backprop meets it first
    run = tmp_path / "run"
    assert_good_checkpoint(run, (0, step - 1))
    assert metrics_log.read(run / "metrics.csv") == []


@pytest.mark.timeout(60)
def test_a_diverging_resume_keeps_the_good_epochs(tmp_path):
    (tmp_path / "diverge.yaml").write_text(CONFIG)
    good = bptrain("fit", "diverge.yaml", "--run-dir", "run", "--progress", "none", cwd=tmp_path)
    assert good.returncode == 0, good.stderr
    run = tmp_path / "run"
    rows = (run / "metrics.csv").read_bytes()
    diverged = bptrain(
        "fit", "--resume", run, "optimizer.learning_rate=1000", "training.epochs=4",
        "--progress", "none", cwd=tmp_path,
    )  # fmt: skip
    assert diverged.returncode == 1
    match = MESSAGE.fullmatch(diverged.stderr.replace(str(run), "run"))
    assert match, diverged.stderr
    epoch, step = int(match[1]), int(match[2])
    assert epoch == 2
    # the last good checkpoint: epoch 1's, or epoch 2's after step 3 or 6 (every_steps: 3)
    kept = max((s for s in (0, 3, 6) if s < step), default=0)
    assert 0 < step <= STEPS_PER_EPOCH
    assert np.isfinite(assert_good_checkpoint(run, (1, kept)))
    assert (run / "metrics.csv").read_bytes() == rows  # only the good epoch
