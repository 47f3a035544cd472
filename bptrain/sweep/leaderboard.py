"""The leaderboard: trials ranked by the mean of their runs' scores over folds and seeds.

``leaderboard.csv`` has exact values (one row per trial: rank, trial, each swept key,
``<metric>_mean``, ``<metric>_std``, runs, failed, epochs, best_epoch, seconds);
``leaderboard.md`` the same for reading, with failed runs and their errors listed below.
The std is the sample standard deviation (ddof=1) of the run scores; a trial with one finished
run has none (an empty cell, and no ``±`` where scores are shown); epochs, best_epoch and
seconds are means per finished run.
"""

from __future__ import annotations

import csv
import io
import math
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from bptrain.errors import ConfigError
from bptrain.runs.atomic import write_text
from bptrain.sweep.plan import Run, key_labels
from bptrain.sweep.space import Params, format_value, short_value
from bptrain.sweep.spec import SweepSpec


@dataclass
class TrialSummary:
    trial: int
    params: Params  # every swept key: the trial's value, or the base config's
    scores: list[float] = field(default_factory=list)
    epochs: list[int] = field(default_factory=list)
    best_epochs: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    runs: int = 0  # planned
    errors: list[tuple[str, str]] = field(default_factory=list)  # (run name, error)

    @property
    def mean(self) -> float | None:
        return _mean(self.scores)

    @property
    def status(self) -> str:
        """How a trial without a score stands: "failed" or "not run" (yet)."""
        return "failed" if self.errors else "not run"

    @property
    def std(self) -> float | None:
        """The sample standard deviation of the scores; None below two (undefined)."""
        n = len(self.scores)
        if n < 2:
            return None
        mean = self.mean
        return math.sqrt(sum((s - mean) ** 2 for s in self.scores) / (n - 1))


def summarize(
    spec: SweepSpec, trials: list[Params], runs: list[Run], results: dict[int, dict]
) -> list[TrialSummary]:
    """Trials ranked best first (by mean score, ``spec.mode``); trials without a finished run
    last. ``results``: run number -> its latest done/failed journal event."""
    keys = spec.swept
    out = [
        TrialSummary(t, {k: params.get(k, spec.base_value(k)) for k in keys})
        for t, params in enumerate(trials)
    ]
    for run in runs:
        summary = out[run.trial]
        summary.runs += 1
        event = results.get(run.number)
        if event is None:
            continue
        if event["event"] == "done":
            summary.scores.append(event["score"])
            summary.epochs.append(event["epochs"])
            summary.best_epochs.append(event["best_epoch"])
            summary.seconds.append(event["seconds"])
        else:
            summary.errors.append((run.name, event.get("error", "")))
    sign = -1.0 if spec.mode == "max" else 1.0
    return sorted(out, key=lambda s: (s.mean is None, sign * (s.mean or 0.0), s.trial))


def write(spec: SweepSpec, ranked: list[TrialSummary], directory: Path) -> None:
    """Write leaderboard.csv and leaderboard.md into ``directory``."""
    write_text(directory / "leaderboard.csv", to_csv(spec, ranked))
    write_text(directory / "leaderboard.md", to_markdown(spec, ranked))


def to_csv(spec: SweepSpec, ranked: list[TrialSummary]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    m = spec.metric
    keys = spec.swept
    writer.writerow(
        ["rank", "trial", *keys, f"{m}_mean", f"{m}_std", "runs", "failed"]
        + ["epochs", "best_epoch", "seconds"]
    )
    for rank, s in enumerate(ranked, 1):
        writer.writerow(
            [rank, s.trial, *(format_value(s.params[k]) for k in keys)]
            + [_exact(s.mean), _exact(s.std), len(s.scores), len(s.errors)]
            + [_exact(_mean(s.epochs)), _exact(_mean(s.best_epochs)), _exact(_mean(s.seconds))]
        )
    return buf.getvalue()


def to_markdown(spec: SweepSpec, ranked: list[TrialSummary]) -> str:
    labels = key_labels(spec.swept)
    head = ["rank", "trial", *labels.values(), f"{spec.metric} ({spec.mode})", "runs"]
    head += ["epochs", "s/run"]
    lines = [f"# Sweep {spec.name}", "", "| " + " | ".join(head) + " |"]
    lines.append("|" + "---|" * len(head))
    for rank, s in enumerate(ranked, 1):
        cells = [str(rank), str(s.trial), *(short_value(s.params[k]) for k in spec.swept)]
        score = format_score(s) if s.mean is not None else s.status
        runs = f"{len(s.scores)}/{s.runs}"
        cells += [score, runs, _short(_mean(s.epochs)), _short(_mean(s.seconds))]
        lines.append("| " + " | ".join(cells) + " |")
    errors = [(s.trial, name, error) for s in ranked for name, error in s.errors]
    if errors:
        lines += ["", "## Failed runs", ""]
        lines += [f"- trial {t}, `{name}`: {error}" for t, name, error in sorted(errors)]
    return "\n".join(lines) + "\n"


def retrain(spec: SweepSpec, params: Params) -> tuple[str, list[str]]:
    """``bptrain fit BASE key=value ...`` with a trial's values, on the full training set:
    with ``data.validation_split=0`` when the base holds a validation split out (unless its
    monitors need one). Also notes on what the command leaves as the base config has it."""
    args = [f"{k}={format_value(v)}" for k, v in params.items()]
    notes = []
    if spec.base_resolved["data"].get("validation_split", 0) > 0:
        try:
            spec.run_config({"data.validation_split": 0}, spec.base_resolved["seed"], None, None)
            args.append("data.validation_split=0")
        except ConfigError:
            notes.append("it keeps the base's validation split: the base's monitors need one")
    left = []
    if spec.fixed:
        fixed = " ".join(f"{k}={format_value(v)}" for k, v in spec.fixed.items())
        left.append(f"the sweep's fixed values ({fixed})")
    if spec.overrides:
        left.append(f"command-line overrides ({' '.join(spec.overrides)})")
    if left:
        notes.append(f"{' and '.join(left)} are left at the base config's")
    words = ["bptrain", "fit", _display_path(spec.base_path), *args]
    return " ".join(shlex.quote(w) for w in words), notes


def format_score(summary: TrialSummary) -> str:
    """ "0.9806 ± 0.0090" (mean ± sample std), or "0.9806" for one run (no spread)."""
    if summary.std is None:
        return f"{summary.mean:.4f}"
    return f"{summary.mean:.4f} ± {summary.std:.4f}"


def _display_path(path: Path) -> str:
    """The base file relative to the working directory when it is below it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path.resolve())


def _mean(values: list) -> float | None:
    return sum(values) / len(values) if values else None


def _exact(value) -> str:
    return "" if value is None else repr(value)


def _short(value) -> str:
    return "" if value is None else f"{value:.3g}"
