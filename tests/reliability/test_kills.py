"""SIGKILL of real ``bptrain fit`` processes: at exact points (the fault hook), several times in a
row, and at random wall-clock moments. Every time the checkpoints left behind load, metrics.csv
holds whole rows of the uninterrupted run, and ``--resume`` ends with a run directory whose
every byte equals the uninterrupted run's."""

from __future__ import annotations

import random
import signal
import time

import pytest

from tests.reliability.conftest import (
    LONG,
    STEPS_PER_EPOCH,
    assert_intact,
    assert_same_files,
    bptrain,
    start,
    wait_for_training,
)

KILLED = -signal.SIGKILL

# One kill per case in a fresh run (atomic writes: #1 is config.yaml, then checkpoints in the
# order mid-epoch after step 3, after step 6, best, last, for each of the 4 epochs).
FRESH = {
    "step 1, before any checkpoint": "kill_at:train.step:1",
    "step 4, after the first checkpoint": "kill_at:train.step:4",
    "last step of epoch 1": f"kill_at:train.step:{STEPS_PER_EPOCH}",
    "epoch 2, step 5": f"kill_at:train.step:{STEPS_PER_EPOCH + 5}",
    "epoch 4, step 3": f"kill_at:train.step:{3 * STEPS_PER_EPOCH + 3}",
    "after metrics row 1": "kill_at:metrics.appended:1",
    "after metrics row 2": "kill_at:metrics.appended:2",
    "after the last metrics row": "kill_at:metrics.appended:4",
    "first checkpoint: temp file empty": "kill_at:atomic.opened:2",
    "first checkpoint: written, not renamed": "kill_at:atomic.written:2",
    "first checkpoint: renamed, dir not fsynced": "kill_at:atomic.renamed:2",
    "best of epoch 1: written, not renamed": "kill_at:atomic.written:4",
    "best of epoch 1: renamed": "kill_at:atomic.renamed:4",
    "last of epoch 1: written, not renamed": "kill_at:atomic.written:5",
    "epoch 3 step 3 checkpoint: temp file empty": "kill_at:atomic.opened:10",
    "epoch 3 last: written, not renamed": "kill_at:atomic.written:13",
    "final last: renamed, dir not fsynced": "kill_at:atomic.renamed:17",
}

# Several kills of one run: the first process, then each resumed one.
CHAINS = {
    "resume killed after cutting metrics.csv": [
        f"kill_at:train.step:{STEPS_PER_EPOCH + 5}",
        "kill_at:metrics.truncated:1",
    ],
    "resume killed rewriting config.yaml": [
        f"kill_at:train.step:{STEPS_PER_EPOCH + 5}",
        "kill_at:atomic.written:1",
    ],
    "four kills in a row": [
        "kill_at:train.step:5",
        "kill_at:train.step:6",
        "kill_at:atomic.renamed:3",
        "kill_at:metrics.appended:1",
    ],
}

CASES = {**{k: [v] for k, v in FRESH.items()}, **CHAINS}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("faults", list(CASES.values()), ids=list(CASES))
def test_sigkill_at_an_exact_point_then_resume_is_bit_identical(tmp_path, tiny, reference, faults):
    run = tmp_path / "run"
    for i, fault in enumerate(faults):
        args = ("fit", tiny, "--run-dir", run) if i == 0 else ("fit", "--resume", run)
        proc = bptrain(*args, "--progress", "none", cwd=tmp_path, fault=fault)
        assert proc.returncode == KILLED, f"{fault} was not reached: {proc.stderr}"
        assert_intact(run, reference)
    done = bptrain("fit", "--resume", run, "--progress", "none", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert_same_files(run, reference)


def test_the_cases_cover_twenty_moments():
    assert sum(len(faults) for faults in CASES.values()) >= 20


@pytest.mark.timeout(180)
@pytest.mark.parametrize("seed", [1, 2])
def test_sigkill_at_random_moments_until_done_then_bit_identical(
    tmp_path, tiny, long_reference, seed
):
    """Kill at seeded random moments of training, again and again, until a process finishes;
    the moments are random in wall-clock time, so each run of the test hits others."""
    rng = random.Random(seed)
    run = tmp_path / "run"
    args = ("fit", tiny, LONG, "--run-dir", run, "--progress", "none")
    kills = 0
    for _ in range(6):
        proc = start(*args, cwd=tmp_path)
        wait_for_training(proc, run)  # kill in training, not while the interpreter starts
        time.sleep(rng.uniform(0.0, 0.08))
        proc.kill()
        _, err = proc.communicate(timeout=60)
        if proc.returncode == 0:
            break
        assert proc.returncode == KILLED, err
        kills += 1
        assert_intact(run, long_reference)
        args = ("fit", "--resume", run, "--progress", "none")
    else:
        done = bptrain(*args, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
    assert kills >= 1  # at least one kill landed before a process finished
    assert_same_files(run, long_reference)


@pytest.mark.timeout(120)
def test_a_run_killed_before_its_config_leaves_no_temporary_file_behind(tmp_path, tiny, reference):
    # Killed between writing config.yaml's temporary file and renaming it, there is nothing to
    # resume; the next start cleans up: in the same --run-dir, or beside it in runs/tiny/.
    fault = "kill_at:atomic.written:1"
    for args in (("--run-dir", "run"), ()):
        proc = bptrain("fit", tiny, *args, "--progress", "none", cwd=tmp_path, fault=fault)
        assert proc.returncode == KILLED, proc.stderr
        killed = tmp_path / "run" if args else next((tmp_path / "runs" / "tiny").iterdir())
        assert [p.name for p in killed.glob(".config.yaml.*.tmp")], "nothing was left behind"
        done = bptrain("fit", tiny, *args, "--progress", "none", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        if args:
            assert_same_files(tmp_path / "run", reference)
        else:
            (finished,) = (tmp_path / "runs" / "tiny").iterdir()  # the killed one is gone
            assert (finished / "config.yaml").exists()  # (perhaps under the same name)
            assert not list(finished.rglob("*.tmp"))
