"""A pipelined float64 training step equals one process's step: the loss, every gradient and
the updated weights to 1e-10 relative, for S = 2, 3 stages (and 2 x 2 data-parallel
replicas), M = 1, 2, 4 micro-batches, both schedules, with Dropout, and with BatchNorm for
M = 1 (``one_step.py`` under mpiexec)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.train.test_distributed import MPIEXEC, RANK, needs_mpi

pytestmark = pytest.mark.timeout(120)
SCRIPT = Path(__file__).with_name("one_step.py")


@needs_mpi
def test_a_pipelined_step_equals_one_process_step_in_float64():
    command = [MPIEXEC, "-n", "4", *RANK, str(SCRIPT)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    cases = {}
    for line in done.stdout.splitlines():
        model, stages, replicas, micro, schedule, rank, error = line.split()
        cases[model, int(stages), int(replicas), int(micro), schedule, int(rank)] = float(error)
    expected = {
        (model, s, d, m, schedule, r)
        for model, micros in (("dropout", (1, 2, 4)), ("batchnorm", (1,)))
        for s, d in ((2, 1), (3, 1), (2, 2))
        for m in micros
        for schedule in ("gpipe", "1f1b")
        for r in range(s * d)
    }
    assert set(cases) == expected
    assert max(cases.values()) <= 1e-10, max(cases.items(), key=lambda kv: kv[1])
