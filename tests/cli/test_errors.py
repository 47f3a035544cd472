"""Every bad input ends with one line on stderr, ``error: ...``, and exit status 2 (usage and
config errors) or 1 (data, checkpoint, divergence) -- never a traceback."""

import pytest

from bptrain.data import mnist


def one_line_error(err: str) -> str:
    assert err.startswith("error: "), err
    assert err.count("\n") == 1, err
    return err[len("error: ") : -1]


@pytest.fixture
def config_file(write_config, small_config):
    return write_config(small_config())


def test_unknown_key_with_did_you_mean(bptrain, write_config):
    path = write_config(
        "data: {dataset: spirals}\n"
        "model:\n"
        "  layers:\n"
        "    - {type: Dense, units: 8}\n"
        "    - {type: Dense, unit: 3}\n"
        "loss: sparse_categorical_crossentropy\n"
    )
    for command in (["fit"], ["config", "check"], ["config", "show"], ["gradcheck"]):
        code, out, err = bptrain(*command, path)
        assert code == 2 and out == ""
        assert one_line_error(err) == (
            f"{path}:5: model.layers[1].unit: unknown key; did you mean 'units'?"
        )


def test_wrong_type(bptrain, config_file):
    code, _, err = bptrain("fit", config_file, "training.batch_size=big")
    assert code == 2
    assert one_line_error(err) == (
        "override training.batch_size=big: training.batch_size: expected an integer, got the "
        "string 'big'"
    )


def test_missing_config(bptrain):
    code, _, err = bptrain("fit", "nope.yaml")
    assert code == 2
    assert one_line_error(err) == "nope.yaml: no such config file"


def test_shape_mismatch_names_the_layer_and_line(bptrain, write_config):
    path = write_config(
        "data: {dataset: spirals}\n"
        "model:\n"
        "  layers:\n"
        "    - {type: Reshape, target_shape: [3, -1]}\n"
        "    - {type: Dense, units: 3}\n"
        "loss: sparse_categorical_crossentropy\n"
    )
    code, _, err = bptrain("fit", path)
    assert code == 2
    assert one_line_error(err).startswith(
        f"{path}:4: model.layers[0]: layer 'reshape' (Reshape): cannot reshape"
    )


def test_usage_errors(bptrain, config_file):
    code, _, err = bptrain("fit")
    assert code == 2 and "missing CONFIG" in one_line_error(err)
    code, _, err = bptrain("fit", config_file, "--no-such-option")
    assert code == 2 and "No such option '--no-such-option' (see 'bptrain fit --help')" in err
    code, _, err = bptrain("eval", "x.safetensors", "--split", "dev")
    assert code == 2 and "'dev' is not one of 'test', 'val', 'train'" in one_line_error(err)
    code, _, err = bptrain("fit", config_file, "optimizer.lr")
    assert code == 2 and "expected key.path=value" in one_line_error(err)


