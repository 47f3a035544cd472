"""Data and models too large for the memory are refused from their sizes, before anything is
allocated: one line naming the data option or the layer, exit status 2, nothing written."""

import time

import pytest

from bptrain import memory
from bptrain.train import memory as limits


def one_line(err: str) -> str:
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err[len("error: ") : -1]


@pytest.fixture
def spirals(write_config):
    return write_config(
        "name: s\n"
        "data: {dataset: spirals, validation_split: 0.2}\n"
        "model:\n"
        "  layers:\n"
        "    - {type: Dense, units: 16, activation: relu}\n"
        "    - {type: Dense, units: 16, activation: relu}\n"
        "    - {type: Dense, units: 3, activation: softmax}\n"
        "loss: sparse_categorical_crossentropy\n"
        "training: {epochs: 1, plots: false, max_memory: 16GiB, eval_batch_size: 256}\n"
    )


COMMANDS = (["config", "check", "--build"], ["fit"], ["gradcheck"])


def test_generated_data_is_refused_before_it_is_generated(bptrain, spirals, tmp_path):
    started = time.monotonic()
    for command in COMMANDS:
        code, out, err = bptrain(*command, spirals, "data.classes=3000000")
        assert code == 2 and out == ""
        assert one_line(err) == (
            "override data.classes=3000000: data.classes: spirals with 300,000,000 points "
            "(classes: 3000000 x size: 100) takes about 44.7 GiB to load, more than "
            "training.max_memory (16 GiB); make it smaller with data.classes and data.size "
            "(raise training.max_memory if the machine has room)"
        )
    assert time.monotonic() - started < 10  # (generating them took minutes, or died)
    assert not (tmp_path / "runs").exists()


def test_a_layer_with_too_many_weights_is_named_before_they_are_allocated(
    bptrain, spirals, tmp_path
):
    overrides = ["model.layers.0.units=20000", "model.layers.1.units=1000000"]
    for command in COMMANDS:
        code, out, err = bptrain(*command, spirals, *overrides)
        assert code == 2 and out == ""
        assert one_line(err) == (
            f"{spirals}:6: model.layers[1]: Dense has 20,001,000,000 parameters, which with "
            "their gradients, adam's 2 slot(s) and a checkpoint's copy take about 596 GiB; the "
            "model and the data (4.69 KiB) need about 599 GiB, more than training.max_memory "
            "(16 GiB); make the layer smaller (raise training.max_memory if the machine has room)"
        )
    assert not (tmp_path / "runs").exists()


def test_a_layer_with_too_many_activations_is_named(bptrain, spirals):
    code, _, err = bptrain("config", "check", "--build", spirals, "model.layers.0.units=10000000")
    assert code == 2
    assert one_line(err) == (
        f"{spirals}:5: model.layers[0]: Dense has inputs of shape (2,) and outputs of shape "
        "(10000000,): a training step keeps 30,000,000 values per sample for it, which for "
        "batches of 256 (training.batch_size, eval_batch_size) take about 28.6 GiB; the model "
        "and the data (4.69 KiB) need about 34.3 GiB, more than training.max_memory (16 GiB); "
        "make the layer or the batches smaller (raise training.max_memory if the machine has "
        "room)"
    )


def test_without_max_memory_the_limit_is_the_memory_available(bptrain, spirals, monkeypatch):
    monkeypatch.setattr(limits, "available", lambda: 1 << 30)
    code, _, err = bptrain("fit", spirals, "training.max_memory=null", "data.size=10000000")
    assert code == 2
    assert one_line(err) == (
        "override data.size=10000000: data.size: spirals with 30,000,000 points (classes: 3 x "
        "size: 10000000) takes about 4.47 GiB to load, more than the 1 GiB of memory available; "
        "make it smaller with data.classes and data.size (or set training.max_memory if more "
        "memory will be free)"
    )
    code, _, err = bptrain("fit", spirals, "training.max_memory=null", "--run-dir", "r")
    assert code == 0, err  # the config as it is fits


def test_max_memory_accepts_sizes_and_refuses_nonsense(bptrain, spirals):
    assert memory.parse_size("8GiB") == 8 << 30 and memory.parse_size("500MB") == 500_000_000
    assert memory.parse_size("2g") == 2 << 30 and memory.parse_size(4096) == 4096
    code, _, err = bptrain("config", "check", spirals, "training.max_memory=lots")
    assert code == 2
    assert one_line(err) == (
        "override training.max_memory=lots: training.max_memory: expected a size such as 8GiB, "
        "500MB or 2G, got 'lots'"
    )
    code, _, err = bptrain("config", "check", "--build", spirals, "training.max_memory=1MiB")
    assert code == 0, err  # spirals and a small MLP need less
