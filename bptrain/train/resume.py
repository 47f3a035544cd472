"""Where a run starts: a fresh run directory, or a run to resume (``--resume``) with its
checkpoint, the config it continues with, and the checks that it may.

Under mpiexec every rank calls these; the leader alone touches files (``world.from_leader``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bptrain.config import Config, resolve_with_overrides
from bptrain.config.yamlio import load_file
from bptrain.errors import CheckpointError, ConfigError
from bptrain.runs import RunDir, checkpoint, new_run_dir, run_dir_of

# Sections a resumed run must share with its checkpoint (training and optimizer may change).
FIXED_ON_RESUME = ("seed", "data", "model", "loss", "metrics")
# Data options that say where files are, not what they hold.
DATA_LOCATION_KEYS = ("root", "download")


@dataclass
class Start:
    """How a run starts: its resolved ``config``; for a resumed run its ``run`` directory
    (made and locked) and, unless it stopped before its first checkpoint, the checkpoint
    (``ckpt``, read from ``ckpt_path``) and the config that checkpoint trained with."""

    config: Config
    run: RunDir | None = None
    ckpt: checkpoint.Checkpoint | None = None
    ckpt_path: Path | None = None
    saved: Config | None = None

    @property
    def recorded_data(self) -> dict | None:
        """What the checkpoint says about its data (see ``load_dataset``)."""
        return self.ckpt.state["data"] if self.ckpt is not None else None


def starting_point(config, overrides: Sequence[str], resume, world) -> Start:
    """The Start of a new run of ``config`` (raw or resolved) with ``overrides``, or, with
    ``resume`` (a run directory or checkpoint), of that run continued."""
    if resume is not None:
        return resumed(resume, config, overrides, world)
    if config is None:
        raise ConfigError("fit needs a config (or a run to resume)")
    return Start(resolve_with_overrides(config, overrides))


def resumed(resume, config, overrides: Sequence[str], world) -> Start:
    """The Start of the run at ``resume``: ``config`` None takes its saved config; one given
    may differ only in ``training`` and ``optimizer`` (``check_resumable``)."""
    run, ckpt_path = world.from_leader(locate_resume, resume)
    # Reading first (checkpoints and config.yaml are replaced atomically, never written in
    # place), so a file that is no checkpoint leaves nothing behind; then the run is made
    # and locked before anything in it changes.
    ckpt = saved = None
    if ckpt_path is not None:
        ckpt = world.from_leader(checkpoint.load, ckpt_path)
        raw = as_saved(ckpt.state["config"])
    else:
        raw = as_saved(world.from_leader(load_file, run.config)[0])
    world.from_leader(run.make)
    world.from_leader(run.lock)
    config = resolve_with_overrides(config if config is not None else raw, overrides)
    if ckpt is not None:  # (the saved config resolved too: it may predate a new option)
        saved = resolve_with_overrides(raw)
        check_resumable(saved, config)
    world.from_leader(run.remove_temporaries)  # of writes cut short by a kill
    return Start(config, run, ckpt, ckpt_path, saved)


# Settings added after runs were saved, with the value that gives such a run's computation.
_ADDED_LATER = {"flush_denormals": False, "second_core": False}


def as_saved(raw):
    """A saved config as its run computed: a run from before ``training.flush_denormals`` (or
    ``training.second_core``) existed trained with IEEE denormals (on one core), and resumes
    (and is scored) so, bit for bit."""
    training = raw.get("training") if isinstance(raw, Mapping) else None
    if not isinstance(training, Mapping):
        return raw
    missing = {k: v for k, v in _ADDED_LATER.items() if k not in training}
    return {**raw, "training": {**training, **missing}} if missing else raw


def open_fresh(world, run_dir, runs_root, name: str) -> RunDir:
    """A new run directory (``run_dir``, else under ``runs_root``), made and locked."""
    run = world.from_leader(fresh_run_dir, run_dir, runs_root, name)
    world.from_leader(run.lock)
    world.from_leader(run.remove_temporaries)  # a --run-dir killed before its config.yaml
    return run


def locate_resume(resume) -> tuple[RunDir, Path | None]:
    """(run, checkpoint or None) for a ``--resume`` argument: a run directory or a file. The
    run directory is not created or changed here (``RunDir.make`` does that)."""
    path = Path(resume)
    if path.is_dir():
        run = RunDir(path)
        if run.last.exists():
            return run, run.last
        if run.config.exists():
            return run, None  # stopped before the first checkpoint: start over here
        raise CheckpointError(
            f"{path} is not a run directory: it has neither checkpoints/last.safetensors nor "
            "config.yaml"
        )
    if path.is_file():
        return run_dir_of(path), path
    raise CheckpointError(f"{path}: no such run directory or checkpoint")


def fresh_run_dir(run_dir, runs_root, name: str) -> RunDir:
    if run_dir is None:
        return new_run_dir(runs_root, name)
    run = RunDir(Path(run_dir))
    if run.last.exists() or run.config.exists():
        raise ConfigError(
            f"--run-dir {run.path} already holds a run; continue it with --resume {run.path} "
            "or choose another directory"
        )
    return run.make()


def check_resumable(saved: Config, config: Config) -> None:
    """A resumed run may change training and optimizer settings, not what is trained."""
    for section in FIXED_ON_RESUME:
        old, new = getattr(saved, section), getattr(config, section)
        if section == "data":
            old = {k: v for k, v in old.items() if k not in DATA_LOCATION_KEYS}
            new = {k: v for k, v in new.items() if k not in DATA_LOCATION_KEYS}
        if old != new:
            raise ConfigError(
                f"{section}: differs from the checkpoint's; a resumed run may change only "
                "training and optimizer settings (start a new run for a different "
                f"{section})"
            )
