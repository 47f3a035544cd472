"""The text a run starts with: the model summary, a line on the data and the threads, how the
work is shared, the run's length and schedule, and what changed on resume. Also the resolved
config as config.yaml stores it (``config_text``), with the schedule's lengths as comments."""

from __future__ import annotations

from bptrain.config import Config, build_model, dump
from bptrain.config import run_length as lengths
from bptrain.config.build import build_schedule
from bptrain.data import Dataset, load_dataset
from bptrain.errors import ConfigError, DataError


def starting(
    config: Config, data: Dataset, model, threads: int, sharing: str, saved: Config | None
) -> str:
    """The summary printed when a run starts; ``sharing``: how the work is shared (see
    ``bptrain.train.engine``), or ""; ``saved``: the config of the checkpoint it resumes."""
    text = "\n".join([describe(model, data, threads) + sharing, *schedule_lines(config, data)])
    if saved is not None:
        text += schedule_change(saved, config, data, model.optimizer)
    return text


def describe(model, data: Dataset, threads: int) -> str:
    """The model summary and a line on the data, printed when a run starts."""
    sizes = f"{len(data.x_train)} train / {len(data.x_val)} validation / {len(data.x_test)} test"
    shape = "x".join(str(d) for d in data.input_shape)
    skipped = data.extra.get("skipped_images")
    note = (
        f"\nskipped {skipped['count']} unreadable image(s) (data.skip_bad_images), the first: "
        f"{skipped['first']}"
        if skipped
        else ""
    )
    return (
        f"{model.summary()}\n"
        f"data: {data.name} ({data.task}), {sizes} samples of shape {shape}; "
        f"BLAS threads: {threads}{note}"
    )


def config_text(config: Config, data: Dataset | None = None) -> str:
    """The resolved config as a run's config.yaml stores it and ``bptrain config show`` prints
    it: YAML, then, for a schedule that counts steps, comments with the run's length and the
    schedule's lengths in steps. Without ``data`` the dataset is loaded to count its training
    samples (never downloaded for that)."""
    lines = schedule_lines(config, data) + pipeline_lines(config, data)
    return dump(config.to_dict()) + "".join(f"# {line}\n" for line in lines)


def schedule_lines(config: Config, data: Dataset | None = None) -> list[str]:
    """["run length: ...", "schedule: ..."] for a schedule that counts steps, else []."""
    spec = config.training.schedule
    if not lengths.has_lengths(spec):
        return []
    try:
        data = data if data is not None else local_data(config)
    except (DataError, ConfigError) as exc:  # fit will say so; show what can be shown
        return [f"schedule: its lengths in steps are counted when the data loads ({exc})"]
    run = lengths.run_length(config, len(data.x_train))
    return [f"run length: {run.describe()}", f"schedule: {lengths.describe(spec, run)}"]


def pipeline_lines(config: Config, data: Dataset | None = None) -> list[str]:
    """The layers and parameter count of each pipeline stage (``training.pipeline``), else []
    (the model is built for the data's input shape)."""
    if config.training.pipeline is None:
        return []
    from bptrain.train import pipeline

    try:
        data = data if data is not None else local_data(config)
        model = build_model(config, data.input_shape)
    except (DataError, ConfigError) as exc:
        return [f"pipeline: the stages are split when the data loads ({exc})"]
    return pipeline.config_lines(config, model)


def local_data(config: Config) -> Dataset:
    """The config's dataset, from local files only (never downloaded to be counted)."""
    options = dict(config.data)
    if "download" in options:
        options["download"] = False
    return load_dataset(options, config.seed)


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
