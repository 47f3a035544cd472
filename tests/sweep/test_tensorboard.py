"""``bptrain sweep --tensorboard``: every run writes its own event files, so that
``tensorboard --logdir SWEEP_DIR`` shows one run per trial."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bptrain.runs import metrics_log

SWEEP = (
    "base: base.yaml\nmetric: val_accuracy\ngrid:\n  optimizer.lr: [0.003, 0.03]\ncv: {folds: 2}\n"
)


def test_each_run_of_a_sweep_has_its_own_events(tmp_path, write_sweep):
    pytest.importorskip("tensorboardX", reason="pip install 'bptrain[tensorboard]'")
    accumulator = pytest.importorskip(
        "tensorboard.backend.event_processing.event_accumulator", reason="pip install tensorboard"
    )
    write_sweep(SWEEP)
    bptrain = Path(sys.executable).with_name("bptrain")
    proc = subprocess.run(
        [bptrain, "sweep", "sweep.yaml", "--workers", "2", "--tensorboard", "--progress", "none"],
        cwd=tmp_path, env=os.environ, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (sweep_dir,) = (tmp_path / "runs" / "sweeps" / "sweep").iterdir()
    runs = sorted(p for p in sweep_dir.iterdir() if (p / "config.yaml").exists())
    assert len(runs) == 4
    for run in runs:
        found = accumulator.EventAccumulator(str(run / "tensorboard"))
        found.Reload()
        rows = metrics_log.read(run / "metrics.csv")
        values = [e.value for e in found.Scalars("val_accuracy")]
        assert values == [pytest.approx(r["val_accuracy"], rel=1e-6) for r in rows]
