"""Sample weights: class weights (balanced or by name) and a CSV weight column that follows
its rows through the test and validation splits."""

from __future__ import annotations

import numpy as np
import pytest

from bptrain.data import load_dataset
from bptrain.data.weights import class_weights, with_sample_weights
from bptrain.errors import ConfigError, DataError


def table(tmp_path, rows=40):
    """x, label, w: the weight of row i is i + 1 and x is 10 i, so a row's weight is known."""
    lines = ["x,label,w"] + [f"{10 * i},{'ab'[i % 3 == 0]},{i + 1}" for i in range(rows)]
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    return {"dataset": "csv", "path": str(tmp_path / "t.csv"), "target": "label"}


def test_the_weight_column_is_no_feature_and_follows_its_rows(tmp_path):
    ds = load_dataset({**table(tmp_path), "weight_column": "w", "validation_split": 0.25}, 3)
    assert ds.x_train.shape[1] == 1 and ds.extra["feature_names"] == ["x"]
    for split in ("train", "val", "test"):
        x, w = getattr(ds, f"x_{split}"), getattr(ds, f"w_{split}")
        assert len(w) == len(x) > 0
        np.testing.assert_array_equal(w, x[:, 0] / 10 + 1)


def test_negative_weights_are_refused_with_their_line(tmp_path):
    spec = table(tmp_path)
    (tmp_path / "t.csv").write_text("x,label,w\n1,a,1\n2,b,-2\n")
    with pytest.raises(DataError, match=r"line 3\), column 'w': the weight is -2"):
        load_dataset({**spec, "weight_column": "w", "test_split": 0.0})


def test_balanced_and_named_class_weights(tmp_path):
    ds = load_dataset(table(tmp_path), 0)  # classes a (i % 3 != 0) and b
    counts = np.bincount(ds.y_train)
    balanced = class_weights("balanced", ds)
    np.testing.assert_allclose(balanced, len(ds.y_train) / (2 * counts))
    assert np.dot(balanced, counts) == pytest.approx(len(ds.y_train))  # mean weight 1
    assert class_weights({"b": 3}, ds) == [1.0, 3.0]
    with pytest.raises(ConfigError, match=r"has no class 'c' \(classes: a, b\)"):
        class_weights({"c": 2}, ds)
    weighted = with_sample_weights(
        load_dataset({**table(tmp_path), "weight_column": "w"}, 0), [1.0, 3.0]
    )
    np.testing.assert_array_equal(
        weighted.w_train,
        np.where(weighted.y_train == 1, 3.0, 1.0) * (weighted.x_train[:, 0] / 10 + 1),
    )


def test_class_weights_are_for_classification():
    ds = load_dataset({"dataset": "sine", "size": 20})
    with pytest.raises(ConfigError, match="training.class_weight is for classification"):
        class_weights("balanced", ds)
