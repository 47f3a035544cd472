"""``loss.label_smoothing`` in a run, and checkpoints written before the option existed."""

from __future__ import annotations

import pytest

from bptrain.data import load_dataset
from bptrain.runs import checkpoint
from bptrain.train import fit
from bptrain.train.evaluate import restore_model


def test_a_smoothed_run_reports_the_smoothed_loss(tmp_path, small_config):
    config = small_config(epochs=2)
    config["loss"] = {"type": "sparse_categorical_crossentropy", "label_smoothing": 0.2}
    result = fit(config, run_dir=tmp_path / "run", progress="none")
    assert result.model.step_loss.label_smoothing == 0.2  # fused with the softmax, still smoothed
    data = load_dataset(dict(result.config.data), result.config.seed)
    val_loss, _ = result.model.evaluate(data.x_val, data.y_val, 1024)
    assert result.history[-1]["val_loss"] == pytest.approx(val_loss, rel=1e-6)
    plain = config | {"loss": "sparse_categorical_crossentropy"}
    unsmoothed = fit(plain, run_dir=tmp_path / "plain", progress="none")
    assert unsmoothed.history[-1]["loss"] != result.history[-1]["loss"]


def test_a_checkpoint_from_before_label_smoothing_still_evaluates(tmp_path, small_config):
    run = fit(small_config(epochs=1), run_dir=tmp_path / "run", progress="none").run_dir
    ckpt = checkpoint.load(run / "checkpoints" / "last.safetensors")
    del ckpt.state["config"]["loss"]["label_smoothing"]  # as older versions wrote it
    config, model = restore_model(ckpt)
    assert config.loss["label_smoothing"] == 0.0