def test_missing_data_offline(bptrain, write_config, small_config, tmp_path, monkeypatch):
    monkeypatch.setenv("BPTRAIN_DATA_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    offline = {name: ["file:///nonexistent-mirror/"] for name in mnist.MIRRORS}
    monkeypatch.setattr(mnist, "MIRRORS", offline)
    config = small_config()
    config["data"] = {"dataset": "mnist", "limit": 100}
    config["model"]["layers"].insert(0, {"type": "Flatten"})
    config["model"]["layers"][-1]["units"] = 10
    code, _, err = bptrain("fit", write_config(config))
    assert code == 1
    message = one_line_error(err)
    assert message.startswith(f"mnist files not found in {tmp_path / 'empty' / 'mnist'}")
    assert "set BPTRAIN_DATA_DIR=DIR" in message


@pytest.fixture
def run(bptrain, config_file):
    code, _, _ = bptrain("fit", config_file, "--run-dir", "r")
    assert code == 0
    return "r/checkpoints/last.safetensors"


def test_truncated_checkpoint(bptrain, run, tmp_path):
    data = (tmp_path / run).read_bytes()
    (tmp_path / run).write_bytes(data[: len(data) // 2])
    for command in (["eval", run], ["predict", run, "x.csv"], ["fit", "--resume", "r"]):
        code, _, err = bptrain(*command)
        assert code == 1
        assert one_line_error(err).startswith(f"{run} is truncated: ")


def test_tampered_checkpoint(bptrain, run, tmp_path):
    data = bytearray((tmp_path / run).read_bytes())
    data[-3] ^= 0x40
    (tmp_path / run).write_bytes(bytes(data))
    code, _, err = bptrain("eval", run)
    assert code == 1
    assert one_line_error(err).startswith(f"{run} fails its SHA-256 check: the file was modified")


def test_missing_checkpoint_and_run(bptrain):
    code, _, err = bptrain("eval", "nothing.safetensors")
    assert code == 1 and one_line_error(err) == "nothing.safetensors: no such checkpoint"
    code, _, err = bptrain("fit", "--resume", "nowhere")
    assert code == 1 and one_line_error(err) == "nowhere: no such run directory or checkpoint"


def test_resuming_a_file_that_is_no_checkpoint_leaves_its_folder_alone(bptrain, tmp_path):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "todo.txt").write_text("not a checkpoint\n")
    code, _, err = bptrain("fit", "--resume", "notes/todo.txt")
    assert code == 1 and one_line_error(err).startswith("notes/todo.txt ")
    assert sorted(p.name for p in notes.iterdir()) == ["todo.txt"]


def test_nan_loss(bptrain, write_config, tmp_path):
    config = {
        "name": "boom",
        "data": {"dataset": "linear", "size": 200},
        "model": {"layers": [{"type": "Dense", "units": 16}, {"type": "Dense", "units": 1}]},
        "loss": "mse",
        "optimizer": {"type": "sgd", "learning_rate": 1000.0},
        "training": {"epochs": 3, "plots": False},
    }
    code, out, err = bptrain("fit", write_config(config), "--run-dir", "r")
    assert code == 1
    message = one_line_error(err)
    assert message.startswith("training diverged at epoch 1, step ")
    assert "no checkpoint was written before it" in message
    assert "Lower optimizer.learning_rate" in message
    assert out.startswith("run directory: r")


def test_bad_predict_input(bptrain, run, tmp_path):
    (tmp_path / "bad.csv").write_text("1,2,3\n")
    code, _, err = bptrain("predict", run, "bad.csv")
    assert code == 1
    assert one_line_error(err) == (
        "bad.csv: samples of shape (3,), but the model takes (2,) (2 values per sample)"
    )
    code, _, err = bptrain("predict", run, "in.txt")
    assert code == 1 and one_line_error(err) == "in.txt: expected a .npy, .npz or .csv file"


def test_eval_refuses_model_overrides(bptrain, run):
    code, _, err = bptrain("eval", run, "model.layers.0.units=3")
    assert code == 2
    assert "model: an override changed it" in one_line_error(err)


def test_predict_refuses_a_crafted_npy_header(bptrain, run, tmp_path):
    from tests.data.test_npyfile import npy_bytes

    (tmp_path / "crafted.npy").write_bytes(npy_bytes((100_000_000_000, 2)))
    code, out, err = bptrain("predict", run, "crafted.npy")
    assert code == 1 and out == ""
    assert one_line_error(err).startswith(
        "crafted.npy: its header declares an array of shape (100000000000, 2) and dtype float32"
    )


def test_predict_refuses_empty_rows_instead_of_dropping_them(bptrain, run, tmp_path):
    (tmp_path / "in.csv").write_text("a,b\n0.1,0.2\n,\n0.3,0.4\n\n0.5,0.6\n")
    code, out, err = bptrain("predict", run, "in.csv")
    assert code == 1 and out == ""
    assert one_line_error(err) == (
        "in.csv, line 3: an empty row (no value in any column); fill it in or remove it"
    )
    (tmp_path / "in.csv").write_text("a,b\n0.1,0.2\n0.3,0.4\n0.5,0.6\n,\n\n")  # empty at the end
    code, out, _ = bptrain("predict", run, "in.csv")
    assert code == 0 and len(out.splitlines()) == 4  # the header and three predictions


def test_a_metrics_entry_that_is_no_name_is_named(bptrain, write_config):
    path = write_config(
        "data: {dataset: spirals}\n"
        "model: {layers: [{type: Dense, units: 3}]}\n"
        "loss: sparse_categorical_crossentropy\n"
        "metrics:\n"
        "  - accuracy\n"
        "  - 3\n"
    )
    code, _, err = bptrain("config", "check", path)
    assert code == 2
    assert one_line_error(err) == (
        f"{path}:6: metrics[1]: expected a metric name (accuracy, precision, recall, f1, mse, "
        "mae, r2), got the integer 3"
    )
