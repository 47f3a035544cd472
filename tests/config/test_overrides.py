import pytest

from bptrain.config.locations import Locations
from bptrain.config.overrides import apply_overrides, canonical_path, parse_override, parse_path
from bptrain.errors import ConfigError


@pytest.mark.parametrize(
    "text, path, value",
    [
        ("optimizer.lr=0.01", ("optimizer", "lr"), 0.01),
        ("optimizer.lr=1e-3", ("optimizer", "lr"), 0.001),
        ("model.layers.1.units=64", ("model", "layers", 1, "units"), 64),
        ("model.layers[1].units=64", ("model", "layers", 1, "units"), 64),
        ("model.layers[-1].units=5", ("model", "layers", -1, "units"), 5),
        ("training.shuffle=false", ("training", "shuffle"), False),
        ("training.threads=null", ("training", "threads"), None),
        ("name=run-2", ("name",), "run-2"),
        ("metrics=[accuracy, f1]", ("metrics",), ["accuracy", "f1"]),
        ("optimizer={type: sgd, momentum: 0.9}", ("optimizer",), {"type": "sgd", "momentum": 0.9}),
        ("data.path=a=b.csv", ("data", "path"), "a=b.csv"),
    ],
)
def test_parse_override(text, path, value):
    assert parse_override(text) == (path, value)


@pytest.mark.parametrize("text", ["optimizer.lr", "=3", "a..b=1", ".a=1"])
def test_malformed_overrides(text):
    with pytest.raises(ConfigError, match="override"):
        parse_override(text)


def test_parse_path_reads_integer_segments_as_indices():
    assert parse_path("a.0.b[2]") == ("a", 0, "b", 2)


def test_apply_sets_values_without_touching_the_original():
    config = {"optimizer": "adam", "model": {"layers": [{"type": "Dense", "units": 3}]}}
    out = apply_overrides(
        config,
        ["optimizer.lr=0.1", "model.layers.0.units=8", "training.early_stopping.patience=2"],
    )
    assert out == {
        # a name becomes {type: name} to add keys; lr is the optimizer's learning_rate
        "optimizer": {"type": "adam", "learning_rate": 0.1},
        "model": {"layers": [{"type": "Dense", "units": 8}]},
        "training": {"early_stopping": {"patience": 2}},
    }
    assert config["optimizer"] == "adam"


def test_overridden_values_point_at_the_override():
    where = Locations("cfg.yaml")
    where.set(("optimizer",), "cfg.yaml:5")
    where.set(("optimizer", "lr"), "cfg.yaml:5")
    apply_overrides({"optimizer": {"lr": 1}}, ["optimizer.lr=2", "training.epochs=3"], where)
    assert where.of(("optimizer", "learning_rate")) == "override optimizer.lr=2"
    assert where.of(("optimizer",)) == "cfg.yaml:5"
    assert where.of(("training",)) == "override training.epochs=3"


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.layers.3.units=1", r"model.layers\[3\]: index out of range \(model.layers has 1"),
        ("model.layers.x.units=1", "model.layers is a list; use an index"),
        ("seed.x=1", "seed is a value, not a section"),
    ],
)
def test_bad_paths(override, message):
    with pytest.raises(ConfigError, match=message):
        apply_overrides({"seed": 0, "model": {"layers": [{}]}}, [override])


@pytest.mark.parametrize("written", ["lr", "learning_rate"])
@pytest.mark.parametrize("override", ["optimizer.lr=0.5", "optimizer.learning_rate=0.5"])
def test_lr_and_learning_rate_are_one_key(written, override):
    """Either spelling replaces either one as written: one key, learning_rate, remains."""
    out = apply_overrides({"optimizer": {"type": "sgd", written: 0.1}}, [override])
    assert out == {"optimizer": {"type": "sgd", "learning_rate": 0.5}}
    assert canonical_path(("optimizer", "lr")) == ("optimizer", "learning_rate")
    assert canonical_path(("model", "lr")) == ("model", "lr")
