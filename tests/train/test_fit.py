import math
import os
import signal
from pathlib import Path

import numpy as np
import pytest

from bptrain.data import load_dataset
from bptrain.errors import ConfigError, DivergenceError
from bptrain.runs import checkpoint
from bptrain.runs.metrics_log import read
from bptrain.train import Interrupted, fit
from bptrain.train import metrics as metrics_mod
from bptrain.train.loop import Trainer


@pytest.fixture
def with_dropout(small_config):
    def make(**training):
        config = small_config(**training)
        config["model"]["layers"].insert(1, {"type": "Dropout", "rate": 0.3})
        return config

    return make


def final_weights(run_dir):
    return checkpoint.load(run_dir / "checkpoints" / "last.safetensors").section("model")


def assert_same_run(a, b):
    wa, wb = final_weights(a), final_weights(b)
    assert wa.keys() == wb.keys()
    for name in wa:
        assert np.array_equal(wa[name], wb[name]), name  # bit for bit
    assert (a / "metrics.csv").read_bytes() == (b / "metrics.csv").read_bytes()


def test_run_directory_contents(tmp_path, small_config):
    result = fit(small_config(plots=True), runs_root=tmp_path, progress="none")
    run = result.run_dir
    assert run.parent == tmp_path / "tiny"
    assert sorted(p.name for p in run.iterdir()) == [
        "checkpoints",
        "config.yaml",
        "metrics.csv",
        "plots",
    ]  # fmt: skip  (no .lock: fit removes it when it ends)
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "best.safetensors", "last.safetensors"
    ]  # fmt: skip
    assert sorted(p.name for p in (run / "plots").iterdir()) == ["accuracy.png", "loss.png"]
    rows = read(run / "metrics.csv")
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert list(rows[0]) == ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr"]
    assert rows == result.history
    assert result.best_metrics == next(r for r in rows if r["epoch"] == result.best_epoch)
    assert result.best_metrics["val_loss"] == min(r["val_loss"] for r in rows)
    assert rows[-1]["val_accuracy"] > 0.4 and rows[-1]["loss"] < rows[0]["loss"]


def test_same_config_and_seed_twice_gives_identical_runs(tmp_path, with_dropout):
    a = fit(with_dropout(), run_dir=tmp_path / "a", progress="none").run_dir
    b = fit(with_dropout(), run_dir=tmp_path / "b", progress="none").run_dir
    assert_same_run(a, b)
    c = fit(with_dropout(), run_dir=tmp_path / "c", progress="none", overrides=["seed=1"])
    assert not np.array_equal(
        final_weights(a)["dense/kernel"], final_weights(c.run_dir)["dense/kernel"]
    )


def test_the_stored_config_reproduces_the_run(tmp_path, with_dropout):
    from bptrain.config import load_config

    a = fit(with_dropout(), run_dir=tmp_path / "a", progress="none").run_dir
    b = fit(load_config(a / "config.yaml"), run_dir=tmp_path / "b", progress="none").run_dir
    assert_same_run(a, b)


def test_resume_after_the_last_epoch_with_more_epochs(tmp_path, with_dropout):
    full = fit(with_dropout(epochs=4), run_dir=tmp_path / "full", progress="none").run_dir
    part = fit(with_dropout(epochs=2), run_dir=tmp_path / "part", progress="none").run_dir
    result = fit(resume=part, overrides=["training.epochs=4"], progress="none")
    assert [r["epoch"] for r in result.history] == [1, 2, 3, 4]
    assert_same_run(full, part)
    assert "epochs: 4" in (part / "config.yaml").read_text()


class Crash(Exception):
    pass


def crash_at(monkeypatch, call: int, action=None):
    """Make Trainer.train_step fail (or run ``action``) on its ``call``-th invocation."""
    original = Trainer.train_step
    calls = {"n": 0}

    def step(self, xb, yb, wb=None):
        calls["n"] += 1
        if calls["n"] == call:
            if action is None:
                raise Crash
            action()
        return original(self, xb, yb, wb)

    monkeypatch.setattr(Trainer, "train_step", step)


