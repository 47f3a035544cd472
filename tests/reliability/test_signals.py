"""SIGINT and SIGTERM during ``bptrain fit``: a checkpoint at the current step, one line saying
how to resume, exit status 130 or 143; a second Ctrl-C while that checkpoint is being written
exits at once and leaves the previous checkpoint as it was."""

from __future__ import annotations

import random
import signal
import time

import pytest

from bptrain.runs import checkpoint
from tests.reliability.conftest import (
    LONG,
    STEPS_PER_EPOCH,
    assert_intact,
    assert_same_files,
    bptrain,
    start,
    wait_for_training,
)

STEP = STEPS_PER_EPOCH + 2  # epoch 2, step 2: after the checkpoints of epoch 1
# Atomic writes before it: config.yaml, then epoch 1's checkpoints after steps 3 and 6, best
# and last; the checkpoint a signal at STEP asks for is the 6th.
SAVE = 6


def state_of(run):
    state = checkpoint.load(run / "checkpoints" / "last.safetensors").state
    return state["epoch"], state["step"]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name, code", [("SIGINT", 130), ("SIGTERM", 143)])
def test_a_signal_checkpoints_the_current_step_prints_how_to_resume_and_exits(
    tmp_path, tiny, reference, name, code
):
    stopped = bptrain(
        "fit", tiny, "--run-dir", "run", "--progress", "none",
        cwd=tmp_path, fault=f"signal_at:train.step:{STEP}:{name}",
    )  # fmt: skip
    assert stopped.returncode == code
    assert stopped.stderr == (
        f"interrupted by {name} after epoch 2, step {STEP - STEPS_PER_EPOCH}; saved "
        "run/checkpoints/last.safetensors; continue with: bptrain fit --resume run\n"
    )
    assert state_of(tmp_path / "run") == (1, STEP - STEPS_PER_EPOCH)
    done = bptrain("fit", "--resume", "run", "--progress", "none", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert_same_files(tmp_path / "run", reference)


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "moment, kept",
    [
        ("atomic.opened", (1, 0)),  # the temporary file exists, empty: epoch 1's stays
        ("atomic.written", (1, 0)),  # written but not renamed: epoch 1's stays
        ("atomic.renamed", (1, STEP - STEPS_PER_EPOCH)),  # already in place
    ],
)
def test_a_second_ctrl_c_during_the_save_exits_at_once_and_keeps_a_checkpoint(
    tmp_path, tiny, reference, moment, kept
):
    fault = f"signal_at:train.step:{STEP}:SIGINT,signal_at:{moment}:{SAVE}:SIGINT"
    stopped = bptrain(
        "fit", tiny, "--run-dir", "run", "--progress", "none", cwd=tmp_path, fault=fault
    )
    assert stopped.returncode == 130
    assert stopped.stderr == (
        "interrupted twice: stopped at once; run/checkpoints/last.safetensors holds the last "
        "checkpoint; continue with: bptrain fit --resume run\n"
    )
    run = tmp_path / "run"
    assert state_of(run) == kept
    assert not list(run.rglob("*.tmp"))
    assert_intact(run, reference)
    done = bptrain("fit", "--resume", "run", "--progress", "none", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert_same_files(run, reference)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("seed", [1, 2])
def test_ctrl_c_twice_from_outside_at_random_moments(tmp_path, tiny, long_reference, seed):
    """Real signals from another process, the second a random 0-20 ms after the first: whatever
    the moment, the process stops with 130 and a checkpoint that resumes exactly."""
    rng = random.Random(seed)
    run = tmp_path / "run"
    proc = start("fit", tiny, LONG, "--run-dir", run, "--progress", "none", cwd=tmp_path)
    wait_for_training(proc, run)
    time.sleep(rng.uniform(0.0, 0.05))
    proc.send_signal(signal.SIGINT)
    time.sleep(rng.uniform(0.0, 0.02))
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    # 130, or killed by SIGINT itself (which a shell reports as 130 too) when the second signal
    # came after the checkpoint was saved and Python's own handler was back
    assert proc.returncode in (130, -signal.SIGINT), err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith(("interrupted ", "error: interrupted")), err
    assert_intact(run, long_reference)
    done = bptrain("fit", "--resume", run, "--progress", "none", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert_same_files(run, long_reference)


@pytest.mark.timeout(60)
def test_sigterm_from_outside(tmp_path, tiny, long_reference):
    run = tmp_path / "run"
    proc = start("fit", tiny, LONG, "--run-dir", run, "--progress", "none", cwd=tmp_path)
    wait_for_training(proc, run)
    time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert err.startswith("interrupted by SIGTERM after epoch ")
    assert err.endswith(f"; continue with: bptrain fit --resume {run}\n")
    done = bptrain("fit", "--resume", run, "--progress", "none", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert_same_files(run, long_reference)
