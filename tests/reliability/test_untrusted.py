"""Untrusted files never run code and never make bptrain write outside a run directory:
checkpoints holding pickles, configs with YAML Python tags, run names and symbolic links that
lead elsewhere are refused with one line, through the real command line."""

from __future__ import annotations

import io
import json
import os
import pickle
import shutil
import struct
import zipfile

import numpy as np
import pytest

from bptrain.runs import checkpoint
from tests.reliability.conftest import TINY, bptrain


class Payload:
    """Unpickling this runs ``touch PWNED`` in the working directory."""

    def __reduce__(self):
        return os.system, ("touch PWNED",)


def pickle_files(tmp_path) -> dict[str, bytes]:
    """Files that hold the payload as a bare pickle, a .pt-style zip and an .npz object array."""
    raw = pickle.dumps(Payload(), protocol=4)
    pt = io.BytesIO()
    with zipfile.ZipFile(pt, "w") as z:
        z.writestr("archive/data.pkl", raw)
    npz = io.BytesIO()
    np.savez(npz, x=np.array([Payload()], dtype=object))
    return {
        "model.pkl": raw,
        "model.safetensors": raw,
        "model.pt": pt.getvalue(),
        "weights.npz": npz.getvalue(),
    }


@pytest.fixture(scope="module")
def trained_once(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("trained")
    (cwd / "tiny.yaml").write_text(TINY.replace("epochs: 4", "epochs: 1"))
    done = bptrain("fit", "tiny.yaml", "--run-dir", "run", "--progress", "none", cwd=cwd)
    assert done.returncode == 0, done.stderr
    return cwd / "run"


@pytest.fixture
def trained(tmp_path, trained_once):
    """A fresh copy of a one-epoch run directory."""
    shutil.copytree(trained_once, tmp_path / "run")
    return tmp_path / "run"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", ["model.pkl", "model.safetensors", "model.pt", "weights.npz"])
def test_a_pickle_checkpoint_is_refused_and_never_unpickled(tmp_path, name):
    path = tmp_path / "downloads" / name
    path.parent.mkdir()
    path.write_bytes(pickle_files(tmp_path)[name])
    (tmp_path / "x.csv").write_text("0.1,0.2\n")
    commands = [("eval", path)]
    if name == "model.pt":  # every command reads checkpoints through the same function
        commands += [("predict", path, "x.csv"), ("fit", "--resume", path)]
    for args in commands:
        refused = bptrain(*args, cwd=tmp_path)
        assert refused.returncode == 1, refused.stderr
        assert refused.stderr.startswith(f"error: {path} is not a bptrain checkpoint")
        assert refused.stderr.endswith("never unpickles a file\n")
        assert refused.stderr.count("\n") == 1
    assert not (tmp_path / "PWNED").exists()


def _edit_header(path, edit) -> None:
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    edit(header)
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data[8 + n :])


@pytest.mark.timeout(60)
def test_a_checkpoint_header_edited_to_carry_a_pickle_is_refused(trained):
    """The state is JSON, never unpickled; an edited header fails the SHA-256 check, and a
    tensor declared with a Python-object dtype is not safetensors at all."""
    last = trained / "checkpoints" / "last.safetensors"
    original = last.read_bytes()
    blob = pickle.dumps(Payload()).hex()

    def swap_state(header):
        header["__metadata__"]["state"] = json.dumps({"pickle": blob})

    _edit_header(last, swap_state)
    refused = bptrain("eval", last, cwd=trained.parent)
    assert refused.returncode == 1
    assert refused.stderr.startswith(f"error: {last} fails its SHA-256 check")

    last.write_bytes(original)

    def object_dtype(header):
        name = next(k for k in header if k != "__metadata__")
        header[name]["dtype"] = "O"

    _edit_header(last, object_dtype)
    refused = bptrain("fit", "--resume", trained, cwd=trained.parent)
    assert refused.returncode == 1
    assert refused.stderr.startswith(f"error: {last} is corrupt")
    assert refused.stderr.count("\n") == 1
    assert not (trained.parent / "PWNED").exists()


