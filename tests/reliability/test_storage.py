"""A full disk or a read-only run directory, made real for a real ``bptrain`` process: a file
size limit (EFBIG), a tiny tmpfs (ENOSPC), permissions (EACCES, for root too: the child loses
the capabilities that let root ignore them) and a read-only bind mount (EROFS). Each ends with
one line naming the file, exit status 1, the previous checkpoint unchanged; once the disk has
room again, ``--resume`` finishes exactly like an uninterrupted run.

The tmpfs and bind mount need the right to mount (root with CAP_SYS_ADMIN); without it those
two tests are skipped and the file size limit still stands for a full disk.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import resource
import signal
import subprocess
import time

import pytest

from bptrain.runs import checkpoint
from tests.reliability.conftest import STEPS_PER_EPOCH, assert_same_files, bptrain, start

PR_CAPBSET_DROP = 24
# CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER: what lets root write where it may not
ROOT_OVERRIDES = (1, 2, 3)


def two_epochs(tmp_path, tiny):
    """A run stopped (finished) after 2 of TINY's 4 epochs; its last checkpoint's bytes."""
    done = bptrain(
        "fit", tiny, "training.epochs=2", "--run-dir", "run", "--progress", "none", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    return tmp_path / "run", (tmp_path / "run" / "checkpoints" / "last.safetensors").read_bytes()


def resume_to_four(tmp_path, **popen):
    return bptrain(
        "fit", "--resume", "run", "training.epochs=4", "--progress", "none", cwd=tmp_path, **popen
    )


def assert_refused(proc, reason: str, run, last: bytes, *paths: str, at=(2, 0)):
    """One line naming one of ``paths`` and the reason, exit status 1, the old checkpoint in
    place and no temporary file left."""
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert re.match(rf"error: cannot write ({'|'.join(paths)}): {reason}", proc.stderr), proc.stderr
    assert (run / "checkpoints" / "last.safetensors").read_bytes() == last
    state = checkpoint.load(run / "checkpoints" / "last.safetensors").state
    assert (state["epoch"], state["step"]) == at
    assert not list(run.rglob("*.tmp"))


def file_size_limit(limit: int):
    def apply():  # in the child, before exec; Python ignores SIGXFSZ, so writes get EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def without_root_overrides():
    """In the child, before exec: drop from its bounding set the capabilities that let root
    write into directories without write permission; after exec it has none of them."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in ROOT_OVERRIDES:
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) is not permitted")


def permissions_bind(tmp_path) -> dict:
    """Popen arguments under which file permissions bind the child; skip if impossible."""
    if os.geteuid() != 0:
        return {}
    probe = tmp_path / "probe"
    probe.mkdir()
    probe.chmod(0o555)
    try:
        result = subprocess.run(
            ["touch", str(probe / "x")], preexec_fn=without_root_overrides, capture_output=True
        )
    except subprocess.SubprocessError:
        pytest.skip("root here cannot drop CAP_DAC_OVERRIDE, so no directory is read-only")
    finally:
        probe.chmod(0o755)
    assert result.returncode != 0  # the capabilities are gone: the directory is read-only
    return {"preexec_fn": without_root_overrides}


@contextlib.contextmanager
def mounted(target, *commands):
    """Run the mount commands for ``target`` (skip the test when mounting is not permitted);
    unmount it afterwards."""
    try:
        for command in commands:
            result = subprocess.run(command, capture_output=True, text=True)
            if result.returncode != 0:
                pytest.skip(f"cannot mount here: {result.stderr.strip()}")
        yield
    finally:
        subprocess.run(["umount", str(target)], capture_output=True)


@pytest.mark.timeout(60)
def test_a_file_size_limit_fails_the_checkpoint_write_with_one_line(tmp_path, tiny, reference):
    run, last = two_epochs(tmp_path, tiny)
    size = len(last)
    assert size > 3000 > (run / "config.yaml").stat().st_size
    cut = resume_to_four(tmp_path, preexec_fn=file_size_limit(3000))
    assert_refused(cut, "File too large", run, last, "run/checkpoints/last.safetensors")
    assert cut.stderr.endswith(
        "the previous version is unchanged; once it can be written, continue with: "
        "bptrain fit --resume run\n"
    )
    done = resume_to_four(tmp_path)
    assert done.returncode == 0, done.stderr
    assert_same_files(run, reference)


