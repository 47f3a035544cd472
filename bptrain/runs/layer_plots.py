"""The plots of ``training.diagnostics`` (from layers.csv rows, ``bptrain.runs.layers_log``):

- ``gradients.png``: a heat map of log10 gradient norm, one row per parameter (the input side
  at the top) and one column per recorded step, over at least ``MIN_DECADES``: a vanishing
  gradient is a dark band at the top, an exploding one a bright one.
- ``updates.png``: each weight's update ratio ||dw|| / ||w|| against the step, on a log axis
  and coloured by depth, with the usual rule of thumb 1e-3 marked (biases and BatchNorm's
  beta and gamma are left out, as ``bptrain inspect`` leaves them).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from bptrain.runs.plots import new_figure, save_figure

RULE_OF_THUMB = 1e-3
# The heat map's colours span at least this many decades, so that a healthy net's spread
# (within a decade or two) looks even and a vanishing one's (4 and more) does not.
MIN_DECADES = 4.0
OFFSETS = ("bias", "beta", "gamma")


def series(rows: list[dict], key: str) -> tuple[list[str], list[int], np.ndarray]:
    """(names, steps, values[name, step]) of ``key`` on the parameter rows (nan: missing or
    not positive, as a log scale has no place for them)."""
    names = list(dict.fromkeys(f"{r['layer']}/{r['parameter']}" for r in rows if r["parameter"]))
    steps = sorted({r["step"] for r in rows})
    values = np.full((len(names), len(steps)), np.nan)
    where = {n: i for i, n in enumerate(names)}
    at = {s: j for j, s in enumerate(steps)}
    for r in rows:
        value = r[key]
        if r["parameter"] and value is not None and 0 < value < math.inf:
            values[where[f"{r['layer']}/{r['parameter']}"], at[r["step"]]] = value
    return names, steps, values


def plot_layers(rows: list[dict], directory: str | os.PathLike, title: str = "") -> list[Path]:
    """Draw gradients.png and updates.png into ``directory``; returns the files written."""
    names, steps, grads = series(rows, "grad_norm")
    if not names:
        return []
    paths = [Path(directory) / "gradients.png", Path(directory) / "updates.png"]
    save_figure(gradient_map(names, steps, grads, title), paths[0])
    save_figure(update_lines(*series(rows, "update_ratio"), title), paths[1])
    return paths


def gradient_map(names, steps, grads: np.ndarray, title: str):
    fig, ax = new_figure((7, 1.5 + 0.3 * len(names)))
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.log10(grads)
    top = float(np.nanmax(logs)) if np.isfinite(logs).any() else 0.0
    bottom = min(float(np.nanmin(logs)) if np.isfinite(logs).any() else top, top - MIN_DECADES)
    image = ax.imshow(
        logs, aspect="auto", interpolation="nearest", cmap="viridis", vmin=bottom, vmax=top,
        extent=(-0.5, len(steps) - 0.5, len(names) - 0.5, -0.5),
    )  # fmt: skip
    fig.colorbar(image, ax=ax, label="log10 gradient norm")
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ticks = np.unique(np.linspace(0, len(steps) - 1, min(len(steps), 8)).astype(int))
    ax.set_xticks(ticks, [str(steps[i]) for i in ticks])
    ax.set_xlabel("step")
    ax.set_title(f"gradient norm per parameter: {title}" if title else "gradient norm")
    return fig


def update_lines(names, steps, ratios: np.ndarray, title: str):
    from matplotlib import colormaps

    fig, ax = new_figure((8, 4))
    weights = [i for i, n in enumerate(names) if n.split("/")[-1] not in OFFSETS]
    colors = colormaps["viridis"](np.linspace(0, 0.9, max(len(weights), 1)))
    for color, i in zip(colors, weights, strict=False):
        ax.plot(steps, ratios[i], label=names[i], linewidth=1.2, color=color)
    ax.axhline(RULE_OF_THUMB, color="gray", linestyle="--", linewidth=1, label="1e-3")
    if np.isfinite(ratios).any():
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("update / weight norm")
    ax.set_title(f"update ratio per parameter: {title}" if title else "update ratio")
    ax.legend(fontsize=6, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return fig
