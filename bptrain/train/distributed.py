"""Processes that train one model together through MPI: who is who, the few collective
operations data-parallel training needs, how errors end them, and ``--processes``.

``world()`` describes this process. It is a single process (rank 0 of 1, no MPI touched)
unless an MPI launcher started it, as in ``mpiexec -n 4 python -m mpi4py -m bptrain fit CONFIG``
(mpi4py is the optional extra ``pip install bptrain[mpi]``). Rank 0, the leader, alone reads
and writes the run directory; the other ranks receive what it read (``from_leader``).

Errors end every rank, with the message printed once and a non-zero exit status, and nothing
hangs. An error every rank raises alike (a bad config, a checkpoint the leader cannot read, a
diverged loss, Ctrl-C) is printed by the leader; the ranks then leave MPI in order. An error of
one rank alone (an exception in its slice of a batch) is printed by that rank, which then aborts
the whole job, since the others wait for it in a collective call and cannot notice otherwise.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path

from bptrain.errors import BptrainError, ConfigError, DivergenceError
from bptrain.processes import child_environ
from bptrain.train.signals import Interrupted
from bptrain.train.threads import usable_cores

# Variables MPI launchers set for the processes they start, holding the number of processes:
# MPICH's and Intel MPI's hydra, Slurm's PMI (PMI_SIZE), Open MPI (OMPI_COMM_WORLD_SIZE).
LAUNCHER_SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE")
# How long a rank with an error waits for the others to report an error too, before it takes
# the error as its own alone, prints it and aborts the job. Ranks that fail alike (the same bad
# config read by all) arrive within moments of each other.
ALONE_AFTER_S = 10.0
# How long a rank waits after writing its error before it aborts the job (``_abort``).
ABORT_GRACE_S = 0.3
INSTALL_HINT = "pip install bptrain[mpi]"


class World:
    """A single process: rank 0 of 1. The MPI world (``MPIWorld``) has the same methods."""

    rank = 0
    size = 1
    local_size = 1  # ranks on this machine
    reduce_seconds = 0.0  # time spent in allreduce_sum, waiting for other ranks included

    @property
    def leader(self) -> bool:
        return self.rank == 0

    def from_leader(self, fn, *args):
        """``fn(*args)``, run by the leader alone; every rank gets its result, or raises its
        error (a BptrainError or OSError)."""
        return fn(*args)

    def allreduce_sum(self, a):
        """Sum the array ``a`` elementwise over all ranks, in place; returns ``a``."""
        return a

    def allgather(self, obj) -> list:
        """Every rank's ``obj``, by rank (small Python objects; pickled)."""
        return [obj]

    def training(self):
        """Context manager around the training loop; see ``MPIWorld.training``."""
        return contextlib.nullcontext()

    def share_cores(self, threads: int) -> int:
        """BLAS threads for this rank: ``threads``, capped so that ranks x threads <= cores."""
        return threads

    def fail(self, text: str, code: int) -> None:
        """Print the one-line error ``text`` (once for all ranks); the caller then exits."""
        print(text, file=sys.stderr, flush=True)


def say(text: str) -> None:
    """Write ``text`` and its newline to stderr in one write: mpiexec forwards a rank's output
    in chunks, and an Abort right after two writes (print's text, then its end) can lose the
    second."""
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


