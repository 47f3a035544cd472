"""``bptrain sweep``: plan the runs, execute them, journal every event, rank the trials.

Words: a *trial* is one parameter set; a *run* is one trial trained on one fold with one seed,
in its own run directory. The leaderboard ranks trials by the mean score of their runs.

The sweep directory ``runs/sweeps/<name>/<YYYYmmdd-HHMMSS>/`` holds ``sweep.jsonl`` (the
journal), copies of the sweep file and base config as given, one run directory per run,
``leaderboard.csv``, ``leaderboard.md`` and ``plots/``.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import shutil
import signal
import threading
from dataclasses import dataclass, field
from pathlib import Path

from bptrain.errors import ConfigError
from bptrain.runs.rundir import timestamped_dir
from bptrain.sweep import journal, leaderboard, plots
from bptrain.sweep.executors import make_executor
from bptrain.sweep.plan import Run, plan_runs
from bptrain.sweep.progress import Progress, Quiet, SweepReporter
from bptrain.sweep.space import Params, format_value
from bptrain.sweep.spec import SweepSpec, load_sweep
from bptrain.sweep.worker import RunTask
from bptrain.train.threads import usable_cores

TEST_DIE_ENV = "BPTRAIN_SWEEP_TEST_DIE"  # test hook, see bptrain.sweep.worker
EXIT_ALL_FAILED = 1


@dataclass
class SweepOptions:
    """The command line's choices. ``workers``: local processes, or the workers of a local
    Dask cluster (default: one per core, at most one per run)."""

    workers: int | None = None
    executor: str = "local"
    address: str | None = None
    max_trials: int | None = None
    dry_run: bool = False
    runs_root: Path = field(default_factory=lambda: Path("runs"))
    progress: str = "auto"  # "auto", "bar", "plain" or "none"
    out: SweepReporter = field(default_factory=Quiet)  # where the plan and results go


def run_sweep(
    sweep_file: str | os.PathLike | None, options: SweepOptions, resume=None, overrides=()
) -> int:
    """Run (or with ``resume``, a sweep directory, continue) a sweep; returns the exit code:
    0, 1 when every run failed, 128 + N when stopped by signal N (130: Ctrl-C).
    ``overrides``: ``key.path=value`` changes to the base config of every trial."""
    overrides = list(overrides)
    if resume is not None:
        return _resume(Path(resume), sweep_file, options, overrides)
    if sweep_file is None:
        raise ConfigError("give a sweep file, or --resume SWEEP_DIR")
    if options.max_trials is not None and options.max_trials < 1:
        raise ConfigError(f"--max-trials must be at least 1, got {options.max_trials}")
    spec = load_sweep(sweep_file, overrides)
    trials = spec.trials(options.max_trials)
    runs = plan_runs(trials, spec.seeds, spec.folds)
    _print_plan(spec, trials, runs, options.out)
    if options.dry_run:
        options.out.line("dry run: nothing started")
        return 0
    executor, threads = _executor(options, len(runs))  # fails before anything is written
    with contextlib.closing(executor):
        sweep_dir = timestamped_dir(options.runs_root / "sweeps" / spec.name)
        return _start(spec, trials, runs, sweep_dir, executor, threads, options)


def _start(spec, trials, runs, sweep_dir: Path, executor, threads: int, options) -> int:
    shutil.copyfile(spec.path, sweep_dir / "sweep.yaml")
    shutil.copyfile(spec.base_path, sweep_dir / "base.yaml")
    header = {
        "name": spec.name,
        "sweep_file": str(spec.path.resolve()),
        "base_file": str(spec.base_path.resolve()),
        "fingerprint": journal.fingerprint(spec.path, spec.base_path),
        "max_trials": options.max_trials,
        "overrides": spec.overrides,
        "trials": len(trials),
        "runs": len(runs),
    }
    with journal.Journal.create(sweep_dir / journal.FILENAME, header) as log:
        tasks = _tasks(spec, trials, runs, sweep_dir, threads, resumable=set())
        return _execute(spec, trials, runs, {}, tasks, sweep_dir, log, executor, options)


def _resume(sweep_dir: Path, sweep_file, options: SweepOptions, overrides: list[str]) -> int:
    if options.max_trials is not None:
        raise ConfigError("--max-trials is fixed when a sweep starts; it cannot change on --resume")
    events = journal.read(sweep_dir / journal.FILENAME)
    header = events[0]
    started = header.get("overrides", [])
    if overrides and overrides != started:
        if not started:
            raise ConfigError(
                f"the sweep in {sweep_dir} started without overrides; --resume cannot add any "
                "(start a new sweep with them)"
            )
        raise ConfigError(
            f"the sweep in {sweep_dir} started with the overrides {' '.join(started)}; --resume "
            "uses those: give them again, or none"
        )
    path = Path(sweep_file) if sweep_file is not None else Path(header["sweep_file"])
    spec = load_sweep(path, started)
    if journal.fingerprint(spec.path, spec.base_path) != header["fingerprint"]:
        raise ConfigError(
            f"{path} or its base {spec.base_path} changed since the sweep in {sweep_dir} "
            "started; resuming would mix different trials (restore the files, or start a new "
            "sweep)"
        )
    trials = spec.trials(header["max_trials"])
    runs = plan_runs(trials, spec.seeds, spec.folds)
    if len(runs) != header["runs"]:
        raise ConfigError(
            f"{sweep_dir}: the journal has {header['runs']} runs, the plan {len(runs)}"
        )
    done = journal.finished(events)
    pending = [r for r in runs if r.number not in done]
    out = options.out
    out.line(
        f"resuming {sweep_dir}: {len(done)} of {len(runs)} runs finished, {len(pending)} to run"
    )
    if options.dry_run:
        for run in pending:
            out.line(f"  {run.name}")
        out.line("dry run: nothing started")
        return 0
    if not pending:
        return _finish(spec, trials, runs, done, sweep_dir, None, out)
    executor, threads = _executor(options, len(pending))
    with contextlib.closing(executor), journal.Journal(sweep_dir / journal.FILENAME) as log:
        log.write({"event": "resume", "pending": [r.number for r in pending]})
        resumable = set()
        for run in pending:
            run_dir = sweep_dir / run.name
            if (run_dir / "config.yaml").exists():  # continue from its last checkpoint, if any
                (run_dir / "error.txt").unlink(missing_ok=True)
                resumable.add(run.number)
            else:  # nothing of use: died before writing its config
                shutil.rmtree(run_dir, ignore_errors=True)
        tasks = _tasks(spec, trials, pending, sweep_dir, threads, resumable)
        return _execute(spec, trials, runs, done, tasks, sweep_dir, log, executor, options)


def _executor(options: SweepOptions, n_runs: int):
    """(executor, BLAS threads per run). Local: workers x threads <= cores. Dask: one thread
    per run (the cluster's own layout of workers and threads spreads runs over the cores)."""
    if options.workers is not None and options.workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {options.workers}")
    n_cores = usable_cores()
    workers = options.workers or min(n_cores, max(1, n_runs))
    threads = max(1, n_cores // workers) if options.executor == "local" else 1
    return make_executor(options.executor, workers, options.address), threads


def _tasks(spec, trials, runs: list[Run], sweep_dir: Path, threads: int, resumable) -> list:
    die = os.environ.get(TEST_DIE_ENV)
    return [
        RunTask(
            number=run.number,
            name=run.name,
            config=spec.run_config(trials[run.trial], run.seed, run.fold, threads),
            run_dir=str((sweep_dir / run.name).resolve()),
            metric=spec.metric,
            mode=spec.mode,
            resume=run.number in resumable,
            die=bool(die) and fnmatch.fnmatch(run.name, die),
        )
        for run in runs
    ]


def _execute(
    spec: SweepSpec,
    trials: list[Params],
    runs: list[Run],
    done: dict[int, dict],
    tasks: list[RunTask],
    sweep_dir: Path,
    log: journal.Journal,
    executor,
    options: SweepOptions,
) -> int:
    """Run ``tasks``, journaling each start and result; then the leaderboard and plots."""
    out = options.out
    out.line(f"sweep directory: {sweep_dir}")
    threads = tasks[0].config["training"]["threads"]
    blas = _count(threads, "BLAS thread")
    out.line(f"running {_count(len(tasks), 'run')} on {executor.description}, {blas} each")
    results = dict(done)  # run number -> its done or failed event
    board = Progress(spec, runs, results, options.progress, out)
    stopped = None
    try:
        stream = executor.run(tasks, lambda t: log.write(_start_event(t)))
        with _terminate_as_interrupt(), contextlib.closing(stream):
            for result in stream:
                event = result.event()
                log.write(event)
                results[result.number] = event
                board.update(result)
    except KeyboardInterrupt as exc:
        stopped = getattr(exc, "signum", signal.SIGINT)
    finally:
        board.close()
    return _finish(spec, trials, runs, results, sweep_dir, stopped, out)


@contextlib.contextmanager
def _terminate_as_interrupt():
    """SIGTERM stops the sweep like Ctrl-C does (the runs checkpoint and stop), in the main
    thread; the KeyboardInterrupt carries the signal number."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        exc = KeyboardInterrupt()
        exc.signum = signum
        raise exc

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _finish(
    spec, trials, runs, results: dict, sweep_dir: Path, stopped: int | None, out: SweepReporter
) -> int:
    """Write the leaderboard and plots, report the ranking; the exit status (128 + the signal
    number when ``stopped`` by one)."""
    ranked = leaderboard.summarize(spec, trials, runs, results)
    leaderboard.write(spec, ranked, sweep_dir)
    plots.plot_sweep(spec, ranked, runs, results, sweep_dir)
    _print_results(spec, trials, ranked, sweep_dir, out)
    if stopped is not None:
        name = signal.Signals(stopped).name
        out.error(f"{name}: stopped; continue with: bptrain sweep --resume {sweep_dir}")
        return 128 + stopped
    if not any(e["event"] == "done" for e in results.values()):
        out.error(f"every run failed; see {sweep_dir / 'leaderboard.md'}")
        return EXIT_ALL_FAILED
    return 0


def _start_event(task: RunTask) -> dict:
    return {"event": "start", "run": task.number, "name": task.name}


# -- output -----------------------------------------------------------------------------------
def _print_plan(spec: SweepSpec, trials: list[Params], runs: list[Run], out) -> None:
    parts = [_count(len(trials), "trial"), _count(len(spec.seeds), "seed")]
    if spec.folds:
        parts.append(_count(spec.folds, "fold"))
    out.line(
        f"sweep {spec.name}: {' x '.join(parts)} = {len(runs)} runs; "
        f"ranking by {spec.metric} ({spec.mode})"
    )
    if spec.overrides:
        out.line(f"  overrides: {' '.join(spec.overrides)}")
    for t, params in enumerate(trials):
        values = " ".join(f"{k}={format_value(v)}" for k, v in params.items()) or "(base config)"
        out.line(f"  trial {t}: {values}")


def _count(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _print_results(spec, trials, ranked, sweep_dir: Path, out) -> None:
    out.line(f"\nleaderboard ({sweep_dir / 'leaderboard.md'}):")
    for rank, s in enumerate(ranked[:10], 1):
        score = leaderboard.format_score(s) if s.mean is not None else s.status
        values = " ".join(f"{k}={format_value(v)}" for k, v in trials[s.trial].items())
        runs = f"{len(s.scores)}/{s.runs} runs"
        out.line(f"  {rank:>2}. trial {s.trial}: {spec.metric} {score} ({runs})  {values}")
    if len(ranked) > 10:
        out.line(f"  ... {len(ranked) - 10} more in leaderboard.md")
    best = ranked[0]
    if best.mean is None:
        return
    out.line(
        f"\nbest: trial {best.trial}, {spec.metric} {leaderboard.format_score(best)} over "
        f"{_count(len(best.scores), 'run')}"
    )
    command, notes = leaderboard.retrain(spec, trials[best.trial])
    out.line("retrain it on the full training set:")
    out.line(f"  {command}")
    for note in notes:
        out.line(f"  ({note})")
