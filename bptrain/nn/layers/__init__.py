"""Layers by name: the ``type`` a YAML model section uses is the class name."""

from bptrain.nn.layers.core import Activation, Dense, Dropout, Flatten, Reshape
from bptrain.nn.layers.sequential import Sequential

LAYERS: dict[str, type] = {
    cls.__name__: cls for cls in (Dense, Activation, Flatten, Reshape, Dropout, Sequential)
}

__all__ = ["LAYERS", "Activation", "Dense", "Dropout", "Flatten", "Reshape", "Sequential"]