def assert_crash_resume_exact(config, tmp_path, monkeypatch, call: int) -> None:
    """A run of ``config`` that crashes at its ``call``-th step and is resumed ends exactly
    like an uninterrupted one."""
    full = fit(config, run_dir=tmp_path / "full", progress="none").run_dir
    crash_at(monkeypatch, call)
    with pytest.raises(Crash):
        fit(config, run_dir=tmp_path / "crashed", progress="none")
    monkeypatch.undo()
    fit(resume=tmp_path / "crashed", progress="none")
    assert_same_run(full, tmp_path / "crashed")


def test_resume_mid_epoch_after_a_crash_is_exact(tmp_path, monkeypatch, with_dropout):
    config = with_dropout(epochs=3, checkpoint={"every_steps": 3})  # 8 steps per epoch
    full = fit(config, run_dir=tmp_path / "full", progress="none").run_dir
    crash_at(monkeypatch, 14)  # epoch 2, after the checkpoint at its step 3
    with pytest.raises(Crash):
        fit(config, run_dir=tmp_path / "crashed", progress="none")
    state = checkpoint.load(tmp_path / "crashed" / "checkpoints" / "last.safetensors").state
    assert (state["epoch"], state["step"]) == (1, 3)
    correct, seen = state["train_metrics"]  # accuracy's counts of the epoch's first 3 batches
    assert seen == 3 * 16 and 0 < correct <= seen and correct == int(correct)
    monkeypatch.undo()
    fit(resume=tmp_path / "crashed", progress="none")
    assert_same_run(full, tmp_path / "crashed")  # metrics.csv with the training accuracy too


def without_column(csv_text: str, name: str) -> str:
    rows = [line.split(",") for line in csv_text.splitlines()]
    i = rows[0].index(name)
    return "".join(",".join(r[:i] + r[i + 1 :]) + "\n" for r in rows)


def test_a_run_begun_before_training_metrics_resumes_as_it_began(
    tmp_path, monkeypatch, with_dropout
):
    """A run stopped mid-epoch by a bptrain that logged no training metrics (its checkpoint
    has no training-metric sums and no divergence-guard state, its metrics.csv no accuracy
    column) resumes exactly, keeping its columns."""
    config = with_dropout(epochs=3, checkpoint={"every_steps": 3})
    full = fit(config, run_dir=tmp_path / "full", progress="none").run_dir
    crash_at(monkeypatch, 14)
    with pytest.raises(Crash):
        fit(config, run_dir=tmp_path / "old", progress="none")
    monkeypatch.undo()
    # Make it as the older bptrain wrote it.
    run = tmp_path / "old"
    metrics_csv = without_column((run / "metrics.csv").read_text(), "accuracy")
    (run / "metrics.csv").write_text(metrics_csv)
    last = run / "checkpoints" / "last.safetensors"
    ckpt = checkpoint.load(last)
    state = {k: v for k, v in ckpt.state.items() if k not in ("train_metrics", "divergence_guard")}
    state["history"] = [{k: v for k, v in r.items() if k != "accuracy"} for r in state["history"]]
    state["metrics_csv_bytes"] = len(metrics_csv.encode())
    last.write_bytes(checkpoint.encode(ckpt.arrays, state))

    result = fit(resume=run, progress="none")
    assert (run / "metrics.csv").read_text() == without_column(
        (full / "metrics.csv").read_text(), "accuracy"
    )
    assert all("accuracy" not in r and "val_accuracy" in r for r in result.history)
    np.testing.assert_equal(final_weights(run), final_weights(full))


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_saves_the_current_step_and_resume_is_exact(
    tmp_path, monkeypatch, with_dropout, signum, code
):
    config = with_dropout(epochs=3)
    full = fit(config, run_dir=tmp_path / "full", progress="none").run_dir
    before = signal.getsignal(signum)
    crash_at(monkeypatch, 11, lambda: os.kill(os.getpid(), signum))
    with pytest.raises(Interrupted) as info:
        fit(config, run_dir=tmp_path / "stopped", progress="none")
    assert info.value.exit_code == code
    name = signal.Signals(signum).name
    assert f"interrupted by {name} after epoch 2, step 3" in str(info.value)
    assert signal.getsignal(signum) is before  # the handler is restored
    monkeypatch.undo()
    fit(resume=tmp_path / "stopped" / "checkpoints" / "last.safetensors", progress="none")
    assert_same_run(full, tmp_path / "stopped")


