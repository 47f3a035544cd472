"""Run directories: naming, the metrics log, checkpoints, plots."""

from bptrain.runs.checkpoint import SUPPORTED_VERSIONS, Checkpoint, load, save
from bptrain.runs.metrics_log import MetricsLog
from bptrain.runs.rundir import RunDir, new_run_dir, run_dir_of

__all__ = [
    "SUPPORTED_VERSIONS",
    "Checkpoint",
    "MetricsLog",
    "RunDir",
    "load",
    "new_run_dir",
    "run_dir_of",
    "save",
]
