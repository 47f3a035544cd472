"""Class and sample weights in a run: the training loss, the validation loss and eval's loss
are the same weighted mean; metrics are not weighted; runs that split batches refuse them."""

from __future__ import annotations

import numpy as np
import pytest

from bptrain.data import load_dataset
from bptrain.errors import ConfigError
from bptrain.train import fit
from bptrain.train.evaluate import evaluate_checkpoint


def test_weighted_losses_agree_and_metrics_count_each_sample_once(tmp_path, small_config):
    config = small_config(epochs=2, class_weight={"0": 5.0, "2": 0.5})
    result = fit(config, run_dir=tmp_path / "run", progress="none")
    data = load_dataset(dict(result.config.data), result.config.seed)
    w_val = np.array([5.0, 1.0, 0.5], np.float32)[data.y_val]
    val_loss, outputs = result.model.evaluate(data.x_val, data.y_val, 1024, w_val)
    last = result.history[-1]
    assert last["val_loss"] == pytest.approx(val_loss, rel=1e-6)
    plain_loss, _ = result.model.evaluate(data.x_val, data.y_val, 1024)
    assert plain_loss != pytest.approx(val_loss, rel=1e-3)
    accuracy = float(np.mean(outputs.argmax(axis=1) == data.y_val))
    assert last["val_accuracy"] == pytest.approx(accuracy)
    report = evaluate_checkpoint(result.run_dir / "checkpoints" / "last.safetensors", "val").report
    assert report["loss"] == pytest.approx(val_loss, rel=1e-6)
    unweighted = fit(small_config(epochs=2), run_dir=tmp_path / "plain", progress="none")
    assert unweighted.history[0]["loss"] != last["loss"]


def test_balanced_weights_train_and_resume_exactly(tmp_path, small_config):
    config = small_config(epochs=2, class_weight="balanced")
    full = fit(config, run_dir=tmp_path / "full", progress="none")
    fit(small_config(epochs=1, class_weight="balanced"), run_dir=tmp_path / "r", progress="none")
    resumed = fit(config, resume=tmp_path / "r", progress="none")
    assert resumed.history == full.history


@pytest.mark.parametrize(
    "change, message",
    [
        ({"class_weight": "even"}, r"training.class_weight: expected 'balanced'"),
        ({"class_weight": {"0": -1}}, r"training.class_weight.0: expected a non-negative"),
        ({"class_weight": "balanced", "replicas": 2}, r"not with training.replicas"),
    ],
)
def test_config_errors(tmp_path, small_config, change, message):
    with pytest.raises(ConfigError, match=message):
        fit(small_config(**change), run_dir=tmp_path / "run", progress="none")


def test_a_weight_column_of_ones_trains_as_no_weights(tmp_path, small_config):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 2))
    label = (x[:, 0] > 0).astype(int)
    rows = [f"{a:.6f},{b:.6f},{c},1" for (a, b), c in zip(x, label, strict=True)]
    (tmp_path / "t.csv").write_text("a,b,label,w\n" + "\n".join(rows) + "\n")
    config = small_config(epochs=2)
    config["data"] = {
        "dataset": "csv",
        "path": str(tmp_path / "t.csv"),
        "target": "label",
        "features": ["a", "b"],
    }
    config["model"]["layers"][-1]["units"] = 2
    plain = fit(config, run_dir=tmp_path / "plain", progress="none")
    config["data"]["weight_column"] = "w"
    ones = fit(config, run_dir=tmp_path / "ones", progress="none")
    assert ones.history == plain.history
