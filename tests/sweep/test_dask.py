"""``bptrain sweep --executor dask`` on a real cluster: a ``dask scheduler`` and two
``dask worker`` processes bound to 127.0.0.1 on free ports, started here and always stopped."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.sweep.test_cli import GRID, bptrain, events, leaderboard, sweep_dir_of

distributed = pytest.importorskip("distributed", reason="the dev extra installs dask")
DASK = Path(sys.executable).with_name("dask")


@pytest.fixture
def dask_address(tmp_path):
    """The address of a scheduler with two single-threaded workers (each under a nanny)."""
    scheduler_file = tmp_path / "scheduler.json"
    log = open(tmp_path / "dask.log", "wb")  # closed in finally
    common = ["--host", "127.0.0.1", "--no-dashboard"]
    procs = []
    try:
        procs.append(
            subprocess.Popen(
                [DASK, "scheduler", *common, "--port", "0", "--scheduler-file", scheduler_file],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
        deadline = time.monotonic() + 60
        while not scheduler_file.exists() or not scheduler_file.read_text().strip():
            assert time.monotonic() < deadline, "the dask scheduler did not start"
            assert procs[0].poll() is None, (tmp_path / "dask.log").read_text()
            time.sleep(0.1)
        address = json.loads(scheduler_file.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        for i in range(2):
            procs.append(
                subprocess.Popen(
                    [DASK, "worker", address, *common, "--nthreads", "1", "--name", f"w{i}"]
                    + ["--local-directory", tmp_path / f"dask-w{i}"],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=tmp_path,
                )
            )
        with distributed.Client(address, timeout="30s") as client:
            client.wait_for_workers(2, timeout=60)
        yield address
    finally:
        _shut_down(procs, scheduler_file)
        log.close()


def _shut_down(procs: list[subprocess.Popen], scheduler_file: Path) -> None:
    """Ask the scheduler to stop itself and its workers (quick), then make sure: SIGTERM and
    finally SIGKILL whatever is left."""
    if procs and procs[0].poll() is None and scheduler_file.exists():
        try:
            with distributed.Client(scheduler_file=str(scheduler_file), timeout="5s") as client:
                client.shutdown()
        except Exception:  # the processes are stopped below either way
            pass
    for stop in (None, subprocess.Popen.terminate, subprocess.Popen.kill):
        for proc in procs:
            if stop is not None and proc.poll() is None:
                stop(proc)
        try:
            for proc in procs:
                proc.wait(timeout=10)
            return
        except subprocess.TimeoutExpired:
            continue


def test_sweep_on_a_dask_cluster(tmp_path, write_sweep, dask_address):
    write_sweep(GRID.replace("[4, 8]", "[4]").replace("seeds: [0, 1]", "seeds: [0]"))
    args = ("sweep", "sweep.yaml", "--executor", "dask", "--address", dask_address)
    # one run's process dies on its Dask worker
    proc = bptrain(*args, cwd=tmp_path, env={"BPTRAIN_SWEEP_TEST_DIE": "2-*"})
    assert proc.returncode == 0, proc.stderr
    assert f"running 4 runs on Dask cluster at {dask_address}" in proc.stdout
    sweep_dir = sweep_dir_of(tmp_path)
    log = events(sweep_dir)
    assert sorted(e["run"] for e in log if e["event"] == "done") == [0, 1, 3]
    (death,) = [e for e in log if e["event"] == "failed"]
    assert death["run"] == 2
    assert death["error"].startswith("worker process died: exited with code 70")
    board = {r["trial"]: r for r in leaderboard(sweep_dir)}
    for trial, runs in (("0", [0, 1]), ("1", [2, 3])):
        scores = [e["score"] for e in log if e["event"] == "done" and e["run"] in runs]
        assert float(board[trial]["val_accuracy_mean"]) == pytest.approx(sum(scores) / len(scores))
    # the run directories are normal ones, written by the workers
    assert (sweep_dir / "3-t1-f1-s0-lr=0.03" / "checkpoints" / "last.safetensors").exists()

    # both Dask workers survived the dying run; the resumed sweep reruns it on the cluster
    resume = ("sweep", "--resume", sweep_dir, "--executor", "dask", "--address", dask_address)
    proc = bptrain(*resume, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert [e["run"] for e in events(sweep_dir) if e["event"] == "done"][-1] == 2
    with distributed.Client(dask_address, timeout="30s") as client:
        assert len(client.scheduler_info()["workers"]) == 2
