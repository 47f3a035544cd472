import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from bptrain.cli import cli


@pytest.fixture
def trained(bptrain, write_config, small_config):
    """A finished tiny run: (run directory, fit's stdout)."""
    path = write_config(small_config(plots=True))
    code, out, err = bptrain("fit", path, "training.epochs=4")
    assert (code, err) == (0, "")
    run = re.search(r"^run directory: (\S+)$", out, re.M).group(1)
    from pathlib import Path

    return Path(run), out


def test_fit_prints_the_run_epochs_and_summary(trained):
    run, out = trained
    lines = out.splitlines()
    assert lines[0] == f"run directory: {run}"
    assert str(run).startswith("runs/tiny/")
    assert "dense (Dense)" in out and "Trainable params: 99" in out
    epochs = [line for line in lines if line.startswith("epoch ")]
    assert [e.split()[1] for e in epochs] == ["1/4", "2/4", "3/4", "4/4"]
    assert re.match(
        r"epoch 1/4  loss \d\.\d{4}  accuracy \d\.\d{4}  val_loss \d\.\d{4}  "
        r"val_accuracy \d\.\d{4}  lr 0.01",
        epochs[0],
    )
    assert re.search(r"^best epoch \d of 4 by val_loss: loss", out, re.M)
    assert (
        f"  checkpoints: {run}/checkpoints/best.safetensors, {run}/checkpoints/last.safetensors"
        in out
    )
    assert f"  metrics:     {run}/metrics.csv" in out
    assert lines[-1] == f"evaluate on the test set: bptrain eval {run}"
    assert yaml.safe_load((run / "config.yaml").read_text())["training"]["epochs"] == 4


def test_eval_prints_a_table_and_writes_eval_json_and_confusion_matrix(bptrain, trained):
    run, _ = trained
    code, out, err = bptrain("eval", run)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert re.match(
        rf"{run}/checkpoints/best.safetensors \(epoch \d\), test split, 36 samples", lines[0]
    )
    assert re.match(r"accuracy  0\.\d{4}", lines[2])
    assert lines[4].split() == ["class", "precision", "recall", "f1", "support"]
    assert [line.split()[0] for line in lines[5:8]] == ["0", "1", "2"]
    assert lines[8].startswith("macro avg")
    assert "confusion matrix (rows: true, columns: predicted)" in out
    report = json.loads((run / "eval.json").read_text())["test"]
    assert report["samples"] == 36
    assert sum(map(sum, report["confusion_matrix"])) == 36
    assert f"accuracy  {report['accuracy']:.4f}" in out
    assert (run / "plots" / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"
    # another split is added to eval.json, not replacing the test entry
    code, out, _ = bptrain("eval", run / "checkpoints" / "last.safetensors", "--split", "val")
    assert code == 0 and "val split, 29 samples" in out
    assert set(json.loads((run / "eval.json").read_text())) == {"test", "val"}


def test_regression_eval(bptrain, write_config):
    config = {
        "name": "lin",
        "data": {"dataset": "linear", "size": 100, "validation_split": 0.2},
        "model": {"layers": [{"type": "Dense", "units": 1}]},
        "loss": "mse",
        "optimizer": {"type": "sgd", "learning_rate": 0.1},
        "training": {"epochs": 5, "batch_size": 8, "plots": False},
    }
    code, out, _ = bptrain("fit", write_config(config), "--run-dir", "r")
    assert code == 0
    code, out, _ = bptrain("eval", "r")
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()[1:5]] == ["loss", "mse", "mae", "r2"]
    report = json.loads(open("r/eval.json").read())["test"]
    assert report["r2"] > 0.9 and report["mse"] == pytest.approx(report["loss"], rel=1e-5)


