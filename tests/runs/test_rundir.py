import time

from bptrain.runs import RunDir, new_run_dir, run_dir_of


def test_names_are_timestamps_and_unique_within_a_second(tmp_path):
    now = time.mktime((2024, 3, 5, 14, 7, 9, 0, 0, -1))
    runs = [new_run_dir(tmp_path, "exp", now) for _ in range(3)]
    assert [r.path.name for r in runs] == [
        "20240305-140709",
        "20240305-140709-2",
        "20240305-140709-3",
    ]
    assert all(r.path.parent == tmp_path / "exp" for r in runs)
    assert runs[0].checkpoints.is_dir() and runs[0].plots.is_dir()


def test_paths_inside_a_run(tmp_path):
    run = RunDir(tmp_path)
    assert run.last == tmp_path / "checkpoints" / "last.safetensors"
    assert run.best.name == "best.safetensors" and run.metrics.name == "metrics.csv"
    assert run_dir_of(run.best).path == tmp_path.resolve()
    assert run_dir_of(tmp_path / "loose.safetensors").path == tmp_path.resolve()


def test_a_run_is_locked_against_a_second_process(tmp_path):
    import subprocess
    import sys

    import pytest

    from bptrain.errors import StorageError

    run = RunDir(tmp_path / "run").make()
    run.lock()
    run.lock()  # again in the same process: fine
    probe = (
        "import sys; from pathlib import Path; from bptrain.runs import RunDir\n"
        "from bptrain.errors import StorageError\n"
        "try:\n    RunDir(Path(sys.argv[1])).lock()\nexcept StorageError as e:\n"
        "    print(e); sys.exit(3)\n"
    )
    other = subprocess.run(
        [sys.executable, "-c", probe, str(run.path)], capture_output=True, text=True
    )
    assert other.returncode == 3
    assert "in use by another bptrain process" in other.stdout
    run.unlock()
    other = subprocess.run([sys.executable, "-c", probe, str(run.path)], capture_output=True)
    assert other.returncode == 0
    with pytest.raises(StorageError):  # the kernel's lock: a held one refuses in-process too
        import fcntl
        import os

        fd = os.open(run.path / ".lock", os.O_RDWR)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        try:
            RunDir(run.path).lock()
        finally:
            os.close(fd)


def test_the_lock_file_is_removed_on_unlock_and_a_killed_holders_is_harmless(tmp_path):
    import subprocess
    import sys

    run = RunDir(tmp_path / "run").make()
    run.lock()
    assert (run.path / ".lock").exists()
    run.unlock()
    assert not (run.path / ".lock").exists()

    killed = (
        "import os, sys; from pathlib import Path; from bptrain.runs import RunDir\n"
        "RunDir(Path(sys.argv[1])).lock(); os._exit(9)\n"
    )
    done = subprocess.run([sys.executable, "-c", killed, str(run.path)])
    assert done.returncode == 9 and (run.path / ".lock").exists()  # left behind, unlocked
    run.lock()
    run.unlock()
    assert not (run.path / ".lock").exists()


def test_a_lock_taken_on_a_lock_file_its_holder_just_removed_is_taken_again(tmp_path, monkeypatch):
    """``unlock`` removes the file while it still holds the lock. A process that opened the
    file just before gets that lock once it is released, but on a file no longer there, which
    a third process would not see (it creates a new one): two writers. ``lock`` notices and
    locks the file that is there now."""
    import fcntl
    import os
    import subprocess
    import sys

    run = RunDir(tmp_path / "run").make()
    holder = os.open(run.path / ".lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(holder, fcntl.LOCK_EX)
    flock, files = fcntl.flock, []

    def flock_after_the_holder_unlocked(fd, operation):
        if not files:  # the holder unlocks between our open and our flock
            os.unlink(run.path / ".lock")
            os.close(holder)
        files.append(os.fstat(fd).st_ino)
        return flock(fd, operation)

    monkeypatch.setattr(fcntl, "flock", flock_after_the_holder_unlocked)
    run.lock()
    monkeypatch.undo()
    assert len(files) == 2 and files[1] == os.stat(run.path / ".lock").st_ino
    probe = (
        "import sys; from pathlib import Path; from bptrain.runs import RunDir\n"
        "from bptrain.errors import StorageError\n"
        "try:\n    RunDir(Path(sys.argv[1])).lock()\nexcept StorageError:\n    sys.exit(3)\n"
    )
    third = subprocess.run([sys.executable, "-c", probe, str(run.path)])
    assert third.returncode == 3
    run.unlock()


def test_a_lock_file_that_is_a_symbolic_link_is_refused(tmp_path):
    import os

    import pytest

    from bptrain.errors import StorageError

    (tmp_path / "run").mkdir()
    os.symlink(tmp_path / "elsewhere", tmp_path / "run" / ".lock")
    with pytest.raises(StorageError, match=r"\.lock is a symbolic link"):
        RunDir(tmp_path / "run").make()
    with pytest.raises(StorageError, match=r"cannot write .*\.lock"):
        RunDir(tmp_path / "run").lock()
    assert not (tmp_path / "elsewhere").exists()
