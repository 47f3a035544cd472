"""Evaluation metrics, vectorised: everything classification needs comes from one confusion
matrix built with ``np.bincount``.

Model outputs are what ``Model.predict`` returns: class scores (N, C) (probabilities or
logits, argmax is the same), one sigmoid score (N, 1) for two classes, or regression values
(N, outputs). Class labels are (N,) int64; regression targets (N, outputs) float.
"""

from __future__ import annotations

import numpy as np

from bptrain.metric_names import EPOCH_METRICS


def predicted_classes(outputs: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """(N, C) scores -> argmax; (N, 1) or (N,) sigmoid probabilities -> 1 where > threshold."""
    outputs = np.asarray(outputs)
    if outputs.ndim == 1 or outputs.shape[-1] == 1:
        return (outputs.reshape(len(outputs)) > threshold).astype(np.int64)
    return outputs.argmax(axis=-1).astype(np.int64)


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """(C, C) int64 counts; row = true class, column = predicted class."""
    y_true = np.asarray(y_true, dtype=np.int64).reshape(-1)
    y_pred = np.asarray(y_pred, dtype=np.int64).reshape(-1)
    flat = np.bincount(y_true * num_classes + y_pred, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes)


def per_class(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall, F1 and support per class from a confusion matrix (see
    ``per_class_counts``)."""
    return per_class_counts(np.diag(cm), cm.sum(axis=0), cm.sum(axis=1))


def per_class_counts(tp, predicted, support) -> dict[str, np.ndarray]:
    """Precision, recall, F1 and support per class from the per-class counts of true
    positives, predictions and samples (a confusion matrix's diagonal, column and row sums).

    A class never predicted has precision 0, one absent from the data recall 0, and F1 is 0
    where precision and recall are both 0 (scikit-learn's ``zero_division=0``).
    """
    tp = np.asarray(tp, dtype=np.float64)
    predicted = np.asarray(predicted, dtype=np.float64)
    support = np.asarray(support, dtype=np.float64)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return {"precision": precision, "recall": recall, "f1": f1, "support": support.astype(np.int64)}


def classification_metrics(cm: np.ndarray) -> dict[str, float]:
    """Accuracy and macro-averaged precision, recall and F1."""
    return scores_from_counts(np.diag(cm), cm.sum(axis=0), cm.sum(axis=1))


def scores_from_counts(tp, predicted, support) -> dict[str, float]:
    """Accuracy and macro-averaged precision, recall and F1 from per-class counts."""
    total = np.sum(support)
    scores = per_class_counts(tp, predicted, support)
    return {
        "accuracy": float(np.sum(tp) / total) if total else 0.0,
        "precision": float(scores["precision"].mean()),
        "recall": float(scores["recall"].mean()),
        "f1": float(scores["f1"].mean()),
    }


def regression_metrics(y_true: np.ndarray, outputs: np.ndarray) -> dict[str, float]:
    """MSE and MAE over all values; R² per output, averaged (1 - SS_res / SS_tot).

    An output with constant targets has R² 1 when predicted exactly and 0 otherwise.
    """
    y = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(outputs, dtype=np.float64).reshape(y.shape)
    y2, p2 = y.reshape(len(y), -1), p.reshape(len(p), -1)
    err = p2 - y2
    ss_res = (err * err).sum(axis=0)
    ss_tot = ((y2 - y2.mean(axis=0)) ** 2).sum(axis=0)
    perfect = np.where(ss_res == 0, 1.0, 0.0)
    r2 = np.where(ss_tot > 0, 1.0 - ss_res / np.where(ss_tot > 0, ss_tot, 1.0), perfect)
    return {
        "mse": float((err * err).mean()),
        "mae": float(np.abs(err).mean()),
        "r2": float(r2.mean()),
    }


def compute(names, y_true: np.ndarray, outputs: np.ndarray, num_classes: int | None) -> dict:
    """The metrics in ``names`` (keys of EPOCH_METRICS) as floats."""
    out: dict[str, float] = {}
    if any(EPOCH_METRICS[n] == "classification" for n in names):
        cm = confusion_matrix(y_true, predicted_classes(outputs), num_classes)
        out.update(classification_metrics(cm))
    if any(EPOCH_METRICS[n] == "regression" for n in names):
        out.update(regression_metrics(y_true, outputs))
    return {n: out[n] for n in names}


def classification_report(
    y_true: np.ndarray, outputs: np.ndarray, num_classes: int, class_names=None
) -> dict:
    """Everything ``bptrain eval`` shows for a classifier, JSON-ready."""
    cm = confusion_matrix(y_true, predicted_classes(outputs), num_classes)
    scores = per_class(cm)
    names = list(class_names) if class_names else [str(c) for c in range(num_classes)]
    macro = classification_metrics(cm)
    return {
        "samples": int(cm.sum()),
        "accuracy": macro["accuracy"],
        "macro": {k: macro[k] for k in ("precision", "recall", "f1")},
        "per_class": {
            name: {k: scores[k][i].item() for k in ("precision", "recall", "f1", "support")}
            for i, name in enumerate(names)
        },
        "confusion_matrix": cm.tolist(),
        "class_names": names,
    }


class RunningMetrics:
    """The metrics ``names`` of the training batches, accumulated as the epoch runs from the
    outputs each step computed anyway: no second pass over the data.

    Everything is a sum, held in one float64 vector (``zeros()``), so that an epoch's vector is
    the sum of its batches' (``batch``), data-parallel slices add up exactly (counts are exact
    in float64 up to 2**53), ranks sum theirs with the loss in one Allreduce, and a checkpoint
    stores it as a list. ``scores(sums)`` turns a vector into the metrics:

    - classification: the count of correct predictions and of samples for ``accuracy`` alone;
      per-class true positives, predictions and support (3C values) when precision, recall or
      F1 are asked (what ``classification_metrics`` reads from a confusion matrix).
    - regression: per output, the sums of squared and absolute errors and of the targets minus
      ``shift`` and their squares (R² from running sums: SS_tot = S2 - S1²/n, with ``shift``, the
      training targets' mean, keeping it free of cancellation), and the sample count.

    ``threshold`` separates the two classes of a single sigmoid output; a model that trains on
    logits (a fused sigmoid) passes 0.0, where a probability of 0.5 lies. ``unit``, per output,
    turns standardized regression targets back into the data's units (``data.scale_target``:
    its divisor), so training metrics are reported in the units of the validation ones.
    """

    def __init__(
        self,
        names,
        task: str,
        num_classes: int | None = None,
        outputs: int = 1,
        shift=0.0,
        threshold: float = 0.5,
        unit=1.0,
    ):
        self.names = [n for n in names if EPOCH_METRICS[n] == task]
        self.task, self.threshold = task, threshold
        self.classes = int(num_classes or 0)
        self.per_class = any(n in ("precision", "recall", "f1") for n in self.names)
        self.outputs = int(outputs)
        self.shift = np.broadcast_to(np.asarray(shift, dtype=np.float64), (self.outputs,))
        self.unit = np.broadcast_to(np.asarray(unit, dtype=np.float64), (self.outputs,))
        if not self.names:
            self.size = 0
        elif task == "classification":
            self.size = 3 * self.classes if self.per_class else 2
        else:
            self.size = 4 * self.outputs + 1

    def zeros(self) -> np.ndarray:
        return np.zeros(self.size)

    def batch(self, outputs, y) -> np.ndarray:
        """The sums of one batch: ``outputs`` as the training forward pass returned them (for a
        classifier, scores or logits: only their argmax, or their sign, is used), ``y`` its
        targets."""
        if not self.size:
            return self.zeros()
        if self.task == "classification":
            if outputs.ndim > 1 and outputs.shape[-1] > 1:
                pred = outputs.argmax(axis=-1)  # predicted_classes, without its copy
            else:
                pred = predicted_classes(outputs, self.threshold)
            if pred.shape != y.shape:  # (N,) classes of (N, 1) targets
                pred, y = pred.reshape(-1), y.reshape(-1)
            if not self.per_class:
                return np.array((np.count_nonzero(pred == y), y.size), dtype=np.float64)
            pred, y = pred.reshape(-1), y.reshape(-1)
            c = self.classes
            return np.concatenate(
                [
                    np.bincount(y[pred == y], minlength=c),
                    np.bincount(pred, minlength=c),
                    np.bincount(y, minlength=c),
                ]
            ).astype(np.float64)
        y2 = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
        err = (np.asarray(outputs, dtype=np.float64).reshape(y2.shape) - y2) * self.unit
        centred = (y2 - self.shift) * self.unit
        return np.concatenate(
            [
                (err * err).sum(axis=0),
                np.abs(err).sum(axis=0),
                centred.sum(axis=0),
                (centred * centred).sum(axis=0),
                [len(y2)],
            ]
        )

    def scores(self, sums) -> dict[str, float]:
        """The metrics of the batches whose sums ``sums`` holds (0.0 before any batch)."""
        if not self.size:
            return {}
        sums = np.asarray(sums, dtype=np.float64)
        if self.task == "classification":
            if not self.per_class:
                correct, total = sums
                return {"accuracy": float(correct / total) if total else 0.0}
            tp, predicted, support = sums.reshape(3, self.classes)
            out = scores_from_counts(tp, predicted, support)
        else:
            k = self.outputs
            ss_res, abs_err, s1, s2 = sums[:-1].reshape(4, k)
            n = sums[-1]
            if not n:
                return dict.fromkeys(self.names, 0.0)
            ss_tot = s2 - s1 * s1 / n
            perfect = np.where(ss_res == 0, 1.0, 0.0)
            r2 = np.where(ss_tot > 0, 1.0 - ss_res / np.where(ss_tot > 0, ss_tot, 1.0), perfect)
            out = {
                "mse": float(ss_res.sum() / (n * k)),
                "mae": float(abs_err.sum() / (n * k)),
                "r2": float(r2.mean()),
            }
        return {name: out[name] for name in self.names}
