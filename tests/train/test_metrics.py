import numpy as np
import pytest

from bptrain.train import metrics

Y = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 2])
P = np.array([0, 1, 0, 1, 1, 2, 0, 2, 1, 2])


def one_hot_scores(pred, classes=3):
    return np.eye(classes)[pred] * 0.8 + 0.1


def test_confusion_matrix():
    cm = metrics.confusion_matrix(Y, P, 3)
    assert cm.tolist() == [[2, 1, 0], [0, 2, 0], [1, 1, 3]]  # rows true, columns predicted


def test_per_class_scores_by_hand():
    s = metrics.per_class(metrics.confusion_matrix(Y, P, 3))
    np.testing.assert_allclose(s["precision"], [2 / 3, 2 / 4, 3 / 3])
    np.testing.assert_allclose(s["recall"], [2 / 3, 2 / 2, 3 / 5])
    f1 = [2 * p * r / (p + r) for p, r in zip(s["precision"], s["recall"], strict=True)]
    np.testing.assert_allclose(s["f1"], f1)
    assert s["support"].tolist() == [3, 2, 5]


def test_epoch_metrics_from_scores():
    out = metrics.compute(["accuracy", "f1", "precision", "recall"], Y, one_hot_scores(P), 3)
    assert out["accuracy"] == 0.7
    assert out["precision"] == pytest.approx((2 / 3 + 0.5 + 1) / 3)
    assert out["recall"] == pytest.approx((2 / 3 + 1 + 0.6) / 3)


def test_classes_never_predicted_or_absent_score_zero():
    s = metrics.per_class(metrics.confusion_matrix([0, 0, 1], [0, 0, 0], 3))
    assert s["precision"].tolist() == [2 / 3, 0.0, 0.0]
    assert s["recall"].tolist() == [1.0, 0.0, 0.0]
    assert s["f1"].tolist() == [0.8, 0.0, 0.0]


def test_sigmoid_outputs_are_thresholded():
    assert metrics.predicted_classes(np.array([[0.2], [0.7], [0.5]])).tolist() == [0, 1, 0]


def test_regression_metrics_by_hand():
    y = np.array([[1.0], [2.0], [3.0], [4.0]])
    p = np.array([[1.5], [2.0], [2.0], [4.0]])
    out = metrics.regression_metrics(y, p)
    assert out["mse"] == pytest.approx((0.25 + 0 + 1 + 0) / 4)
    assert out["mae"] == pytest.approx(1.5 / 4)
    assert out["r2"] == pytest.approx(1 - 1.25 / 5.0)
    assert metrics.regression_metrics(y, y)["r2"] == 1.0
    assert metrics.regression_metrics(np.ones((3, 1)), np.zeros((3, 1)))["r2"] == 0.0


def test_r2_averages_outputs():
    y = np.array([[1.0, 0.0], [2.0, 1.0], [3.0, 2.0]])
    p = np.array([[1.0, 1.0], [2.0, 1.0], [3.0, 1.0]])
    assert metrics.regression_metrics(y, p)["r2"] == pytest.approx((1.0 + (1 - 2 / 2)) / 2)


def test_classification_report():
    r = metrics.classification_report(Y, one_hot_scores(P), 3, ["a", "b", "c"])
    assert r["samples"] == 10 and r["accuracy"] == 0.7
    assert r["per_class"]["c"] == pytest.approx(
        {"precision": 1.0, "recall": 0.6, "f1": 0.75, "support": 5}
    )
    assert r["confusion_matrix"][2] == [1, 1, 3]
