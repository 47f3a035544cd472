"""Checkpoints carry their format version; one written by an older or a newer bptrain is
refused by every command with one line saying which versions this one reads, and version 1
(Adam's slots stored as m / (1 - beta_1) and v / (1 - beta_2)) is converted on load."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from bptrain.runs import checkpoint
from tests.reliability.conftest import TINY, bptrain


def header(path) -> dict:
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8 : 8 + n])


def rewrite_metadata(path, **changes) -> None:
    """Change metadata fields as another bptrain would have written them."""
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    head = json.loads(data[8 : 8 + n])
    head["__metadata__"].update(changes)
    head["__metadata__"] = {k: v for k, v in head["__metadata__"].items() if v is not None}
    raw = json.dumps(head).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data[8 + n :])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("versions")
    (cwd / "tiny.yaml").write_text(TINY.replace("epochs: 4", "epochs: 1"))
    done = bptrain("fit", "tiny.yaml", "--run-dir", "run", "--progress", "none", cwd=cwd)
    assert done.returncode == 0, done.stderr
    return cwd / "run" / "checkpoints" / "last.safetensors"


def test_checkpoints_carry_the_current_format_version(trained):
    meta = header(trained)["__metadata__"]
    assert meta["format"] == "bptrain-checkpoint"
    assert meta["format_version"] == str(checkpoint.FORMAT_VERSION) == "2"
    assert checkpoint.SUPPORTED_VERSIONS == (1, 2)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("version", ["0", "3", "17", None], ids=["older", "newer", "far", "none"])
def test_other_format_versions_are_refused_naming_the_supported_ones(tmp_path, trained, version):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    for name in ("config.yaml", "metrics.csv"):
        (run / name).write_bytes((trained.parents[1] / name).read_bytes())
    path = run / "checkpoints" / "last.safetensors"
    path.write_bytes(trained.read_bytes())
    rewrite_metadata(path, format_version=version)
    expected = (
        f"error: {path} has checkpoint format version {version}, which this bptrain cannot "
        "read (supported: 1, 2)\n"
    )
    commands = [("eval", path)]
    if version == "3":  # every command reads checkpoints through the same function
        commands += [("fit", "--resume", run), ("predict", path, "x.csv")]
    (tmp_path / "x.csv").write_text("0.1,0.2\n")
    for args in commands:
        refused = bptrain(*args, cwd=tmp_path)
        assert refused.returncode == 1
        assert refused.stderr == expected
    assert path.read_bytes() != trained.read_bytes()  # refused, not rewritten
    rewrite_metadata(path, format_version="2")
    assert checkpoint.load(path).state == checkpoint.load(trained).state


@pytest.mark.timeout(60)
def test_a_file_of_another_format_is_refused(tmp_path, trained):
    path = tmp_path / "other.safetensors"
    path.write_bytes(trained.read_bytes())
    rewrite_metadata(path, format="someone-elses-checkpoint")
    refused = bptrain("eval", path, cwd=tmp_path)
    assert refused.returncode == 1
    assert refused.stderr == (f"error: {path} is a safetensors file but not a bptrain checkpoint\n")


@pytest.mark.timeout(60)
def test_version_1_adam_slots_become_the_moments_and_the_run_resumes(tmp_path, trained):
    current = checkpoint.load(trained)
    assert current.state["config"]["optimizer"]["type"] == "adam"
    m, v = current.arrays["optimizer/m"], current.arrays["optimizer/v"]
    assert np.abs(m).max() > 0 and v.max() > 0
    old = dict(current.arrays)  # as version 1 stored them
    old["optimizer/m"] = m / np.float32(1 - 0.9)
    old["optimizer/v"] = v / np.float32(1 - 0.999)
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    for name in ("config.yaml", "metrics.csv"):
        (run / name).write_bytes((trained.parents[1] / name).read_bytes())
    path = run / "checkpoints" / "last.safetensors"
    path.write_bytes(checkpoint.encode(old, current.state))
    rewrite_metadata(path, format_version="1")
    loaded = checkpoint.load(path)
    np.testing.assert_allclose(loaded.arrays["optimizer/m"], m, rtol=1e-6)
    np.testing.assert_allclose(loaded.arrays["optimizer/v"], v, rtol=1e-6)
    np.testing.assert_array_equal(
        loaded.arrays["model/dense/kernel"], m.dtype.type(0) + old["model/dense/kernel"]
    )
    resumed = bptrain(
        "fit", "--resume", run, "training.epochs=2", "--progress", "none", cwd=tmp_path
    )
    assert resumed.returncode == 0, resumed.stderr
