"""The progress display: a bar over runs with the best trial so far, or plain lines."""

from bptrain.sweep import load_sweep
from bptrain.sweep.plan import plan_runs
from bptrain.sweep.progress import Console, Progress
from bptrain.sweep.worker import RunResult

SWEEP = "base: base.yaml\nmetric: loss\ngrid: {optimizer.lr: [0.1, 0.01]}\nseeds: [0, 1]\n"


def test_bar_shows_the_best_trial_mean_so_far(write_sweep, capsys):
    spec = load_sweep(write_sweep(SWEEP))
    runs = plan_runs(spec.trials(), spec.seeds, spec.folds)
    board = Progress(spec, runs, {0: {"event": "done", "score": 0.9}}, "bar", Console())  # resumed
    board.update(RunResult(number=2, status="done", seconds=1.0, score=0.5))
    board.update(RunResult(number=1, status="failed", seconds=1.0, error="Boom: x"))
    board.update(RunResult(number=3, status="done", seconds=1.0, score=0.7))
    board.close()
    out, err = capsys.readouterr()
    assert "run 1-t0-s1-lr=0.1 failed: Boom: x" in out
    assert "4/4" in err and "best loss 0.6000 (trial 1)" in err  # min: (0.5 + 0.7) / 2 < 0.9


def test_plain_lines(write_sweep, capsys):
    spec = load_sweep(write_sweep(SWEEP))
    runs = plan_runs(spec.trials(), spec.seeds, spec.folds)
    board = Progress(spec, runs, {}, "plain", Console())
    board.update(RunResult(number=1, status="done", seconds=2.5, score=0.25))
    board.update(RunResult(number=0, status="failed", seconds=0.5, error="Boom: x"))
    assert capsys.readouterr().out.splitlines() == [
        "[1/4] 1-t0-s1-lr=0.1: loss 0.2500  (2.5s; best 0.2500 (trial 0))",
        "[2/4] 0-t0-s0-lr=0.1: FAILED: Boom: x  (0.5s; best 0.2500 (trial 0))",
    ]
    Progress(spec, runs, {}, "none", Console()).update(
        RunResult(number=2, status="done", seconds=1.0, score=1.0)
    )
    assert capsys.readouterr() == ("", "")


def test_without_a_console_a_sweep_says_nothing(write_sweep, capsys):
    from bptrain.sweep.progress import Quiet

    spec = load_sweep(write_sweep(SWEEP))
    runs = plan_runs(spec.trials(), spec.seeds, spec.folds)
    Progress(spec, runs, {}, "plain", Quiet()).update(
        RunResult(number=1, status="done", seconds=2.5, score=0.25)
    )
    assert capsys.readouterr() == ("", "")
