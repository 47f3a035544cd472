"""Sweep files: strict validation before any trial starts, and the configs of runs."""

from pathlib import Path

import pytest

from bptrain.errors import ConfigError
from bptrain.sweep import load_sweep
from tests.sweep.conftest import BASE

GOOD = """\
base: base.yaml
metric: val_accuracy
grid:
  optimizer.lr: [0.01, 0.001]
  model.layers.0.units: [4, 8]
random:
  trials: 3
  seed: 1
  space:
    optimizer.lr: {loguniform: [1.0e-4, 1.0e-1]}
    training.batch_size: {choice: [16, 32]}
cv: {folds: 3}
seeds: [0, 5]
"""


def test_a_valid_sweep(write_sweep):
    spec = load_sweep(write_sweep(GOOD))
    assert spec.name == "sweep" and spec.mode == "max" and spec.folds == 3
    assert spec.seeds == [0, 5]
    assert spec.swept == ["optimizer.lr", "model.layers.0.units", "training.batch_size"]
    trials = spec.trials()
    assert len(trials) == 4 + 3
    assert trials[:4] == [
        {"optimizer.lr": 0.01, "model.layers.0.units": 4},
        {"optimizer.lr": 0.01, "model.layers.0.units": 8},
        {"optimizer.lr": 0.001, "model.layers.0.units": 4},
        {"optimizer.lr": 0.001, "model.layers.0.units": 8},
    ]
    assert set(trials[4]) == {"optimizer.lr", "training.batch_size"}
    assert spec.trials(max_trials=5) == trials[:5]
    # a key a trial does not set shows the base config's value
    assert spec.base_value("training.batch_size") == 32
    assert spec.base_value("optimizer.learning_rate") == 0.01  # only in the resolved config


def test_run_config_sets_values_seed_fold_and_threads(write_sweep):
    spec = load_sweep(write_sweep(GOOD))
    config = spec.run_config({"optimizer.lr": 0.5, "model.layers.0.units": 6}, 5, 2, threads=1)
    assert config["optimizer"]["learning_rate"] == 0.5
    assert config["model"]["layers"][0]["units"] == 6
    assert config["seed"] == 5 and config["training"]["threads"] == 1
    assert config["data"]["folds"] == 3 and config["data"]["fold"] == 2
    assert config["data"]["validation_split"] == 0.0
    assert spec.base["optimizer"]["lr"] == 0.01  # the base is left alone


def test_replicas_are_capped_by_the_threads_of_a_worker(write_sweep):
    spec = load_sweep(write_sweep(GOOD + "fixed:\n  training.replicas: 2\n"))
    params = {"optimizer.lr": 0.5, "model.layers.0.units": 6}
    assert spec.run_config(params, 0, 0, threads=1)["training"]["replicas"] == 1
    assert spec.run_config(params, 0, 0, threads=2)["training"]["replicas"] == 2


def test_defaults(write_sweep):
    spec = load_sweep(write_sweep("base: base.yaml\nmetric: loss\n", name="plain.yaml"))
    assert spec.name == "plain" and spec.mode == "min" and spec.seeds == [0]
    assert spec.folds is None and spec.trials() == [{}]  # the base config alone


def error(write_sweep, text, base=BASE) -> str:
    """The one-line message of the ConfigError, with the sweep file's path cut to its name."""
    path = write_sweep(text, base=base)
    with pytest.raises(ConfigError) as err:
        load_sweep(path)
    message = str(err.value)
    assert "\n" not in message
    return message.replace(str(path.parent) + "/", "")


def test_unknown_swept_key_path_suggests_the_close_one(write_sweep):
    text = GOOD.replace("model.layers.0.units: [4, 8]", "model.layers.0.unit: [4, 8]")
    assert error(write_sweep, text) == (
        "sweep.yaml:5: grid.model.layers.0.unit: not a key of the base config base.yaml; "
        "did you mean 'model.layers.0.units'?"
    )


def test_a_key_path_missing_from_the_base_is_refused_even_if_valid(write_sweep):
    # early stopping is valid in a config, but the base has none: sweeping its patience would
    # silently switch it on
    text = "base: base.yaml\nmetric: loss\ngrid:\n  training.early_stopping.patience: [1, 2]\n"
    message = error(write_sweep, text)
    assert "grid.training.early_stopping.patience: not a key of the base config" in message


def test_random_space_key_is_checked_too(write_sweep):
    text = GOOD.replace("training.batch_size: {choice", "training.batchsize: {choice")
    message = error(write_sweep, text)
    assert "sweep.yaml:11: random.space.training.batchsize: not a key" in message
    assert "did you mean 'training.batch_size'?" in message


