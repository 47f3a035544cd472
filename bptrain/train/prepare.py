"""A run's data and model from its resolved config: loaded, built and checked against each
other (the loss and metrics suit the data's task), after estimating that they fit in memory."""

from __future__ import annotations

from typing import Any

from bptrain.config import Config, build_model
from bptrain.config import run_length as lengths
from bptrain.config.locations import config_error
from bptrain.config.schema import CLASSIFICATION_LOSSES
from bptrain.data import Dataset, load_dataset
from bptrain.data.weights import class_weights, with_sample_weights
from bptrain.metric_names import EPOCH_METRICS
from bptrain.train import memory
from bptrain.train.loop import num_outputs


def prepare(config: Config, recorded: dict | None = None) -> tuple[Dataset, Any]:
    """(data, model) of a resolved config: the dataset loaded, the loss and metrics checked
    against its task, and the model built for its inputs and outputs. Data and model are
    estimated before they are made, and refused when they would not fit in memory (see
    ``bptrain.train.memory``). ``recorded``: what a resumed run's checkpoint says about its
    data (see ``load_dataset``)."""
    budget = memory.Budget.of(config)
    memory.check_data(config, budget, recorded)
    data = load_dataset(dict(config.data), config.seed, recorded=recorded)
    check_task(config, data)
    data = with_sample_weights(data, class_weights(config.training.class_weight, data))
    memory.check_model(config, data, budget)
    run = lengths.run_length(config, len(data.x_train))
    return data, build_model(config, data.input_shape, num_outputs(data), run)


def check_task(config: Config, data: Dataset) -> None:
    """The loss and metrics must suit the data's task (classification or regression)."""
    loss = config.loss["type"]
    if data.task == "classification" and loss not in CLASSIFICATION_LOSSES:
        raise config_error(
            ("loss",),
            f"{loss} is a regression loss but {data.name} is a classification dataset; "
            "use sparse_categorical_crossentropy",
        )
    if data.task == "regression" and loss in CLASSIFICATION_LOSSES:
        raise config_error(
            ("loss",),
            f"{loss} is a classification loss but {data.name} is a regression dataset; "
            "use mean_squared_error",
        )
    for i, name in enumerate(config.metrics):
        if EPOCH_METRICS[name] != data.task:
            raise config_error(
                ("metrics", i),
                f"{name!r} is a {EPOCH_METRICS[name]} metric but {data.name} is a "
                f"{data.task} dataset",
            )