@pytest.mark.timeout(60)
def test_a_disk_that_fills_up_during_training_keeps_the_previous_checkpoint(
    tmp_path, tiny, reference
):
    """The run stops itself (SIGSTOP through the fault hook) after the checkpoint of epoch 2,
    step 3; the disk is filled; the next checkpoint write meets a real ENOSPC."""
    disk = tmp_path / "disk"
    disk.mkdir()
    with mounted(disk, ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(disk)]):
        (disk / "tiny.yaml").write_bytes(tiny.read_bytes())
        fault = f"signal_at:train.step:{STEPS_PER_EPOCH + 4}:SIGSTOP"
        proc = start(
            "fit", "tiny.yaml", "--run-dir", "run", "--progress", "none", cwd=disk, fault=fault
        )
        wait_until_stopped(proc)
        run = disk / "run"
        last = (run / "checkpoints" / "last.safetensors").read_bytes()
        fillers = fill(disk)
        proc.send_signal(signal.SIGCONT)
        _, err = proc.communicate(timeout=60)
        full = subprocess.CompletedProcess(proc.args, proc.returncode, "", err)
        assert_refused(
            full,
            "No space left on device",
            run,
            last,
            "run/checkpoints/last.safetensors",
            at=(1, 3),
        )
        for path in fillers:
            path.unlink()
        done = bptrain("fit", "--resume", "run", "--progress", "none", cwd=disk)
        assert done.returncode == 0, done.stderr
        assert_same_files(run, reference)


def wait_until_stopped(proc) -> None:
    deadline = time.monotonic() + 60
    while open(f"/proc/{proc.pid}/stat").read().rsplit(")", 1)[1].split()[0] != "T":
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.005)


def fill(disk) -> list:
    """Fill the file system of ``disk`` with 4 KiB files until it is full; their paths."""
    fillers = []
    with contextlib.suppress(OSError):
        while True:
            fillers.append(disk / f"filler{len(fillers)}")
            fillers[-1].write_bytes(b"\0" * 4096)
    return fillers


@pytest.mark.timeout(60)
@pytest.mark.parametrize("where", ["run directory", "checkpoints directory"])
def test_a_read_only_directory_is_a_one_line_error(tmp_path, tiny, reference, where):
    popen = permissions_bind(tmp_path)
    run, last = two_epochs(tmp_path, tiny)
    locked = run if where == "run directory" else run / "checkpoints"
    locked.chmod(0o555)
    try:
        refused = resume_to_four(tmp_path, **popen)
    finally:
        locked.chmod(0o755)
    # the run's lock file is the first thing a resume writes (the run removed it when it ended)
    path = "run/.lock" if locked == run else "run/checkpoints/last.safetensors"
    assert_refused(refused, "Permission denied", run, last, path)
    done = resume_to_four(tmp_path)
    assert done.returncode == 0, done.stderr
    assert_same_files(run, reference)


@pytest.mark.timeout(60)
def test_an_unwritable_runs_directory_is_a_one_line_error(tmp_path, tiny):
    popen = permissions_bind(tmp_path)
    (tmp_path / "runs").mkdir(mode=0o555)
    try:
        refused = bptrain("fit", tiny, "--progress", "none", cwd=tmp_path, **popen)
    finally:
        (tmp_path / "runs").chmod(0o755)
    assert refused.returncode == 1
    assert refused.stderr == "error: cannot write runs/tiny: Permission denied\n"
    assert not list((tmp_path / "runs").iterdir())


@pytest.mark.timeout(60)
def test_a_read_only_file_system_keeps_the_previous_checkpoint(tmp_path, tiny, reference):
    run, last = two_epochs(tmp_path, tiny)
    target = str(run / "checkpoints")
    with mounted(
        target, ["mount", "--bind", target, target], ["mount", "-o", "remount,bind,ro", target]
    ):
        refused = resume_to_four(tmp_path)
    assert_refused(refused, "Read-only file system", run, last, "run/checkpoints/last.safetensors")
    done = resume_to_four(tmp_path)
    assert done.returncode == 0, done.stderr
    assert_same_files(run, reference)
