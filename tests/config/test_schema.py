from typing import Literal

import numpy as np
import pytest

from bptrain.config import build_model, dump, load_config, resolve, resolve_with_overrides
from bptrain.config.yamlio import load_text
from bptrain.errors import ConfigError
from bptrain.nn.layer import Layer
from bptrain.nn.layers import LAYERS

MNIST_YAML = """\
name: mnist_mlp
data: {dataset: mnist, validation_split: 0.1}
model:
  layers:
    - {type: Flatten}
    - {type: Dense, units: 128, activation: relu}
    - {type: Dense, units: 10, activation: softmax}
loss: sparse_categorical_crossentropy
optimizer: {type: adam, lr: 0.001}
training: {epochs: 10, batch_size: 32}
"""


def load(write_config, text=MNIST_YAML, overrides=()):
    return load_config(write_config(text), overrides)


def error(write_config, text=MNIST_YAML, overrides=()) -> str:
    with pytest.raises(ConfigError) as info:
        load(write_config, text, overrides)
    return str(info.value)


def test_defaults_are_filled_in(write_config):
    config = load(write_config)
    assert list(config.to_dict()) == [
        "name", "seed", "data", "model", "loss", "optimizer", "metrics", "training"
    ]  # fmt: skip
    assert config.seed == 0
    # every option of the dataset's options dataclass, with its default
    from dataclasses import fields

    from bptrain.data import DATASETS

    assert list(config.data) == ["dataset", *(f.name for f in fields(DATASETS["mnist"]))]
    assert config.data["scale"] == "minmax" and config.data["validation_split"] == 0.1
    assert config.data["limit"] is None and config.data["download"] is True
    dense = config.model.layers[1]
    assert dense["units"] == 128 and dense["kernel_initializer"] == "glorot_uniform"
    assert dense["use_bias"] is True and dense["kernel_regularizer"] is None
    assert config.loss == {
        "type": "sparse_categorical_crossentropy",
        "from_logits": False,
        "label_smoothing": 0.0,
    }
    assert config.optimizer["learning_rate"] == 0.001 and "lr" not in config.optimizer
    assert config.optimizer["beta_2"] == 0.999
    assert config.metrics == ("accuracy",)
    assert config.to_dict()["training"]["checkpoint"] == {
        "monitor": "val_loss",
        "mode": "min",
        "best": True,
        "every_steps": None,
    }
    assert config.training.checkpoint.monitor == "val_loss"


def test_resolving_is_idempotent_and_survives_yaml(write_config):
    config = load(write_config)
    assert resolve(config) == config
    assert resolve(config.to_dict()) == config
    assert resolve(load_text(dump(config.to_dict()), "x")[0]) == config


def test_the_resolved_config_is_typed_frozen_and_pickles(write_config):
    import dataclasses
    import pickle

    config = load(write_config)
    assert config.training.batch_size == 32 and config.training.early_stopping is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.training.epochs = 3
    with pytest.raises(TypeError):
        config.optimizer["learning_rate"] = 0.1
    assert pickle.loads(pickle.dumps(config)) == config


def test_the_documented_error_format(write_config):
    text = MNIST_YAML.replace("units: 128", "unit: 128")
    path = write_config(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}:6: model.layers[1].unit: unknown key; did you mean 'units'?"


