"""Data-parallel training on 2 real MPI ranks (mpiexec in a subprocess, with a timeout): the
same result as one process, rank 0 alone writing, failures that end every rank with one
message, Ctrl-C, resume across rank counts, and ``bptrain fit --processes``."""

from __future__ import annotations

import csv
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml

from bptrain.cli import main
from bptrain.errors import ConfigError
from bptrain.runs import checkpoint
from bptrain.train import distributed, fit
from bptrain.train.data_parallel import MPIRanks
from tests.conftest import parallel_mlp_config

MPIEXEC = Path(sys.executable).parent / "mpiexec"
MPIEXEC = str(MPIEXEC) if MPIEXEC.exists() else shutil.which("mpiexec")
needs_mpi = pytest.mark.skipif(
    importlib.util.find_spec("mpi4py") is None or MPIEXEC is None,
    reason="mpi4py or mpiexec is not installed (pip install bptrain[mpi])",
)
pytestmark = pytest.mark.timeout(120)
RANK = [sys.executable, "-m", "mpi4py"]
TIMEOUT = 60  # seconds for one mpiexec job; each takes about one here


def dp_config(**training) -> dict:
    return parallel_mlp_config("dp", **training)


def mpirun(n: int, args, cwd, program=("-m", "bptrain"), timeout=TIMEOUT):
    """``mpiexec -n N python -m mpi4py PROGRAM fit ARGS`` -> CompletedProcess (text)."""
    command = [MPIEXEC, "-n", str(n), *RANK, *program, "fit", *map(str, args)]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def rows(run: Path) -> list[dict]:
    with open(run / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def assert_same_training(a: Path, b: Path, rtol: float = 1e-5) -> None:
    """Two runs' final weights, optimizer slots, BatchNorm statistics and metrics rows agree to
    ``rtol`` (relative to each array's largest value); RNG and position are identical."""
    ca = checkpoint.load(a / "checkpoints" / "last.safetensors")
    cb = checkpoint.load(b / "checkpoints" / "last.safetensors")
    assert ca.arrays.keys() == cb.arrays.keys()
    for name, x in ca.arrays.items():
        error = np.abs(x - cb.arrays[name]).max() / np.abs(x).max()
        assert error <= rtol, f"{name}: relative difference {error:.2e}"
    for key in ("epoch", "step", "rng", "finished"):
        assert ca.state[key] == cb.state[key], key
    ra, rb = rows(a), rows(b)
    assert [r.keys() for r in ra] == [r.keys() for r in rb] and len(ra) == ca.state["epoch"]
    for x, y in zip(ra, rb, strict=True):
        assert x["epoch"] == y["epoch"]
        np.testing.assert_allclose(
            [float(v) for v in x.values()], [float(v) for v in y.values()], rtol=rtol
        )


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    """The reference: the config trained for 3 epochs in this process (and 1, for resuming)."""
    root = tmp_path_factory.mktemp("one")
    path = root / "dp.yaml"
    path.write_text(yaml.safe_dump(dp_config()))
    for epochs in (3, 1):
        fit(dp_config(epochs=epochs), run_dir=root / f"epochs{epochs}", progress="none")
    return SimpleNamespace(config=path, run=root / "epochs3", first_epoch=root / "epochs1")


# -- equality -------------------------------------------------------------------------------------
@needs_mpi
def test_two_ranks_train_like_one_process_and_rank_0_alone_writes(tmp_path, one_process):
    # Rank 1 runs in a directory of its own: anything it wrote would land there.
    home, other = tmp_path / "rank0", tmp_path / "rank1"
    home.mkdir(), other.mkdir()
    rank = [*RANK, "-m", "bptrain", "fit", str(one_process.config), "--run-dir", "run"]
    rank += ["--progress", "plain"]
    command = [MPIEXEC, "-n", "1", "-wdir", home, *rank, ":", "-n", "1", "-wdir", other, *rank]
    done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT)

    assert done.returncode == 0, done.stderr
    assert_same_training(one_process.run, home / "run")
    assert list(other.iterdir()) == []
    assert done.stdout.count("run directory: run\n") == 2  # the start and the summary
    assert done.stdout.count("epoch 3/3") == 1
    assert "BLAS threads: 1 per rank; data-parallel on 2 MPI ranks" in done.stdout
    assert "best epoch" in done.stdout and done.stderr == ""


