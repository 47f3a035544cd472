"""Shared pieces of the reliability tests: the real ``bptrain`` executable in child processes,
a tiny experiment that checkpoints often, and checks on whole run directories.

Child processes stop at exact moments through the fault hook ``bptrain.faults``
(``BPTRAIN_FAULT=kill_at:<point>:<n>``); see that module for the points.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bptrain.runs import checkpoint

EXE = Path(sys.executable).parent / "bptrain"
COMMAND = [str(EXE)] if EXE.exists() else [sys.executable, "-m", "bptrain"]

# 3-class spirals, 115 training samples in batches of 16: 8 steps per epoch, 4 epochs. A
# checkpoint after steps 3 and 6 of every epoch and at its end (best and last), so a run writes
# config.yaml and then up to 16 checkpoints. Dropout makes the random state matter on resume.
TINY = """\
name: tiny
seed: 0
data: {dataset: spirals, size: 60, noise: 0.05, validation_split: 0.2}
model:
  layers:
    - {type: Dense, units: 16, activation: relu}
    - {type: Dropout, rate: 0.2}
    - {type: Dense, units: 3, activation: softmax}
loss: sparse_categorical_crossentropy
optimizer: {type: adam, learning_rate: 0.01}
metrics: [accuracy]
training: {epochs: 4, batch_size: 16, plots: false, checkpoint: {every_steps: 3}}
"""
STEPS_PER_EPOCH = 8


def bptrain(*args, cwd: Path, fault: str | None = None, timeout: float = 60, **popen):
    """Run the real command line in ``cwd``; ``fault``: a BPTRAIN_FAULT value."""
    env = {k: v for k, v in os.environ.items() if k != "BPTRAIN_FAULT"}
    if fault:
        env["BPTRAIN_FAULT"] = fault
    done = subprocess.run(
        [*COMMAND, *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        **popen,
    )
    done.cwd = cwd
    return done


@pytest.fixture
def cli(capsys):
    """``cli(*args, cwd=...)``: the command line in this process (``main()``, as the
    executable runs it), faster than a child; returns what ``bptrain()`` does."""

    def run(*args, cwd: Path):
        from bptrain.cli import main

        capsys.readouterr()
        here = os.getcwd()
        os.chdir(cwd)
        try:
            main([str(a) for a in args])
        except SystemExit as exc:
            code = exc.code
        finally:
            os.chdir(here)
        out, err = capsys.readouterr()
        done = subprocess.CompletedProcess(args, code, out, err)
        done.cwd = cwd
        return done

    return run


def start(*args, cwd: Path, fault: str | None = None) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "BPTRAIN_FAULT"}
    if fault:
        env["BPTRAIN_FAULT"] = fault
    return subprocess.Popen(
        [*COMMAND, *map(str, args)],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_files(run: Path) -> dict[str, bytes]:
    """Every file in a run directory: relative path -> bytes."""
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


def assert_same_files(run: Path, reference: Path) -> None:
    """The same files: config.yaml and metrics.csv byte for byte, checkpoints with bit-identical
    arrays (weights, optimizer slots) and equal state (epoch, step, random state, history...),
    and nothing else (no leftover temporary file). Checkpoint bytes are compared through their
    content because safetensors writes the metadata keys in a per-process hash order."""
    got, want = run_files(run), run_files(reference)
    assert sorted(got) == sorted(want)
    for name in want:
        if name.endswith(".safetensors"):
            a, b = checkpoint.load(run / name), checkpoint.load(reference / name)
            assert a.state == b.state, f"{name}: state differs"
            assert sorted(a.arrays) == sorted(b.arrays)
            for key, array in b.arrays.items():
                assert a.arrays[key].dtype == array.dtype
                assert a.arrays[key].tobytes() == array.tobytes(), f"{name}: {key} differs"
        else:
            assert got[name] == want[name], f"{name} differs"


def assert_intact(run: Path, reference: Path) -> None:
    """After a crash: every checkpoint present loads (framing and SHA-256 verified), and
    metrics.csv is a prefix of the uninterrupted run's (whole rows, none changed or doubled;
    rows after the last checkpoint are cut when the run resumes)."""
    for path in (run / "checkpoints").glob("*.safetensors"):
        checkpoint.load(path)
    if (run / "metrics.csv").exists():
        rows = (run / "metrics.csv").read_bytes()
        assert (reference / "metrics.csv").read_bytes().startswith(rows)


@pytest.fixture
def tiny(tmp_path) -> Path:
    """TINY written to tmp_path/tiny.yaml."""
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return path


def uninterrupted(cwd: Path, *overrides: str) -> Path:
    """Train TINY (with ``overrides``) in ``cwd`` with the real command line; its run dir."""
    (cwd / "tiny.yaml").write_text(TINY)
    done = bptrain(
        "fit", "tiny.yaml", *overrides, "--run-dir", "run", "--progress", "none", cwd=cwd
    )
    assert done.returncode == 0, done.stderr
    return cwd / "run"


@pytest.fixture(scope="session")
def reference(tmp_path_factory) -> Path:
    """The run directory of TINY trained without interruption."""
    return uninterrupted(tmp_path_factory.mktemp("reference"))


LONG = "training.epochs=40"  # about 0.2 s of training: time to land signals from outside


@pytest.fixture(scope="session")
def long_reference(tmp_path_factory) -> Path:
    """The run directory of TINY with LONG, trained without interruption."""
    return uninterrupted(tmp_path_factory.mktemp("long"), LONG)


def wait_for_training(proc, run: Path) -> None:
    """Wait until ``proc`` trains, its signal handlers installed: it has written a checkpoint
    (an atomic write gives run/checkpoints/last.safetensors a new inode)."""
    last = run / "checkpoints" / "last.safetensors"
    before = last.stat().st_ino if last.exists() else None
    deadline = time.monotonic() + 60
    while proc.poll() is None and (not last.exists() or last.stat().st_ino == before):
        assert time.monotonic() < deadline, "training did not start"
        time.sleep(0.002)
