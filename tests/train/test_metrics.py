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


# -- metrics of the training batches, from running sums -------------------------------------------
def batch_sums(running, outputs, y, cuts):
    """The sums of ``outputs`` against ``y`` added batch by batch (batches end at ``cuts``)."""
    total = running.zeros()
    for start, stop in zip([0, *cuts], [*cuts, len(y)], strict=True):
        total += running.batch(outputs[start:stop], y[start:stop])
    return total


@pytest.mark.parametrize("names", [["accuracy"], ["accuracy", "precision", "recall", "f1"], ["f1"]])
def test_running_classification_metrics_equal_the_whole_sets(names):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 103)
    scores = rng.standard_normal((103, 4)).astype(np.float32)
    scores[np.arange(103) % 3 == 0, :] = 0
    scores[np.arange(103) % 3 == 0, y[np.arange(103) % 3 == 0]] = 1  # a third right
    running = metrics.RunningMetrics(names, "classification", 4)
    assert running.size == (2 if names == ["accuracy"] else 12)
    sums = batch_sums(running, scores, y, [10, 11, 64, 100])
    assert running.scores(sums) == metrics.compute(names, y, scores, 4)  # exactly
    assert running.scores(running.zeros()) == dict.fromkeys(names, 0.0)


def test_running_metrics_of_logits_of_a_fused_sigmoid():
    """A single sigmoid trained from logits: the class boundary is 0, where p = 0.5."""
    y = np.array([0, 1, 1, 0, 1])
    logits = np.array([[-2.0], [0.5], [-0.1], [0.3], [3.0]])
    running = metrics.RunningMetrics(["accuracy", "recall"], "classification", 2, threshold=0.0)
    sums = batch_sums(running, logits, y, [2])
    probabilities = 1 / (1 + np.exp(-logits))
    assert running.scores(sums) == metrics.compute(["accuracy", "recall"], y, probabilities, 2)
    assert running.scores(sums)["accuracy"] == 0.6


def test_running_regression_metrics_equal_the_whole_sets():
    """Two outputs, targets far from 0 (1e6 + a spread of 1): R² from running sums of the
    targets minus their mean is exact to 1e-12, where sums of raw squares are off by 1e-6."""
    rng = np.random.default_rng(1)
    y = (1e6 + rng.standard_normal((57, 2))).astype(np.float32)
    outputs = (y + 0.3 * rng.standard_normal((57, 2))).astype(np.float32)
    names = ["mse", "mae", "r2"]
    shift = y.astype(np.float64).mean(axis=0)
    running = metrics.RunningMetrics(names, "regression", outputs=2, shift=shift)
    assert running.size == 9
    got = running.scores(batch_sums(running, outputs, y, [1, 20, 40]))
    want = metrics.regression_metrics(y, outputs)
    for name in names:
        assert got[name] == pytest.approx(want[name], rel=1e-12), name
    assert 0.85 < got["r2"] < 0.95
    # One output, (N,) targets against (N, 1) outputs, as a Dense(1) model trains.
    one = metrics.RunningMetrics(["r2"], "regression", outputs=1, shift=shift[0])
    got = one.scores(batch_sums(one, outputs[:, :1], y[:, 0], [30]))
    assert got["r2"] == pytest.approx(metrics.regression_metrics(y[:, :1], outputs[:, :1])["r2"])


def test_running_regression_metrics_of_standardized_targets_are_in_the_original_units():
    rng = np.random.default_rng(2)
    y = 150 + 60 * rng.standard_normal((40, 1))
    outputs = y + 20 * rng.standard_normal((40, 1))
    mean, std = y.mean(), y.std()
    ys, outs = (y - mean) / std, (outputs - mean) / std  # what the model trains on
    running = metrics.RunningMetrics(
        ["mse", "mae", "r2"], "regression", shift=ys.mean(), unit=[std]
    )
    got = running.scores(batch_sums(running, outs, ys, [13, 30]))
    want = metrics.regression_metrics(y, outputs)
    for name in ("mse", "mae", "r2"):
        assert got[name] == pytest.approx(want[name], rel=1e-10), name
    assert got["mse"] > 100


def test_running_metrics_of_the_other_task_are_left_out():
    running = metrics.RunningMetrics([], "classification", 3)
    assert running.size == 0 and running.scores(running.zeros()) == {}
    assert running.batch(np.zeros((4, 3)), np.zeros(4, np.int64)).shape == (0,)
