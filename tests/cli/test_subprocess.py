"""The real ``bptrain`` executable in child processes: killed (SIGKILL) or interrupted (SIGINT)
mid-run, then resumed, it ends bit-identical to an uninterrupted run."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from bptrain.nn.kernels import second_core
from bptrain.runs import checkpoint
from bptrain.train import fit

EXE = Path(sys.executable).parent / "bptrain"
COMMAND = [str(EXE)] if EXE.exists() else [sys.executable, "-m", "bptrain"]


def slow_config(small_config):
    """Long enough (30 epochs of 60 steps, ~1.5 s) to be caught mid-run; checkpoints every 25
    steps as well as after each epoch (each costs ~10 ms of fsync and rename here)."""
    config = small_config(epochs=30, checkpoint={"every_steps": 25})
    config["data"]["size"] = 400
    config["model"]["layers"].insert(1, {"type": "Dropout", "rate": 0.2})
    return config


def start(args, cwd):
    return subprocess.Popen(
        [*COMMAND, *map(str, args)],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(path: Path, proc, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.005)


def assert_same_run(a: Path, b: Path):
    wa = checkpoint.load(a / "checkpoints" / "last.safetensors").section("model")
    wb = checkpoint.load(b / "checkpoints" / "last.safetensors").section("model")
    assert wa.keys() == wb.keys()
    assert all(np.array_equal(wa[k], wb[k]) for k in wa)
    assert (a / "metrics.csv").read_bytes() == (b / "metrics.csv").read_bytes()


@pytest.fixture
def reference(tmp_path, small_config):
    """The uninterrupted run, trained in this process, and the config file used."""
    config = slow_config(small_config)
    path = tmp_path / "slow.yaml"
    path.write_text(yaml.safe_dump(config))
    return fit(config, run_dir=tmp_path / "reference", progress="none").run_dir, path


def test_killed_after_its_first_checkpoint_then_resumed(tmp_path, reference):
    ref, config = reference
    proc = start(["fit", config, "--run-dir", "killed", "--progress", "plain"], tmp_path)
    wait_for(tmp_path / "killed" / "checkpoints" / "last.safetensors", proc)
    time.sleep(0.03)  # somewhere in epoch 1 or 2 of 30
    proc.kill()
    proc.communicate()
    state = checkpoint.load(tmp_path / "killed" / "checkpoints" / "last.safetensors").state
    assert state["epoch"] < 30 and not state["finished"]

    done = subprocess.run(
        [*COMMAND, "fit", "--resume", "killed", "--progress", "plain"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "resuming from killed/checkpoints/last.safetensors" in done.stdout
    assert_same_run(ref, tmp_path / "killed")


def interrupted_then_resumed(tmp_path, ref: Path, config: Path) -> str:
    """Run ``config`` in a child, SIGINT it after its first checkpoint (exit 130, one line on
    stderr), resume it to the end and check that it ends as ``ref``; returns its first stdout."""
    proc = start(["fit", config, "--run-dir", "stopped", "--progress", "plain"], tmp_path)
    wait_for(tmp_path / "stopped" / "checkpoints" / "last.safetensors", proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert err.startswith("interrupted by SIGINT after epoch ")
    assert err.count("\n") == 1 and "bptrain fit --resume stopped" in err
    state = checkpoint.load(tmp_path / "stopped" / "checkpoints" / "last.safetensors").state
    assert not state["finished"]

    done = subprocess.run(
        [*COMMAND, "fit", "--resume", "stopped", "--progress", "none"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert_same_run(ref, tmp_path / "stopped")
    return out


def test_sigint_saves_a_checkpoint_exits_130_and_resumes(tmp_path, reference):
    interrupted_then_resumed(tmp_path, *reference)


def test_sigint_on_a_two_core_run_stops_the_partner_and_resumes_exactly(tmp_path, small_config):
    """A run whose 512x512 kernel is split with a second core (``training.second_core``; where
    no partner thread can run, both halves run on one: the same values) stops cleanly on
    SIGINT and resumes to the uninterrupted run's bits."""
    config = slow_config(small_config)
    config["training"]["epochs"] = 10
    config["model"]["layers"] = [
        {"type": "Dense", "units": 512, "activation": "relu"},
        {"type": "Dense", "units": 512, "activation": "relu"},
        {"type": "Dense", "units": 3, "activation": "softmax"},
    ]
    path = tmp_path / "wide.yaml"
    path.write_text(yaml.safe_dump(config))
    ref = fit(config, run_dir=tmp_path / "reference", progress="none").run_dir
    out = interrupted_then_resumed(tmp_path, ref, path)
    assert ("a second core takes half" in out) == second_core.can_partner()


def test_python_dash_m_and_exit_codes(tmp_path):
    (tmp_path / "bad.yaml").write_text("data: {dataset: spirals}\nmodle: {}\n")
    result = subprocess.run(
        [sys.executable, "-m", "bptrain", "config", "check", "bad.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "error"},
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == "error: bad.yaml:2: modle: unknown key; did you mean 'model'?\n"
    version = subprocess.run([*COMMAND, "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.startswith("bptrain, version ")
