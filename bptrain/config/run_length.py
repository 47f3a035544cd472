"""A run's length in update steps, and the lengths of its learning-rate schedule in steps.

One update step is one batch: an epoch of N training samples (what is left after the test and
validation splits, the k-fold and ``data.limit``) in batches of B is ``ceil(N / B)`` steps.
MPI ranks and replicas split each batch rather than take more of them, so the count is the
same for them. A schedule gives each length in steps (``decay_steps``), in epochs
(``decay_epochs``, rounded to whole steps), or not at all: ``decay_steps`` then spans the whole
run after the warmup, and ``warmup_steps`` is 0. ``bptrain.nn.schedules`` gets the step counts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from bptrain.config.locations import config_error
from bptrain.config.sections import Config

# A length in steps -> the same length in epochs (a schedule takes one of the two).
EPOCH_KEYS = {
    "step_size": "step_epochs",
    "decay_steps": "decay_epochs",
    "warmup_steps": "warmup_epochs",
}
WHOLE_RUN = "decay_steps"  # left out: the rest of the run after the warmup
WARMUP = "warmup_steps"  # left out: 0


@dataclass(frozen=True)
class RunLength:
    """``epochs`` epochs of ``train_samples`` samples in batches of ``batch_size`` (a step's:
    ``training.batch_size`` x ``training.accumulate``)."""

    train_samples: int
    batch_size: int
    epochs: int

    @property
    def steps_per_epoch(self) -> int:
        return max(1, math.ceil(self.train_samples / self.batch_size))

    @property
    def steps(self) -> int:
        return self.steps_per_epoch * self.epochs

    def of_epochs(self, epochs: float) -> int:
        """``epochs`` (a fraction too) in whole steps."""
        return round(epochs * self.steps_per_epoch)

    def describe(self) -> str:
        """ "720 training samples in batches of 32: 23 steps per epoch x 30 epochs = 690 steps"."""
        return (
            f"{self.train_samples} training samples in batches of {self.batch_size}: "
            f"{self.steps_per_epoch} steps per epoch x {self.epochs} epochs = {self.steps} steps"
        )


def run_length(config: Config, train_samples: int) -> RunLength:
    """The length of a run of the resolved ``config`` on ``train_samples`` training samples."""
    t = config.training
    return RunLength(train_samples, t.batch_size * t.accumulate, t.epochs)


def has_lengths(spec: dict | None) -> bool:
    """Whether a resolved schedule counts steps (step, exponential, cosine)."""
    return spec is not None and any(key in spec for key in EPOCH_KEYS)


def schedule_steps(spec: dict, run: RunLength | None) -> dict[str, int]:
    """Each length of the resolved schedule ``spec`` in steps, e.g. ``{"decay_steps": 4220,
    "warmup_steps": 0}``. ``run`` None (a model built to evaluate or predict, which never
    steps) counts an epoch as one step and a whole run as one epoch."""
    counted = run if run is not None else RunLength(train_samples=1, batch_size=1, epochs=1)
    out = {}
    for key, epoch_key in EPOCH_KEYS.items():
        if key not in spec:
            continue
        if spec[key] is not None:
            out[key] = spec[key]
        elif spec.get(epoch_key) is not None:
            out[key] = max(0 if key == WARMUP else 1, counted.of_epochs(spec[epoch_key]))
        elif key == WARMUP:
            out[key] = 0
    if WHOLE_RUN in spec and WHOLE_RUN not in out:
        rest = counted.steps - out.get(WARMUP, 0)
        if rest < 1 and run is not None:
            key = WARMUP if spec.get(WARMUP) is not None else EPOCH_KEYS[WARMUP]
            raise config_error(
                ("training", "schedule", key),
                f"the warmup ({out[WARMUP]} steps) takes the whole run ({run.describe()}), "
                "leaving no steps to decay over; shorten it, or give decay_steps or decay_epochs",
            )
        out[WHOLE_RUN] = max(1, rest)
    return {key: out[key] for key in EPOCH_KEYS if key in out}


def schedule_arguments(spec: dict, run: RunLength | None, extra=()) -> dict:
    """The keyword arguments of the schedule class for the resolved ``spec``: its lengths in
    steps (see ``schedule_steps``) and its other keys but ``type`` and ``extra``."""
    skip = {"type", *extra, *EPOCH_KEYS, *EPOCH_KEYS.values()}
    kwargs = {k: v for k, v in spec.items() if k not in skip}
    return {**kwargs, **schedule_steps(spec, run)}


def describe(spec: dict, run: RunLength) -> str:
    """Each length of the schedule in steps and where it comes from, e.g. "cosine,
    decay_steps 4220 (the whole run), warmup_steps 0"."""
    steps = schedule_steps(spec, run)
    parts = []
    for key, count in steps.items():
        epoch_key = EPOCH_KEYS[key]
        if spec[key] is None and spec.get(epoch_key) is not None:
            count = f"{count} ({epoch_key}: {spec[epoch_key]:g})"
        elif spec[key] is None and key == WHOLE_RUN:
            after = " after the warmup" if steps.get(WARMUP, 0) > 0 else ""
            count = f"{count} (the whole run{after})"
        parts.append(f"{key} {count}")
    return f"{spec['type']}, {', '.join(parts)}"
