"""The append-only journal: durable events, crash-torn tails, resume state, fingerprints."""

import json

import pytest

from bptrain.errors import ConfigError
from bptrain.sweep import journal


def make(tmp_path):
    log = journal.Journal.create(tmp_path / "sweep.jsonl", {"name": "s", "runs": 3})
    log.write({"event": "start", "run": 0})
    log.write({"event": "start", "run": 1})
    log.write({"event": "done", "run": 0, "score": 0.5})
    log.write({"event": "failed", "run": 1, "error": "boom"})
    log.write({"event": "start", "run": 2})
    log.close()
    return tmp_path / "sweep.jsonl"


def test_events_and_which_runs_finished(tmp_path):
    path = make(tmp_path)
    events = journal.read(path)
    assert events[0]["event"] == "sweep" and events[0]["version"] == journal.VERSION
    assert all("time" in e for e in events)
    assert {n: e["event"] for n, e in journal.last_events(events).items()} == {
        0: "done",
        1: "failed",
        2: "start",
    }
    assert list(journal.finished(events)) == [0]  # failed and unfinished runs run again
    with pytest.raises(ConfigError, match="a sweep journal already exists"):
        journal.Journal.create(path, {})


def test_a_torn_last_line_is_cut_off(tmp_path):
    path = make(tmp_path)
    whole = path.read_bytes()
    path.write_bytes(whole + b'{"event": "done", "ru')
    assert len(journal.read(path)) == 6
    assert path.read_bytes() == whole  # the next event starts on a line of its own
    with journal.Journal(path) as log:
        log.write({"event": "done", "run": 2, "score": 1.0})
    assert journal.finished(journal.read(path))[2]["score"] == 1.0


def test_a_whole_last_event_without_newline_is_kept(tmp_path):
    path = make(tmp_path)
    path.write_bytes(path.read_bytes() + b'{"event": "done", "run": 2, "score": 2.0}')
    assert journal.finished(journal.read(path))[2]["score"] == 2.0
    assert path.read_bytes().endswith(b"}\n")


def test_damage_in_the_middle_is_an_error(tmp_path):
    path = make(tmp_path)
    lines = path.read_bytes().split(b"\n")
    lines[2] = b"garbage"
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(ConfigError, match=r"sweep.jsonl:3: not a sweep journal event"):
        journal.read(path)


def test_not_a_journal(tmp_path):
    with pytest.raises(ConfigError, match="no sweep journal here; --resume takes a sweep dir"):
        journal.read(tmp_path / "sweep.jsonl")
    (tmp_path / "sweep.jsonl").write_text(json.dumps({"event": "start", "run": 0}) + "\n")
    with pytest.raises(ConfigError, match="does not start with a sweep header"):
        journal.read(tmp_path / "sweep.jsonl")


def test_fingerprint_follows_the_bytes(tmp_path):
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("x: 1\n")
    b.write_text("y: 2\n")
    first = journal.fingerprint(a, b)
    assert journal.fingerprint(a, b) == first
    b.write_text("y: 3\n")
    changed = journal.fingerprint(a, b)
    assert changed != first
    # where one file ends counts: "x: 1\ny" + ": 3\n" is not "x: 1\n" + "y: 3\n"
    a.write_text("x: 1\ny")
    b.write_text(": 3\n")
    assert journal.fingerprint(a, b) != changed
