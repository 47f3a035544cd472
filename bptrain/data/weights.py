"""Sample weights: per class (``training.class_weight``) and per row (``data.weight_column``).

A weighted loss is the Keras one: sum_i w_i * loss_i / N over a batch of N samples. The
training loss, the validation loss and ``eval``'s loss are all that same weighted mean, with
the same weights (a class's weight times its row's weight column); the metrics (accuracy,
f1, ...) count every sample once.

    training:
      class_weight: balanced          # n / (classes * count of the class) in the training part
      class_weight: {cat: 1, dog: 4}  # by class name (classes not named weigh 1)
"""

from __future__ import annotations

import dataclasses

import numpy as np

from bptrain.data.dataset import Dataset
from bptrain.errors import ConfigError


def class_weights(spec, ds: Dataset) -> list[float] | None:
    """The weight of each class (a list by class index) that ``training.class_weight`` asks
    for, from the training part's labels for "balanced"; None without class weights."""
    if spec is None:
        return None
    if ds.task != "classification":
        raise ConfigError(
            f"training.class_weight is for classification, but {ds.name} is a regression dataset"
        )
    k = int(ds.num_classes)
    if spec == "balanced":
        counts = np.bincount(ds.y_train, minlength=k)
        # classes absent from the training part never weigh in training; 1 keeps val finite
        weights = np.where(counts > 0, len(ds.y_train) / (k * np.maximum(counts, 1)), 1.0)
        return [float(w) for w in weights]
    names = list(ds.class_names or [str(c) for c in range(k)])
    weights = [1.0] * k
    for label, weight in spec.items():
        if str(label) not in names:
            raise ConfigError(
                f"training.class_weight: {ds.name} has no class {label!r} (classes: "
                f"{', '.join(names)})"
            )
        weights[names.index(str(label))] = float(weight)
    return weights


def with_sample_weights(ds: Dataset, per_class: list[float] | None) -> Dataset:
    """``ds`` with w_train, w_val, w_test set to each sample's class weight times its row
    weight (the weight column's, kept in w_* by the loader); unchanged without either."""
    if per_class is None:
        return ds
    table = np.asarray(per_class, dtype=np.float32)
    parts = {}
    for split in ("train", "val", "test"):
        y, w = getattr(ds, f"y_{split}"), getattr(ds, f"w_{split}")
        weights = table[y]
        parts[f"w_{split}"] = weights if w is None else weights * w
    out = dataclasses.replace(ds, **parts)
    out.extra = {**ds.extra, "class_weight": list(per_class)}
    return out
