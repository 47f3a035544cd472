"""Divergence: training stops at the first non-finite loss or gradient, naming the layer whose
gradient went non-finite first, and at a loss that explodes while still finite (far above the
run's starting level). Either way it exits with one line, and no checkpoint holds the weights
that diverged: the one the error names holds the last good weights, which load and evaluate."""

from __future__ import annotations

import re

import numpy as np
import pytest

from bptrain.runs import checkpoint, metrics_log
from tests.reliability.conftest import TINY, bptrain

# Regression with two hidden layers: plain SGD at a learning rate of 1e3 makes the loss
# explode within a step or two (1e20 overflows it). A checkpoint every 3 steps and after
# every epoch.
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
STEPS_PER_EPOCH = 8  # 128 training samples (40 test, 32 validation)
CAUSE = (
    r"(?P<cause>the loss is (inf|nan) and the first non-finite gradient is in layer "
    r"'(?P<layer>\w+)' \((?P=layer)/\w+\)"
    r"|the gradient of layer '(?P<glayer>\w+)' \((?P=glayer)/\w+\) is not finite \(loss [^)]+\)"
    r"|the (validation )?loss is (?P<loss>\S+), more than 1e(?P<power>\d) times the run's "
    r"starting level (?P<level>[^;\s]+)"
    r"(; the steepest gradient is in layer '(?P<slayer>\w+)' \((?P=slayer)/\w+, [^)]+\))?)"
)
MESSAGE = re.compile(
    r"error: training diverged at epoch (?P<epoch>\d+), step (?P<step>\d+): " + CAUSE + "; "
    r"(?P<kept>the last good checkpoint is run/checkpoints/last\.safetensors"
    r"|no checkpoint was written before it)\. "
    r"Lower optimizer\.learning_rate or set optimizer\.clipnorm\n"
)


def diverged(result, run) -> re.Match:
    """The one-line divergence error of ``result`` (exit status 1), matched."""
    assert result.returncode == 1, result.stderr
    match = MESSAGE.fullmatch(result.stderr.replace(str(run), "run"))
    assert match, result.stderr
    return match


def assert_good_checkpoint(run, at: tuple[int, int]) -> float:
    """The last checkpoint is at ``at``, its arrays finite, and eval scores it; its test MSE."""
    ckpt = checkpoint.load(run / "checkpoints" / "last.safetensors")
    assert (ckpt.state["epoch"], ckpt.state["step"]) == at
    assert all(np.all(np.isfinite(a)) for a in ckpt.arrays.values())
    scored = bptrain("eval", run / "checkpoints" / "last.safetensors", cwd=run.parent)
    assert scored.returncode == 0, scored.stderr
    return float(re.search(r"^mse +(\S+)$", scored.stdout, re.M)[1])


def weights(path) -> dict:
    return checkpoint.load(path).section("model")