def test_predict_csv_and_npy(bptrain, trained, tmp_path):
    run, _ = trained
    (tmp_path / "pts.csv").write_text("x,y\n0.1,0.2\n-0.5,0.3\n0.0,-0.8\n")
    code, out, err = bptrain("predict", run, "pts.csv")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == "prediction,p_0,p_1,p_2"
    rows = [line.split(",") for line in lines[1:]]
    assert len(rows) == 3
    for row in rows:
        probs = np.array(row[1:], dtype=float)
        assert probs.sum() == pytest.approx(1, abs=1e-5)
        assert row[0] == str(int(probs.argmax()))
    np.save(tmp_path / "pts.npy", np.array([[0.1, 0.2], [-0.5, 0.3], [0.0, -0.8]], np.float32))
    code, _, err = bptrain("predict", run, "pts.npy", "-o", "out.npy")
    assert code == 0 and err == "wrote 3 predictions to out.npy\n"
    outputs = np.load(tmp_path / "out.npy")
    assert outputs.shape == (3, 3)
    np.testing.assert_allclose(outputs, np.array([r[1:] for r in rows], dtype=float), rtol=1e-4)


def test_predict_applies_the_training_scaling(bptrain, write_config, small_config, tmp_path):
    config = small_config()
    config["data"]["scale"] = "standardize"
    code, _, _ = bptrain("fit", write_config(config), "--run-dir", "r")
    assert code == 0
    from bptrain.data import load_dataset
    from bptrain.runs import checkpoint

    scale = checkpoint.load(tmp_path / "r/checkpoints/last.safetensors").state["data"]["scale"]
    raw = np.array([[0.3, -0.2]], np.float32)
    np.save(tmp_path / "raw.npy", raw)
    scaled = (raw - np.array(scale["shift"], np.float32)) / np.array(scale["divisor"], np.float32)
    np.save(tmp_path / "scaled.npy", scaled)
    _, a, _ = bptrain("predict", "r", "raw.npy")
    _, b, _ = bptrain("predict", "r", "scaled.npy", "--scaled")
    assert a == b
    assert load_dataset  # the same statistics the dataset used


def test_gradcheck_prints_every_parameter(bptrain, write_config, small_config):
    path = write_config(small_config())
    code, out, err = bptrain("gradcheck", path, "--samples", "3")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == "gradient check in float64 on 3 samples, tolerance 1e-06"
    names = [line.split()[0] for line in lines[2:6]]
    assert names == ["dense/kernel", "dense/bias", "dense_1/kernel", "dense_1/bias"]
    assert all(line.split()[-1] == "ok" and float(line.split()[2]) < 1e-6 for line in lines[2:6])
    assert lines[-1] == "gradient check passed"
    code, out, err = bptrain("gradcheck", path, "--tolerance", "1e-30")
    assert code == 1
    assert "FAIL" in out
    assert err.startswith("error: gradient check failed for dense/kernel, dense/bias")
    assert err.count("\n") == 1


def test_config_show_prints_the_resolved_config(bptrain, write_config, small_config):
    path = write_config(small_config())
    code, out, _ = bptrain("config", "show", path, "optimizer.lr=0.05", "model.layers.0.units=7")
    assert code == 0
    shown = yaml.safe_load(out)
    assert shown["optimizer"]["learning_rate"] == 0.05
    assert shown["model"]["layers"][0]["units"] == 7
    assert shown["training"]["shuffle"] is True and shown["training"]["checkpoint"]["best"] is True
    code, again, _ = bptrain("config", "show", path, "optimizer.lr=0.05", "model.layers.0.units=7")
    assert again == out


def test_config_show_counts_the_steps_of_the_run_and_its_schedule(bptrain):
    configs = Path(__file__).resolve().parents[2] / "configs"
    code, out, _ = bptrain(
        "config", "show", configs / "linear_regression.yaml", "training.epochs=10"
    )
    assert code == 0
    assert out.endswith(
        "# run length: 720 training samples in batches of 32: 23 steps per epoch x 10 epochs = "
        "230 steps\n# schedule: cosine, decay_steps 230 (the whole run), warmup_steps 0\n"
    )
    assert yaml.safe_load(out)["training"]["schedule"]["decay_steps"] is None  # as given
    if not (Path(os.environ["BPTRAIN_DATA_DIR"]) / "mnist").is_dir():
        return
    overrides = ("data.limit=1000", "training.schedule.warmup_epochs=0.5")
    code, out, _ = bptrain("config", "show", configs / "mnist_lstm.yaml", *overrides)
    assert out.endswith(
        "# run length: 900 training samples in batches of 64: 15 steps per epoch x 5 epochs = "
        "75 steps\n# schedule: cosine, decay_steps 67 (the whole run after the warmup), "
        "warmup_steps 8 (warmup_epochs: 0.5)\n"
    )


