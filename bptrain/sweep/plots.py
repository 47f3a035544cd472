"""Sweep plots in ``<sweep dir>/plots/``:

- ``<key>.png`` per swept key whose value varies: every finished run's score (dots) and each
  trial's mean ± std (bars) against the key's value; a log x-axis where the values were
  sampled log-uniformly or are log-spaced; text values (such as activations) as categories.
- ``top_trials.png``: the learning curves of the best trials together, the sweep's metric
  against the epoch (each run thin, the trial's mean over its runs thick).
"""

from __future__ import annotations

from pathlib import Path

from bptrain.runs import metrics_log
from bptrain.runs.plots import new_figure, save_figure
from bptrain.sweep.leaderboard import TrialSummary
from bptrain.sweep.plan import Run, key_labels, varies
from bptrain.sweep.space import is_log_spaced, is_number, short_value
from bptrain.sweep.spec import SweepSpec

TOP = 5


def plot_sweep(
    spec: SweepSpec,
    ranked: list[TrialSummary],
    runs: list[Run],
    results: dict[int, dict],
    sweep_dir: Path,
) -> list[Path]:
    """Draw every plot; returns the files written."""
    directory = sweep_dir / "plots"
    directory.mkdir(exist_ok=True)
    written = []
    labels = key_labels(spec.swept)
    for key in spec.swept:
        if not varies(key, [s.params for s in ranked]):
            continue
        path = directory / f"{labels[key]}.png"
        if plot_parameter(spec, key, ranked, runs, results, path):
            written.append(path)
    path = directory / "top_trials.png"
    if plot_top_trials(spec, ranked, runs, results, sweep_dir, path):
        written.append(path)
    return written


def plot_parameter(spec, key, ranked, runs, results, path: Path) -> bool:
    finished = [s for s in ranked if s.scores]
    if not finished:
        return False
    values = [s.params[key] for s in finished]
    numeric = all(is_number(v) for v in values)
    if numeric:
        position = {s.trial: float(s.params[key]) for s in finished}
    else:
        names = sorted({short_value(v) for v in values})
        position = {s.trial: float(names.index(short_value(s.params[key]))) for s in finished}
    fig, ax = new_figure()
    xs, ys = [], []
    for run in runs:
        event = results.get(run.number)
        if event is not None and event["event"] == "done":
            xs.append(position[run.trial])
            ys.append(event["score"])
    ax.scatter(xs, ys, s=12, alpha=0.35, color="tab:blue", label="runs")
    ax.errorbar(
        [position[s.trial] for s in finished],
        [s.mean for s in finished],
        yerr=[s.std or 0.0 for s in finished],  # one run: no bar
        fmt="o",
        color="tab:red",
        ms=5,
        capsize=3,
        label="trial mean ± std",
    )
    if numeric and is_log_spaced(values, spec.space.get(key) if key not in spec.grid else None):
        ax.set_xscale("log")
    if not numeric:
        ax.set_xticks(range(len(names)), labels=names, rotation=30 if len(names) > 4 else 0)
    ax.set_xlabel(key)
    ax.set_ylabel(spec.metric)
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, path)
    return True


def plot_top_trials(spec, ranked, runs, results, sweep_dir: Path, path: Path) -> bool:
    from matplotlib.ticker import MaxNLocator

    top = [s for s in ranked if s.scores][:TOP]
    if not top:
        return False
    fig, ax = new_figure((7, 4.5))
    for rank, summary in enumerate(top, 1):
        curves = []
        for run in runs:
            event = results.get(run.number)
            if run.trial != summary.trial or event is None or event["event"] != "done":
                continue
            metrics = sweep_dir / run.name / "metrics.csv"
            if metrics.exists():  # a remote worker's directory may not be visible here
                curves.append({r["epoch"]: r.get(spec.metric) for r in metrics_log.read(metrics)})
        if not curves:
            continue
        color = f"C{rank - 1}"
        for curve in curves:
            ax.plot(list(curve), list(curve.values()), color=color, alpha=0.25, lw=0.8)
        # the mean over the epochs every run reached (early stopping may end some sooner)
        epochs = [e for e in curves[0] if all(c.get(e) is not None for c in curves)]
        mean = [sum(c[e] for c in curves) / len(curves) for e in epochs]
        label = f"#{rank} trial {summary.trial} ({summary.mean:.4g})"
        ax.plot(epochs, mean, color=color, lw=2, marker="o", ms=3, label=label)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel(spec.metric)
    ax.set_title(f"top {len(top)} trials")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, path)
    return True
