"""``fit``: the in-process entry point that ``bptrain fit`` and sweep workers call.

result = fit(load_config("configs/spirals.yaml"))
result.run_dir, result.best_epoch, result.best_metrics["val_accuracy"]
"""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from bptrain.config import Config
from bptrain.errors import StorageError
from bptrain.nn.kernels import second_core
from bptrain.runs import checkpoint
from bptrain.runs.atomic import write_text
from bptrain.train import distributed, engine, memory, summary
from bptrain.train.denormals import flush_denormals
from bptrain.train.device import on_device
from bptrain.train.loop import Trainer
from bptrain.train.prepare import prepare
from bptrain.train.progress import reporter as make_reporter
from bptrain.train.resume import Start, open_fresh, starting_point
from bptrain.train.signals import Interrupted, stop_on_signals
from bptrain.train.strategy import SingleProcess
from bptrain.train.threads import blas_threads, second_core_weights


@dataclass
class FitResult:
    """What a finished ``fit`` returns. ``history``: one dict per epoch (the metrics.csv rows);
    ``best_metrics``: the row of ``best_epoch`` by the checkpoint monitor; ``config``: the
    resolved config the run trained with (as its checkpoints hold it)."""

    run_dir: Path
    history: list[dict]
    best_epoch: int | None
    best_metrics: dict
    stopped_early: bool = False
    threads: int = 1
    model: Any = field(default=None, repr=False)
    config: Config | None = field(default=None, repr=False)


def fit(
    config: Mapping | Config | None = None,
    run_dir: str | os.PathLike | None = None,
    resume: str | os.PathLike | None = None,
    progress: str = "auto",
    runs_root: str | os.PathLike = "runs",
    overrides: Sequence[str] = (),
) -> FitResult:
    """Train as ``config`` says (a resolved Config, or a config mapping to resolve) and return
    the result.

    run_dir: the directory to write (default ``runs_root/<name>/<YYYYmmdd-HHMMSS>``).
    resume: a run directory or checkpoint file to continue; ``config`` may then be None (the
        checkpoint's config is used) or a config that differs only in ``training`` and
        ``optimizer``. A run directory without a checkpoint (stopped before its first epoch
        ended) starts over in place.
    progress: "auto", "bar", "plain" or "none".
    runs_root: where new run directories go.
    overrides: ``key.path=value`` strings applied to ``config`` (or the checkpoint's config).
    Raises ConfigError, DataError, CheckpointError, DivergenceError, DeviceError
    (``training.device: gpu`` without CuPy or a GPU), or Interrupted (SIGINT or SIGTERM; a
    checkpoint of the current step was saved).
    """
    memory.keep_step_memory()
    world = distributed.training_world()  # under mpiexec every rank runs this
    report = make_reporter(progress if world.leader else "none")
    start = starting_point(config, overrides, resume, world)
    config, note = engine.for_world(start.config, world)
    engine.check_single_model(config, world)
    with on_device(config.training.device), flush_denormals(config.training.flush_denormals):
        return _fit(config, note, start, world, report, run_dir, runs_root)


def _fit(config: Config, note: str, start: Start, world, report, run_dir, runs_root) -> FitResult:
    """``fit`` from its resolved config on, with the core on the run's device."""
    # Data and model first: a config that fails here leaves nothing behind in runs/.
    data, model = prepare(config, recorded=start.recorded_data)
    threads = blas_threads(config.training, model.network, world)
    strategy, sharing = engine.pick(config, data, model, world, note)
    model = strategy.model  # a pipeline rank's stage: the whole model is let go
    shared = second_core_weights(config.training, model, type(strategy) is SingleProcess)
    if shared and second_core.can_partner():
        update = f"{model.optimizer.name} update"
        sharing += (
            f"; a second core takes half of {len(shared)} Dense kernel(s) and of the {update}"
        )
    run = start.run or open_fresh(world, run_dir, runs_root, config.name)
    trainer = Trainer(config, data, model, run, report, strategy)
    begin(trainer, start, world)
    resumed = None
    if start.ckpt_path is not None:
        resumed = f"{start.ckpt_path} ({trainer.position.where(at_end='the end of epoch')})"
    text = summary.starting(config, data, model, threads, sharing, start.saved)
    report.start(run.path, text, resumed)
    train(trainer, threads, world, shared)
    restore_best(trainer, world)
    return result_of(trainer, threads)


def begin(trainer: Trainer, start: Start, world) -> None:
    """Restore the checkpoint a resumed run continues from, write config.yaml, and start
    metrics.csv (a resumed run's was cut back to its checkpoint's rows in ``restore``)."""
    if start.ckpt is not None:
        trainer.restore(start.ckpt)
        trainer.diagnostics.resume(trainer.model.optimizer.iterations)
    text = summary.config_text(trainer.config, trainer.data)
    world.from_leader(write_text, trainer.run.config, text)
    if start.ckpt is None:
        trainer.position.csv_bytes = trainer.log.start()
        trainer.diagnostics.start()


def train(trainer: Trainer, threads: int, world, shared: list = ()) -> None:
    """Run the epochs with ``threads`` BLAS threads (and the weights ``shared`` with a second
    core), stopping on SIGINT and SIGTERM; a failure to write, or a second signal, says how to
    continue. The run is unlocked at the end."""
    run = trainer.run
    flat = trainer.model.parameters().flat_value if shared else None
    try:
        # Overflow warnings would only clutter the output: the NaN guard reports divergence.
        with (
            threadpool_limits(limits=threads, user_api="blas"),
            second_core.sharing(shared, flat),  # (nothing when shared is empty)
            np.errstate(all="ignore"),
            stop_on_signals() as stop,
            world.training(),
        ):
            trainer.run_epochs(stop)
    except StorageError as exc:
        if not run.last.exists():
            raise
        raise StorageError(
            f"{exc}; once it can be written, continue with: bptrain fit --resume {run.path}"
        ) from None
    except KeyboardInterrupt:  # a second signal before the first one's checkpoint was saved
        kept = f"{run.last} holds" if run.last.exists() else "there is no"
        raise Interrupted(
            f"interrupted twice: stopped at once; {kept} the last checkpoint; continue with: "
            f"bptrain fit --resume {run.path}",
            signal.SIGINT,
        ) from None
    finally:
        trainer.reporter.close()
        trainer.diagnostics.close()
        if world.leader:  # not a collective call: this may run while another rank failed
            run.unlock()


def restore_best(trainer: Trainer, world) -> None:
    """With ``early_stopping.restore_best``, end with the weights of the best epoch."""
    es, best = trainer.config.training.early_stopping, trainer.best.best_epoch
    if not (es and es.restore_best and best is not None and best != trainer.position.epoch):
        return
    run = trainer.run
    if world.from_leader(run.best.exists):
        trainer.strategy.load_weights(world.from_leader(checkpoint.load, run.best).section("model"))


def result_of(trainer: Trainer, threads: int) -> FitResult:
    pos, best_epoch = trainer.position, trainer.best.best_epoch
    best_row = next((r for r in pos.history if r["epoch"] == best_epoch), {})
    return FitResult(
        run_dir=trainer.run.path,
        history=list(pos.history),
        best_epoch=best_epoch,
        best_metrics=dict(best_row),
        stopped_early=pos.stopped_early,
        threads=threads,
        model=trainer.model,
        config=trainer.config,
    )
