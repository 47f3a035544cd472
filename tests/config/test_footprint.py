"""The size estimate of a model from its config agrees with the model ``build`` makes: every
layer's output shape and parameter count, for every layer type and the shipped configs."""

from pathlib import Path

import pytest

from bptrain.config import build_model, load_config, resolve
from bptrain.config.footprint import RULES, layer_footprints
from bptrain.nn.layers import LAYERS

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def resolved(layers: list) -> dict:
    return resolve(
        {
            "data": {"dataset": "spirals"},
            "model": {"layers": layers},
            "loss": "mse",
            "optimizer": "sgd",
        }
    )


def assert_matches_build(config: dict, input_shape: tuple) -> None:
    network = build_model(config, input_shape).network
    estimated = layer_footprints(config.model.layers, input_shape)

    def built(layers):  # nested Sequentials flattened, as the estimate lists them
        for layer in layers:
            if type(layer).__name__ == "Sequential":
                yield from built(layer.layers)
            else:
                yield layer

    layers = list(built(network.layers))
    assert len(estimated) == len(layers)
    for est, layer in zip(estimated, layers, strict=True):
        assert est.type == type(layer).__name__
        assert est.output_shape == tuple(layer.output_shape), est.path
        assert est.params == sum(p.size for p in layer.parameters()), est.path
    assert sum(e.params for e in estimated) == network.count_params()


IMAGES = (3, 17, 15)
IMAGE_MODELS = {
    "conv variants": [
        {"type": "Conv2D", "filters": 4, "kernel_size": 3, "padding": "same"},
        {"type": "Conv2D", "filters": 5, "kernel_size": [3, 2], "strides": 2, "use_bias": False},
        {"type": "Conv2D", "filters": 2, "kernel_size": 3, "padding": [1, 2], "dilation": 2},
        {"type": "MaxPool2D", "padding": "same"},
        {"type": "Flatten"},
        {"type": "Dense", "units": 3},
    ],
    "pools and batch norm": [
        {"type": "BatchNorm"},
        {"type": "AvgPool2D", "pool_size": 3, "strides": 2},
        {"type": "MaxPool2D", "pool_size": [2, 3], "strides": 1},
        {"type": "Conv2D", "filters": 6, "kernel_size": 2, "activation": "relu"},
        {"type": "MaxPool2D"},
        {"type": "GlobalAvgPool2D"},
        {"type": "BatchNorm", "center": False},
        {"type": "Dropout", "rate": 0.5},
        {"type": "Activation", "activation": "tanh"},
        {"type": "Dense", "units": 2},
    ],
    "reshape and nested sequential": [
        {"type": "Reshape", "target_shape": [-1, 15]},
        {"type": "Sequential", "layers": [{"type": "Dense", "units": 7}, {"type": "Flatten"}]},
        {"type": "Dense", "units": 4, "use_bias": False},
    ],
}
SEQUENCES = (9, 5)
SEQUENCE_MODELS = {
    "recurrent": [
        {"type": "SimpleRNN", "units": 4, "return_sequences": True},
        {"type": "GRU", "units": 3, "return_sequences": True},
        {"type": "GRU", "units": 5, "reset_after": False, "return_sequences": True},
        {"type": "Bidirectional", "layer": {"type": "LSTM", "units": 6, "return_sequences": True}},
        {"type": "Bidirectional", "layer": {"type": "GRU", "units": 2}, "merge_mode": "sum"},
        {"type": "Dense", "units": 1},
    ],
    "embedding": [
        {"type": "Reshape", "target_shape": [45]},
        {"type": "Embedding", "input_dim": 11, "output_dim": 8},
        {"type": "LSTM", "units": 7, "use_bias": False},
        {"type": "Dense", "units": 2},
    ],
}


@pytest.mark.parametrize(
    "layers, input_shape",
    [
        *[(m, IMAGES) for m in IMAGE_MODELS.values()],
        *[(m, SEQUENCES) for m in SEQUENCE_MODELS.values()],
    ],
    ids=[*IMAGE_MODELS, *SEQUENCE_MODELS],
)
def test_every_layer_type_matches_its_build(layers, input_shape):
    assert_matches_build(resolved(layers), input_shape)


def test_the_models_cover_every_registered_layer():
    used = set()

    def collect(layers):
        for spec in layers:
            used.add(spec["type"])
            collect(spec.get("layers", []))
            if "layer" in spec:
                collect([spec["layer"]])

    for layers in (*IMAGE_MODELS.values(), *SEQUENCE_MODELS.values()):
        collect(layers)
    assert used == set(LAYERS) and set(RULES) | {"Sequential"} == set(LAYERS)


SHIPPED_INPUTS = {
    "mnist": (1, 28, 28),
    "fashion_mnist": (1, 28, 28),
    "spirals": (2,),
    "sine": (1,),
    "adding": (50, 2),
}


@pytest.mark.parametrize(
    "name", sorted(p.stem for p in CONFIGS.glob("*.yaml") if not p.stem.startswith("sweep"))
)
def test_the_shipped_configs_match_their_build(name):
    config = load_config(CONFIGS / f"{name}.yaml")
    data = config.data
    if data.get("sequence"):
        shape = (28, 28)
    elif data["dataset"] == "text":
        shape = (data["seq_len"],)
    elif data["dataset"] == "linear":
        shape = (data["features"],)
    elif data["dataset"] == "adding":
        shape = (data["length"], 2)
    else:
        shape = SHIPPED_INPUTS[data["dataset"]]
    assert_matches_build(config, shape)


def test_the_walk_stops_where_shapes_do_not_fit():
    config = resolved(
        [
            {"type": "Dense", "units": 4},
            {"type": "Conv2D", "filters": 3, "kernel_size": 3},  # needs (C, H, W)
            {"type": "Dense", "units": 10_000_000},
        ]
    )
    (only,) = layer_footprints(config.model.layers, (2,))
    assert only.path == ("model", "layers", 0) and only.params == 12
    assert only.values == 3 * 4
