"""Data parallelism over threads (``training.replicas``): the same result as one model to float32
round-off (BatchNorm, Dropout, an L2 penalty, a CNN), bit-identical repeats and resume, uneven
and tiny batches, and errors in a worker thread."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from bptrain.config import build_model, resolve
from bptrain.errors import ConfigError
from bptrain.runs import checkpoint
from bptrain.train import fit
from bptrain.train.engine import ranks_replace_replicas
from bptrain.train.loop import Trainer
from bptrain.train.metrics import RunningMetrics
from bptrain.train.replicas import ReplicaSum, ThreadReplicas, WorkerThreads
from tests.conftest import parallel_mlp_config

pytestmark = pytest.mark.timeout(60)


def mlp_config(**training) -> dict:
    return parallel_mlp_config("replicas", **training)


@pytest.fixture
def cnn_config(tmp_path):
    """A small CNN with BatchNorm (on images) and Dropout, on 90 generated 2-class 8x8 images
    (npz); batches of 25 (the last one 15 rows, 7/8 over 2 replicas)."""
    rng = np.random.default_rng(0)
    x = rng.random((120, 1, 8, 8), dtype=np.float32)
    y = (x[:, 0, :4].mean(axis=(1, 2)) > x[:, 0, 4:].mean(axis=(1, 2))).astype(np.int64)
    path = tmp_path / "images.npz"
    np.savez(path, x_train=x[:100], y_train=y[:100], x_test=x[100:], y_test=y[100:])

    def make(**training) -> dict:
        layers = [
            {"type": "Conv2D", "filters": 4, "kernel_size": 3, "use_bias": False},
            {"type": "BatchNorm"},
            {"type": "Activation", "activation": "relu"},
            {"type": "MaxPool2D", "pool_size": 2},
            {"type": "Flatten"},
            {"type": "Dropout", "rate": 0.25},
            {"type": "Dense", "units": 2, "activation": "softmax"},
        ]
        return {
            "name": "cnn",
            "seed": 1,
            "data": {"dataset": "npz", "path": str(path), "validation_split": 0.1},
            "model": {"layers": layers},
            "loss": "sparse_categorical_crossentropy",
            "optimizer": {"type": "adam", "learning_rate": 0.01},
            "metrics": ["accuracy"],
            "training": {"epochs": 2, "batch_size": 25, "plots": False, **training},
        }

    return make


def last(run_dir) -> checkpoint.Checkpoint:
    return checkpoint.load(run_dir / "checkpoints" / "last.safetensors")


def assert_close_runs(a, b, rtol: float) -> None:
    """Weights (and BatchNorm statistics) equal to round-off, the dropout generator exactly."""
    ca, cb = last(a), last(b)
    wa, wb = ca.section("model"), cb.section("model")
    assert wa.keys() == wb.keys()
    for name in wa:
        scale = np.abs(wa[name]).max()
        assert np.abs(wa[name] - wb[name]).max() <= rtol * scale, name
    assert ca.state["rng"] == cb.state["rng"]
    assert (ca.state["epoch"], ca.state["step"]) == (cb.state["epoch"], cb.state["step"])


def crash_then_resume(config: dict, run_dir, monkeypatch, call: int) -> dict:
    """Train ``config`` into ``run_dir`` until its ``call``-th step raises, then resume it to the
    end; returns the state of the checkpoint the crash left."""
    original, calls = Trainer.train_step, {"n": 0}

    def crashing(self, xb, yb, wb=None):
        calls["n"] += 1
        if calls["n"] == call:
            raise RuntimeError("killed")
        return original(self, xb, yb, wb)

    monkeypatch.setattr(Trainer, "train_step", crashing)
    with pytest.raises(RuntimeError, match="killed"):
        fit(config, run_dir=run_dir, progress="none")
    state = last(run_dir).state
    monkeypatch.undo()
    fit(resume=run_dir, progress="none")
    return state


def assert_same_run(a, b) -> None:
    wa, wb = last(a).section("model"), last(b).section("model")
    assert wa.keys() == wb.keys()
    for name in wa:
        assert np.array_equal(wa[name], wb[name]), name  # bit for bit
    assert (a / "metrics.csv").read_bytes() == (b / "metrics.csv").read_bytes()


@pytest.mark.parametrize("replicas", [2, 3])
def test_mlp_with_batchnorm_and_dropout_equals_one_model(tmp_path, replicas):
    one = fit(mlp_config(), run_dir=tmp_path / "one", progress="none")
    many = fit(mlp_config(replicas=replicas), run_dir=tmp_path / "many", progress="none")
    assert many.threads == 1
    assert_close_runs(one.run_dir, many.run_dir, rtol=1e-5)
    for r1, r2 in zip(one.history, many.history, strict=True):
        assert r2["loss"] == pytest.approx(r1["loss"], rel=1e-5)
        assert r2["val_loss"] == pytest.approx(r1["val_loss"], rel=1e-5)
    # The model is left as a single model: training-mode steps of its own still work.
    from bptrain.nn import context

    assert context.current() is None and many.model.network.layers[1].reducer is None


def test_cnn_equals_one_model(tmp_path, cnn_config):
    one = fit(cnn_config(), run_dir=tmp_path / "one", progress="none")
    two = fit(cnn_config(replicas=2), run_dir=tmp_path / "two", progress="none")
    assert_close_runs(one.run_dir, two.run_dir, rtol=1e-5)
    assert two.history[-1]["val_accuracy"] == one.history[-1]["val_accuracy"]


def feeding_cnn(cnn_config, **training) -> dict:
    """``cnn_config`` with a first Conv2D that computes its output as its max pool's windows
    (9 column rows < 12 filters: ``Conv2D.feeds``) and stores the rest channel-major."""
    config = cnn_config(**training)
    config["model"]["layers"] = [
        {"type": "Conv2D", "filters": 12, "kernel_size": 3, "activation": "relu"},
        {"type": "MaxPool2D", "pool_size": 2},
        {"type": "Conv2D", "filters": 4, "kernel_size": 2, "activation": "tanh"},
        {"type": "Flatten"},
        {"type": "Dropout", "rate": 0.25},
        {"type": "Dense", "units": 2, "activation": "softmax"},
    ]
    return config


def test_cnn_whose_conv_feeds_its_pool_equals_one_model_and_resumes_exactly(
    tmp_path, monkeypatch, cnn_config
):
    one = fit(feeding_cnn(cnn_config), run_dir=tmp_path / "one", progress="none")
    assert type(one.model.network.runs[0]).__name__ == "ConvMaxPool2D"
    config = feeding_cnn(cnn_config, replicas=2, checkpoint={"every_steps": 2})
    full = fit(config, run_dir=tmp_path / "full", progress="none").run_dir
    assert_close_runs(one.run_dir, full, rtol=1e-5)
    # 4 steps per epoch: killed at epoch 2's fourth step, after the checkpoint of its second
    # (written in its third, once that step's loss had checked its weights)
    state = crash_then_resume(config, tmp_path / "crashed", monkeypatch, call=8)
    assert (state["epoch"], state["step"]) == (1, 2)  # mid-epoch, from every_steps: 2
    assert_same_run(full, tmp_path / "crashed")


def one_step(config: dict, replicas: int, rows: int):
    """(single model, trainer's model, replica models) after one step on ``rows`` rows."""
    from bptrain.data import load_dataset

    config = resolve(config)
    data = load_dataset(dict(config.data), config.seed)
    x, y = data.x_train[:rows], data.y_train[:rows]
    single = build_model(config, data.input_shape)
    loss = single.compute_gradients(x, y)
    models = [build_model(config, data.input_shape) for _ in range(replicas)]
    together = ThreadReplicas(models)
    metrics = RunningMetrics([], "classification")
    with together.running():
        total, _ = together.reduce(*together.compute_gradients(x, y, metrics))
    assert total == pytest.approx(float(loss), rel=1e-6)
    g1, g2 = single.parameters().flat_grad, models[0].parameters().flat_grad
    assert np.abs(g1 - g2).max() <= 1e-5 * np.abs(g1).max()
    assert single.network.rng_state() == models[0].network.rng_state()
    for name, value in single.network.state().items():  # BatchNorm's moving statistics
        np.testing.assert_allclose(models[0].network.state()[name], value, rtol=1e-6, atol=1e-7)
    return single, models


def test_gradients_of_one_step_equal_one_models(cnn_config):
    """Straight from compute_gradients: 2 replicas' summed gradient is the batch gradient."""
    _, models = one_step(cnn_config(), 2, 25)
    g = models[0].parameters().flat_grad
    assert not np.array_equal(models[1].parameters().flat_grad, g)  # a slice's own gradient
    assert models[1].parameters().flat_value is models[0].parameters().flat_value


@pytest.mark.parametrize("replicas, batch", [(2, 7), (3, 7), (3, 40), (2, 100)])
def test_validation_dealt_to_the_replicas_is_the_models_bit_for_bit(cnn_config, replicas, batch):
    """Whole validation batches in turn to each replica (7 rows: 6 batches, the last of 5;
    40: one batch, on the model alone), after a step that moved BatchNorm's statistics."""
    from bptrain.data import load_dataset

    config = resolve(cnn_config())
    data = load_dataset(dict(config.data), config.seed)
    x, y = data.x_train[:40], data.y_train[:40]
    models = [build_model(config, data.input_shape) for _ in range(replicas)]
    together = ThreadReplicas(models)
    with together.running():
        together.reduce(*together.compute_gradients(x, y, RunningMetrics([], "classification")))
        models[0].apply_gradients()
        loss, outputs = together.validate(x, y, batch)
    alone_loss, alone_outputs = models[0].evaluate(x, y, batch)
    assert loss == alone_loss
    assert np.array_equal(outputs, alone_outputs) and outputs.shape == (40, 2)
    assert 0.5 < loss < 1.0  # a 2-class cross-entropy near log 2


@pytest.mark.parametrize("rows", [1, 2, 5])
def test_batches_smaller_than_or_uneven_over_the_replicas(rows):
    """Batches of 1 and 2 rows on 3 replicas take as many slices as rows; 5 rows split 1/2/2."""
    one_step(mlp_config(), 3, rows)


def test_same_config_twice_gives_identical_runs(tmp_path):
    a = fit(mlp_config(replicas=2), run_dir=tmp_path / "a", progress="none").run_dir
    b = fit(mlp_config(replicas=2), run_dir=tmp_path / "b", progress="none").run_dir
    assert_same_run(a, b)


def test_resume_mid_epoch_is_exact(tmp_path, monkeypatch):
    config = mlp_config(replicas=2, checkpoint={"every_steps": 2})  # 7 steps per epoch
    full = fit(config, run_dir=tmp_path / "full", progress="none").run_dir
    # killed at epoch 2, step 6, after the checkpoint of its step 4 (written in step 5)
    state = crash_then_resume(config, tmp_path / "crashed", monkeypatch, call=13)
    assert (state["epoch"], state["step"]) == (1, 4)
    assert_same_run(full, tmp_path / "crashed")


def test_batches_of_one_row_train_exactly_as_one_model(tmp_path):
    """A batch of one row is one slice, computed by the model itself (here bit for bit)."""
    one = fit(mlp_config(epochs=1, batch_size=1), run_dir=tmp_path / "1", progress="none")
    three = fit(mlp_config(epochs=1, batch_size=1, replicas=3), run_dir=tmp_path / "3")
    assert_same_run(one.run_dir, three.run_dir)


def test_an_error_in_a_worker_thread_is_raised_in_the_main_thread(tmp_path, monkeypatch):
    from bptrain.nn.layers import BatchNorm

    forward = BatchNorm.forward

    def failing(self, x, training=False):
        if threading.current_thread() is not threading.main_thread():
            raise FloatingPointError("replica failed")
        return forward(self, x, training)  # the main thread's replica waits in the reducer

    monkeypatch.setattr(BatchNorm, "forward", failing)
    with pytest.raises(FloatingPointError, match="replica failed"):
        fit(mlp_config(replicas=2), run_dir=tmp_path / "r", progress="none")
    monkeypatch.undo()
    # The next run in this process is unaffected.
    assert fit(mlp_config(replicas=2, epochs=1), run_dir=tmp_path / "s").history


def test_worker_errors_come_by_replica_and_release_waiting_replicas():
    sums, workers = ReplicaSum(3), WorkerThreads(2)
    reduce = [sums.reducer(i) for i in range(3)]

    def bad():
        raise KeyError("two")

    tasks = [lambda: reduce[0](np.ones(2)), lambda: reduce[1](np.ones(2)), bad]
    try:
        with pytest.raises(KeyError, match="two"):
            workers.run(tasks, on_error=sums.abort)
        sums.start(3)
        tasks = [lambda i=i: reduce[i](np.full(2, float(i + 1))) for i in range(3)]
        assert [r.tolist() for r in workers.run(tasks, on_error=sums.abort)] == [[6.0, 6.0]] * 3
    finally:
        workers.close()


def test_replicas_are_validated_and_give_way_to_mpi_ranks():
    with pytest.raises(ConfigError, match="replicas"):
        resolve(mlp_config(replicas=0))
    config = resolve(mlp_config(replicas=2))
    on_ranks, line = ranks_replace_replicas(config, 2)
    assert on_ranks.training.replicas == 1 and config.training.replicas == 2
    assert on_ranks.replace(training=config.training) == config  # nothing else changes
    assert line == (
        "training.replicas: 1 instead of 2: the 2 MPI ranks split each batch (ranks and thread "
        "replicas do not combine)"
    )  # on real ranks: tests/train/test_distributed.py