def test_a_run_killed_before_its_first_checkpoint_starts_over(tmp_path, monkeypatch, small_config):
    full = fit(small_config(), run_dir=tmp_path / "full", progress="none").run_dir
    crash_at(monkeypatch, 2)
    with pytest.raises(Crash):
        fit(small_config(), run_dir=tmp_path / "early", progress="none")
    monkeypatch.undo()
    fit(resume=tmp_path / "early", progress="none")
    assert_same_run(full, tmp_path / "early")


def test_resume_refuses_another_model(tmp_path, small_config):
    run = fit(small_config(), run_dir=tmp_path / "r", progress="none").run_dir
    with pytest.raises(ConfigError, match="model: differs from the checkpoint's"):
        fit(resume=run, overrides=["model.layers.0.units=8", "training.epochs=5"])


def test_run_dir_that_holds_a_run_is_refused(tmp_path, small_config):
    fit(small_config(), run_dir=tmp_path / "r", progress="none")
    with pytest.raises(ConfigError, match="already holds a run; continue it with --resume"):
        fit(small_config(), run_dir=tmp_path / "r", progress="none")


def test_early_stopping_restores_the_best_weights(tmp_path, small_config):
    config = small_config(epochs=40, early_stopping={"patience": 2, "monitor": "val_loss"})
    config["optimizer"]["learning_rate"] = 0.2  # noisy enough to get worse soon
    result = fit(config, run_dir=tmp_path / "r", progress="none")
    assert result.stopped_early
    last = result.history[-1]["epoch"]
    assert last < 40 and last - result.best_epoch == 2
    best = checkpoint.load(tmp_path / "r" / "checkpoints" / "best.safetensors")
    assert best.state["epoch"] == result.best_epoch
    for name, value in result.model.network.weights().items():
        assert np.array_equal(value, best.section("model")[name])
    # resuming a run that stopped early has nothing left to do
    again = fit(resume=tmp_path / "r", progress="none")
    assert again.history == result.history


def test_reduce_on_plateau_lowers_the_rate(tmp_path, small_config):
    config = small_config(
        epochs=8, schedule={"type": "reduce_on_plateau", "patience": 1, "factor": 0.5}
    )
    config["optimizer"]["learning_rate"] = 0.5
    rows = fit(config, run_dir=tmp_path / "r", progress="none").history
    rates = [r["lr"] for r in rows]
    assert rates[0] == 0.5 and min(rates) < 0.5
    assert all(b in (a, a / 2) for a, b in zip(rates, rates[1:], strict=False))


@pytest.mark.parametrize(
    "lr, what",
    [
        # the loss overflows: the non-finite guard, naming the layer
        ("1e20", "the loss is inf and the first non-finite gradient is in layer 'dense_1' "
                 "(dense_1/kernel)"),
        # the loss explodes while finite: against the starting level kept in the checkpoint
        ("1000", "the loss is 9.203e+08, more than 1e3 times the run's starting level 3.717; "
                 "the steepest gradient is in layer 'dense' (dense/kernel, gradient norm "
                 "1.68e+07, weight norm 168)"),
    ],
    ids=["non-finite", "exploded"],
)  # fmt: skip
def test_a_diverging_loss_stops_with_epoch_step_and_cause_and_keeps_the_last_checkpoint(
    tmp_path, lr, what
):
    config = {
        "name": "diverge",
        "data": {"dataset": "linear", "size": 200, "noise": 0.1},
        "model": {"layers": [{"type": "Dense", "units": 8}, {"type": "Dense", "units": 1}]},
        "loss": "mse",
        "optimizer": {"type": "sgd", "learning_rate": 0.05},
        "training": {"epochs": 2, "batch_size": 16, "plots": False},
    }
    run = fit(config, run_dir=tmp_path / "r", progress="none").run_dir
    with pytest.raises(DivergenceError) as info:
        fit(
            resume=run,
            overrides=[f"optimizer.learning_rate={lr}", "training.epochs=5"],
            progress="none",
        )
    assert str(info.value) == (
        f"training diverged at epoch 3, step 2: {what}; the last good checkpoint is "
        f"{run / 'checkpoints' / 'last.safetensors'}. Lower optimizer.learning_rate or set "
        "optimizer.clipnorm"
    )
    state = checkpoint.load(run / "checkpoints" / "last.safetensors").state
    assert (state["epoch"], state["step"]) == (2, 0)
    assert [r["epoch"] for r in read(run / "metrics.csv")] == [1, 2]


