"""``bptrain gradcheck``: the config's model checked against finite differences in float64 on a
small batch of its training data."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bptrain.config import Config
from bptrain.errors import BptrainError
from bptrain.nn.gradcheck import GradcheckReport, check_model
from bptrain.train.prepare import prepare


class GradcheckFailed(BptrainError):
    """Some parameter's analytic gradient disagrees with finite differences."""


@dataclass
class GradcheckResult:
    report: GradcheckReport
    shapes: dict
    tolerance: float
    samples: int

    @property
    def passed(self) -> bool:
        return self.report.passed(self.tolerance)

    def failures(self) -> list[str]:
        return [k for k, v in self.report.errors.items() if not v < self.tolerance]


# Relative size of the noise added to real inputs, and the spread of the random values given
# to zero-initialised parameters (see gradcheck_config).
JITTER = 0.1


def gradcheck_config(
    config: Config, samples: int = 4, tolerance: float = 1e-6, training: bool = False
) -> GradcheckResult:
    """Check every parameter's gradient on the first ``samples`` training samples.

    Float inputs get a seeded jitter (JITTER times their std), and parameters that start as
    constants (zero biases, BatchNorm's ones) get seeded random values of spread JITTER: real
    data has ties, such as MNIST's blank borders, and with zero biases they put a ReLU exactly
    on its kink for every such position; finite differences across a kink disagree with any
    one-sided derivative. ``training`` checks the training-mode function (dropout with a fixed
    mask, BatchNorm batch statistics).
    """
    data, model = prepare(config)
    x, y = np.asarray(data.x_train[:samples]), np.asarray(data.y_train[:samples])
    if np.issubdtype(x.dtype, np.floating):
        noise = np.random.default_rng([config.seed, 0x6C]).standard_normal(x.shape)
        x = x.astype(np.float64) + JITTER * (float(x.std()) or 1.0) * noise
    rng = np.random.default_rng([config.seed, 0x6D])
    for p in model.parameters():
        if p.size > 1 and float(p.value.std()) == 0.0:
            p.value += JITTER * rng.standard_normal(p.shape).astype(p.value.dtype)
    report = check_model(model, x, y, seed=config.seed, training=training)
    shapes = {name: tuple(p.shape) for name, p in model.network.named_parameters()}
    return GradcheckResult(report, shapes, tolerance, len(x))
