"""The metrics a config may name, and the task each one scores: the table that config
validates ``metrics`` against and ``bptrain.train.metrics`` computes."""

CLASSIFICATION = ("accuracy", "precision", "recall", "f1")
REGRESSION = ("mse", "mae", "r2")
EPOCH_METRICS = {
    **dict.fromkeys(CLASSIFICATION, "classification"),
    **dict.fromkeys(REGRESSION, "regression"),
}
