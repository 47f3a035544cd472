import pytest

from bptrain.errors import CheckpointError
from bptrain.runs.metrics_log import MetricsLog, read


def test_rows_are_appended_with_exact_floats(tmp_path):
    log = MetricsLog(tmp_path / "metrics.csv", ["epoch", "loss", "val_loss"])
    header = log.start()
    assert header == len("epoch,loss,val_loss\n")
    size = log.append({"epoch": 1, "loss": 0.1 + 0.2, "val_loss": 1 / 3})
    assert (tmp_path / "metrics.csv").read_text() == (
        "epoch,loss,val_loss\n1,0.30000000000000004,0.3333333333333333\n"
    )
    assert size == (tmp_path / "metrics.csv").stat().st_size
    assert read(tmp_path / "metrics.csv") == [
        {"epoch": 1, "loss": 0.30000000000000004, "val_loss": 1 / 3}
    ]


def test_resume_cuts_back_to_the_checkpoint(tmp_path):
    path = tmp_path / "metrics.csv"
    log = MetricsLog(path, ["epoch", "loss"])
    log.start()
    after_first = log.append({"epoch": 1, "loss": 0.5})
    log.append({"epoch": 2, "loss": 0.25})
    with open(path, "ab") as f:
        f.write(b"3,0.1")  # a row torn by a crash
    log.resume(after_first)
    assert path.read_text() == "epoch,loss\n1,0.5\n"


def test_resume_refuses_a_shorter_or_foreign_file(tmp_path):
    path = tmp_path / "metrics.csv"
    log = MetricsLog(path, ["epoch", "loss"])
    n = log.start()
    with pytest.raises(CheckpointError, match="has 11 bytes but the checkpoint recorded 99"):
        log.resume(99)
    with pytest.raises(CheckpointError, match="other columns"):
        MetricsLog(path, ["epoch", "loss", "val_loss"]).resume(n)
    path.unlink()
    with pytest.raises(CheckpointError, match="missing"):
        log.resume(n)
