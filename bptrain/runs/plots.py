"""PNG plots of a run: ``loss.png`` and one ``<metric>.png`` per metric, redrawn after each
epoch from the history, and ``confusion_matrix.png`` from ``bptrain eval``.

Figures are drawn with matplotlib's Agg canvas directly (no pyplot, so no GUI backend and no
global figure state) and written atomically.
"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path

from bptrain.runs.atomic import write_bytes

# Quantities that are errors (>= 0, smaller is better): drawn on a log axis when they span
# more than LOG_SPAN decades, where a linear axis would flatten everything after the start.
ERRORS = ("loss", "mse", "mae")
LOG_SPAN = 1.5
# Quantities bounded above by 1: a one-epoch plot shows them on 0..1.
UNIT = ("accuracy", "precision", "recall", "f1", "r2")
MARKERS_UP_TO = 40  # epochs; more would blot the line


def plot_history(
    history: list[dict],
    directory: str | os.PathLike,
    title: str = "",
    best_epoch: int | None = None,
    monitor: str | None = None,
) -> list[Path]:
    """Draw the loss and each metric against the epoch (``history_figures``) into
    ``directory``; returns the files written."""
    written = []
    for name, fig in history_figures(history, title, best_epoch, monitor).items():
        path = Path(directory) / f"{name}.png"
        save_figure(fig, path)
        written.append(path)
    return written


def history_figures(
    history: list[dict], title: str = "", best_epoch: int | None = None, monitor=None
) -> dict:
    """One figure per quantity, ``{"loss": fig, "accuracy": fig, ...}``: its training and
    validation curves against the epoch.

    ``history`` rows hold ``epoch``, ``loss``, optionally ``<metric>``, ``val_loss`` and
    ``val_<metric>`` (and ``lr``, which is not plotted). ``title`` (the run) heads every plot;
    ``best_epoch``, the best by ``monitor``, is marked on each.
    """
    keys = list(dict.fromkeys(k for row in history for k in row))
    groups: dict[str, list[str]] = {}
    for key in keys:
        if key in ("epoch", "lr"):
            continue
        groups.setdefault(key[4:] if key.startswith("val_") else key, []).append(key)
    figures = {}
    for name, members in groups.items():
        fig, ax = new_figure()
        draw_curves(ax, history, name, sorted(members, key=lambda k: k.startswith("val_")))
        if best_epoch is not None:
            mark_best(ax, history, best_epoch, monitor, star=monitor in members)
        ax.set_title(f"{title}: {name}" if title else name)
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        ax.legend()
        figures[name] = fig
    return figures


def draw_curves(ax, history: list[dict], name: str, keys: list[str]) -> None:
    """The training and validation curves of ``name`` with integer epoch ticks, a log axis
    for errors that span decades, and limits that show a single epoch sensibly."""
    from matplotlib.ticker import MaxNLocator

    epochs = [row["epoch"] for row in history]
    one = len(epochs) == 1
    values = []
    for key in keys:
        ys = [_number(row.get(key)) for row in history]
        values += [y for y in ys if math.isfinite(y)]
        label = "validation" if key.startswith("val_") else "training"
        if one and math.isfinite(ys[0]):
            label += f" {ys[0]:#.4g}"
        marker = {"marker": "o", "ms": 6 if one else 3} if len(epochs) <= MARKERS_UP_TO else {}
        style = "--" if key.startswith("val_") else "-"
        ax.plot(epochs, ys, style, label=label, **marker)
    if one:
        ax.set_xticks(epochs)
        ax.set_xlim(epochs[0] - 0.5, epochs[0] + 0.5)
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        pad = max(0.5, 0.02 * (epochs[-1] - epochs[0]))
        ax.set_xlim(epochs[0] - pad, epochs[-1] + pad)
    if not values:
        return
    low, high = min(values), max(values)
    if name in ERRORS and low > 0 and math.log10(high / low) > LOG_SPAN:
        ax.set_yscale("log")
    elif one or high - low <= 1e-9 * abs(high):  # no curve to zoom in on: show the scale
        if name in UNIT:
            ax.set_ylim(min(0.0, low) - 0.05, 1.05)
        elif low >= 0:
            ax.set_ylim(0.0, high * 1.25 or 1.0)


def mark_best(ax, history: list[dict], epoch: int, monitor: str | None, star: bool) -> None:
    """A dotted line at the best epoch, and with ``star`` a star on the monitored curve."""
    row = next((r for r in history if r["epoch"] == epoch), None)
    if row is None:
        return
    label = f"best: epoch {epoch}" + (f" by {monitor}" if monitor else "")
    ax.axvline(epoch, color="0.45", linestyle=":", linewidth=1.2, label=label)
    value = _number(row.get(monitor)) if star else math.nan
    if math.isfinite(value):
        ax.plot([epoch], [value], "*", color="gold", mec="black", mew=0.6, ms=14, zorder=5)


def _number(value) -> float:
    return math.nan if value is None else float(value)


def plot_confusion_matrix(cm, class_names, path: str | os.PathLike, title: str = "") -> Path:
    """A heat map of confusion-matrix counts (rows: true class, columns: predicted)."""
    import numpy as np

    cm = np.asarray(cm)
    n = len(cm)
    size = min(max(4.0, 0.45 * n + 2), 16)
    fig, ax = new_figure((size + 1, size))
    image = ax.imshow(cm, cmap="Blues")
    fig.colorbar(image, ax=ax)
    ticks = range(n)
    ax.set_xticks(ticks, labels=class_names, rotation=45 if n > 4 else 0, ha="right")
    ax.set_yticks(ticks, labels=class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if title:
        ax.set_title(title)
    if n <= 20:
        threshold = cm.max() / 2 if cm.size else 0
        for i in range(n):
            for j in range(n):
                color = "white" if cm[i, j] > threshold else "black"
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", color=color, fontsize=8)
    path = Path(path)
    save_figure(fig, path)
    return path


def new_figure(size=(6, 4)):
    """A fresh Agg figure (no pyplot state) and its single axes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=100)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def save_figure(fig, path: Path) -> None:
    """Lay out ``fig`` and write it as a PNG, atomically."""
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    write_bytes(path, buf.getvalue())
