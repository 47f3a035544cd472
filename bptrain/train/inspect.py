"""``bptrain inspect RUN``: the last recorded step of a run's layers.csv as a per-layer table,
with what a practitioner would flag (``flags``) on the weights (``OFFSETS`` are not judged):

- a vanishing gradient: a weight's gradient norm under ``VANISHING`` times the step's largest
  that is not exploding (the early layers of a deep sigmoid net), or under ``TINY``;
- an exploding gradient: not finite, or more than ``EXPLODING`` times the weight's norm;
- an update ratio ||dw|| / ||w|| more than ``RATIO_SPAN`` decades away from 1e-3 (the
  usual rule of thumb: far smaller and the layer barely learns, far larger and it thrashes);
- dead ReLUs: a layer whose fraction of units that output 0 for every probe sample is above
  ``max_dead``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from bptrain.errors import CheckpointError
from bptrain.runs import layers_log

VANISHING = 1e-2
TINY = 1e-8
EXPLODING = 10.0
RATIO_SPAN = 2.0
MAX_DEAD = 0.5
# Offsets and scales (a bias, BatchNorm's beta and gamma) are not judged: their gradients and
# update ratios are not comparable with a weight matrix's.
OFFSETS = ("bias", "beta", "gamma")


@dataclass
class Inspection:
    """The rows of the last recorded step of run ``path`` and the flags raised on them."""

    path: Path
    step: int
    epoch: int
    params: list[dict]
    outputs: list[dict]
    flags: list[str] = field(default_factory=list)


def layers_csv(path) -> Path:
    """The layers.csv of a run directory (or of the run a checkpoint file is in)."""
    path = Path(path)
    run = path if path.is_dir() else path.parent.parent
    if not path.exists():
        raise CheckpointError(f"{path} does not exist; give a run directory")
    found = run / "layers.csv"
    if not found.exists():
        raise CheckpointError(
            f"{run} has no layers.csv: train with training.diagnostics: true "
            f"(bptrain fit CONFIG training.diagnostics=true) to record it"
        )
    return found


def inspect_run(path, max_dead: float = MAX_DEAD) -> Inspection:
    """The last recorded step of the run at ``path`` with its flags."""
    csv_path = layers_csv(path)
    rows = layers_log.read(csv_path)
    if not rows:
        raise CheckpointError(f"{csv_path} has no rows yet: no step was recorded")
    step = rows[-1]["step"]
    last = [r for r in rows if r["step"] == step]
    params = [r for r in last if r["parameter"]]
    outputs = [r for r in last if not r["parameter"]]
    found = Inspection(csv_path.parent, step, last[0]["epoch"], params, outputs)
    found.flags = flags(params, outputs, max_dead)
    return found


def flags(params: list[dict], outputs: list[dict], max_dead: float = MAX_DEAD) -> list[str]:
    """One line per problem: ``dense/kernel: vanishing gradient (...)``."""
    out = []
    weights = [r for r in params if r["parameter"].split("/")[-1] not in OFFSETS]
    largest = max((r["grad_norm"] for r in weights if not exploding(r)), default=0.0)
    for r in weights:
        why = parameter_flags(r, largest)
        if why:
            out.append(f"{r['layer']}/{r['parameter']}: {'; '.join(why)}")
    for r in outputs:
        dead = r["dead_fraction"]
        if dead is not None and dead > max_dead:
            out.append(f"{r['layer']}: dead ReLUs ({dead:.0%} of its units output 0 always)")
    return out


def exploding(row: dict) -> bool:
    grad, weight = row["grad_norm"], row["weight_norm"]
    return not math.isfinite(grad) or bool(weight and grad > EXPLODING * weight)


def parameter_flags(row: dict, largest: float) -> list[str]:
    """What is wrong with one parameter row, given the step's largest gradient norm."""
    grad, weight, ratio = row["grad_norm"], row["weight_norm"], row["update_ratio"]
    out = []
    if exploding(row):
        out.append(f"exploding gradient (norm {grad:.3g}, weight norm {weight:.3g})")
    elif grad < TINY or grad < VANISHING * largest:
        decades = math.log10(largest / grad) if grad > 0 else math.inf
        out.append(
            f"vanishing gradient (norm {grad:.3g}, {decades:.1f} decades below the largest, "
            f"{largest:.3g})"
        )
    if ratio is not None and ratio > 0 and abs(math.log10(ratio / 1e-3)) > RATIO_SPAN:
        size = "small: the layer barely learns" if ratio < 1e-3 else "large: it thrashes"
        out.append(f"update ratio {ratio:.2g} is far from 1e-3 (too {size})")
    return out


def inspect_table(found: Inspection) -> str:
    """The parameters' and the outputs' tables and the flags, as ``bptrain inspect`` prints."""
    head = f"{found.path}: step {found.step} (epoch {found.epoch}), layers.csv"
    lines = [head, "", f"{'parameter':<24}{'grad norm':>11}{'weight norm':>13}{'update ratio':>14}"]
    for r in found.params:
        name = f"{r['layer']}/{r['parameter']}"
        lines.append(
            f"{name:<24}{r['grad_norm']:>11.3g}{r['weight_norm']:>13.3g}{_g(r['update_ratio']):>14}"
        )
    lines += ["", f"{'layer output':<24}{'mean':>11}{'std':>13}{'dead':>14}"]
    for r in found.outputs:
        dead = "" if r["dead_fraction"] is None else f"{r['dead_fraction']:.0%}"
        lines.append(f"{r['layer']:<24}{r['act_mean']:>11.3g}{r['act_std']:>13.3g}{dead:>14}")
    lines.append("")
    lines += [f"flag: {f}" for f in found.flags] or [
        "no flags: gradients, updates and units look healthy"
    ]
    return "\n".join(line.rstrip() for line in lines)


def _g(value) -> str:
    return "" if value is None else f"{value:.3g}"
