"""training.diagnostics in a run: layers.csv, its plots, resume, the divergence error, and
bptrain inspect's flags."""

import math

import pytest

from bptrain.errors import CheckpointError, DivergenceError
from bptrain.runs import layers_log
from bptrain.train import fit
from bptrain.train.inspect import flags, inspect_run, inspect_table


def sgd_config(small_config, **training):
    config = small_config(diagnostics=True, diagnostics_every=3, **training)
    config["optimizer"] = {"type": "sgd", "learning_rate": 0.1}
    return config


def test_layers_csv_records_every_nth_update_per_parameter_and_layer(tmp_path, small_config):
    result = fit(sgd_config(small_config, plots=True), run_dir=tmp_path / "r", progress="none")
    rows = layers_log.read(tmp_path / "r" / "layers.csv")
    steps = sorted({r["step"] for r in rows})
    assert steps == list(range(1, 3 * 8 + 1, 3))  # 8 updates an epoch, 3 epochs
    first = [r for r in rows if r["step"] == 1]
    assert [(r["layer"], r["parameter"]) for r in first] == [
        ("dense", "kernel"), ("dense", "bias"), ("dense_1", "kernel"), ("dense_1", "bias"),
        ("dense", ""), ("dense_1", ""),
    ]  # fmt: skip
    # plain SGD: ||dw|| = lr * ||g||, so the update ratio is lr * grad_norm / weight_norm
    for r in rows:
        if r["parameter"] and r["weight_norm"]:
            assert r["update_ratio"] == pytest.approx(
                0.1 * r["grad_norm"] / r["weight_norm"], rel=1e-5
            )
    outputs = [r for r in first if not r["parameter"]]
    assert 0.0 <= outputs[0]["dead_fraction"] < 1.0 and outputs[1]["dead_fraction"] is None
    assert outputs[1]["act_mean"] == pytest.approx(1 / 3)  # softmax rows sum to 1 over 3
    plots = result.run_dir / "plots"
    assert (plots / "gradients.png").stat().st_size > 0 and (plots / "updates.png").exists()


def test_a_resumed_run_records_what_an_uninterrupted_one_does(tmp_path, small_config):
    full = fit(sgd_config(small_config, epochs=3), run_dir=tmp_path / "a", progress="none")
    part = fit(sgd_config(small_config, epochs=2), run_dir=tmp_path / "b", progress="none")
    log = part.run_dir / "layers.csv"
    log.write_text(log.read_text() + "999,3,dense,kernel,1.0,1.0,1.0,,,\n")  # after the ckpt
    fit(resume=part.run_dir, overrides=["training.epochs=3"], progress="none")
    assert log.read_bytes() == (full.run_dir / "layers.csv").read_bytes()


def test_diagnostics_do_not_change_the_weights(tmp_path, small_config):
    plain = small_config()
    watched = small_config(diagnostics=True, diagnostics_every=1)
    a = fit(plain, run_dir=tmp_path / "a", progress="none")
    b = fit(watched, run_dir=tmp_path / "b", progress="none")
    assert (a.run_dir / "metrics.csv").read_bytes() == (b.run_dir / "metrics.csv").read_bytes()


def test_an_exploding_loss_names_the_gradient_that_grew_most_since_the_last_record(
    tmp_path, small_config
):
    run = fit(sgd_config(small_config), run_dir=tmp_path / "r", progress="none").run_dir
    with pytest.raises(DivergenceError, match=r"the steepest gradient is in layer 'dense(_1)?' "
                       r"\(dense(_1)?/\w+, gradient norm [\d.e+]+, [\d.e+]+ times its last "
                       r"recorded"):  # fmt: skip
        fit(resume=run, overrides=["optimizer.learning_rate=1e4", "training.epochs=6"],
            progress="none")  # fmt: skip


def row(layer, parameter, grad, weight, ratio):
    return {"layer": layer, "parameter": parameter, "grad_norm": grad, "weight_norm": weight,
            "update_ratio": ratio}  # fmt: skip


def test_inspect_flags_vanishing_exploding_updates_and_dead_relus():
    params = [
        row("dense", "kernel", 2e-5, 10.0, 2e-7),
        row("dense", "bias", 1e-9, 0.1, 1e-3),  # biases are not judged
        row("dense_1", "kernel", 0.5, 8.0, 1e-3),
        row("dense_2", "kernel", 900.0, 4.0, 0.5),
        row("dense_3", "kernel", math.nan, 4.0, None),
    ]
    outputs = [
        {"layer": "dense_1", "dead_fraction": 0.75},
        {"layer": "dense", "dead_fraction": 0.1},
    ]
    assert flags(params, outputs) == [
        "dense/kernel: vanishing gradient (norm 2e-05, 4.4 decades below the largest, 0.5); "
        "update ratio 2e-07 is far from 1e-3 (too small: the layer barely learns)",
        "dense_2/kernel: exploding gradient (norm 900, weight norm 4); update ratio 0.5 is far "
        "from 1e-3 (too large: it thrashes)",
        "dense_3/kernel: exploding gradient (norm nan, weight norm 4)",
        "dense_1: dead ReLUs (75% of its units output 0 always)",
    ]
    assert flags(params[2:3], outputs[1:]) == []


def test_inspect_reads_the_last_recorded_step(tmp_path, small_config):
    fit(sgd_config(small_config), run_dir=tmp_path / "r", progress="none")
    found = inspect_run(tmp_path / "r")
    assert (found.step, found.epoch) == (22, 3)
    assert [r["layer"] for r in found.outputs] == ["dense", "dense_1"]
    text = inspect_table(found)
    assert text.splitlines()[0] == f"{tmp_path / 'r'}: step 22 (epoch 3), layers.csv"
    assert "dense/kernel" in text and "dead" in text


def test_inspect_without_layers_csv_says_how_to_record_it(tmp_path, small_config):
    fit(small_config(), run_dir=tmp_path / "r", progress="none")
    with pytest.raises(CheckpointError, match="has no layers.csv: train with training.diagn"):
        inspect_run(tmp_path / "r")
