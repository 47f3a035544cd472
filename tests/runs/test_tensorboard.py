"""training.tensorboard: tensorboardX writes the events, TensorBoard's own reader reads them
back with the numbers of metrics.csv and layers.csv."""

import sys

import pytest

from bptrain.errors import ConfigError
from bptrain.runs import layers_log
from bptrain.runs.metrics_log import read
from bptrain.train import fit


def events(directory):
    pytest.importorskip("tensorboardX", reason="pip install 'bptrain[tensorboard]'")
    accumulator = pytest.importorskip(
        "tensorboard.backend.event_processing.event_accumulator",
        reason="the test reads the events with TensorBoard's reader: pip install tensorboard",
    )
    found = accumulator.EventAccumulator(str(directory), size_guidance={"scalars": 0})
    found.Reload()
    return found


def scalars(found, tag):
    return [(e.step, pytest.approx(e.value, rel=1e-6)) for e in found.Scalars(tag)]


def test_event_files_hold_the_epoch_metrics_and_the_diagnostics(tmp_path, small_config):
    pytest.importorskip("tensorboardX", reason="pip install 'bptrain[tensorboard]'")
    config = small_config(tensorboard=True, diagnostics=True, diagnostics_every=4)
    run = fit(config, run_dir=tmp_path / "r", progress="none").run_dir
    found = events(run / "tensorboard")
    metrics = read(run / "metrics.csv")
    assert scalars(found, "val_loss") == [(8 * r["epoch"], r["val_loss"]) for r in metrics]
    assert scalars(found, "lr") == [(8 * r["epoch"], 0.01) for r in metrics]
    kernel = [r for r in layers_log.read(run / "layers.csv") if r["parameter"] == "kernel"]
    first = [(r["step"], r["grad_norm"]) for r in kernel if r["layer"] == "dense"]
    assert scalars(found, "grad_norm/dense/kernel") == first
    assert "dead_fraction/dense" in found.Tags()["scalars"]
    assert {"weights/dense/kernel", "gradients/dense_1/bias"} <= set(found.Tags()["histograms"])


def test_a_resumed_run_continues_the_events_without_duplicates(tmp_path, small_config):
    pytest.importorskip("tensorboardX", reason="pip install 'bptrain[tensorboard]'")
    part = fit(small_config(tensorboard=True, epochs=2), run_dir=tmp_path / "r", progress="none")
    fit(resume=part.run_dir, overrides=["training.epochs=3"], progress="none")
    found = events(part.run_dir / "tensorboard")
    assert [step for step, _ in scalars(found, "loss")] == [8, 16, 24]


def test_without_tensorboardx_the_error_says_what_to_install(tmp_path, small_config, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)  # import fails
    with pytest.raises(ConfigError, match=r"needs tensorboardX: pip install 'bptrain\[tensorb"):
        fit(small_config(tensorboard=True), run_dir=tmp_path / "r", progress="none")
    assert not (tmp_path / "r" / "metrics.csv").exists()
