import pytest

from bptrain.config.yamlio import dump, load_file, load_text
from bptrain.errors import ConfigError


def test_every_key_and_list_item_has_its_line(write_config):
    path = write_config(
        "name: x\nmodel:\n  layers:\n    - {type: Flatten}\n    - type: Dense\n      units: 4\n"
    )
    data, where = load_file(path)
    assert data["model"]["layers"][1] == {"type": "Dense", "units": 4}
    assert where.of(("name",)) == f"{path}:1"
    assert where.of(("model", "layers", 0, "type")) == f"{path}:4"
    assert where.of(("model", "layers", 1)) == f"{path}:5"
    assert where.of(("model", "layers", 1, "units")) == f"{path}:6"
    # a path that was never written points at its closest ancestor
    assert where.of(("model", "layers", 1, "activation")) == f"{path}:5"


def test_merge_keys_keep_the_line_of_the_own_key(write_config):
    path = write_config("base: &b {units: 3, activation: relu}\nlayer:\n  <<: *b\n  units: 4\n")
    data, where = load_file(path)
    assert data["layer"] == {"units": 4, "activation": "relu"}
    assert where.of(("layer", "units")) == f"{path}:4"


def test_scientific_notation_without_a_dot_is_a_float():
    data, _ = load_text("a: 1e-3\nb: 2E+2\nc: 1.5e3\nd: '1e-3'\n", "x")
    assert data == {"a": 0.001, "b": 200.0, "c": 1500.0, "d": "1e-3"}


def test_python_tags_are_refused(write_config):
    path = write_config("a: !!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(ConfigError, match=r":1: invalid YAML: .*python/object/apply.*no Python"):
        load_file(path)


def test_duplicate_keys_are_an_error(write_config):
    path = write_config("training:\n  epochs: 3\n  batch_size: 8\n  epochs: 5\n")
    with pytest.raises(ConfigError) as info:
        load_file(path)
    assert str(info.value) == (f"{path}:4: training.epochs: duplicate key (first given on line 2)")


def test_syntax_error_names_the_line(write_config):
    path = write_config("a: 1\nb: [1, 2\nc: 3\n")
    with pytest.raises(ConfigError, match=rf"^{path}:3: invalid YAML: "):
        load_file(path)


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "the file is empty"),
        ("- 1\n- 2\n", "must be a mapping"),
        ("1: x\n", "keys must be strings"),
    ],
)
def test_not_a_config(write_config, text, message):
    with pytest.raises(ConfigError, match=message):
        load_file(write_config(text))


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml: no such config file"):
        load_file(tmp_path / "nope.yaml")


def test_dump_round_trips_and_keeps_order():
    config = {"name": "x", "model": {"layers": [{"type": "Dense", "units": 2}]}, "m": [1, 2]}
    text = dump(config)
    assert text.splitlines()[0] == "name: x"
    assert "m: [1, 2]" in text
    assert load_text(text, "x")[0] == config