def test_config_check(bptrain, write_config, small_config):
    path = write_config(small_config())
    code, out, _ = bptrain("config", "check", path)
    assert (code, out) == (0, f"{path}: valid (2 layers, data: spirals)\n")
    code, out, _ = bptrain("config", "check", "--build", path)
    assert (code, out) == (0, f"{path}: valid (2 layers, data: spirals, 99 parameters)\n")


def test_python_dash_m_is_the_same_cli():
    import bptrain.__main__ as entry

    assert entry.main is __import__("bptrain.cli").cli.main


def commands(group, prefix=()):
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            yield from commands(command, (*prefix, name))
        else:
            yield (*prefix, name), command


OURS = [("fit",), ("eval",), ("predict",), ("gradcheck",), ("config", "show"), ("config", "check")]


@pytest.mark.parametrize(
    "path, command", [c for c in commands(cli) if c[0] in OURS], ids=lambda v: str(v)
)
def test_every_command_documents_every_option_with_an_example(bptrain, path, command):
    code, out, _ = bptrain(*path, "--help")
    assert code == 0
    assert "Example" in out
    for param in command.params:
        if param.name == "help":
            continue
        if hasattr(param, "opts") and param.param_type_name == "option":
            assert param.opts[0] in out
            assert param.help and (
                "e.g." in param.help or "Default" in param.help or "without" in param.help
            ), param.name


def test_no_command_shows_the_help(bptrain):
    code, out, err = bptrain()
    assert (code, err) == (0, "")
    assert out.startswith("Usage: bptrain [OPTIONS] COMMAND [ARGS]...")
    assert "fit" in out and "eval" in out


# -- a run remembers where its data came from (MNIST-like files in tmp_path/data/mnist) ----------
MNIST_TINY = {
    "name": "m",
    "data": {"dataset": "mnist", "download": False, "validation_split": 0.2},
    "model": {"layers": [{"type": "Flatten"}, {"type": "Dense", "units": 10}]},
    "loss": "sparse_categorical_crossentropy",
    "training": {"epochs": 1, "plots": False},
}


@pytest.fixture
def mnist_run(bptrain, write_config, tmp_path, monkeypatch):
    """A run trained on MNIST-like files found through $BPTRAIN_DATA_DIR, then a new shell:
    the variable unset, an empty user cache, another working directory. Returns (run, the
    test report eval gave before the shell changed)."""
    from tests.reliability.test_bad_data import mnist_like

    (tmp_path / "data").mkdir()
    mnist_like(tmp_path / "data" / "mnist")
    monkeypatch.setenv("BPTRAIN_DATA_DIR", str(tmp_path / "data"))
    code, _, err = bptrain("fit", write_config(MNIST_TINY), "--run-dir", "run")
    assert code == 0, err
    code, _, err = bptrain("eval", "run")
    assert code == 0, err
    before = json.loads((tmp_path / "run" / "eval.json").read_text())["test"]
    monkeypatch.delenv("BPTRAIN_DATA_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty-cache"))
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    return tmp_path / "run", before


