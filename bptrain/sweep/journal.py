"""The sweep journal ``sweep.jsonl``: one JSON object per line, appended, flushed and fsynced
per event, so that after a crash it says exactly which runs finished.

Events (every one has ``event`` and ``time``, seconds since the epoch):

    {"event": "sweep", "version": 1, "fingerprint": ..., "sweep_file": ..., "base_file": ...,
     "max_trials": ..., "overrides": [...], "trials": ..., "runs": ...}   first line, once
    {"event": "resume", "pending": [3, 7]}                      each --resume
    {"event": "start", "run": 3, "name": "03-t01-f1-s0-lr=0.01"}   handed to a worker
                                                  (Dask: submitted to the scheduler)
    {"event": "done", "run": 3, "score": 0.91, "best_epoch": 2, "epochs": 3, "seconds": 4.2,
     "metrics": {...}}                                            metrics at the best epoch
    {"event": "failed", "run": 3, "error": "DivergenceError: ...", "seconds": 1.0}

A run is finished when its last event is ``done``; anything else (failed, started and never
ended, never started) runs again on ``--resume``. Only the sweep's driver process writes.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

from bptrain.errors import ConfigError
from bptrain.runs.atomic import fsync_dir

VERSION = 1
FILENAME = "sweep.jsonl"


def fingerprint(*files: Path) -> str:
    """SHA-256 over the bytes of the given files (the sweep file and its base config), so that
    an edited sweep is recognised on ``--resume``."""
    digest = hashlib.sha256()
    for path in files:
        data = Path(path).read_bytes()
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()


class Journal:
    """Appends events to ``path``; each ``write`` is on disk when it returns."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._file = open(self.path, "a", encoding="utf-8")  # closed in close()

    @classmethod
    def create(cls, path: Path, header: dict) -> Journal:
        """A new journal whose first line is the ``sweep`` header."""
        path = Path(path)
        if path.exists():
            raise ConfigError(f"{path}: a sweep journal already exists here")
        journal = cls(path)
        journal.write({"event": "sweep", "version": VERSION, **header})
        fsync_dir(path.parent)
        return journal

    def write(self, event: dict) -> None:
        line = json.dumps({**event, "time": round(time.time(), 3)}, allow_nan=False)
        self._file.write(line + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read(path: Path) -> list[dict]:
    """All events of a journal. A torn last line (a crash mid-write) is cut off the file so that
    new events start on a line of their own; damage anywhere else is an error."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: no sweep journal here; --resume takes a sweep directory "
            "(runs/sweeps/<name>/<timestamp>)"
        ) from None
    lines = data.split(b"\n")
    events = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        event = _parse(line)
        if number == len(lines):  # no newline after it: a write cut short by a crash
            _repair_tail(path, len(data) - len(line), whole=event is not None)
        elif event is None:
            raise ConfigError(f"{path}:{number}: not a sweep journal event; the file is damaged")
        if event is not None:
            events.append(event)
    if not events or events[0]["event"] != "sweep":
        raise ConfigError(f"{path}: does not start with a sweep header; not a sweep journal")
    if events[0].get("version") != VERSION:
        raise ConfigError(
            f"{path}: journal version {events[0].get('version')!r} is not supported "
            f"(this bptrain writes version {VERSION})"
        )
    return events


def _parse(line: bytes) -> dict | None:
    try:
        event = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return event if isinstance(event, dict) and "event" in event else None


def _repair_tail(path: Path, start: int, whole: bool) -> None:
    """End the file on a newline: finish a whole last event, or cut off a torn one."""
    with open(path, "r+b") as f:
        if whole:
            f.seek(0, os.SEEK_END)
            f.write(b"\n")
        else:
            f.truncate(start)
        f.flush()
        os.fsync(f.fileno())


def last_events(events: list[dict]) -> dict[int, dict]:
    """Run number -> its latest start/done/failed event."""
    out: dict[int, dict] = {}
    for event in events:
        if event["event"] in ("start", "done", "failed"):
            out[event["run"]] = event
    return out


def finished(events: list[dict]) -> dict[int, dict]:
    """Run number -> its ``done`` event, for runs whose latest event is ``done``."""
    return {run: e for run, e in last_events(events).items() if e["event"] == "done"}
