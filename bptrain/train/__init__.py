"""Training: the loop, callbacks, metrics, and ``fit``, the in-process entry point."""

from bptrain.train.fit import FitResult, fit
from bptrain.train.signals import Interrupted

__all__ = ["FitResult", "Interrupted", "fit"]
