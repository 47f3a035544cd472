"""Scoring a checkpoint on a data split (``bptrain eval``), and the model a checkpoint holds.
(On arrays, a model scores itself: ``Model.evaluate``, ``Model.predict``.)"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bptrain.config import Config, build_model, resolve_with_overrides
from bptrain.data import load_dataset
from bptrain.data.preprocess import unscale_targets
from bptrain.data.weights import with_sample_weights
from bptrain.errors import CheckpointError, ConfigError
from bptrain.runs import RunDir, checkpoint, run_dir_of
from bptrain.runs.atomic import write_text
from bptrain.train import metrics
from bptrain.train.denormals import flush_denormals
from bptrain.train.resume import as_saved
from bptrain.train.threads import second_core_sharing

FIXED_FOR_EVAL = ("model", "loss")


def checkpoint_path(path) -> Path:
    """A checkpoint file, or for a run directory its best checkpoint (else its last)."""
    path = Path(path)
    if path.is_dir():
        run = RunDir(path)
        for candidate in (run.best, run.last):
            if candidate.exists():
                return candidate
        raise CheckpointError(f"{path} holds no checkpoints/best.safetensors or last.safetensors")
    return path


def restore_model(ckpt: checkpoint.Checkpoint, overrides=()) -> tuple[Config, object]:
    """(config, model with the checkpoint's weights); ``overrides`` may change data settings
    (``data.root=DIR``, ``data.test_limit=1000``) but not the model."""
    # (the saved config resolved too: it may predate a new option with its default)
    raw = as_saved(ckpt.state["config"])  # (from before flush_denormals: it trained without)
    saved = resolve_with_overrides(raw, source="checkpoint config").to_dict()
    config = resolve_with_overrides(saved, overrides, source="checkpoint config")
    resolved = config.to_dict()
    for section in FIXED_FOR_EVAL:
        if resolved[section] != saved[section]:
            raise ConfigError(
                f"{section}: an override changed it, but a checkpoint is evaluated with the "
                "model it was trained as; override data settings only"
            )
    info = ckpt.state["data"]
    model = build_model(config, tuple(info["input_shape"]), info["num_outputs"])
    try:
        model.network.load_weights(ckpt.section("model"))
    except ValueError as exc:
        raise CheckpointError(f"the checkpoint does not fit its own model: {exc}") from None
    return config, model


@contextlib.contextmanager
def as_trained(config: Config, model) -> Iterator[None]:
    """Within the block ``model`` computes as its run did: denormals flushed or not
    (``training.flush_denormals``), its Dense kernels split in two or not (``second_core``;
    both halves on this thread, the same values)."""
    with (
        flush_denormals(config.training.flush_denormals),
        second_core_sharing(config.training, model, "here"),
    ):
        yield


@dataclass
class Evaluation:
    """``report``: JSON-ready metrics; ``run``: the run directory the checkpoint belongs to."""

    split: str
    task: str
    report: dict
    run: RunDir
    checkpoint: Path
    files: list = field(default_factory=list)


def evaluate_checkpoint(path, split: str = "test", overrides=(), plots: bool = True) -> Evaluation:
    """Score a checkpoint (or a run's best) on a data split; writes eval.json (merged by split)
    and, for classifiers, plots/confusion_matrix.png (``confusion_matrix_<split>.png`` for other
    splits than test)."""
    path = checkpoint_path(path)
    ckpt = checkpoint.load(path)
    config, model = restore_model(ckpt, overrides)
    data = load_dataset(dict(config.data), config.seed, recorded=ckpt.state["data"], only=split)
    data = with_sample_weights(data, ckpt.state["data"].get("class_weight"))
    x, y = data.split(split)
    if len(x) == 0:
        raise ConfigError(
            f"the {split} split is empty"
            + (" (data.validation_split is 0)" if split == "val" else "")
        )
    weights = getattr(data, f"w_{split}")
    with as_trained(config, model):  # the numbers fit's validation gives
        loss, outputs = model.evaluate(x, y, config.training.eval_batch_size, weights)
    if data.task == "classification":
        report = {
            "loss": loss,
            **metrics.classification_report(y, outputs, data.num_classes, data.class_names),
        }
    else:  # metrics in the targets' own units; the loss as training computes it
        stats = data.extra.get("scale_target")
        y, outputs = unscale_targets(y, stats), unscale_targets(outputs, stats)
        report = {"loss": loss, "samples": len(x), **metrics.regression_metrics(y, outputs)}
        if stats:
            report["loss_on"] = "standardized targets (data.scale_target)"
    report["checkpoint"] = str(path)
    report["epoch"] = ckpt.state["epoch"]
    run = run_dir_of(path)
    run.check_links()
    files = [_write_eval_json(run.eval, split, report)]
    if plots and data.task == "classification":
        from bptrain.runs.plots import plot_confusion_matrix

        run.plots.mkdir(parents=True, exist_ok=True)
        name = "confusion_matrix.png" if split == "test" else f"confusion_matrix_{split}.png"
        files.append(
            plot_confusion_matrix(
                report["confusion_matrix"],
                report["class_names"],
                run.plots / name,
                title=f"{config.name}: {split} split, epoch {ckpt.state['epoch']}",
            )
        )
    return Evaluation(split, data.task, report, run, path, files)


def _write_eval_json(path: Path, split: str, report: dict) -> Path:
    results = {}
    if path.exists():
        try:
            results = json.loads(path.read_text())
        except ValueError:
            results = {}  # a damaged eval.json is rewritten, not fatal
    results[split] = report
    write_text(path, json.dumps(results, indent=2) + "\n")
    return path