def cosine_rates(epochs_done, epochs, lr=0.01, alpha=0.1):
    """The rate after each epoch of a cosine decay over ``epochs`` whole epochs."""
    return [
        lr * (alpha + (1 - alpha) * 0.5 * (1 + math.cos(math.pi * e / epochs))) for e in epochs_done
    ]


@pytest.mark.parametrize(
    ("epochs", "overrides", "per_epoch", "samples"),
    [(3, [], 8, 115), (5, [], 8, 115), (3, ["data.validation_split=0.5"], 5, 72)],
)
def test_a_schedule_spans_the_whole_run_by_default(
    tmp_path, small_config, epochs, overrides, per_epoch, samples
):
    """Without decay_steps, cosine decays to alpha x lr at the run's last step, however many
    epochs and training samples the run has; config.yaml notes the counts."""
    config = small_config(epochs=epochs, schedule={"type": "cosine", "alpha": 0.1})
    result = fit(config, run_dir=tmp_path / "r", progress="none", overrides=overrides)
    rates = [r["lr"] for r in result.history]
    assert rates == pytest.approx(cosine_rates(range(1, epochs + 1), epochs), rel=1e-12)
    assert rates[-1] == pytest.approx(0.001, rel=1e-12)
    text = (result.run_dir / "config.yaml").read_text()
    assert text.endswith(
        f"# run length: {samples} training samples in batches of 16: {per_epoch} steps per "
        f"epoch x {epochs} epochs = {per_epoch * epochs} steps\n"
        f"# schedule: cosine, decay_steps {per_epoch * epochs} (the whole run), warmup_steps 0\n"
    )


def test_schedule_lengths_in_epochs(tmp_path, small_config):
    step = small_config(epochs=3, schedule={"type": "step", "step_epochs": 1, "gamma": 0.5})
    result = fit(step, run_dir=tmp_path / "step", progress="none")
    assert [r["lr"] for r in result.history] == [0.01, 0.005, 0.0025]
    warm = {"type": "cosine", "alpha": 0.1, "warmup_epochs": 1}
    result = fit(small_config(epochs=3, schedule=warm), run_dir=tmp_path / "w", progress="none")
    # 8 steps of warmup to the full rate, then 16 of decay down to alpha x lr
    assert [r["lr"] for r in result.history] == pytest.approx(
        [0.01, *cosine_rates([1, 2], 2)], rel=1e-12
    )


def test_resume_with_a_whole_run_schedule_is_exact(tmp_path, monkeypatch, small_config):
    config = small_config(epochs=3, schedule={"type": "cosine"}, checkpoint={"every_steps": 3})
    assert_crash_resume_exact(config, tmp_path, monkeypatch, 14)


def test_more_epochs_on_resume_stretch_a_whole_run_schedule(tmp_path, small_config, capsys):
    """training.epochs=4 on resume: the default length follows the new run from the step
    reached, and the run says how the schedule and its rate changed."""
    config = small_config(epochs=2, schedule={"type": "cosine", "alpha": 0.1})
    part = fit(config, run_dir=tmp_path / "part", progress="none").run_dir
    capsys.readouterr()
    result = fit(resume=part, overrides=["training.epochs=4"], progress="plain")
    rates = [r["lr"] for r in result.history]
    assert rates == pytest.approx(cosine_rates([1, 2], 2) + cosine_rates([3, 4], 4), rel=1e-12)
    out = capsys.readouterr().out
    assert (
        "schedule changed on resume: decay_steps 16 -> 32; the rate at step 16 goes from "
        "0.001 to 0.0055\n" in out
    )