def test_bad_value_is_caught_before_any_run(write_sweep):
    text = GOOD.replace("[4, 8]", "[4, eight]")
    assert error(write_sweep, text) == (
        "sweep.yaml:5: model.layers[0].units: expected an integer, got the string 'eight'"
    )


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ("metric: val_accuracy", "metrc: val_accuracy"),
            "sweep.yaml:2: metrc: unknown key; did you mean 'metric'?",
        ),
        (("metric: val_accuracy", "metric: val_acuracy"), "did you mean 'val_accuracy'?"),
        (("cv: {folds: 3}", "cv: {folds: 1}"), "cv.folds: expected an integer of at least 2"),
        (("seeds: [0, 5]", "seeds: [0, 0]"), "seeds: a seed is listed twice"),
        (("seeds: [0, 5]", "seeds: 3"), "seeds: expected a list of non-negative integers"),
        (("trials: 3", "trials: 0"), "random.trials: expected a positive integer"),
        (("{loguniform: [1.0e-4, 1.0e-1]}", "{loguniform: [0, 1]}"), "loguniform needs low > 0"),
        (("{loguniform: [1.0e-4", "{logunif: [1.0e-4"), "did you mean 'loguniform'?"),
        (("[0.01, 0.001]", "[]"), "grid.optimizer.lr: expected a non-empty list of values"),
        (("base: base.yaml", "base: missing.yaml"), "missing.yaml: no such config file"),
    ],
)
def test_bad_sweep_files(write_sweep, change, expected):
    assert expected in error(write_sweep, GOOD.replace(*change))


def test_validation_metric_needs_a_validation_set(write_sweep):
    text = "base: base.yaml\nmetric: val_accuracy\n"
    message = error(write_sweep, text)
    assert "there is no validation set: use cv: {folds: 5} or data.validation_split" in message


CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.mark.parametrize("name", ["sweep_spirals.yaml", "sweep_mnist_mlp.yaml"])
def test_example_sweeps_are_valid(name):
    spec = load_sweep(CONFIGS / name)
    assert spec.metric == "val_accuracy" and spec.mode == "max"
    assert len(spec.trials()) in (6, 8)


def test_folds_are_a_validation_set_for_monitors():
    # spirals.yaml stops early on val_loss; under cross-validation the fold is the validation set
    spec = load_sweep(CONFIGS / "sweep_spirals.yaml")
    assert spec.base["training"]["early_stopping"]["monitor"] == "val_loss"
    config = spec.run_config(spec.trials()[0], seed=0, fold=1, threads=1)
    assert config["data"]["validation_split"] == 0.0 and config["data"]["fold"] == 1
    assert config["training"]["early_stopping"]["monitor"] == "val_loss"
    assert config["training"]["checkpoint"]["monitor"] == "val_loss"


def test_fixed_values_apply_to_every_trial(write_sweep):
    spec = load_sweep(write_sweep(GOOD + "fixed: {training.epochs: 1, data.noise: 0.2}\n"))
    assert spec.fixed == {"training.epochs": 1, "data.noise": 0.2}
    assert "training.epochs" not in spec.swept
    for params in spec.trials():
        config = spec.run_config(params, 0, 0, threads=None)
        assert config["training"]["epochs"] == 1 and config["data"]["noise"] == 0.2


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("fixed: {optimizer.lr: 0.1}\n", "grid.optimizer.lr: 'optimizer.lr' is fixed already"),
        ("fixed: {training.batch_size: 8}\n", "random.space.training.batch_size: 'training."),
        ("fixed:\n  model.layers[0].units: 3\n", "grid.model.layers.0.units: 'model.layers[0]"),
        ("fixed: {training.epoch: 3}\n", "fixed.training.epoch: not a key of the base config"),
        ("fixed: {training.epochs: many}\n", "training.epochs: expected an integer, got the"),
    ],
)
def test_bad_fixed_values(write_sweep, extra, expected):
    assert expected in error(write_sweep, GOOD + extra)


LR_GRID = "base: base.yaml\nmetric: loss\ngrid:\n  {key}: [0.1, 0.2]\n"
LR_RANDOM = (
    "base: base.yaml\nmetric: loss\nrandom:\n  trials: 2\n  space:\n"
    "    {key}: {{choice: [0.1, 0.2]}}\n"
)
LR_FIXED = "base: base.yaml\nmetric: loss\nfixed:\n  {key}: 0.1\n"


@pytest.mark.parametrize("written", ["lr", "learning_rate"])
@pytest.mark.parametrize("key", ["optimizer.lr", "optimizer.learning_rate"])
@pytest.mark.parametrize("text", [LR_GRID, LR_RANDOM, LR_FIXED], ids=["grid", "random", "fixed"])
def test_lr_and_learning_rate_are_one_key_in_sweeps(write_sweep, written, key, text):
    """fit takes optimizer.lr=... and optimizer.learning_rate=... whichever the file writes;
    so do a sweep's grid, random space and fixed values."""
    base = BASE.replace("lr: 0.01", f"{written}: 0.01")
    spec = load_sweep(write_sweep(text.format(key=key), base=base))
    rates = [spec.run_config(p, 0, None, None)["optimizer"]["learning_rate"] for p in spec.trials()]
    assert sorted(rates) == ([0.1] if text == LR_FIXED else [0.1, 0.2])
    assert spec.base_value(key) == 0.01


def test_lr_and_learning_rate_together_are_one_key_given_twice(write_sweep):
    text = LR_GRID.format(key="optimizer.lr") + "fixed: {optimizer.learning_rate: 0.3}\n"
    assert error(write_sweep, text) == (
        "sweep.yaml:4: grid.optimizer.lr: 'optimizer.learning_rate' is fixed already"
    )
