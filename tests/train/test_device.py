"""``training.device: gpu`` on the CPU: the GPU's array module is replaced by the strict checked
namespace (``tests/checked_xp.py``), so a run's whole path (data on the device, batches sliced
there, metrics and checkpoints brought back) is exercised, and any host array that reaches the
core, or NumPy call on a device array, fails the run. The numbers are NumPy's, so the runs
must equal CPU runs bit for bit."""

from __future__ import annotations

import sys
import types

import pytest

from bptrain.errors import ConfigError, DeviceError
from bptrain.nn import backend
from bptrain.train import device, fit
from bptrain.train.evaluate import evaluate_checkpoint
from tests.checked_xp import namespace
from tests.train.test_fit import assert_same_run


@pytest.fixture
def fake_gpu(monkeypatch):
    """``gpu`` means the checked namespace for the test."""
    monkeypatch.setattr(device, "gpu_module", lambda: namespace)


def config(small_config, **training):
    c = small_config(**training)
    c["model"]["layers"][1:1] = [{"type": "BatchNorm"}, {"type": "Dropout", "rate": 0.3}]
    c["metrics"] = ["accuracy", "f1"]
    return c


def test_a_gpu_run_equals_the_cpu_run_and_leaves_the_backend_as_it_was(
    tmp_path, small_config, fake_gpu
):
    cpu = fit(config(small_config), run_dir=tmp_path / "cpu", progress="none").run_dir
    gpu = fit(config(small_config, device="gpu"), run_dir=tmp_path / "gpu", progress="none")
    assert backend.name == "numpy"
    assert gpu.config.training.device == "gpu"
    assert_same_run(cpu, gpu.run_dir)  # weights bit for bit, metrics.csv byte for byte
    assert "device: gpu" in (gpu.run_dir / "config.yaml").read_text()


def test_a_gpu_run_resumes_exactly_and_evaluates_on_either_device(tmp_path, small_config, fake_gpu):
    c = config(small_config, device="gpu", checkpoint={"every_steps": 3})
    full = fit({**c, "training": {**c["training"], "epochs": 3}}, run_dir=tmp_path / "full")
    part = fit({**c, "training": {**c["training"], "epochs": 1}}, run_dir=tmp_path / "part")
    fit(resume=part.run_dir, overrides=["training.epochs=3"], progress="none")
    assert_same_run(full.run_dir, part.run_dir)
    on_cpu = evaluate_checkpoint(full.run_dir, "val", plots=False).report
    with device.on_device("gpu"):
        on_gpu = evaluate_checkpoint(full.run_dir, "val", plots=False).report
    assert on_gpu == on_cpu
    assert on_cpu["accuracy"] == pytest.approx(full.history[-1]["val_accuracy"])


def test_gpu_without_cupy_or_without_a_gpu_says_which(monkeypatch, bptrain_cli, small_config):
    monkeypatch.setitem(sys.modules, "cupy", None)  # import cupy raises ImportError
    with pytest.raises(DeviceError, match=r"needs CuPy .*pip install 'bptrain\[gpu\]'"):
        device.gpu_module()

    def no_device():
        raise RuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected\nmore")

    runtime = types.SimpleNamespace(getDeviceCount=no_device)
    monkeypatch.setitem(sys.modules, "cupy", types.SimpleNamespace(cuda=types.SimpleNamespace(
        runtime=runtime)))  # fmt: skip
    with pytest.raises(DeviceError, match=r"finds no GPU: cudaErrorNoDevice: no CUDA-capable"):
        device.gpu_module()
    code, out, err = bptrain_cli(small_config(), "--device", "gpu")
    assert code == 1 and out == ""
    assert err == "error: training.device: gpu, but CuPy finds no GPU: cudaErrorNoDevice: no " \
        "CUDA-capable device is detected\n"  # fmt: skip
    assert backend.name == "numpy"


@pytest.fixture
def bptrain_cli(tmp_path, capsys, write_config):
    """``bptrain fit CONFIG *args`` in-process: (exit code, stdout, stderr)."""
    from bptrain.cli import main

    def run(cfg, *args):
        capsys.readouterr()
        with pytest.raises(SystemExit) as exc:
            main(["fit", str(write_config(cfg)), "--run-dir", str(tmp_path / "r"), *args])
        out, err = capsys.readouterr()
        return exc.value.code, out, err

    return run


def test_gpu_takes_one_model_and_refuses_what_runs_on_the_cpu(tmp_path, small_config, fake_gpu):
    result = fit(small_config(device="gpu", replicas=2), run_dir=tmp_path / "r", progress="none")
    assert result.config.training.replicas == 1
    augmented = small_config(device="gpu")
    augmented["data"] = {"dataset": "mnist", "limit": 50, "augment": [{"type": "random_flip"}]}
    with pytest.raises(ConfigError, match="data.augment runs on the CPU"):
        fit(augmented, run_dir=tmp_path / "a", progress="none")
    assert not (tmp_path / "a").exists() and backend.name == "numpy"


def test_eval_and_predict_take_the_device(tmp_path, small_config, fake_gpu, capsys):
    from bptrain.cli import main

    run = fit(small_config(), run_dir=tmp_path / "r", progress="none").run_dir
    points = tmp_path / "points.csv"
    points.write_text("x0,x1\n0.5,0.5\n-0.3,0.8\n")
    outputs = {}
    for where in ("cpu", "gpu"):
        for args in (["eval", run, "--split", "val"], ["predict", run, points]):
            capsys.readouterr()
            with pytest.raises(SystemExit) as exc:
                main([*map(str, args), "--device", where])
            assert exc.value.code == 0
            outputs[where, args[0]] = capsys.readouterr().out
    assert outputs["gpu", "eval"] == outputs["cpu", "eval"]
    assert outputs["gpu", "predict"] == outputs["cpu", "predict"]
    assert outputs["cpu", "predict"].startswith("prediction,")
    assert backend.name == "numpy"
