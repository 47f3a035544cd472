"""Ranking trials from run results, the leaderboard files and the retrain command."""

import csv
import io

import pytest

from bptrain.sweep import load_sweep
from bptrain.sweep.leaderboard import retrain, summarize, to_csv, to_markdown
from bptrain.sweep.plan import plan_runs

SWEEP = """\
base: base.yaml
metric: val_loss
grid:
  optimizer.lr: [0.1, 0.01, 0.001]
cv: {folds: 2}
"""


@pytest.fixture
def board(write_sweep):
    spec = load_sweep(write_sweep(SWEEP))
    trials = spec.trials()
    runs = plan_runs(trials, spec.seeds, spec.folds)
    done = {"event": "done", "epochs": 2, "seconds": 1.5}
    results = {
        0: {**done, "run": 0, "score": 0.5, "best_epoch": 2},
        1: {"event": "failed", "run": 1, "error": "DivergenceError: nan"},
        2: {**done, "run": 2, "score": 0.25, "best_epoch": 1},
        3: {**done, "run": 3, "score": 0.35, "best_epoch": 2},
        # trial 2 (runs 4 and 5) has not run
    }
    return spec, trials, summarize(spec, trials, runs, results)


def test_ranking_by_mean_lower_is_better_for_a_loss(board):
    spec, _, ranked = board
    assert spec.mode == "min"
    assert [s.trial for s in ranked] == [1, 0, 2]
    best, partial, pending = ranked
    assert best.mean == pytest.approx(0.3) and best.std == pytest.approx(0.070710678118654)
    assert partial.scores == [0.5] and partial.std is None and partial.runs == 2  # undefined
    assert partial.errors == [("1-t0-f1-s0-lr=0.1", "DivergenceError: nan")]
    assert pending.mean is None and pending.status == "not run"
    assert best.params == {"optimizer.lr": 0.01}


def test_csv_and_markdown(board):
    spec, _, ranked = board
    rows = list(csv.DictReader(io.StringIO(to_csv(spec, ranked))))
    assert rows[0] == {
        "rank": "1",
        "trial": "1",
        "optimizer.lr": "0.01",
        "val_loss_mean": repr(ranked[0].mean),
        "val_loss_std": repr(ranked[0].std),
        "runs": "2",
        "failed": "0",
        "epochs": "2.0",
        "best_epoch": "1.5",
        "seconds": "1.5",
    }
    assert rows[1]["val_loss_mean"] == "0.5" and rows[1]["val_loss_std"] == ""  # one run
    assert rows[2]["val_loss_mean"] == "" and rows[2]["runs"] == "0"
    md = to_markdown(spec, ranked)
    assert "| 1 | 1 | 0.01 | 0.3000 ± 0.0707 | 2/2 | 2 | 1.5 |" in md
    assert "| 2 | 0 | 0.1 | 0.5000 | 1/2 | 2 | 1.5 |" in md  # one run: no spread
    assert "| 3 | 2 | 0.001 | not run | 0/2 |  |  |" in md
    assert "- trial 0, `1-t0-f1-s0-lr=0.1`: DivergenceError: nan" in md


def test_retrain_command(board, write_sweep, monkeypatch, tmp_path):
    spec, trials, _ = board
    monkeypatch.chdir(tmp_path)
    assert retrain(spec, trials[1]) == ("bptrain fit base.yaml optimizer.lr=0.01", [])
    # a base with a validation split: retrained with all of it, quoted for the shell
    base = (
        (tmp_path / "base.yaml")
        .read_text()
        .replace("size: 40,", "size: 40, validation_split: 0.2,")
    )
    sweep = "base: base.yaml\nmetric: val_loss\nfixed: {training.epochs: 1}\n"
    spec = load_sweep(write_sweep(sweep + "grid: {model.layers.0.activation: [tanh]}\n", base=base))
    command, notes = retrain(spec, {"model.layers.0.activation": "a b"})
    assert command == (
        "bptrain fit base.yaml 'model.layers.0.activation=a b' data.validation_split=0"
    )
    assert notes == ["the sweep's fixed values (training.epochs=1) are left at the base config's"]
    # ... unless the base's monitors need one
    base = base.replace("plots: false", "plots: false, early_stopping: {monitor: val_loss}")
    spec = load_sweep(write_sweep(sweep, base=base))
    command, notes = retrain(spec, {})
    assert command == "bptrain fit base.yaml"
    assert notes[0] == "it keeps the base's validation split: the base's monitors need one"


def test_the_retrain_note_names_the_command_line_overrides(write_sweep, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    sweep = "base: base.yaml\nmetric: loss\nfixed: {training.epochs: 1}\n"
    spec = load_sweep(write_sweep(sweep), overrides=["training.batch_size=8"])
    assert retrain(spec, {}) == (
        "bptrain fit base.yaml",
        [
            "the sweep's fixed values (training.epochs=1) and command-line overrides "
            "(training.batch_size=8) are left at the base config's"
        ],
    )
