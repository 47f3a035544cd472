"""One sweep run, inside a worker process: train, score, report — never raise.

A run is one trial (parameter set) on one fold and seed. ``execute`` trains it with
``bptrain.train.fit`` in its own run directory and returns a ``RunResult``; every exception
(bad data, divergence, a bug) becomes a failed result carrying a one-line error, with the
traceback kept in the run's ``error.txt``. Process death (a crash, ``os._exit``, the OOM
killer) cannot be caught here: the executor notices the process ended without a result.

Two ways to run one in a process of its own:

- ``child_main``: the target of a ``multiprocessing`` process (the local executor); the result
  goes back as JSON over a pipe.
- ``python -m bptrain.sweep.worker TASK.json RESULT.json``: a plain subprocess (the Dask
  executor, whose worker processes are daemons and may not start multiprocessing children).

Test hook: when a task's ``die`` is true (set by the driver for runs whose name matches the
environment variable ``BPTRAIN_SWEEP_TEST_DIE``, a glob), the process calls ``os._exit(70)``
before training, as a crashing process would: no result, no cleanup. It is off unless that
variable is set; the tests use it to check that a dying run fails alone.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import time
import traceback
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

DIE_EXIT_CODE = 70
INTERRUPTED_EXIT_CODE = 130


@dataclass
class RunTask:
    """Everything a worker needs, as plain data (it crosses process and machine boundaries)."""

    number: int
    name: str
    config: dict  # resolved
    run_dir: str  # absolute
    metric: str
    mode: str  # "min" or "max"
    resume: bool = False  # continue the run in run_dir from its last checkpoint
    die: bool = False


@dataclass
class RunResult:
    """score: the metric at the run's best epoch for it (max or min over epochs by ``mode``);
    metrics: that epoch's row of metrics.csv."""

    number: int
    status: str  # "done" or "failed"
    seconds: float
    score: float | None = None
    best_epoch: int | None = None
    epochs: int | None = None
    metrics: dict = field(default_factory=dict)
    error: str | None = None

    def event(self) -> dict:
        """The journal event for this result."""
        out = {"event": self.status, "run": self.number, **asdict(self)}
        del out["number"], out["status"]
        return {k: v for k, v in out.items() if v is not None and v != {}}


def execute(task: RunTask) -> RunResult:
    """Train and score one run; failures come back as ``status="failed"``."""
    from bptrain.train import Interrupted, fit

    start = time.perf_counter()
    run_dir = Path(task.run_dir)
    try:
        if task.resume:
            result = fit(task.config, resume=run_dir, progress="none")
        else:
            result = fit(task.config, run_dir=run_dir, progress="none")
        return score(task, result.history, time.perf_counter() - start)
    except Interrupted:
        raise  # Ctrl-C or SIGTERM: not a failure of the run; it continues on --resume
    except Exception as exc:  # any failure of one run is recorded, not raised
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "error.txt").write_text(traceback.format_exc(), encoding="utf-8")
        return failed(task.number, one_line(exc), time.perf_counter() - start)


def score(task: RunTask, rows: list[dict], seconds: float) -> RunResult:
    """The result of a finished run from its history (the rows of its metrics.csv)."""
    values = [r.get(task.metric) for r in rows]
    valid = [
        (v, r) for v, r in zip(values, rows, strict=True) if v is not None and math.isfinite(v)
    ]
    if not valid:
        have = ", ".join(k for k in (rows[0] if rows else {}) if k != "epoch")
        why = (
            f"metric {task.metric!r} is not in metrics.csv (columns: {have})"
            if rows and task.metric not in rows[0]
            else f"metric {task.metric!r} has no finite value"
        )
        return failed(task.number, why, seconds)
    pick = max if task.mode == "max" else min
    value, row = pick(valid, key=lambda pair: pair[0])
    return RunResult(
        number=task.number,
        status="done",
        seconds=round(seconds, 3),
        score=value,
        best_epoch=row["epoch"],
        epochs=len(rows),
        metrics={k: v for k, v in row.items() if v is not None and math.isfinite(v)},
    )