@needs_mpi
def test_a_whole_run_schedule_counts_global_batches_on_two_ranks(tmp_path):
    """Ranks split each batch, so a schedule spans the same steps as in one process."""
    config = dp_config(epochs=2, schedule={"type": "cosine", "alpha": 0.1})
    path = tmp_path / "dp.yaml"
    path.write_text(yaml.safe_dump(config))
    fit(config, run_dir=tmp_path / "one", progress="none")
    done = mpirun(2, [path, "--run-dir", "two", "--progress", "plain"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    # 115 training samples in batches of 19: 7 steps per epoch, on any number of ranks
    assert "schedule: cosine, decay_steps 14 (the whole run), warmup_steps 0\n" in done.stdout
    rates = [r["lr"] for r in rows(tmp_path / "two")]
    assert rates == [r["lr"] for r in rows(tmp_path / "one")]
    assert float(rates[-1]) == pytest.approx(0.001, rel=1e-12)  # alpha x lr at the last step


# -- failures -------------------------------------------------------------------------------------
FAILING_RANK = """\
import sys
from bptrain.cli import main
from bptrain.errors import DataError
from bptrain.train import distributed
from bptrain.train.data_parallel import MPIRanks

original = MPIRanks.compute_gradients
steps = 0


def compute_gradients(self, xb, yb, metrics):
    global steps
    steps += 1
    if distributed.world().rank == 1 and steps == 3:
        raise {error}
    return original(self, xb, yb, metrics)


MPIRanks.compute_gradients = compute_gradients
main(sys.argv[1:])
"""


@needs_mpi
@pytest.mark.parametrize(
    "error, expected",
    [
        ("RuntimeError('rank 1 broke')", "RuntimeError: rank 1 broke"),
        ("DataError('sample 7 is malformed')", "rank 1: error: sample 7 is malformed\n"),
    ],
)
def test_one_failing_rank_ends_every_rank_with_one_message(tmp_path, one_process, error, expected):
    script = tmp_path / "failing.py"
    script.write_text(FAILING_RANK.format(error=error))
    started = time.monotonic()
    done = mpirun(2, [one_process.config, "--run-dir", "run"], tmp_path, program=[script])
    assert time.monotonic() - started < 30  # aborted, not waited for
    assert done.returncode == 1
    assert done.stderr.count(expected) == 1, done.stderr
    if "RuntimeError" in error:
        assert "rank 1 of 2 failed:\nTraceback" in done.stderr
    else:
        assert "Traceback" not in done.stderr


@needs_mpi
def test_an_error_of_every_rank_is_printed_once(tmp_path, one_process):
    typo = mpirun(2, [one_process.config, "training.batch_sise=8"], tmp_path)
    assert typo.returncode == 2
    assert typo.stderr.count("did you mean 'batch_size'") == 1, typo.stderr
    assert "Abort" not in typo.stderr  # the ranks left MPI in order

    diverged = mpirun(2, [one_process.config, "optimizer.learning_rate=1e30"], tmp_path)
    assert diverged.returncode == 1
    assert diverged.stderr.count("training diverged at epoch 1") == 1, diverged.stderr


@needs_mpi
def test_an_error_of_the_leader_alone_reaches_every_rank(tmp_path):
    done = mpirun(2, ["--resume", "nowhere"], tmp_path)
    assert done.returncode == 1
    assert done.stderr == "error: nowhere: no such run directory or checkpoint\n"


# -- resume across rank counts --------------------------------------------------------------------
@needs_mpi
def test_resume_with_one_process_from_two_ranks(tmp_path, one_process):
    first = mpirun(2, [one_process.config, "training.epochs=1", "--run-dir", "run"], tmp_path)
    assert first.returncode == 0, first.stderr
    fit(resume=tmp_path / "run", overrides=["training.epochs=3"], progress="none")
    assert_same_training(one_process.run, tmp_path / "run")


@needs_mpi
def test_resume_with_two_ranks_from_one_process(tmp_path, one_process):
    shutil.copytree(one_process.first_epoch, tmp_path / "run")
    done = mpirun(2, ["--resume", "run", "training.epochs=3", "--progress", "plain"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("resuming from run/checkpoints/last.safetensors") == 1
    assert_same_training(one_process.run, tmp_path / "run")


# -- training metrics -----------------------------------------------------------------------------
@needs_mpi
def test_two_ranks_count_the_training_metrics_of_every_row_once(tmp_path):
    """Each rank counts its slice, and the counts are summed with the loss: with weights that do
    not move (SGD at 1e-30), every epoch's training metrics are exactly those of the whole
    training set, also for the last batch of each epoch (1 row), which both ranks compute."""
    from bptrain.data import load_dataset
    from bptrain.train.metrics import compute

    names = ["accuracy", "precision", "recall", "f1"]
    config = dp_config(epochs=2)
    config["model"]["layers"] = [config["model"]["layers"][0], config["model"]["layers"][-1]]
    config.update(metrics=names, optimizer={"type": "sgd", "learning_rate": 1e-30})
    (tmp_path / "frozen.yaml").write_text(yaml.safe_dump(config))
    done = mpirun(2, ["frozen.yaml", "--run-dir", "run"], tmp_path)
    assert done.returncode == 0, done.stderr
    one = fit(config, run_dir=tmp_path / "one", progress="none")
    data = load_dataset(dict(one.config.data), one.config.seed)
    want = compute(names, data.y_train, one.model.predict(data.x_train), data.num_classes)
    assert 0.2 < want["accuracy"] < 0.8
    for row in rows(tmp_path / "run"):
        assert {n: float(row[n]) for n in names} == want


# -- bptrain fit --processes ----------------------------------------------------------------------
def fit_command(*args, cwd):
    return subprocess.Popen(
        [sys.executable, "-m", "bptrain", "fit", *map(str, args)],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@needs_mpi
def test_processes_option_trains_on_two_ranks(tmp_path, one_process):
    proc = fit_command(one_process.config, "--processes", "2", "--run-dir", "run", cwd=tmp_path)
    out, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, err
    assert out.count("data-parallel on 2 MPI ranks") == 1 and out.count("best epoch") == 1
    assert_same_training(one_process.run, tmp_path / "run")


@needs_mpi
def test_processes_replace_thread_replicas_and_say_so(tmp_path, one_process):
    """As `bptrain fit configs/mnist_cnn.yaml --processes 2` (replicas: 2) in the README."""
    args = [one_process.config, "training.replicas=2", "--processes", "2", "--run-dir", "run"]
    proc = fit_command(*args, "--progress", "plain", cwd=tmp_path)
    out, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, err
    line = (
        "training.replicas: 1 instead of 2: the 2 MPI ranks split each batch (ranks and thread "
        "replicas do not combine)\n"
    )
    assert out.count(line) == 1 and err == ""
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["training"]["replicas"] == 1  # what it trained with
    assert_same_training(one_process.run, tmp_path / "run")


@needs_mpi
def test_ctrl_c_stops_every_rank_after_the_same_step_and_resumes(tmp_path, one_process):
    args = [one_process.config, "training.epochs=100000", "--processes", "2", "--run-dir", "run"]
    proc = fit_command(*args, "--progress", "none", cwd=tmp_path)
    last = tmp_path / "run" / "checkpoints" / "last.safetensors"
    deadline = time.monotonic() + TIMEOUT
    while not last.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 130, err
    assert err.count("interrupted by SIGINT after epoch") == 1
    assert "bptrain fit --resume run" in err

    # Finish the interrupted epoch in this process; it matches an uninterrupted run. Round-off
    # differences grow with the steps taken (here 1e-6 after 30 epochs, 2e-5 after 200), and a
    # busy machine may deliver the signal late.
    state = checkpoint.load(last).state
    epochs = state["epoch"] + 1
    fit(resume=tmp_path / "run", overrides=[f"training.epochs={epochs}"], progress="none")
    fit(dp_config(epochs=epochs), run_dir=tmp_path / "reference", progress="none")
    assert_same_training(tmp_path / "reference", tmp_path / "run", rtol=1e-5 * max(1, epochs / 20))


def test_processes_without_mpi4py_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dp.yaml").write_text(yaml.safe_dump(dp_config()))
    with pytest.raises(SystemExit) as exit_:
        main(["fit", "dp.yaml", "--processes", "2"])
    assert exit_.value.code == 2
    expected = "error: --processes needs mpi4py, which is not installed: pip install bptrain[mpi]"
    assert capsys.readouterr().err == expected + "\n"
    assert not (tmp_path / "runs").exists()


def test_a_process_started_by_mpiexec_without_mpi4py_refuses_to_train_alone(monkeypatch):
    monkeypatch.setenv("PMI_SIZE", "2")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    monkeypatch.setattr(distributed, "_world", distributed.World())
    with pytest.raises(ConfigError, match=r"one of 2 .* pip install bptrain\[mpi\]"):
        distributed.training_world()


# -- pieces ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "n, size, expected",
    [
        (19, 2, [(0, 9, 9 / 19), (9, 19, 10 / 19)]),
        (64, 4, [(0, 16, 0.25), (16, 32, 0.25), (32, 48, 0.25), (48, 64, 0.25)]),
        (1, 2, [(0, 1, 0.5), (0, 1, 0.5)]),  # fewer samples than ranks: all compute them all
        (3, 4, [(0, 3, 0.25)] * 4),
    ],
)
def test_each_rank_takes_a_slice_and_the_shares_sum_to_one(n, size, expected):
    slices = [
        MPIRanks.slice_of(SimpleNamespace(world=SimpleNamespace(size=size, rank=r)), n)
        for r in range(size)
    ]
    assert slices == expected
    assert sum(share for *_, share in slices) == pytest.approx(1.0)


def test_one_process_world_is_trivial():
    w = distributed.World()
    a = np.arange(3.0)
    assert (w.rank, w.size, w.leader) == (0, 1, True)
    assert w.allreduce_sum(a) is a and w.allgather("x") == ["x"]
    assert w.from_leader(lambda x: x + 1, 1) == 2 and w.share_cores(8) == 8


def test_launched_size_reads_the_launchers_variables(monkeypatch):
    for name in distributed.LAUNCHER_SIZE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert distributed.launched_size() == 1
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "4")
    assert distributed.launched_size() == 4
    monkeypatch.setenv("PMI_SIZE", "3")
    assert distributed.launched_size() == 3


def test_cores_are_shared_between_the_ranks_of_a_machine():
    cores = len(os.sched_getaffinity(0))
    rank = SimpleNamespace(local_size=2)
    assert distributed.MPIWorld.share_cores(rank, 64) == max(1, cores // 2)
    assert distributed.MPIWorld.share_cores(rank, 1) == 1
