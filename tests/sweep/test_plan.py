"""Runs from trials: numbering and directory names."""

from bptrain.sweep.plan import key_labels, plan_runs


def test_runs_per_trial_seed_and_fold():
    trials = [{"optimizer.lr": 0.01}, {"optimizer.lr": 0.00031622776601683794}]
    runs = plan_runs(trials, seeds=[0, 7], folds=2)
    assert [(r.number, r.trial, r.seed, r.fold) for r in runs] == [
        (0, 0, 0, 0),
        (1, 0, 0, 1),
        (2, 0, 7, 0),
        (3, 0, 7, 1),
        (4, 1, 0, 0),
        (5, 1, 0, 1),
        (6, 1, 7, 0),
        (7, 1, 7, 1),
    ]
    assert runs[0].name == "0-t0-f0-s0-lr=0.01"
    assert runs[7].name == "7-t1-f1-s7-lr=0.000316"


def test_names_without_folds_are_padded_and_safe():
    trials = [{"model.layers.1.activation": "a/b c", "training.epochs": 3}] * 10
    trials.append({"model.layers.1.activation": "relu", "training.epochs": 3})
    runs = plan_runs(trials, seeds=[0], folds=None)
    assert runs[0].name == "00-t00-s0-activation=a_b_c"  # epochs is the same everywhere
    assert runs[10].name == "10-t10-s0-activation=relu"
    assert len({r.name for r in runs}) == 11


def test_key_labels_are_short_but_unambiguous():
    assert key_labels(["optimizer.lr", "model.layers.1.units", "model.layers.2.units"]) == {
        "optimizer.lr": "lr",
        "model.layers.1.units": "layers.1.units",
        "model.layers.2.units": "layers.2.units",
    }
