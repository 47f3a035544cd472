"""``bptrain fit`` of a pipeline on 2 real MPI ranks (mpiexec in a subprocess): one process's
result, the stages in the summary, bit-exact resume after a kill, resume on one process,
Ctrl-C, and failures that end every rank with one message."""

from __future__ import annotations

import os
import subprocess
import time

import pytest
import yaml

from bptrain.runs import checkpoint
from bptrain.train import fit
from tests.conftest import parallel_mlp_config
from tests.train.test_distributed import MPIEXEC, RANK, TIMEOUT, assert_same_training, needs_mpi

pytestmark = [pytest.mark.timeout(120), needs_mpi]


def pipeline_config(pipeline: dict, batch_norm: bool = True, **training) -> dict:
    """Spirals and an MLP with an L2 penalty, BatchNorm (unless not ``batch_norm``) and
    Dropout (``parallel_mlp_config``), as 2 stages: Dense (+ BatchNorm) | Dropout, Dense."""
    config = parallel_mlp_config("pp", pipeline={"stages": 2, **pipeline}, **training)
    if not batch_norm:
        del config["model"]["layers"][1]
    return config


def mpirun(n: int, args, cwd, env=None, program=("-m", "bptrain")):
    command = [MPIEXEC, "-n", str(n), *RANK, *program, "fit", *map(str, args)]
    environ = {**os.environ, **(env or {})}
    return subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT, env=environ
    )


def write(tmp_path, config: dict, name: str = "pp.yaml"):
    (tmp_path / name).write_text(yaml.safe_dump(config))
    return name


def test_two_stages_train_like_one_process_and_say_which_layers_each_holds(tmp_path):
    """One micro-batch: BatchNorm and Dropout are exact too."""
    config = pipeline_config({"micro_batches": 1})
    done = mpirun(2, [write(tmp_path, config), "--run-dir", "run", "--progress", "plain"], tmp_path)
    assert done.returncode == 0, done.stderr
    fit(config, run_dir=tmp_path / "one", progress="none")
    assert_same_training(tmp_path / "one", tmp_path / "run")
    out = done.stdout
    assert out.count("pipeline stage 0 (rank 0): layers 0-1 (dense, batch_norm), 80 params\n") == 1
    assert out.count("pipeline stage 1 (rank 1): layers 2-3 (dropout, dense_1), 51 params\n") == 1
    assert "BLAS threads: 1 per rank; pipeline of 2 stages (1f1b, 1 micro-batch) on 2 MPI" in out
    assert out.count("epoch 3/3") == 1 and done.stderr == ""


def test_two_stages_by_two_replicas_train_like_one_process(tmp_path):
    """4 ranks; BatchNorm's statistics are summed over the replicas (as data-parallel ranks
    sum them), so with one micro-batch it is exact too."""
    config = pipeline_config({"micro_batches": 1, "schedule": "gpipe"})
    done = mpirun(4, [write(tmp_path, config), "--run-dir", "run", "--progress", "plain"], tmp_path)
    assert done.returncode == 0, done.stderr
    fit(config, run_dir=tmp_path / "one", progress="none")
    assert_same_training(tmp_path / "one", tmp_path / "run")
    assert (
        "pipeline stage 1 (ranks 1, 3): layers 2-3 (dropout, dense_1), 51 params\n" in done.stdout
    )
    assert "x 2 data-parallel replicas on 4 MPI ranks" in done.stdout


def test_a_killed_run_resumes_bit_for_bit_on_the_same_stages(tmp_path):
    """Four micro-batches with BatchNorm: not one process's result, but always the same."""
    name = write(tmp_path, pipeline_config({"micro_batches": 4}, checkpoint={"every_steps": 2}))
    whole = mpirun(2, [name, "--run-dir", "whole"], tmp_path)
    assert whole.returncode == 0, whole.stderr
    kill = {"BPTRAIN_FAULT": "kill_at:train.step:12"}
    killed = mpirun(2, [name, "--run-dir", "run"], tmp_path, kill)
    assert killed.returncode != 0
    state = checkpoint.load(tmp_path / "run" / "checkpoints" / "last.safetensors").state
    # epoch 2, step 4 of 7 (held, written at step 12 unless rank 1's kill ended rank 0 first)
    assert (state["epoch"], state["step"]) in {(1, 2), (1, 4)}
    resumed = mpirun(2, ["--resume", "run"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert_same_training(tmp_path / "whole", tmp_path / "run", rtol=0.0)


def test_a_two_stage_run_resumes_on_one_process(tmp_path):
    config = pipeline_config({"micro_batches": 2, "schedule": "gpipe"}, batch_norm=False)
    first = mpirun(2, [write(tmp_path, config), "training.epochs=1", "--run-dir", "run"], tmp_path)
    assert first.returncode == 0, first.stderr
    fit(resume=tmp_path / "run", overrides=["training.epochs=3"], progress="none")
    fit(config, run_dir=tmp_path / "one", progress="none")
    assert_same_training(tmp_path / "one", tmp_path / "run")


def test_ctrl_c_saves_and_stops_every_stage_after_the_same_step(tmp_path):
    name = write(tmp_path, pipeline_config({"micro_batches": 2}))
    fault = {"BPTRAIN_FAULT": "signal_at:train.step:9:SIGINT"}
    done = mpirun(2, [name, "--run-dir", "run"], tmp_path, fault)
    assert done.returncode == 130, done.stderr
    assert done.stderr.count("interrupted by SIGINT after epoch 2, step 3") == 1, done.stderr
    state = checkpoint.load(tmp_path / "run" / "checkpoints" / "last.safetensors").state
    assert (state["epoch"], state["step"]) == (1, 3)


FAILING_STAGE = """\
import sys
from bptrain.cli import main
from bptrain.train import distributed
from bptrain.train.pipeline.stage import Stage

original = Stage.backward
calls = 0


def backward(self, *args):
    global calls
    calls += 1
    if distributed.world().rank == 1 and calls == 5:
        raise RuntimeError("stage 1 broke")
    return original(self, *args)


Stage.backward = backward
main(sys.argv[1:])
"""


def test_one_failing_stage_ends_every_rank_with_one_message(tmp_path):
    (tmp_path / "failing.py").write_text(FAILING_STAGE)
    name = write(tmp_path, pipeline_config({}))
    started = time.monotonic()
    done = mpirun(2, [name, "--run-dir", "run"], tmp_path, program=["failing.py"])
    assert time.monotonic() - started < 30  # aborted, not waited for
    assert done.returncode == 1
    assert done.stderr.count("RuntimeError: stage 1 broke") == 1, done.stderr
    assert "rank 1 of 2 failed:\nTraceback" in done.stderr


def test_stages_that_do_not_divide_the_processes_are_refused_once(tmp_path):
    name = write(tmp_path, pipeline_config({"stages": 3}, batch_norm=False))
    done = mpirun(2, [name], tmp_path)
    assert done.returncode == 2
    expected = "training.pipeline.stages: 3 stages need a multiple of 3 processes"
    assert done.stderr.count(expected) == 1, done.stderr
    assert not (tmp_path / "runs").exists()
