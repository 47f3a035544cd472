"""Where sweep runs execute: local processes, or a Dask distributed cluster.

Both give each run a process of its own, so a run that crashes its process (a segfault, the
OOM killer, ``os._exit``) fails alone: the executor sees the process end without a result and
reports a failed run, and every other run carries on. (A ``concurrent.futures`` process pool
would instead break as a whole and fail every queued run.)

An executor's ``run(tasks, started)`` yields one ``RunResult`` per task as each finishes, and
calls ``started(task)`` as each task is handed to a worker.
"""

from __future__ import annotations

import collections
import json
import multiprocessing
import multiprocessing.connection
import multiprocessing.forkserver
import time
import uuid
from collections.abc import Callable, Iterable, Iterator

from bptrain.errors import BptrainError, ConfigError
from bptrain.processes import safe_path
from bptrain.sweep.worker import RunResult, RunTask, child_main, death_message, failed

STOP_GRACE = 30.0  # seconds a run gets to checkpoint and exit when the sweep is interrupted
SELF_STOP_WAIT = 2.0  # seconds to let runs act on a Ctrl-C they received themselves
DASK_MISSING = "the dask executor needs Dask's distributed scheduler: pip install bptrain[dask]"


def start_method() -> str:
    """forkserver where the platform has it (fast: each run forks from a server that already
    imported NumPy and bptrain, and never inherits the driver's threads), else spawn."""
    return "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"


class LocalExecutor:
    """At most ``workers`` runs at once, each in a new process of ``method`` (forkserver or
    spawn; never fork, which copies the driver's threads and locks into the child)."""

    def __init__(self, workers: int, method: str | None = None):
        self.workers = max(1, workers)
        self.method = method or start_method()
        self.description = f"{self.workers} local processes ({self.method})"

    def run(
        self, tasks: Iterable[RunTask], started: Callable[[RunTask], None]
    ) -> Iterator[RunResult]:
        ctx = multiprocessing.get_context(self.method)
        if self.method == "forkserver":
            ctx.set_forkserver_preload(["bptrain.sweep.worker", "bptrain.train"])
            # The server imports those with the working directory first on its sys.path (it is
            # a `python -c`, and older Pythons give it none of ours): keep the directory out.
            with safe_path():
                multiprocessing.forkserver.ensure_running()
        pending = collections.deque(tasks)
        running: dict[int, _Child] = {}  # process sentinel -> child
        try:
            while pending or running:
                while pending and len(running) < self.workers:
                    child = _Child.start(ctx, pending.popleft())
                    running[child.process.sentinel] = child
                    started(child.task)
                pipes = {c.conn: c for c in running.values() if c.open}
                ready = multiprocessing.connection.wait([*running, *pipes])
                for conn in (r for r in ready if r in pipes):
                    pipes[conn].receive()
                for sentinel in (r for r in ready if r in running):
                    yield running.pop(sentinel).finish()
        finally:  # interrupted (Ctrl-C, SIGTERM, or the consumer stopped): no orphans
            stop_children(list(running.values()))

    def close(self) -> None:
        """Nothing to release: each run's process ends with it."""


class _Child:
    """One run's process and the pipe its result comes back on."""

    def __init__(self, task: RunTask, process, conn):
        self.task, self.process, self.conn = task, process, conn
        self.open = True
        self.result: RunResult | None = None
        self.started = time.perf_counter()

    @classmethod
    def start(cls, ctx, task: RunTask) -> _Child:
        recv, send = ctx.Pipe(duplex=False)
        process = ctx.Process(
            target=child_main, args=(task, send), name=f"bptrain-sweep-run-{task.number}"
        )
        process.start()
        send.close()  # the child holds the only write end: EOF once it exits
        return cls(task, process, recv)

    def receive(self) -> None:
        """Read the result as soon as it is sent (a child blocks until its pipe is read)."""
        try:
            self.result = RunResult(**json.loads(self.conn.recv_bytes()))
        except (EOFError, OSError):
            pass
        self.open = False

    def finish(self) -> RunResult:
        """The process has ended: its result, or a failure saying how it died."""
        if self.open and self.conn.poll():
            self.receive()
        self.process.join()
        self.conn.close()
        if self.result is not None:
            return self.result
        return failed(
            self.task.number,
            death_message(self.process.exitcode),
            time.perf_counter() - self.started,
        )

    def kill(self) -> None:
        self.process.kill()
        self.process.join()
        self.conn.close()


