"""Plain-text reports for the command line: the end of ``fit``, ``eval`` tables, ``gradcheck``."""

from __future__ import annotations

import os
from pathlib import Path

from bptrain.config import Config
from bptrain.runs import RunDir
from bptrain.train.progress import format_row


def _rel(path) -> str:
    """A path relative to the working directory when it is inside it."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def fit_summary(result, config: Config) -> str:
    run = RunDir(Path(result.run_dir))
    monitor = config.training.checkpoint.monitor
    lines = []
    last = result.history[-1]["epoch"] if result.history else 0
    if result.stopped_early:
        lines.append(f"stopped early after epoch {last} (no {monitor} improvement)")
    if result.best_epoch is not None:
        row = {k: v for k, v in result.best_metrics.items() if k not in ("epoch", "lr")}
        lines.append(f"best epoch {result.best_epoch} of {last} by {monitor}: {format_row(row)}")
    lines.append(f"run directory: {_rel(run.path)}")
    ckpts = [p.name for p in (run.best, run.last) if p.exists()]
    lines.append(f"  checkpoints: {', '.join(_rel(run.checkpoints / c) for c in ckpts)}")
    lines.append(f"  metrics:     {_rel(run.metrics)}")
    if config.training.plots:
        plots = sorted(p.name for p in run.plots.glob("*.png"))
        lines.append(f"  plots:       {_rel(run.plots)}{os.sep} ({', '.join(plots)})")
    lines.append(f"evaluate on the test set: bptrain eval {_rel(run.path)}")
    return "\n".join(lines)


def eval_table(evaluation) -> str:
    r = evaluation.report
    head = (
        f"{_rel(evaluation.checkpoint)} (epoch {r['epoch']}), {evaluation.split} split, "
        f"{r['samples']} samples"
    )
    if evaluation.task != "classification":
        rows = [("loss", r["loss"]), ("mse", r["mse"]), ("mae", r["mae"]), ("r2", r["r2"])]
        body = "\n".join(f"{k:<8}{v:>12.6f}" for k, v in rows)
        if "loss_on" in r:
            body += f"\n(loss on {r['loss_on']}; mse, mae and r2 in the targets' own units)"
    else:
        body = _classification(r)
    files = "\n".join(f"wrote {_rel(f)}" for f in evaluation.files)
    return f"{head}\n{body}\n{files}"


def _classification(r: dict) -> str:
    names = r["class_names"]
    width = max(12, *(len(n) + 2 for n in names))
    lines = [f"loss      {r['loss']:.4f}", f"accuracy  {r['accuracy']:.4f}", ""]
    lines.append(f"{'class':<{width}}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}")
    for name, s in r["per_class"].items():
        lines.append(
            f"{name:<{width}}{s['precision']:>10.4f}{s['recall']:>10.4f}{s['f1']:>10.4f}"
            f"{s['support']:>10d}"
        )
    m = r["macro"]
    lines.append(
        f"{'macro avg':<{width}}{m['precision']:>10.4f}{m['recall']:>10.4f}{m['f1']:>10.4f}"
        f"{r['samples']:>10d}"
    )
    cm = r["confusion_matrix"]
    if len(cm) <= 20:
        cell = max(5, max(len(str(v)) for row in cm for v in row) + 1, *(len(n) + 1 for n in names))
        lines += ["", "confusion matrix (rows: true, columns: predicted)"]
        lines.append(" " * width + "".join(f"{n:>{cell}}" for n in names))
        for name, row in zip(names, cm, strict=True):
            lines.append(f"{name:<{width}}" + "".join(f"{v:>{cell}}" for v in row))
    return "\n".join(lines)


def gradcheck_table(result) -> str:
    errors = result.report.errors
    width = max(9, *(len(k) for k in errors)) if errors else 9
    lines = [
        f"gradient check in float64 on {result.samples} samples, tolerance {result.tolerance:g}",
        f"{'parameter':<{width}}  {'shape':<14}{'rel. error':>12}  result",
    ]
    for name, err in errors.items():
        shape = "x".join(str(d) for d in result.shapes.get(name, ()))
        status = "ok" if err < result.tolerance else "FAIL"
        lines.append(f"{name:<{width}}  {shape:<14}{err:>12.2e}  {status}")
    return "\n".join(lines)
