"""Learning-rate schedules: ``schedule(step, base_lr) -> lr`` for the 1-based update ``step``.

``ReduceLROnPlateau`` also watches a metric: the trainer calls ``observe(value)`` once per epoch.
Every schedule has ``state()`` / ``load_state()`` so a resumed run continues exactly.
"""

from __future__ import annotations

import math

from bptrain.nn import registry


class Schedule:
    name = ""

    def __call__(self, step: int, base_lr: float) -> float:
        raise NotImplementedError

    def observe(self, value: float) -> None:
        """Called with the monitored metric at the end of each epoch (only plateau uses it)."""

    def state(self) -> dict:
        return {}

    def load_state(self, state: dict) -> None:
        for k, v in state.items():
            setattr(self, k, v)


class Constant(Schedule):
    name = "constant"

    def __call__(self, step, base_lr):
        return base_lr


class StepDecay(Schedule):
    """Multiply the rate by ``gamma`` every ``step_size`` updates."""

    name = "step"

    def __init__(self, step_size: int, gamma: float = 0.1):
        if step_size < 1:
            raise ValueError(f"step_size must be positive, got {step_size}")
        self.step_size, self.gamma = step_size, gamma

    def __call__(self, step, base_lr):
        return base_lr * self.gamma ** ((step - 1) // self.step_size)


class ExponentialDecay(Schedule):
    """``lr * decay_rate ** (step / decay_steps)``, floored to whole periods if ``staircase``."""

    name = "exponential"

    def __init__(self, decay_steps: int, decay_rate: float, staircase: bool = False):
        if decay_steps < 1:
            raise ValueError(f"decay_steps must be positive, got {decay_steps}")
        self.decay_steps, self.decay_rate, self.staircase = decay_steps, decay_rate, staircase

    def __call__(self, step, base_lr):
        p = (step - 1) / self.decay_steps
        return base_lr * self.decay_rate ** (math.floor(p) if self.staircase else p)


class CosineDecay(Schedule):
    """Linear warmup over ``warmup_steps``, then a half cosine from lr down to ``alpha * lr``
    over ``decay_steps``; flat at ``alpha * lr`` afterwards."""

    name = "cosine"

    def __init__(self, decay_steps: int, alpha: float = 0.0, warmup_steps: int = 0):
        if decay_steps < 1:
            raise ValueError(f"decay_steps must be positive, got {decay_steps}")
        self.decay_steps, self.alpha, self.warmup_steps = decay_steps, alpha, warmup_steps

    def __call__(self, step, base_lr):
        if step <= self.warmup_steps:
            return base_lr * step / self.warmup_steps
        t = min(step - self.warmup_steps, self.decay_steps) / self.decay_steps
        return base_lr * (self.alpha + (1 - self.alpha) * 0.5 * (1 + math.cos(math.pi * t)))


class ReduceLROnPlateau(Schedule):
    """Multiply the rate by ``factor`` when the observed metric has not improved by
    ``min_delta`` for ``patience`` epochs, never below ``min_lr``."""

    name = "reduce_on_plateau"

    def __init__(
        self,
        factor: float = 0.1,
        patience: int = 10,
        mode: str = "min",
        min_delta: float = 1e-4,
        cooldown: int = 0,
        min_lr: float = 0.0,
    ):
        if not 0 < factor < 1:
            raise ValueError(f"factor must be in (0, 1), got {factor}")
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        self.factor, self.patience, self.mode = factor, patience, mode
        self.min_delta, self.cooldown, self.min_lr = min_delta, cooldown, min_lr
        self.scale, self.best, self.wait, self.cooldown_left = 1.0, None, 0, 0

    def __call__(self, step, base_lr):
        return max(base_lr * self.scale, self.min_lr)

    def observe(self, value):
        better = self.best is None or (
            value < self.best - self.min_delta
            if self.mode == "min"
            else value > self.best + self.min_delta
        )
        if better:
            self.best, self.wait = float(value), 0
        elif self.cooldown_left > 0:
            self.cooldown_left -= 1
        else:
            self.wait += 1
            if self.wait >= self.patience:
                self.scale *= self.factor
                self.wait, self.cooldown_left = 0, self.cooldown

    def state(self):
        return {
            "scale": self.scale,
            "best": self.best,
            "wait": self.wait,
            "cooldown_left": self.cooldown_left,
        }


SCHEDULES: dict[str, type[Schedule]] = {
    cls.name: cls for cls in (Constant, StepDecay, ExponentialDecay, CosineDecay, ReduceLROnPlateau)
}


def get(schedule) -> Schedule:
    """None (constant), a name, a ``{"type": name, **kwargs}`` mapping or an instance."""
    if schedule is None:
        return Constant()
    return registry.build(schedule, SCHEDULES, "schedule", Schedule)