@pytest.mark.parametrize(
    "overrides, expected",
    [
        (["training.epochs=ten"], "training.epochs: expected an integer, got the string 'ten'"),
        (["training.epoch=3"], "training.epoch: unknown key; did you mean 'epochs'?"),
        (["optimizer.type=adm"], "optimizer.type: unknown optimizer 'adm'; did you mean 'adam'?"),
        (["model.layers.1.type=dense"], "unknown layer 'dense'; did you mean 'Dense'?"),
        (["model.layers.1.activation=rleu"], "unknown activation 'rleu'; did you mean 'relu'?"),
        (["data.scale=minmx"], "expected one of 'none', 'standardize', 'minmax', got the string"),
        (["data.scale=minmx"], "did you mean 'minmax'?"),
        (["data.dataset=mnst"], "unknown dataset 'mnst'; did you mean 'mnist'?"),
        (["data.limt=5"], "data.limt: unknown key; did you mean 'limit'?"),
        (["loss=sparse_categorical"], "did you mean 'sparse_categorical_crossentropy'?"),
        (["model.layers.1.units=0"], "model.layers[1].units: Dense units must be positive"),
        (["optimizer.lr=-1"], "optimizer.learning_rate: learning_rate must be positive"),
        (["training.batch_size=0"], "training.batch_size: must be at least 1, got 0"),
        (["data.validation_split=1.5"], "data.validation_split must be in [0, 1), got 1.5"),
        (["seed=-3"], "seed: expected a non-negative integer, got the integer -3"),
        (["metrics=[acuracy]"], "metrics[0]: unknown metric 'acuracy'; did you mean 'accuracy'?"),
        (["model.layers.1.kernel_initializer=glorot"], "did you mean 'glorot_"),
        (["model.layers.1.kernel_regularizer={type: l2, l3: 1}"], "l3: unknown key"),
        (["model.layers.1={units: 3}"], "model.layers[1]: missing 'type'"),
        (["model.layers.1={type: Dense}"], "model.layers[1]: Dense needs 'units'"),
        (["model.layers.1.use_bias=1"], "use_bias: expected true or false, got the integer 1"),
        (["optimizer={type:adam}"], "write 'key: value' with a space after the colon"),
        (["training.early_stopping.monitor=val_acc"], "did you mean 'val_accuracy'?"),
        (["nmae=x"], "nmae: unknown key; did you mean 'name'?"),
    ],
)
def test_errors_name_the_override_and_key(write_config, overrides, expected):
    message = error(write_config, overrides=overrides)
    assert message.startswith(f"override {overrides[0]}: ")
    assert expected in message


def test_errors_in_the_file_name_its_line(write_config):
    text = MNIST_YAML.replace("{epochs: 10,", "{epochs: 1.5,")
    message = error(write_config, text)
    assert message.endswith(":10: training.epochs: expected an integer, got the number 1.5")


def test_lr_and_learning_rate_both_in_a_file_is_an_error_an_override_settles(write_config):
    text = MNIST_YAML.replace("lr: 0.001}", "lr: 0.001, learning_rate: 0.002}")
    assert error(write_config, text).endswith(
        ":9: optimizer.lr: give either lr or learning_rate, not both"
    )
    for override in ("optimizer.lr=0.5", "optimizer.learning_rate=0.5"):
        assert load(write_config, text, [override]).optimizer["learning_rate"] == 0.5


def test_required_sections(write_config):
    text = "\n".join(line for line in MNIST_YAML.splitlines() if not line.startswith("loss"))
    assert error(write_config, text).endswith(
        ":1: missing section 'loss'; see configs/ for examples"
    )


def test_monitor_needs_a_validation_split(write_config):
    config = load(write_config, overrides=["data.validation_split=0"])
    assert config.training.checkpoint.monitor == "loss"
    message = error(
        write_config,
        overrides=["data.validation_split=0", "training.checkpoint.monitor=val_accuracy"],
    )
    assert "there is no validation set: set data.validation_split" in message


def test_modes_follow_the_monitor(write_config):
    config = load(
        write_config,
        overrides=[
            "training.early_stopping.monitor=val_accuracy",
            "training.schedule={type: reduce_on_plateau, monitor: val_accuracy}",
        ],
    )
    t = config.training
    assert t.early_stopping.mode == "max"
    assert t.schedule["mode"] == "max"
    # restore_best reloads the best checkpoint, so it follows early stopping's monitor
    assert (t.checkpoint.monitor, t.checkpoint.mode) == ("val_accuracy", "max")


def test_restore_best_and_checkpoint_must_agree(write_config):
    message = error(
        write_config,
        overrides=["training.early_stopping={}", "training.checkpoint.monitor=val_accuracy"],
    )
    assert "both must monitor the same: 'val_loss'" in message


def test_aliases():
    config = resolve_with_overrides(
        load_text(MNIST_YAML, "x")[0], ["optimizer=momentum", "loss=mse"]
    )
    assert config.optimizer["type"] == "sgd" and config.optimizer["momentum"] == 0.9
    assert config.loss["type"] == "mean_squared_error"
    assert config.metrics == ("mse", "mae", "r2")  # regression defaults


class Gizmo(Layer):
    """A layer the config code has never heard of."""

    def __init__(
        self,
        size: int,
        kernel_size: int | tuple[int, int] = 3,
        mode: Literal["fast", "slow"] = "fast",
        recurrent_activation: str = "sigmoid",
        name: str | None = None,
    ):
        super().__init__(name)
        self.size, self.kernel_size, self.mode = size, kernel_size, mode