def test_eval_in_a_new_shell_finds_the_data_where_the_run_found_it(bptrain, mnist_run, tmp_path):
    run, before = mnist_run
    code, out, err = bptrain("eval", run)
    assert (code, err) == (0, "")
    after = json.loads((run / "eval.json").read_text())["test"]
    assert after["samples"] == before["samples"] == 10
    assert after["loss"] == before["loss"] and after["accuracy"] == before["accuracy"]
    # data.root still decides first: a copy whose test labels are all 0 scores differently
    from bptrain.data.idx import read_idx, write_idx

    other = tmp_path / "other"
    other.mkdir()
    for f in (tmp_path / "data" / "mnist").iterdir():
        other.joinpath(f.name).write_bytes(f.read_bytes())
    labels = other / "t10k-labels-idx1-ubyte"
    write_idx(labels, np.zeros_like(read_idx(labels, ndim=1)))
    code, _, err = bptrain("eval", run, f"data.root={other}")
    assert (code, err) == (0, "")
    report = json.loads((run / "eval.json").read_text())["test"]
    assert report["per_class"]["0"]["support"] == 10 and report["loss"] != before["loss"]


def test_eval_of_the_test_split_reads_only_the_test_files(bptrain, mnist_run, tmp_path):
    run, before = mnist_run
    for f in (tmp_path / "data" / "mnist").glob("train-*"):
        f.unlink()
    code, _, err = bptrain("eval", run)
    assert (code, err) == (0, "")
    after = json.loads((run / "eval.json").read_text())["test"]
    assert after["loss"] == before["loss"] and after["samples"] == 10
    code, _, err = bptrain("eval", run, "--split", "val")  # the validation split needs them
    assert code == 1
    assert err.startswith(f"error: mnist files not found in {tmp_path / 'data' / 'mnist'}, ")


def test_resume_in_a_new_shell_finds_the_data_too(bptrain, mnist_run):
    run, _ = mnist_run
    code, out, err = bptrain("fit", "--resume", run, "training.epochs=2", "--progress", "plain")
    assert (code, err) == (0, "")
    assert "epoch 2/2" in out


def test_the_recorded_data_folder_comes_after_root_and_the_variable(monkeypatch, tmp_path):
    from bptrain.data.download import cache_dir
    from bptrain.data.mnist import search_dirs

    monkeypatch.setenv("BPTRAIN_DATA_DIR", str(tmp_path / "env"))
    assert search_dirs("mnist", str(tmp_path / "root"), str(tmp_path / "recorded")) == [
        tmp_path / "root",
        tmp_path / "env" / "mnist",
        tmp_path / "recorded",
        cache_dir("mnist"),
    ]


