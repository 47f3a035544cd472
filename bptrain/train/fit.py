"""``fit``: the in-process entry point that ``bptrain fit`` and sweep workers call.

result = fit(load_config("configs/spirals.yaml"))
result.run_dir, result.best_epoch, result.best_metrics["val_accuracy"]
"""

from __future__ import annotations

import dataclasses
import os
import signal
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from bptrain.config import Config, build_model, dump, resolve_with_overrides
from bptrain.config import run_length as lengths
from bptrain.config.build import build_schedule
from bptrain.config.locations import config_error
from bptrain.config.schema import CLASSIFICATION_LOSSES
from bptrain.config.yamlio import load_file
from bptrain.data import Dataset, load_dataset
from bptrain.errors import CheckpointError, ConfigError, DataError, StorageError
from bptrain.metric_names import EPOCH_METRICS
from bptrain.nn import backend
from bptrain.runs import RunDir, checkpoint, new_run_dir, run_dir_of
from bptrain.runs.atomic import write_text
from bptrain.train import distributed, memory
from bptrain.train.data_parallel import DataParallelTrainer
from bptrain.train.loop import Trainer, num_outputs
from bptrain.train.progress import reporter as make_reporter
from bptrain.train.replicas import ReplicaTrainer
from bptrain.train.signals import Interrupted, stop_on_signals
from bptrain.train.threads import default_threads

