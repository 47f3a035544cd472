"""SIGKILL of a whole ``bptrain sweep`` (driver and workers, as the OOM killer of its cgroup or a
lost machine would) mid-way: ``--resume`` finishes it with the leaderboard and per-run
metrics of a sweep that was never interrupted."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import time

import pytest

from bptrain.runs import checkpoint
from tests.reliability.conftest import COMMAND, TINY, bptrain

SWEEP = """\
base: tiny.yaml
metric: val_accuracy
fixed:
  training.epochs: 25
grid:
  optimizer.learning_rate: [0.003, 0.03]
seeds: [0, 1]
"""
BOARD = ("trial", "val_accuracy_mean", "val_accuracy_std", "epochs", "best_epoch", "runs")


def events(sweep_dir) -> list[dict]:
    return [json.loads(line) for line in (sweep_dir / "sweep.jsonl").read_text().splitlines()]


def board(sweep_dir) -> list[list[str]]:
    with open(sweep_dir / "leaderboard.csv", newline="") as f:
        return [[row[c] for c in BOARD] for row in csv.DictReader(f)]


def the_sweep(root):
    (found,) = (root / "sweeps" / "sweep").iterdir()
    return found


@pytest.mark.timeout(170)
def test_a_killed_sweep_resumes_to_the_same_leaderboard(tmp_path):
    (tmp_path / "tiny.yaml").write_text(TINY)
    (tmp_path / "sweep.yaml").write_text(SWEEP)
    args = ("sweep", "sweep.yaml", "--workers", "2", "--progress", "none")
    whole = bptrain(*args, "--runs-root", "whole", cwd=tmp_path, timeout=120)
    assert whole.returncode == 0, whole.stderr
    whole = the_sweep(tmp_path / "whole")

    driver = subprocess.Popen(
        [*COMMAND, *args, "--runs-root", "cut"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: the kill takes the workers too
    )
    try:
        deadline = time.monotonic() + 100
        while True:  # until a run is done and another one is under way
            assert driver.poll() is None and time.monotonic() < deadline, "sweep ended first"
            sweeps = list((tmp_path / "cut" / "sweeps" / "sweep").glob("*/sweep.jsonl"))
            log = events(sweeps[0].parent) if sweeps else []
            done = {e["run"] for e in log if e["event"] == "done"}
            started = {e["run"] for e in log if e["event"] == "start"}
            if done and started - done:
                break
            time.sleep(0.01)
        time.sleep(0.05)
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait(timeout=30)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    cut = the_sweep(tmp_path / "cut")
    assert not (cut / "leaderboard.csv").exists()
    for path in cut.glob("*/checkpoints/*.safetensors"):
        checkpoint.load(path)  # none torn

    resumed = bptrain("sweep", "--resume", cut, "--progress", "none", cwd=tmp_path, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming " in resumed.stdout
    assert board(cut) == board(whole)
    runs = sorted(p.name for p in whole.iterdir() if (p / "metrics.csv").exists())
    assert len(runs) == 4
    for name in runs:
        assert (cut / name / "metrics.csv").read_bytes() == (
            whole / name / "metrics.csv"
        ).read_bytes()
