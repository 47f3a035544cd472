"""``bptrain sweep`` end to end through the real command line, on local processes."""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from bptrain.cli import main
from bptrain.runs import metrics_log

BPTRAIN = Path(sys.executable).with_name("bptrain")

GRID = """\
base: base.yaml
metric: val_accuracy
grid:
  optimizer.lr: [0.003, 0.03]
  model.layers.0.units: [4, 8]
cv: {folds: 2}
seeds: [0, 1]
"""


def bptrain(*args, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BPTRAIN), *map(str, args)],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def sweep_dir_of(cwd: Path, name: str = "sweep") -> Path:
    (found,) = (cwd / "runs" / "sweeps" / name).iterdir()
    return found


def events(sweep_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (sweep_dir / "sweep.jsonl").read_text().splitlines()]


def leaderboard(sweep_dir: Path) -> list[dict]:
    with open(sweep_dir / "leaderboard.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_grid_with_folds_and_seeds_on_two_workers(tmp_path, write_sweep):
    write_sweep(GRID)
    proc = bptrain("sweep", "sweep.yaml", "--workers", "2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "4 trials x 2 seeds x 2 folds = 16 runs" in out
    assert "running 16 runs on 2 local processes" in out
    sweep_dir = sweep_dir_of(tmp_path)

    # every run is a normal run directory, its config the trial's values, seed and fold
    runs = sorted(p for p in sweep_dir.iterdir() if (p / "config.yaml").exists())
    assert len(runs) == 16
    scores: dict[int, list[float]] = {}
    for number, run in enumerate(runs):
        trial, seed, fold = number // 4, number // 2 % 2, number % 2
        assert run.name.startswith(f"{number:02d}-t{trial}-f{fold}-s{seed}-lr=")
        config = run / "config.yaml"
        text = config.read_text()
        assert f"seed: {seed}\n" in text and f"  fold: {fold}\n" in text
        rows = metrics_log.read(run / "metrics.csv")
        assert len(rows) == 2 and (run / "checkpoints" / "last.safetensors").exists()
        scores.setdefault(trial, []).append(max(r["val_accuracy"] for r in rows))

    # the leaderboard agrees with the runs' own metrics.csv
    board = leaderboard(sweep_dir)
    assert [int(r["trial"]) for r in board] == sorted(scores, key=lambda t: -sum(scores[t]) / 4)
    lrs = {0: "0.003", 1: "0.003", 2: "0.03", 3: "0.03"}
    for row in board:
        trial = int(row["trial"])
        values = scores[trial]
        mean = sum(values) / 4
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / 3)
        assert float(row["val_accuracy_mean"]) == pytest.approx(mean, rel=1e-12)
        assert float(row["val_accuracy_std"]) == pytest.approx(std, rel=1e-12, abs=1e-15)
        assert row["runs"] == "4" and row["failed"] == "0" and row["epochs"] == "2.0"
        assert row["optimizer.lr"] == lrs[trial]
        assert row["model.layers.0.units"] == ("4" if trial % 2 == 0 else "8")

    log = events(sweep_dir)
    assert log[0]["event"] == "sweep" and log[0]["runs"] == 16
    assert sorted(e["run"] for e in log if e["event"] == "start") == list(range(16))
    assert sorted(e["run"] for e in log if e["event"] == "done") == list(range(16))
    assert (sweep_dir / "leaderboard.md").read_text().count("| 4/4 |") == 4
    assert {p.name for p in (sweep_dir / "plots").iterdir()} == {
        "lr.png",
        "units.png",
        "top_trials.png",
    }
    best = board[0]
    assert f"best: trial {best['trial']}, val_accuracy" in out
    retrain = (
        f"bptrain fit base.yaml optimizer.lr={best['optimizer.lr']} "
        f"model.layers.0.units={best['model.layers.0.units']}"
    )
    assert out.rstrip().endswith(retrain)
    assert out.count("\n[") == 16  # one plain line per run when not a terminal


def test_a_dying_run_fails_alone_and_resume_runs_only_it(tmp_path, write_sweep):
    write_sweep(GRID.replace("  model.layers.0.units: [4, 8]\n", ""))
    proc = bptrain(
        "sweep", "sweep.yaml", "--workers", "2", cwd=tmp_path, env={"BPTRAIN_SWEEP_TEST_DIE": "3-*"}
    )
    assert proc.returncode == 0, proc.stderr
    sweep_dir = sweep_dir_of(tmp_path)
    log = events(sweep_dir)
    (death,) = [e for e in log if e["event"] == "failed"]
    assert death["run"] == 3
    assert death["error"] == "worker process died: exited with code 70 before reporting a result"
    assert sorted(e["run"] for e in log if e["event"] == "done") == [0, 1, 2, 4, 5, 6, 7]
    board = {r["trial"]: r for r in leaderboard(sweep_dir)}
    assert (board["0"]["runs"], board["0"]["failed"]) == ("3", "1")
    assert "worker process died" in (sweep_dir / "leaderboard.md").read_text()
    finished = {p: (p / "metrics.csv").stat().st_mtime_ns for p in sweep_dir.glob("[0-7]-*")}
    assert len(finished) == 7

    proc = bptrain("sweep", "--resume", sweep_dir, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "7 of 8 runs finished, 1 to run" in proc.stdout
    new = events(sweep_dir)[len(log) :]
    assert [(e["event"], e.get("run")) for e in new] == [
        ("resume", None),
        ("start", 3),
        ("done", 3),
    ]
    assert {p: (p / "metrics.csv").stat().st_mtime_ns for p in finished} == finished
    board = {r["trial"]: r for r in leaderboard(sweep_dir)}
    assert (board["0"]["runs"], board["0"]["failed"]) == ("4", "0")

    proc = bptrain("sweep", "--resume", sweep_dir, cwd=tmp_path)  # nothing left to do
    assert proc.returncode == 0 and "8 of 8 runs finished, 0 to run" in proc.stdout


def test_diverging_and_raising_runs_are_failures_and_all_failed_exits_1(tmp_path, write_sweep):
    write_sweep(GRID.replace("[0.003, 0.03]", "[0.03, 1.0e+30]").replace("[4, 8]", "[4]"))
    proc = bptrain("sweep", "sweep.yaml", "--workers", "2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    board = {r["trial"]: r for r in leaderboard(sweep_dir_of(tmp_path))}
    assert board["1"]["failed"] == "4" and board["1"]["val_accuracy_mean"] == ""
    assert board["0"]["runs"] == "4"
    assert proc.stdout.count("FAILED: DivergenceError: training diverged") == 4

    # runs that raise (a model that does not fit the data, found only once data is loaded)
    # and nothing else: exit status 1
    write_sweep(
        "base: base.yaml\nmetric: val_accuracy\ngrid: {model.layers.1.units: [5]}\n"
        "cv: {folds: 2}\n",
        name="s2.yaml",
    )
    proc = bptrain("sweep", "s2.yaml", "--workers", "2", cwd=tmp_path)
    assert proc.returncode == 1
    assert "every run failed" in proc.stderr
    assert proc.stdout.count("FAILED: ConfigError: model.layers[1]: the model outputs 5") == 2


def test_a_changed_sweep_is_refused_on_resume(tmp_path, write_sweep, capsys):
    path = write_sweep("base: base.yaml\nmetric: loss\n")
    assert run_main("sweep", str(path), "--runs-root", str(tmp_path / "runs")) == 0
    sweep_dir = sweep_dir_of(tmp_path)
    assert events(sweep_dir)[-1]["event"] == "done"
    capsys.readouterr()
    path.write_text(path.read_text() + "seeds: [1]\n")
    assert run_main("sweep", "--resume", str(sweep_dir)) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path} or its base {tmp_path / 'base.yaml'} changed since")
    assert err.count("\n") == 1
    assert run_main("sweep", "--resume", str(sweep_dir), "--max-trials", "2") == 2
    assert "--max-trials is fixed when a sweep starts" in capsys.readouterr().err
    assert run_main("sweep", "--resume", str(sweep_dir), "training.epochs=1") == 2
    assert capsys.readouterr().err == (
        f"error: the sweep in {sweep_dir} started without overrides; --resume cannot add any "
        "(start a new sweep with them)\n"
    )


def run_main(*args) -> int:
    with pytest.raises(SystemExit) as exit_:
        main(list(args))
    return exit_.value.code


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            GRID.replace("model.layers.0.units", "model.layer.0.units"),
            "sweep.yaml:5: grid.model.layer.0.units: not a key of the base config base.yaml; "
            "did you mean 'model.layers.0.units'?",
        ),
        (
            GRID + "random:\n  trials: 2\n  space:\n    optimizer.lr: {log_uniform: [1, 2]}\n",
            "sweep.yaml:11: random.space.optimizer.lr: unknown distribution 'log_uniform'; "
            "did you mean 'loguniform'?",
        ),
        (
            GRID.replace("metric: val_accuracy", "metric: val_acc"),
            "sweep.yaml:2: metric: unknown metric 'val_acc'; did you mean 'val_accuracy'?",
        ),
    ],
)
def test_invalid_sweep_files_are_one_line_errors_with_exit_2(
    tmp_path, write_sweep, capsys, monkeypatch, text, message
):
    monkeypatch.chdir(tmp_path)
    write_sweep(text)
    assert run_main("sweep", "sweep.yaml") == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {message}") and err.count("\n") == 1
    assert not (tmp_path / "runs").exists()