def failed(number: int, error: str, seconds: float) -> RunResult:
    return RunResult(number=number, status="failed", seconds=round(seconds, 3), error=error)


def death_message(exitcode: int | None) -> str:
    """Why a worker process ended without a result: "killed by SIGKILL", "exited with code 70"."""
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"worker process died: killed by {name}"
    if exitcode == INTERRUPTED_EXIT_CODE:
        return "interrupted (SIGINT or SIGTERM) after saving a checkpoint"
    return f"worker process died: exited with code {exitcode} before reporting a result"


def one_line(exc: BaseException) -> str:
    """``DivergenceError: loss is nan at epoch 2, step 14`` (first line, at most 500 chars)."""
    text = str(exc).strip().splitlines()[0][:500] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def child_main(task: RunTask, conn) -> None:
    """Entry of a local worker process: run ``task`` and send the result as JSON bytes down
    ``conn``."""
    from bptrain.train import Interrupted

    try:
        stop_with_parent()
        result = _run(task)
    except (KeyboardInterrupt, Interrupted):  # Ctrl-C reaches the whole process group
        os._exit(INTERRUPTED_EXIT_CODE)
    conn.send_bytes(json.dumps(asdict(result)).encode())
    conn.close()


def stop_with_parent() -> None:
    """SIGTERM this process when the sweep driver that started it dies.

    Without this, a SIGKILLed driver would leave its runs training on as orphans beside a
    resumed sweep. SIGTERM makes a run checkpoint its current step and stop, so nothing is
    lost. A daemon thread waits on the driver's sentinel (readable once the driver is gone);
    on an ordinary Ctrl-C the driver waits for its runs, so they never see this second signal.
    """
    import multiprocessing
    import threading
    from multiprocessing.connection import wait

    parent = multiprocessing.parent_process()
    if parent is None or parent.sentinel is None:
        return

    def watch() -> None:
        wait([parent.sentinel])
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="stop-with-driver", daemon=True).start()


def main(argv: list[str]) -> int:
    """``python -m bptrain.sweep.worker TASK.json RESULT.json``: run one task, write its
    result. Exits 0 whenever a result was written (the run itself may have failed)."""
    task_path, result_path = argv
    task = RunTask(**json.loads(Path(task_path).read_text(encoding="utf-8")))
    result = _run(task)
    # Renamed into place so the driver never reads half a file; not runs.atomic: the file lives
    # in the driver's private temporary directory and is read at once, so it needs no fsync,
    # and the fault points there belong to the run's own files.
    tmp = Path(result_path + ".tmp")
    tmp.write_text(json.dumps(asdict(result)), encoding="utf-8")
    os.replace(tmp, result_path)
    return 0


def run_in_subprocess(task: RunTask) -> RunResult:
    """Run ``task`` in a fresh ``python -m bptrain.sweep.worker`` process and return its result,
    or a failed result saying how the process died (with the last line it wrote to stderr)."""
    import subprocess
    import tempfile

    from bptrain.processes import child_environ

    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bptrain-run-") as tmp:
        task_path, result_path = Path(tmp) / "task.json", Path(tmp) / "result.json"
        task_path.write_text(json.dumps(asdict(task)), encoding="utf-8")
        proc = subprocess.run(
            [sys.executable, "-m", "bptrain.sweep.worker", str(task_path), str(result_path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=child_environ(),
            check=False,
        )
        if result_path.exists():
            return RunResult(**json.loads(result_path.read_text(encoding="utf-8")))
    lines = proc.stderr.decode(errors="replace").strip().splitlines()
    tail = f" ({lines[-1].strip()[:300]})" if lines else ""
    return failed(task.number, death_message(proc.returncode) + tail, time.perf_counter() - start)


def _run(task: RunTask) -> RunResult:
    """``execute`` with BLAS limited to the run's ``training.threads`` for everything the
    process does (data preparation included), and the test hook."""
    if task.die:
        os._exit(DIE_EXIT_CODE)
    # A diverging run reports itself as failed; NumPy's overflow warnings on the way there
    # would only flood the sweep's output.
    warnings.filterwarnings("ignore", category=RuntimeWarning)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=task.config["training"].get("threads") or 1):
        return execute(task)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