def stop_children(children: list[_Child], grace: float = STOP_GRACE) -> None:
    """Stop the runs of an interrupted sweep so that ``--resume`` continues each from a
    checkpoint of its current step. After Ctrl-C in a terminal every process got SIGINT and
    the runs are already stopping; a run still going after a moment (the signal was the
    driver's alone) gets SIGTERM, which does the same; after ``grace`` seconds, SIGKILL."""
    deadline = time.monotonic() + SELF_STOP_WAIT
    for child in children:
        child.process.join(max(0.0, deadline - time.monotonic()))
    for child in children:
        if child.process.is_alive():
            child.process.terminate()
    deadline = time.monotonic() + grace
    for child in children:
        child.process.join(max(0.0, deadline - time.monotonic()))
        child.kill()


class DaskExecutor:
    """Runs on a Dask distributed cluster: the scheduler at ``address``, or a local cluster of
    ``workers`` single-threaded worker processes bound to 127.0.0.1 when no address is given.

    On each Dask worker a run executes in a subprocess (``python -m bptrain.sweep.worker``), so
    a run that kills its process leaves the Dask worker alive. Workers need bptrain installed
    and must see the sweep directory at the same path (a shared filesystem, on a real cluster).
    """

    def __init__(self, address: str | None, workers: int):
        try:
            import distributed
        except ImportError:
            raise BptrainError(DASK_MISSING) from None
        self._distributed = distributed
        self._cluster = None
        try:
            if address:
                self.client = distributed.Client(address, timeout="20s")
                self.description = f"Dask cluster at {address}"
            else:
                self._cluster = distributed.LocalCluster(
                    n_workers=max(1, workers),
                    threads_per_worker=1,
                    processes=True,
                    host="127.0.0.1",
                    dashboard_address=None,
                )
                self.client = distributed.Client(self._cluster)
                self.description = f"local Dask cluster of {max(1, workers)} workers on 127.0.0.1"
        except (OSError, TimeoutError) as exc:
            self.close()
            where = address or "a local cluster"
            raise BptrainError(
                f"cannot reach the Dask scheduler at {where}: {exc}; "
                "check the address (tcp://HOST:8786) and that `dask scheduler` is running"
            ) from None

    def run(
        self, tasks: Iterable[RunTask], started: Callable[[RunTask], None]
    ) -> Iterator[RunResult]:
        from bptrain.sweep.worker import run_in_subprocess

        futures = {}
        sweep = uuid.uuid4().hex[:12]  # task keys unique on a cluster that others share
        for task in tasks:
            future = self.client.submit(
                run_in_subprocess, task, pure=False, key=f"bptrain-{sweep}-{task.name}"
            )
            futures[future] = task
            started(task)
        try:
            for future in self._distributed.as_completed(futures):
                task = futures[future]
                try:
                    yield future.result()
                except Exception as exc:  # the cluster lost the task (e.g. KilledWorker)
                    yield failed(task.number, f"dask: {type(exc).__name__}: {exc}", 0.0)
        finally:
            for future in futures:
                future.cancel()

    def close(self) -> None:
        client = getattr(self, "client", None)
        if client is not None:
            client.close()
        if self._cluster is not None:
            self._cluster.close()


def make_executor(kind: str, workers: int, address: str | None):
    """ "local" or "dask"; ``address`` only for dask."""
    if kind == "dask":
        return DaskExecutor(address, workers)
    if address:
        raise ConfigError("--address needs --executor dask")
    return LocalExecutor(workers)