def test_dry_run_lists_trials_and_starts_nothing(tmp_path, write_sweep, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_sweep(GRID)
    assert run_main("sweep", "sweep.yaml", "--dry-run", "--max-trials", "3") == 0
    out = capsys.readouterr().out
    assert "3 trials x 2 seeds x 2 folds = 12 runs" in out
    assert "  trial 2: optimizer.lr=0.03 model.layers.0.units=4\n" in out
    assert "dry run: nothing started" in out
    assert not (tmp_path / "runs").exists()


def test_device_applies_to_every_run(tmp_path, write_sweep, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_sweep(GRID)
    assert run_main("sweep", "sweep.yaml", "--device", "gpu", "--dry-run") == 0
    assert "  overrides: training.device=gpu\n" in capsys.readouterr().out
    monkeypatch.setitem(sys.modules, "cupy", None)  # import cupy fails: one line, no runs
    assert run_main("sweep", "sweep.yaml", "--device", "gpu") == 1
    err = capsys.readouterr().err
    assert err.startswith("error: training.device: gpu needs CuPy") and err.count("\n") == 1
    assert not (tmp_path / "runs").exists()


def test_usage_errors(tmp_path, write_sweep, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run_main("sweep") == 2
    assert "missing SWEEP" in capsys.readouterr().err
    write_sweep(GRID)
    assert run_main("sweep", "sweep.yaml", "--address", "tcp://127.0.0.1:1") == 2
    assert "--address needs --executor dask" in capsys.readouterr().err
    assert run_main("sweep", "sweep.yaml", "--workers", "0") == 2


def test_dask_missing_says_how_to_install(tmp_path, write_sweep, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    write_sweep(GRID)
    assert run_main("sweep", "sweep.yaml", "--executor", "dask") == 1
    err = capsys.readouterr().err
    assert err == (
        "error: the dask executor needs Dask's distributed scheduler: pip install bptrain[dask]\n"
    )
    assert not (tmp_path / "runs").exists()


def test_ctrl_c_then_resume_gives_the_uninterrupted_results(tmp_path, write_sweep):
    """Runs stopped mid-training continue from their checkpoints on --resume, and the sweep
    ends with exactly the numbers of a sweep that was never interrupted."""
    long = GRID.replace("  model.layers.0.units: [4, 8]\n", "  training.epochs: [400]\n")
    write_sweep(long.replace("seeds: [0, 1]", "seeds: [0]") + "name: long\n")
    args = ("sweep", "sweep.yaml", "--workers", "2")
    proc = bptrain(*args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    (whole,) = (tmp_path / "runs" / "sweeps" / "long").iterdir()

    # Ctrl-C in a terminal: SIGINT to the driver and its workers alike
    driver = subprocess.Popen(
        [str(BPTRAIN), *args, "--runs-root", "again"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not any(len(_rows(p)) >= 5 for p in tmp_path.glob("again/sweeps/long/*/*-t*")):
            assert time.monotonic() < deadline and driver.poll() is None
            time.sleep(0.02)
        os.killpg(driver.pid, signal.SIGINT)
        out, err = driver.communicate(timeout=60)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    assert driver.returncode == 130, err
    assert "stopped; continue with: bptrain sweep --resume" in err
    (cut,) = (tmp_path / "again" / "sweeps" / "long").iterdir()
    log = events(cut)
    unfinished = {e["run"] for e in log if e["event"] == "start"} - {
        e["run"] for e in log if e["event"] == "done"
    }
    assert unfinished  # stopped mid-way, with a checkpoint to continue from
    # at least one was mid-training (another may not have reached its first step under load)
    assert any((cut / r / "checkpoints").is_dir() for r in _names(cut, unfinished))

    proc = bptrain("sweep", "--resume", cut, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    columns = ("trial", "val_accuracy_mean", "val_accuracy_std", "epochs", "best_epoch")
    assert [[r[c] for c in columns] for r in leaderboard(cut)] == [
        [r[c] for c in columns] for r in leaderboard(whole)
    ]
    for run in whole.glob("*-t*"):
        assert (cut / run.name / "metrics.csv").read_text().splitlines() == (
            (run / "metrics.csv").read_text().splitlines()
        )


def _rows(run_dir: Path) -> list[str]:
    try:
        return (run_dir / "metrics.csv").read_text().splitlines()[1:]
    except FileNotFoundError:
        return []


def _names(sweep_dir: Path, numbers) -> list[str]:
    return [e["name"] for e in events(sweep_dir) if e["event"] == "start" and e["run"] in numbers]


ONE_RUN_EACH = """\
base: base.yaml
metric: loss
fixed: {training.batch_size: 16}
grid:
  optimizer.learning_rate: [0.01, 0.02]
"""


def test_overrides_apply_to_every_trial_and_one_run_shows_no_spread(
    tmp_path, write_sweep, capsys, monkeypatch
):
    """KEY=VALUE after the sweep file changes the base config of every trial, as with fit (the
    command line wins over the sweep's fixed values); a trial of one run has no spread."""
    monkeypatch.chdir(tmp_path)
    write_sweep(ONE_RUN_EACH)
    overrides = ["training.epochs=1", "training.batch_size=64", "optimizer.beta_1=0.8"]
    assert run_main("sweep", "sweep.yaml", *overrides, "--workers", "1", "--progress", "plain") == 0
    out = capsys.readouterr().out
    assert "  overrides: training.epochs=1 training.batch_size=64 optimizer.beta_1=0.8\n" in out
    sweep_dir = sweep_dir_of(tmp_path)
    runs = sorted(p for p in sweep_dir.iterdir() if (p / "config.yaml").exists())
    assert len(runs) == 2
    for run, rate in zip(runs, [0.01, 0.02], strict=True):
        config = yaml.safe_load((run / "config.yaml").read_text())
        assert config["training"]["epochs"] == 1 and config["training"]["batch_size"] == 64
        assert config["optimizer"]["beta_1"] == 0.8
        assert config["optimizer"]["learning_rate"] == rate
        assert len(metrics_log.read(run / "metrics.csv")) == 1
    assert "±" not in out and "(1/1 runs)" in out
    assert "over 1 run\n" in out
    assert [r["loss_std"] for r in leaderboard(sweep_dir)] == ["", ""]
    assert "±" not in (sweep_dir / "leaderboard.md").read_text()
    assert events(sweep_dir)[0]["overrides"] == overrides

    # --resume takes the overrides from the journal; different ones are refused
    assert run_main("sweep", "--resume", str(sweep_dir)) == 0
    assert "2 of 2 runs finished, 0 to run" in capsys.readouterr().out
    assert run_main("sweep", "--resume", str(sweep_dir), *overrides) == 0
    assert run_main("sweep", "--resume", str(sweep_dir), "training.epochs=2") == 2
    err = capsys.readouterr().err
    assert err == (
        f"error: the sweep in {sweep_dir} started with the overrides training.epochs=1 "
        "training.batch_size=64 optimizer.beta_1=0.8; --resume uses those: give them again, "
        "or none\n"
    )


@pytest.mark.parametrize(
    ("extra", "override", "message"),
    [
        (
            "",
            "optimizer.lr=0.1",
            "override optimizer.lr=0.1: sweep.yaml:5: grid.optimizer.learning_rate sets it for "
            "each trial; change it there",
        ),
        (
            "seeds: [0, 1]\n",
            "seed=3",
            "override seed=3: sweep.yaml:6: seeds sets it for each run; change it there",
        ),
        (
            "cv: {folds: 2}\n",
            "data.validation_split=0.3",
            "override data.validation_split=0.3: sweep.yaml:6: cv sets it for each run "
            "(the fold is the validation set); change it there",
        ),
        ("", "training.epochs", "override 'training.epochs': expected key.path=value"),
        ("", "training.epoch=3", "training.epoch: unknown key; did you mean 'epochs'?"),
    ],
)
def test_overrides_the_sweep_sets_itself_are_refused(
    tmp_path, write_sweep, capsys, monkeypatch, extra, override, message
):
    monkeypatch.chdir(tmp_path)
    write_sweep(ONE_RUN_EACH + extra)
    assert run_main("sweep", "sweep.yaml", override, "--dry-run") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "runs").exists()
