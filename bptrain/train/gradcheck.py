"""``bptrain gradcheck``: the config's model checked against finite differences in float64 on a
small batch of its training data."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bptrain.config import build_model
from bptrain.data import load_dataset
from bptrain.errors import BptrainError
from bptrain.nn.gradcheck import GradcheckReport, check_model
from bptrain.train.fit import check_task
from bptrain.train.loop import num_outputs


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


def gradcheck_config(config: dict, samples: int = 4, tolerance: float = 1e-6) -> GradcheckResult:
    """Check every parameter's gradient on the first ``samples`` training samples."""
    data = load_dataset(config["data"], config["seed"])
    check_task(config, data)
    model = build_model(config, data.input_shape, num_outputs(data))
    x, y = data.x_train[:samples], data.y_train[:samples]
    report = check_model(model, np.asarray(x), np.asarray(y), seed=config["seed"])
    shapes = {name: tuple(p.shape) for name, p in model.named_parameters()}
    return GradcheckResult(report, shapes, tolerance, len(x))
