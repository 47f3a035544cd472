"""On a real GPU (CuPy): every layer's float64 gradient check, training steps against NumPy's,
and a run that trains, resumes and is evaluated across devices. Skipped without one (see
conftest.py); ``bench/bench_gpu.py`` adds the timings against PyTorch."""

from __future__ import annotations

import numpy as np
import pytest

from bptrain import nn
from bptrain.nn import backend
from bptrain.train import device, fit
from bptrain.train.evaluate import evaluate_checkpoint
from tests.nn.layer_cases import LAYERS, MODELS, OPTIMIZERS, inputs, train_steps
from tests.train.test_fit import assert_same_run


@pytest.fixture
def gpu():
    with device.on_device("gpu"):
        yield backend.xp


@pytest.mark.parametrize("name, make, shape, high, training", LAYERS, ids=[c[0] for c in LAYERS])
def test_every_layer_passes_its_gradient_check_on_the_gpu(gpu, name, make, shape, high, training):
    report = nn.check_layer(make(), inputs(shape, high), training=training)
    assert report.passed(1e-6), str(report)


def _losses(make, shape, high, optimizer):
    _, network, losses = train_steps(make, shape, high, optimizer)
    return losses, network.weights()


@pytest.mark.parametrize("i", range(len(MODELS)), ids=[m[0] for m in MODELS])
def test_training_steps_on_the_gpu_match_numpy(i):
    name, make, shape, high = MODELS[i]
    optimizer = OPTIMIZERS[i % len(OPTIMIZERS)]
    want, want_w = _losses(make, shape, high, optimizer)
    with device.on_device("gpu"):
        got, got_w = _losses(make, shape, high, optimizer)
    np.testing.assert_allclose(got, want, rtol=1e-4)
    for key in want_w:
        np.testing.assert_allclose(got_w[key], want_w[key], rtol=1e-3, atol=1e-5, err_msg=key)


def test_a_gpu_run_resumes_exactly_and_evaluates_on_the_cpu(tmp_path, small_config):
    c = small_config(device="gpu", checkpoint={"every_steps": 3})
    full = fit({**c, "training": {**c["training"], "epochs": 3}}, run_dir=tmp_path / "f")
    part = fit({**c, "training": {**c["training"], "epochs": 1}}, run_dir=tmp_path / "p")
    fit(resume=part.run_dir, overrides=["training.epochs=3"], progress="none")
    assert_same_run(full.run_dir, part.run_dir)
    report = evaluate_checkpoint(full.run_dir, "val", plots=False).report
    assert report["accuracy"] == pytest.approx(full.history[-1]["val_accuracy"])
