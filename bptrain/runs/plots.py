"""PNG plots of a run: ``loss.png`` and one ``<metric>.png`` per metric, redrawn after each
epoch from the history, and ``confusion_matrix.png`` from ``bptrain eval``.

Figures are drawn with matplotlib's Agg canvas directly (no pyplot, so no GUI backend and no
global figure state) and written atomically.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

from bptrain.runs.atomic import write_bytes


def plot_history(history: list[dict], directory: str | os.PathLike) -> list[Path]:
    """Draw the loss and each metric against the epoch; returns the files written.

    ``history`` rows hold ``epoch``, ``loss``, optionally ``val_loss`` and ``val_<metric>``
    (and ``lr``, which is not plotted).
    """
    if not history:
        return []
    directory = Path(directory)
    epochs = [row["epoch"] for row in history]
    names = [k for k in history[0] if k not in ("epoch", "lr", "loss", "val_loss")]
    groups = {"loss": [k for k in ("loss", "val_loss") if k in history[0]]}
    for key in names:
        base = key[4:] if key.startswith("val_") else key
        groups.setdefault(base, []).append(key)
    written = []
    for name, keys in groups.items():
        fig, ax = new_figure()
        for key in keys:
            ax.plot(epochs, [row.get(key) for row in history], marker="o", ms=3, label=key)
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        ax.legend()
        path = directory / f"{name}.png"
        save_figure(fig, path)
        written.append(path)
    return written


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