# -- regression targets in their own units (data.scale_target) ------------------------------------
def raw_regression_csv(path, n=200):
    """Targets around 150 with a spread of ~60, as in the diabetes data: (x, y)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 3))
    y = 150 + 60 * x[:, 0] - 30 * x[:, 1] + 5 * rng.standard_normal(n)
    np.savetxt(path, np.c_[x, y], delimiter=",", header="a,b,c,y", comments="", fmt="%.6f")
    return x, y


def test_scale_target_trains_on_standardized_targets_and_reports_original_units(
    bptrain, write_config, tmp_path
):
    raw_regression_csv(tmp_path / "t.csv")
    config = {
        "name": "reg",
        "data": {
            "dataset": "csv",
            "path": "t.csv",
            "validation_split": 0.2,
            "scale_target": "standardize",
        },
        "model": {
            "layers": [
                {"type": "Dense", "units": 8, "activation": "relu"},
                {"type": "Dense", "units": 1},
            ]
        },
        "loss": "mse",
        "optimizer": {"type": "adam", "learning_rate": 0.01},
        "training": {"epochs": 10, "plots": False},
    }
    code, _, err = bptrain("fit", write_config(config), "--run-dir", "r")
    assert (code, err) == (0, "")
    from bptrain.data import load_dataset
    from bptrain.runs import checkpoint
    from bptrain.train.evaluate import restore_model

    ckpt = checkpoint.load(tmp_path / "r/checkpoints/last.safetensors")
    stats = ckpt.state["data"]["scale_target"]
    raw = load_dataset({**config["data"], "scale_target": "none"})  # the same split, raw
    assert stats["method"] == "standardize"
    assert stats["shift"][0] == pytest.approx(raw.y_train.mean(dtype=np.float64), rel=1e-12)
    assert stats["divisor"][0] == pytest.approx(raw.y_train.std(dtype=np.float64), rel=1e-12)
    _, model = restore_model(ckpt)
    predicted = (
        model.predict(raw.x_val).astype(np.float64) * stats["divisor"][0] + stats["shift"][0]
    )
    history = ckpt.state["history"][-1]
    # validation metrics in the targets' units; the loss in the standardized ones
    assert history["val_mse"] == pytest.approx(np.mean((predicted - raw.y_val) ** 2), rel=1e-5)
    assert history["val_mse"] > 10 and history["val_loss"] < 1
    assert history["mse"] > 10 and history["loss"] < 1  # training metrics in the same units
    assert history["val_mse"] == pytest.approx(
        history["val_loss"] * stats["divisor"][0] ** 2, rel=1e-4
    )

    code, out, err = bptrain("eval", "r")
    assert (code, err) == (0, "")
    report = json.loads((tmp_path / "r/eval.json").read_text())["test"]
    test_pred = (
        model.predict(raw.x_test).astype(np.float64) * stats["divisor"][0] + stats["shift"][0]
    )
    assert report["mse"] == pytest.approx(np.mean((test_pred - raw.y_test) ** 2), rel=1e-5)
    assert report["loss_on"] == "standardized targets (data.scale_target)"
    assert "(loss on standardized targets (data.scale_target); mse, mae and r2 in the" in out

    np.savetxt(tmp_path / "in.csv", raw.x_test[:3], delimiter=",")
    code, out, err = bptrain("predict", "r", "in.csv")
    assert (code, err) == (0, "")
    values = np.array(out.splitlines()[1:], dtype=float)
    np.testing.assert_allclose(values, test_pred[:3, 0], rtol=1e-6)


def test_scale_target_is_refused_for_classification(bptrain, write_config, small_config, tmp_path):
    path = write_config(small_config())
    code, _, err = bptrain("config", "check", path, "data.scale_target=standardize")
    assert code == 2
    assert err == (
        "error: override data.scale_target=standardize: data.scale_target: standardize is for "
        "regression targets, but this dataset is a classification dataset (its targets are "
        "class labels); leave it at none\n"
    )
    (tmp_path / "c.csv").write_text("a,label\n" + "".join(f"{i},{i % 2}\n" for i in range(20)))
    config = small_config()
    config["data"] = {"dataset": "csv", "path": "c.csv", "scale_target": "standardize"}
    config["model"]["layers"][-1]["units"] = 2
    code, out, err = bptrain("fit", write_config(config))
    assert code == 2 and out == "" and not (tmp_path / "runs").exists()
    assert err.startswith("error: ") and err.count("\n") == 1
    assert "data.scale_target: standardize is for regression targets, but c.csv is a" in err


def test_eval_from_another_folder_reads_the_csv_the_run_read(bptrain, write_config, tmp_path):
    raw_regression_csv(tmp_path / "t.csv")
    config = {
        "name": "reg",
        "data": {"dataset": "csv", "path": "t.csv"},
        "model": {"layers": [{"type": "Dense", "units": 1}]},
        "loss": "mse",
        "training": {"epochs": 2, "plots": False},
    }
    code, _, err = bptrain("fit", write_config(config), "--run-dir", "r")
    assert (code, err) == (0, "")
    code, _, _ = bptrain("eval", "r")
    before = json.loads((tmp_path / "r/eval.json").read_text())["test"]
    (tmp_path / "elsewhere").mkdir()
    import os

    os.chdir(tmp_path / "elsewhere")  # (the fixture's monkeypatch.chdir restores the folder)
    code, _, err = bptrain("eval", "../r")
    assert (code, err) == (0, "")
    after = json.loads((tmp_path / "r/eval.json").read_text())["test"]
    assert after["mse"] == before["mse"] and after["samples"] == 40