@pytest.fixture
def good(tmp_path):
    """One good epoch of CONFIG in tmp_path/run; returns (run, a copy of its last checkpoint's
    bytes, its metrics.csv bytes)."""
    (tmp_path / "diverge.yaml").write_text(CONFIG)
    done = bptrain("fit", "diverge.yaml", "--run-dir", "run", "--progress", "none", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    run = tmp_path / "run"
    last = run / "checkpoints" / "last.safetensors"
    (tmp_path / "good.safetensors").write_bytes(last.read_bytes())
    return run, tmp_path / "good.safetensors", (run / "metrics.csv").read_bytes()


@pytest.mark.timeout(60)
def test_the_first_non_finite_loss_stops_the_run_and_names_the_layer(tmp_path, good):
    """At 1e20 the loss of the second step overflows. A checkpoint was due after every step,
    but the one after step 1 holds the weights that overflowed, so it is never written: the
    last good checkpoint is the good epoch's, bit for bit, and evaluates."""
    run, good_ckpt, rows = good
    result = bptrain(
        "fit", "--resume", run, "optimizer.learning_rate=1e20", "training.epochs=2",
        "training.checkpoint.every_steps=1", "--progress", "none", cwd=tmp_path,
    )  # fmt: skip
    match = diverged(result, run)
    assert (match["epoch"], match["step"]) == ("2", "2")
    assert match["cause"].startswith(("the loss is inf and", "the loss is nan and"))
    assert match["layer"] == "dense_2"  # the output layer: backprop meets it first
    assert match["kept"].startswith("the last good checkpoint")
    np.testing.assert_equal(weights(run / "checkpoints" / "last.safetensors"), weights(good_ckpt))
    assert np.isfinite(assert_good_checkpoint(run, (1, 0)))
    assert (run / "metrics.csv").read_bytes() == rows


@pytest.mark.timeout(60)
def test_sgd_whose_loss_explodes_keeps_the_last_good_weights(tmp_path, good):
    """SGD at 1e3 (the weights reached 6e14 before the loss overflowed, and the checkpoint the
    error named held them): now the second step's loss, finite but 1e8 times the starting
    level, stops the run, and the named checkpoint holds the good epoch's weights."""
    run, good_ckpt, rows = good
    result = bptrain(
        "fit", "--resume", run, "optimizer.learning_rate=1000", "training.epochs=4",
        "training.checkpoint.every_steps=1", "--progress", "none", cwd=tmp_path,
    )  # fmt: skip
    match = diverged(result, run)
    assert (match["epoch"], match["step"]) == ("2", "2")
    assert match["power"] == "3"  # 160 samples in the reference: the factor is 1e3
    level = float(match["level"])
    assert float(match["loss"]) > 1e3 * level
    start = checkpoint.load(good_ckpt).state["divergence_guard"]
    assert level == pytest.approx(start["level"], rel=1e-3)  # the first run's own start
    kept = weights(run / "checkpoints" / "last.safetensors")
    np.testing.assert_equal(kept, weights(good_ckpt))
    assert max(np.abs(w).max() for w in kept.values()) < 10
    assert np.isfinite(assert_good_checkpoint(run, (1, 0)))
    assert (run / "metrics.csv").read_bytes() == rows


@pytest.mark.timeout(60)
@pytest.mark.parametrize("every", [1, 2, 3])
def test_a_diverging_resume_keeps_the_checkpoint_before_the_diverged_weights(tmp_path, good, every):
    """Checkpoints every few steps: the kept one is the last whose weights gave a good loss,
    never the one after the step whose update made the loss explode. At a learning rate of 1
    the loss rises tenfold in step 2 and explodes in step 3."""
    run, _, rows = good
    result = bptrain(
        "fit", "--resume", run, "optimizer.learning_rate=1", "training.epochs=4",
        f"training.checkpoint.every_steps={every}", "--progress", "none", cwd=tmp_path,
    )  # fmt: skip
    match = diverged(result, run)
    epoch, step = int(match["epoch"]), int(match["step"])
    assert (epoch, step) == (2, 3)
    # step's loss was computed with the weights of the update of step - 1: a checkpoint
    # after step - 1 or later holds diverged weights
    kept = max((s for s in range(every, STEPS_PER_EPOCH, every) if s < step - 1), default=0)
    assert np.isfinite(assert_good_checkpoint(run, (1, kept)))
    assert (run / "metrics.csv").read_bytes() == rows  # only the good epoch


@pytest.mark.timeout(60)
def test_adam_at_a_huge_learning_rate_writes_no_checkpoint(tmp_path):
    """Adam's step is bounded by its learning rate: at 1e6 the loss settles near 1e19 and never
    overflows, and the run used to end with exit status 0 and a best.safetensors."""
    (tmp_path / "tiny.yaml").write_text(TINY)
    result = bptrain(
        "fit", "tiny.yaml", "optimizer.learning_rate=1e6", "--run-dir", "run",
        "--progress", "none", cwd=tmp_path,
    )  # fmt: skip
    run = tmp_path / "run"
    match = diverged(result, run)
    assert (match["epoch"], match["step"]) == ("1", "2")
    assert match["power"] == "6"  # one batch of 16 in the reference: only 1e6 times counts
    assert float(match["loss"]) > 1e6 * float(match["level"])
    assert match["kept"] == "no checkpoint was written before it"
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == []
    assert metrics_log.read(run / "metrics.csv") == []


@pytest.mark.timeout(60)
def test_weights_that_explode_in_an_epochs_last_update(tmp_path):
    """One step per epoch: the update of epoch 1's only step makes the loss explode. With a
    validation split the validation loss says so before epoch 1's checkpoints are written;
    without one, epoch 2's first loss does, and epoch 1's held checkpoints are dropped."""
    config = CONFIG.replace("batch_size: 16", "batch_size: 200").replace("epochs: 1", "epochs: 2")
    (tmp_path / "diverge.yaml").write_text(config)
    args = ("fit", "diverge.yaml", "optimizer.learning_rate=1000", "--progress", "none")
    with_val = bptrain(*args, "--run-dir", "run", cwd=tmp_path)
    match = diverged(with_val, tmp_path / "run")
    assert (match["epoch"], match["step"]) == ("1", "1")
    assert match["cause"].startswith("the validation loss is ")
    no_val = bptrain(*args, "--run-dir", "run2", "data.validation_split=0", cwd=tmp_path)
    match = diverged(no_val, tmp_path / "run2")
    assert (match["epoch"], match["step"]) == ("2", "1")
    assert match["cause"].startswith("the loss is ")
    for run in ("run", "run2"):
        assert list((tmp_path / run / "checkpoints").iterdir()) == []
    assert [r["epoch"] for r in metrics_log.read(tmp_path / "run2" / "metrics.csv")] == [1]
