"""bptrain: train neural networks from YAML experiment files on a NumPy backprop core."""

__version__ = "0.1.0"