class MPIWorld(World):
    """This process as one rank of an MPI job of ``size`` > 1 processes."""

    def __init__(self, mpi):
        self.MPI = mpi
        self.comm = mpi.COMM_WORLD
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        # Errors are settled on a communicator of their own: a rank waiting there can never be
        # matched with a collective call of training on another rank.
        self.errors = self.comm.Dup()
        node = self.comm.Split_type(mpi.COMM_TYPE_SHARED)
        self.local_size = node.Get_size()
        node.Free()
        self.reduce_seconds = 0.0
        self.failure: str | None = None  # "agreed" (every rank raised it) or "alone"

    def from_leader(self, fn, *args):
        result = error = None
        if self.leader:
            try:
                result = fn(*args)
            except (BptrainError, OSError) as exc:
                error = exc
            except BaseException:
                self._abort_with_traceback()
        result, error = self.comm.bcast((result, error))
        if error is not None:
            self.failure = "agreed"
            raise error
        return result

    def allreduce_sum(self, a):
        started = time.perf_counter()
        self.comm.Allreduce(self.MPI.IN_PLACE, a, op=self.MPI.SUM)
        self.reduce_seconds += time.perf_counter() - started
        return a

    def allgather(self, obj) -> list:
        return self.comm.allgather(obj)

    @contextlib.contextmanager
    def training(self):
        """A DivergenceError or Interrupted follows from values every rank shares (the summed
        loss and gradients, the agreed stop flag), so every rank raises it at the same step.
        Any other error is this rank's alone: a user error (BptrainError, OSError) goes on to
        be printed, and ends the job; anything else prints its traceback and ends it now."""
        try:
            yield
        except (DivergenceError, Interrupted):
            self.failure = "agreed"
            raise
        except (BptrainError, OSError):
            self.failure = "alone"
            raise
        except KeyboardInterrupt:  # a second Ctrl-C, which every rank receives
            raise
        except BaseException:
            self._abort_with_traceback()

    def share_cores(self, threads: int) -> int:
        return max(1, min(threads, usable_cores() // self.local_size))

    def fail(self, text: str, code: int) -> None:
        if self.failure == "alone":
            self._print_own(text)
            self._abort(code)
        if self.failure == "agreed":
            if self.leader:
                print(text, file=sys.stderr, flush=True)
            self.errors.Barrier()  # nobody ends the job before the leader has printed
            self.MPI.Finalize()
            return
        # Not known to be shared (an error before training, say): print it now on the leader
        # and wait a little for the others. If they all arrive they failed alike; else this
        # rank failed alone, and the others may be waiting for it in a collective call.
        if self.leader:
            print(text, file=sys.stderr, flush=True)
        request = self.errors.Ibarrier()
        deadline = time.monotonic() + ALONE_AFTER_S
        while not request.Test():
            if time.monotonic() > deadline:
                if not self.leader:
                    self._print_own(text)
                self._abort(code)
            time.sleep(0.01)
        self.MPI.Finalize()

    def _print_own(self, text: str) -> None:
        prefix = "" if self.leader else f"rank {self.rank}: "
        say(prefix + text)

    def _abort_with_traceback(self) -> None:
        text = traceback.format_exc()
        say(f"rank {self.rank} of {self.size} failed:\n{text}")
        self._abort(1)

    def _abort(self, code: int) -> None:
        """End every rank of the job. mpiexec forwards what this rank wrote to stderr from a
        pipe, and an Abort kills the job at once: about one run in ten lost a message written
        just before it. A short wait first lets the message through."""
        time.sleep(ABORT_GRACE_S)
        self.comm.Abort(code)


_world: World | None = None


def world() -> World:
    """This process: a single ``World``, or an ``MPIWorld`` when an MPI launcher started it
    with more than one process and mpi4py is installed. Every rank must make the first call at
    the same point (it sets up communicators); later calls return the same object."""
    global _world
    if _world is None:
        _world = _discover()
    return _world


def training_world() -> World:
    """``world()`` for a training run, refusing to train alone in a process that an MPI
    launcher started as one of several (each would write a run of its own)."""
    w, started = world(), launched_size()
    if w.size == 1 and started > 1:
        if importlib.util.find_spec("mpi4py") is None:
            why = f"mpi4py is not installed: {INSTALL_HINT}"
        else:
            why = (
                "MPI reports a single process: mpi4py was built for another MPI than this "
                "mpiexec's (use the mpiexec of the MPI that mpi4py uses)"
            )
        raise ConfigError(f"this process is one of {started} started by mpiexec, but {why}")
    return w


def launched_size() -> int:
    """The number of processes an MPI launcher started with this one (1 when none did)."""
    for name in LAUNCHER_SIZE_VARIABLES:
        value = os.environ.get(name, "")
        if value.isdigit():
            return int(value)
    return 1


def _discover() -> World:
    mpi = sys.modules.get("mpi4py.MPI")
    if mpi is None and launched_size() > 1:
        try:
            from mpi4py import MPI as mpi
        except ImportError:
            return World()  # training_world() says what is missing
    if mpi is None or mpi.COMM_WORLD.Get_size() == 1:
        return World()
    return MPIWorld(mpi)


# -- bptrain fit --processes N --------------------------------------------------------------------
def launch(processes: int, fit_args: list[str]) -> int:
    """Run ``bptrain fit FIT_ARGS`` as ``processes`` MPI ranks on this machine and wait for it;
    returns its exit status. SIGINT and SIGTERM are passed on to the job (whose ranks then save
    a checkpoint and stop together), which runs in a session of its own so that a Ctrl-C in the
    terminal reaches the ranks once, through mpiexec, not twice."""
    if importlib.util.find_spec("mpi4py") is None:
        raise ConfigError(f"--processes needs mpi4py, which is not installed: {INSTALL_HINT}")
    if launched_size() > 1:
        raise ConfigError("--processes starts mpiexec itself; under mpiexec, leave it out")
    command = [
        find_mpiexec(),
        "-n",
        str(processes),
        sys.executable,
        "-m",
        "mpi4py",
        "-m",
        "bptrain",
        "fit",
        *fit_args,
    ]
    proc = subprocess.Popen(command, start_new_session=True, env=child_environ())

    def pass_on(signum, frame):
        proc.send_signal(signum)

    previous = {s: signal.signal(s, pass_on) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        return proc.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def find_mpiexec() -> str:
    """The mpiexec beside this Python (the ``mpich`` wheel's, which matches mpi4py), else the
    one on PATH."""
    here = Path(sys.executable).parent / "mpiexec"
    found = str(here) if here.exists() else shutil.which("mpiexec")
    if found is None:
        raise ConfigError(
            f"--processes needs mpiexec, which was not found beside {sys.executable} nor on "
            f"PATH: {INSTALL_HINT} brings one (the mpich wheel), or install an MPI"
        )
    return found
