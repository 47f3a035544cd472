"""Evaluation metrics, vectorised: everything classification needs comes from one confusion
matrix built with ``np.bincount``.

Model outputs are what ``Sequential.predict`` returns: class scores (N, C) (probabilities or
logits, argmax is the same), one sigmoid score (N, 1) for two classes, or regression values
(N, outputs). Class labels are (N,) int64; regression targets (N, outputs) float.
"""

from __future__ import annotations

import numpy as np

CLASSIFICATION = ("accuracy", "precision", "recall", "f1")
REGRESSION = ("mse", "mae", "r2")
EPOCH_METRICS = {
    **dict.fromkeys(CLASSIFICATION, "classification"),
    **dict.fromkeys(REGRESSION, "regression"),
}


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
    """Precision, recall, F1 and support per class from a confusion matrix.

    A class never predicted has precision 0, one absent from the data recall 0, and F1 is 0
    where precision and recall are both 0 (scikit-learn's ``zero_division=0``).
    """
    tp = np.diag(cm).astype(np.float64)
    predicted = cm.sum(axis=0).astype(np.float64)
    support = cm.sum(axis=1).astype(np.float64)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return {"precision": precision, "recall": recall, "f1": f1, "support": support.astype(np.int64)}


def classification_metrics(cm: np.ndarray) -> dict[str, float]:
    """Accuracy and macro-averaged precision, recall and F1."""
    total = cm.sum()
    scores = per_class(cm)
    return {
        "accuracy": float(np.trace(cm) / total) if total else 0.0,
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