TAGS = [
    "!!python/object/apply:os.system ['touch PWNED']",
    "!!python/object/new:os.system ['touch PWNED']",
    "!!python/name:os.system",
    "!!python/module:os",
    "!!python/object:bptrain.errors.ConfigError {}",
]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("tag", TAGS)
def test_yaml_python_tags_are_refused(tmp_path, tag):
    (tmp_path / "evil.yaml").write_text(TINY.replace("name: tiny", f"name: {tag}"))
    refused = bptrain("fit", "evil.yaml", cwd=tmp_path)
    assert refused.returncode == 2
    assert refused.stderr.startswith("error: evil.yaml:1: invalid YAML: could not determine")
    assert refused.stderr.endswith("only plain YAML is allowed (no Python tags)\n")
    assert refused.stderr.count("\n") == 1
    assert not (tmp_path / "PWNED").exists() and not (tmp_path / "runs").exists()


@pytest.mark.timeout(60)
def test_python_tags_in_overrides_and_sweep_files_are_refused(tmp_path):
    (tmp_path / "tiny.yaml").write_text(TINY)
    refused = bptrain("fit", "tiny.yaml", "name=!!python/object/apply:os.system [ls]", cwd=tmp_path)
    assert refused.returncode == 2
    assert "no Python tags" in refused.stderr and refused.stderr.count("\n") == 1
    (tmp_path / "sweep.yaml").write_text(
        "base: tiny.yaml\nmetric: !!python/object/apply:os.system ['touch PWNED']\n"
    )
    refused = bptrain("sweep", "sweep.yaml", cwd=tmp_path)
    assert refused.returncode == 2
    assert "no Python tags" in refused.stderr and refused.stderr.count("\n") == 1
    assert not (tmp_path / "PWNED").exists() and not (tmp_path / "runs").exists()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", ["../../x", "/tmp/x", "a/../../x", ".hidden", "..", "~root"])
def test_a_run_name_cannot_leave_the_runs_directory(tmp_path, name):
    (tmp_path / "tiny.yaml").write_text(TINY)
    for args in (("tiny.yaml", f"name={name}"),):
        refused = bptrain("fit", *args, cwd=tmp_path)
        assert refused.returncode == 2
        assert refused.stderr.startswith("error: override name=")
        assert "expected a run name of letters, digits" in refused.stderr
    (tmp_path / "named.yaml").write_text(TINY.replace("name: tiny", f"name: {json.dumps(name)}"))
    refused = bptrain("fit", "named.yaml", cwd=tmp_path)
    assert refused.returncode == 2
    assert refused.stderr.startswith("error: named.yaml:1: name: expected a run name")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["named.yaml", "tiny.yaml"]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("entry", ["metrics.csv", "config.yaml", "checkpoints", "plots"])
def test_a_symbolic_link_in_a_run_directory_is_refused(trained, entry):
    """A run directory from elsewhere whose files link out of it: resuming must not truncate,
    append to or replace the file the link points to."""
    outside = trained.parent / "outside"
    outside.mkdir()
    moved = outside / entry
    (trained / entry).rename(moved)
    (trained / entry).symlink_to(moved)
    before = {p: p.read_bytes() for p in outside.rglob("*") if p.is_file()}
    last = trained / "checkpoints" / "last.safetensors"
    commands = [("fit", "--resume", trained)]
    if entry != "checkpoints":  # eval resolves the path: the linked-to folder is the run
        commands.append(("eval", last))
    for args in commands:
        refused = bptrain(*args, cwd=trained.parent)
        assert refused.returncode == 1, refused.stderr
        assert refused.stderr == (
            f"error: {trained / entry} is a symbolic link (to {moved}); bptrain writes only "
            "real files inside the run directory: replace the link by the file\n"
        )
    assert {p: p.read_bytes() for p in outside.rglob("*") if p.is_file()} == before
    checkpoint.load(trained / "checkpoints" / "last.safetensors")


@pytest.mark.timeout(60)
def test_a_fresh_run_dir_with_a_link_is_refused(tmp_path):
    (tmp_path / "tiny.yaml").write_text(TINY)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "metrics.csv").symlink_to(victim)
    refused = bptrain("fit", "tiny.yaml", "--run-dir", "r", cwd=tmp_path)
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: r/metrics.csv is a symbolic link")
    assert victim.read_text() == "precious\n"