# Sections a resumed run must share with its checkpoint (training and optimizer may change).
FIXED_ON_RESUME = ("seed", "data", "model", "loss", "metrics")
# Data options that say where files are, not what they hold.
DATA_LOCATION_KEYS = ("root", "download")


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
    config: dict | None = None,
    run_dir: str | os.PathLike | None = None,
    resume: str | os.PathLike | None = None,
    progress: str = "auto",
    runs_root: str | os.PathLike = "runs",
    overrides: Sequence[str] = (),
) -> FitResult:
    """Train as ``config`` says (a raw or resolved config mapping) and return the result.

    run_dir: the directory to write (default ``runs_root/<name>/<YYYYmmdd-HHMMSS>``).
    resume: a run directory or checkpoint file to continue; ``config`` may then be None (the
        checkpoint's config is used) or a config that differs only in ``training`` and
        ``optimizer``. A run directory without a checkpoint (stopped before its first epoch
        ended) starts over in place.
    progress: "auto", "bar", "plain" or "none".
    runs_root: where new run directories go.
    overrides: ``key.path=value`` strings applied to ``config`` (or the checkpoint's config).
    Raises ConfigError, DataError, CheckpointError, DivergenceError, or Interrupted (SIGINT or
    SIGTERM; a checkpoint of the current step was saved).
    """
    # Each step frees and reallocates the same large arrays: keep that memory in the process
    # instead of faulting fresh zeroed pages in every step (~15% of a CNN step; see backend).
    backend.keep_freed_memory()
    # Under mpiexec, every rank runs this; the leader alone touches the run directory.
    world = distributed.training_world()
    report = make_reporter(progress if world.leader else "none")
    ckpt, ckpt_path, run = None, None, None
    if resume is not None:
        run, ckpt_path = world.from_leader(locate_resume, resume)
        # Reading first (checkpoints and config.yaml are replaced atomically, never written in
        # place), so a file that is no checkpoint leaves nothing behind; then the run is made
        # and locked before anything in it changes.
        if ckpt_path is not None:
            ckpt = world.from_leader(checkpoint.load, ckpt_path)
            saved = ckpt.state["config"]
        else:
            saved, _ = world.from_leader(load_file, run.config)
        world.from_leader(run.make)
        world.from_leader(run.lock)
        config = resolve_with_overrides(config if config is not None else saved, overrides)
        if ckpt is not None:  # (the saved config resolved too: it may predate a new option)
            check_resumable(resolve_with_overrides(ckpt.state["config"]), config)
        world.from_leader(run.remove_temporaries)  # of writes cut short by a kill
    else:
        if config is None:
            raise ConfigError("fit needs a config (or a run to resume)")
        config = resolve_with_overrides(config, overrides)

    ranks_instead = None
    if world.size > 1 and config.training.replicas > 1:
        config, ranks_instead = ranks_replace_replicas(config, world.size)

    # Data and model first: a config that fails here leaves nothing behind in runs/.
    data, model = prepare(config, recorded=ckpt.state["data"] if ckpt is not None else None)
    t = config.training
    replicas = t.replicas
    # Replicas run side by side, one BLAS thread each (threadpoolctl's limit is process-wide).
    threads = (
        1 if replicas > 1 else world.share_cores(t.threads or default_threads(model, t.batch_size))
    )
    copies = [build_model(config, data.input_shape) for _ in range(replicas - 1)]
    if run is None:
        run = world.from_leader(fresh_run_dir, run_dir, runs_root, config.name)
        world.from_leader(run.lock)
        world.from_leader(run.remove_temporaries)  # a --run-dir killed before its config.yaml
    if world.size > 1:
        trainer = DataParallelTrainer(config, data, model, run, report, world)
    elif copies:
        trainer = ReplicaTrainer(config, data, model, run, report, copies)
    else:
        trainer = Trainer(config, data, model, run, report)
    if ckpt is not None:
        trainer.restore(ckpt)
    world.from_leader(write_text, run.config, config_text(config, data))
    if ckpt is None:
        trainer.position.csv_bytes = trainer.log.start()

    pos = trainer.position
    resumed = None
    if ckpt_path is not None:
        resumed = f"{ckpt_path} ({pos.where(at_end='the end of epoch')})"
    summary = describe(model, data, threads)
    if world.size > 1:
        summary += f" per rank; data-parallel on {world.size} MPI ranks"
        summary += f"\n{ranks_instead}" if ranks_instead else ""
    if copies:
        summary += f" per replica; data-parallel on {replicas} replicas (threads)"
    summary = "\n".join([summary, *schedule_lines(config, data)])
    if ckpt is not None:
        saved = resolve_with_overrides(ckpt.state["config"])
        summary += schedule_change(saved, config, data, model.optimizer)
    report.start(run.path, summary, resumed)
    try:
        # Overflow warnings would only clutter the output: the NaN guard reports divergence.
        with (
            threadpool_limits(limits=threads, user_api="blas"),
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
        report.close()
        if world.leader:  # not a collective call: this may run while another rank failed
            run.unlock()

    es = t.early_stopping
    if es and es.restore_best and trainer.best.best_epoch is not None:
        if trainer.best.best_epoch != pos.epoch and world.from_leader(run.best.exists):
            model.load_weights(world.from_leader(checkpoint.load, run.best).section("model"))
    best_epoch = trainer.best.best_epoch
    best_row = next((r for r in pos.history if r["epoch"] == best_epoch), {})
    return FitResult(
        run_dir=run.path,
        history=list(pos.history),
        best_epoch=best_epoch,
        best_metrics=dict(best_row),
        stopped_early=pos.stopped_early,
        threads=threads,
        model=model,
        config=config,
    )


def ranks_replace_replicas(config: Config, ranks: int) -> tuple[Config, str]:
    """(config with ``training.replicas: 1``, the line saying so) for a run on ``ranks`` MPI
    ranks: the ranks split each batch instead of the thread replicas (the two do not combine),
    so ``bptrain fit configs/mnist_cnn.yaml --processes 2`` runs as written. The run stores
    ``replicas: 1``, what it trained with; the result is one model's to float32 round-off, as
    for either alone."""
    replicas = config.training.replicas
    line = (
        f"training.replicas: 1 instead of {replicas}: the {ranks} MPI ranks split each batch "
        "(ranks and thread replicas do not combine)"
    )
    return config.replace(training=dataclasses.replace(config.training, replicas=1)), line


def describe(model, data: Dataset, threads: int) -> str:
    """The model summary and a line on the data, printed when a run starts."""
    sizes = f"{len(data.x_train)} train / {len(data.x_val)} validation / {len(data.x_test)} test"
    shape = "x".join(str(d) for d in data.input_shape)
    return (
        f"{model.summary()}\n"
        f"data: {data.name} ({data.task}), {sizes} samples of shape {shape}; "
        f"BLAS threads: {threads}"
    )


def config_text(config: Config, data: Dataset | None = None) -> str:
    """The resolved config as a run's config.yaml stores it and ``bptrain config show`` prints
    it: YAML, then, for a schedule that counts steps, comments with the run's length and the
    schedule's lengths in steps. Without ``data`` the dataset is loaded to count its training
    samples (never downloaded for that)."""
    return dump(config.to_dict()) + "".join(f"# {line}\n" for line in schedule_lines(config, data))


def schedule_lines(config: Config, data: Dataset | None = None) -> list[str]:
    """["run length: ...", "schedule: ..."] for a schedule that counts steps, else []."""
    spec = config.training.schedule
    if not lengths.has_lengths(spec):
        return []
    if data is None:
        options = dict(config.data)
        if "download" in options:
            options["download"] = False
        try:
            data = load_dataset(options, config.seed)
        except (DataError, ConfigError) as exc:  # fit will say so; show what can be shown
            return [f"schedule: its lengths in steps are counted when the data loads ({exc})"]
    run = lengths.run_length(config, len(data.x_train))
    return [f"run length: {run.describe()}", f"schedule: {lengths.describe(spec, run)}"]


def schedule_change(saved: Config, config: Config, data: Dataset, optimizer) -> str:
    """A line on a resumed run whose schedule lengths changed (a default-length schedule
    follows ``training.epochs``), with the rate before and after at the step reached; or ""."""
    new_spec, old_spec = config.training.schedule, saved.training.schedule
    if not (lengths.has_lengths(new_spec) and lengths.has_lengths(old_spec)):
        return ""
    n = len(data.x_train)
    new_run, old_run = lengths.run_length(config, n), lengths.run_length(saved, n)
    new = lengths.schedule_steps(new_spec, new_run)
    old = lengths.schedule_steps(old_spec, old_run)
    if new == old:
        return ""
    changed = ", ".join(f"{k} {old.get(k)} -> {v}" for k, v in new.items() if old.get(k) != v)
    step = max(optimizer.iterations, 1)
    rate = saved.optimizer.get("learning_rate", optimizer.learning_rate)
    before = build_schedule(old_spec, old_run)(step, rate)
    return (
        f"\nschedule changed on resume: {changed}; the rate at step {step} goes from "
        f"{before:.4g} to {optimizer.lr:.4g}"
    )


def locate_resume(resume) -> tuple[RunDir, Path | None]:
    """(run, checkpoint or None) for a ``--resume`` argument: a run directory or a file. The
    run directory is not created or changed here (``RunDir.make`` does that)."""
    path = Path(resume)
    if path.is_dir():
        run = RunDir(path)
        if run.last.exists():
            return run, run.last
        if run.config.exists():
            return run, None  # stopped before the first checkpoint: start over here
        raise CheckpointError(
            f"{path} is not a run directory: it has neither checkpoints/last.safetensors nor "
            "config.yaml"
        )
    if path.is_file():
        return run_dir_of(path), path
    raise CheckpointError(f"{path}: no such run directory or checkpoint")


def fresh_run_dir(run_dir, runs_root, name: str) -> RunDir:
    if run_dir is None:
        return new_run_dir(runs_root, name)
    run = RunDir(Path(run_dir))
    if run.last.exists() or run.config.exists():
        raise ConfigError(
            f"--run-dir {run.path} already holds a run; continue it with --resume {run.path} "
            "or choose another directory"
        )
    return run.make()


def check_resumable(saved: Config, config: Config) -> None:
    """A resumed run may change training and optimizer settings, not what is trained."""
    for section in FIXED_ON_RESUME:
        old, new = getattr(saved, section), getattr(config, section)
        if section == "data":
            old = {k: v for k, v in old.items() if k not in DATA_LOCATION_KEYS}
            new = {k: v for k, v in new.items() if k not in DATA_LOCATION_KEYS}
        if old != new:
            raise ConfigError(
                f"{section}: differs from the checkpoint's; a resumed run may change only "
                "training and optimizer settings (start a new run for a different "
                f"{section})"
            )


def prepare(config: Config, recorded: dict | None = None) -> tuple[Dataset, Any]:
    """(data, model) of a resolved config: the dataset loaded, the loss and metrics checked
    against its task, and the model built for its inputs and outputs. Data and model are
    estimated before they are made, and refused when they would not fit in memory (see
    ``bptrain.train.memory``). ``recorded``: what a resumed run's checkpoint says about its
    data (see ``load_dataset``)."""
    budget = memory.Budget.of(config)
    memory.check_data(config, budget, recorded)
    data = load_dataset(dict(config.data), config.seed, recorded=recorded)
    check_task(config, data)
    memory.check_model(config, data, budget)
    run = lengths.run_length(config, len(data.x_train))
    return data, build_model(config, data.input_shape, num_outputs(data), run)


def check_task(config: Config, data: Dataset) -> None:
    """The loss and metrics must suit the data's task (classification or regression)."""
    loss = config.loss["type"]
    if data.task == "classification" and loss not in CLASSIFICATION_LOSSES:
        raise config_error(
            ("loss",),
            f"{loss} is a regression loss but {data.name} is a classification dataset; "
            "use sparse_categorical_crossentropy",
        )
    if data.task == "regression" and loss in CLASSIFICATION_LOSSES:
        raise config_error(
            ("loss",),
            f"{loss} is a classification loss but {data.name} is a regression dataset; "
            "use mean_squared_error",
        )
    for i, name in enumerate(config.metrics):
        if EPOCH_METRICS[name] != data.task:
            raise config_error(
                ("metrics", i),
                f"{name!r} is a {EPOCH_METRICS[name]} metric but {data.name} is a "
                f"{data.task} dataset",
            )