# -- training metrics -----------------------------------------------------------------------------
def frozen(config: dict, metrics: list[str]) -> dict:
    """``config`` with ``metrics`` and without learning: SGD at 1e-30 leaves every float32
    weight as it was, so every epoch's training batches are scored by the model that
    ``predict`` scores the training set with afterwards."""
    return dict(config, metrics=metrics, optimizer={"type": "sgd", "learning_rate": 1e-30})


@pytest.mark.parametrize("replicas", [1, 2, 3])
def test_training_metrics_are_those_of_the_training_batches(tmp_path, small_config, replicas):
    """Classification metrics from counts are exact: the same numbers as scoring the whole
    training set at once, however the batches were split over replicas (batches of 19: the last
    one of 1 row)."""
    names = ["accuracy", "precision", "recall", "f1"]
    config = frozen(small_config(epochs=2, batch_size=19, replicas=replicas), names)
    result = fit(config, run_dir=tmp_path / "run", progress="none")
    data = load_dataset(dict(result.config.data), result.config.seed)
    outputs = result.model.predict(data.x_train)
    want = metrics_mod.compute(names, data.y_train, outputs, data.num_classes)
    assert 0.2 < want["accuracy"] < 0.8  # an untrained model: some right, some wrong
    rows = read(result.run_dir / "metrics.csv")
    assert list(rows[0]) == [
        "epoch", "loss", *names, "val_loss", *(f"val_{n}" for n in names), "lr"
    ]  # fmt: skip
    assert rows == result.history
    for row in rows:
        assert {n: row[n] for n in names} == want


def test_training_regression_metrics_are_those_of_the_training_batches(tmp_path, small_config):
    names = ["mse", "mae", "r2"]
    config = frozen(small_config(epochs=1, batch_size=19), names)
    config["data"] = {"dataset": "linear", "size": 200, "features": 3, "validation_split": 0.2}
    config["model"] = {"layers": [{"type": "Dense", "units": 8}, {"type": "Dense", "units": 1}]}
    config["loss"] = "mse"
    result = fit(config, run_dir=tmp_path / "run", progress="none")
    data = load_dataset(dict(result.config.data), result.config.seed)
    want = metrics_mod.regression_metrics(data.y_train, result.model.predict(data.x_train))
    row = result.history[0]
    for name in names:  # to float32 rounding: GEMMs of 19 rows and of predict's 256 differ
        assert row[name] == pytest.approx(want[name], rel=1e-6), name
    assert row["mse"] == pytest.approx(row["loss"], rel=1e-6)  # the loss is the MSE here


def test_a_run_without_validation_logs_and_plots_training_metrics(tmp_path):
    """The char_lstm case: no validation split, so accuracy was nowhere before."""
    text = Path(__file__).resolve().parents[2] / "configs" / "data" / "tiny_text.txt"
    config = {
        "name": "chars",
        "seed": 0,
        "data": {"dataset": "text", "path": str(text), "seq_len": 12, "step": 3},
        "model": {
            "layers": [
                {"type": "Embedding", "input_dim": 50, "output_dim": 8},
                {"type": "LSTM", "units": 32},
                {"type": "Dense", "units": 50, "activation": "softmax"},
            ]
        },
        "loss": "sparse_categorical_crossentropy",
        "optimizer": {"type": "adam", "learning_rate": 0.01},
        "metrics": ["accuracy"],
        "training": {"epochs": 4, "batch_size": 64},
    }
    result = fit(config, run_dir=tmp_path / "run", progress="none")
    rows = read(tmp_path / "run" / "metrics.csv")
    assert list(rows[0]) == ["epoch", "loss", "accuracy", "lr"]
    accuracy = [r["accuracy"] for r in rows]
    assert accuracy[0] < 0.3 < accuracy[-1]  # learning: from the most frequent characters up
    assert accuracy == [r["accuracy"] for r in result.history]
    plots = sorted(p.name for p in (tmp_path / "run" / "plots").iterdir())
    assert plots == ["accuracy.png", "loss.png"]
    assert result.config.training.checkpoint.monitor == "loss"