def test_a_newly_registered_layer_is_validated_from_its_signature(monkeypatch, write_config):
    monkeypatch.setitem(LAYERS, "Gizmo", Gizmo)
    base = ["model.layers.1={type: Gizmo, size: 2, kernel_size: [3, 5]}"]
    config = load(write_config, overrides=base)
    assert config.model.layers[1] == {
        "type": "Gizmo",
        "size": 2,
        "kernel_size": [3, 5],
        "mode": "fast",
        "recurrent_activation": "sigmoid",
        "name": None,
    }
    assert "did you mean 'size'?" in error(write_config, overrides=[*base, "model.layers.1.sise=2"])
    assert "did you mean 'slow'?" in error(
        write_config, overrides=[*base, "model.layers.1.mode=slo"]
    )
    assert "expected an integer or a list of 2 (an integer, an integer)" in error(
        write_config, overrides=[*base, "model.layers.1.kernel_size=[3, 5, 7]"]
    )
    assert "unknown activation 'sigmoyd'" in error(
        write_config, overrides=[*base, "model.layers.1.recurrent_activation=sigmoyd"]
    )
    # lists become tuples where the constructor's hint says tuple
    from bptrain.config.build import build_layer

    assert build_layer(config.model.layers[1], ("x",)).kernel_size == (3, 5)


def test_build_model_checks_shapes_and_outputs(write_config):
    path = write_config(
        MNIST_YAML.replace("{type: Flatten}", "{type: Reshape, target_shape: [5, -1]}")
    )
    from bptrain.cli import located, read_config

    config, where = read_config(str(path), [])
    with pytest.raises(ConfigError) as info, located(where):
        build_model(config, (1, 28, 28), 10)
    assert str(info.value).startswith(f"{path}:5: model.layers[0]: layer 'reshape' (Reshape): ")
    assert "(input shape per sample: (1, 28, 28))" in str(info.value)

    config = load(write_config)
    with pytest.raises(ConfigError, match=r"model.layers\[2\]: the model outputs 10 values .* 5"):
        build_model(config, (1, 28, 28), 5)
    network = build_model(config, (1, 28, 28), 10).network
    assert network.count_params() == 784 * 128 + 128 + 128 * 10 + 10
    again = build_model(config, (1, 28, 28), 10).network
    assert all(
        np.array_equal(a, b)
        for a, b in zip(network.weights().values(), again.weights().values(), strict=True)
    )


class Wrapper(Layer):
    """Wraps another layer, as Bidirectional wraps an LSTM."""

    def __init__(self, layer, name: str | None = None):
        super().__init__(name)
        self.inner = layer


def test_wrapped_and_nested_layers_are_specs_too(monkeypatch, write_config):
    monkeypatch.setitem(LAYERS, "Wrapper", Wrapper)
    text = MNIST_YAML.replace(
        "    - {type: Dense, units: 128, activation: relu}\n",
        "    - type: Wrapper\n      layer: {type: Dense, units: 128, activation: relu}\n"
        "    - type: Sequential\n      layers:\n        - {type: Dense, units: 64}\n",
    )
    config = load(write_config, text)
    wrapped = config.model.layers[1]["layer"]
    assert wrapped["type"] == "Dense" and wrapped["kernel_initializer"] == "glorot_uniform"
    assert config.model.layers[2]["layers"][0]["units"] == 64
    from bptrain.config.build import build_layer

    assert build_layer(config.model.layers[1], ("x",)).inner.units == 128
    bad = text.replace("{type: Dense, units: 64}", "{type: Dense, units: 64, activaton: relu}")
    assert error(write_config, bad).endswith(
        ":10: model.layers[2].layers[0].activaton: unknown key; did you mean 'activation'?"
    )


def test_model_fuse_runs_the_plain_layers_when_false(write_config):
    cnn = [
        "model.layers.0={type: Conv2D, filters: 16, kernel_size: 3, activation: relu}",
        "model.layers.1={type: MaxPool2D, pool_size: 2}",
    ]
    fused = load(write_config, overrides=cnn)
    assert fused.model.fuse is True and fused.to_dict()["model"]["fuse"] is True
    plain = load(write_config, overrides=[*cnn, "model.fuse=false"])
    assert plain.model.fuse is False
    kinds = [
        [type(run).__name__ for run in build_model(c, (1, 8, 8), 10).network.runs]
        for c in (fused, plain)
    ]
    assert kinds == [["ConvMaxPool2D", "Dense"], ["Conv2D", "MaxPool2D", "Dense"]]
    assert "model.fuse: expected true or false" in error(write_config, overrides=["model.fuse=1"])
    assert "did you mean 'fuse'?" in error(write_config, overrides=["model.fused=false"])
