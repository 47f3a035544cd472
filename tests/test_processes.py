"""Every process bptrain starts imports the installed bptrain, whatever the working directory:
``python -m bptrain``, local sweep runs (forkserver), Dask runs (a subprocess on the worker) and
MPI ranks (``fit --processes``), started from

- the folder that holds a clone: ``bptrain/`` there has no ``__init__.py`` (the package is one
  level down), so Python sees a namespace folder, and its ``runs/`` (left by ``make demo``) a
  namespace ``bptrain.runs``. These won over setuptools' editable import hook, which runs after
  the path search; ``pyproject.toml`` now makes the editable install a path entry instead;
- a folder holding another ``bptrain`` package (another checkout, say), which a child with the
  working directory first on its ``sys.path`` would import instead. PYTHONSAFEPATH keeps the
  directory out, from Python 3.11 (``bptrain/processes.py``).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import bptrain
from bptrain.processes import SAFE_PATH, child_environ, safe_path
from bptrain.runs import metrics_log
from bptrain.train import fit
from tests.conftest import small_config

BPTRAIN = Path(sys.executable).with_name("bptrain")
SWEEP = """\
base: tiny.yaml
metric: val_accuracy
grid:
  optimizer.learning_rate: [0.003, 0.03]
"""
needs_safe_path = pytest.mark.skipif(
    sys.version_info < (3, 11), reason="PYTHONSAFEPATH needs Python 3.11"
)
needs_mpi = pytest.mark.skipif(
    importlib.util.find_spec("mpi4py") is None, reason="pip install bptrain[mpi]"
)
needs_dask = pytest.mark.skipif(
    importlib.util.find_spec("distributed") is None, reason="pip install bptrain[dask]"
)


def folder(tmp_path: Path, kind: str) -> tuple[Path, Path]:
    """(working directory, folder of the config files) for a ``kind`` of working directory."""
    if kind == "clone parent":  # after `git clone ... bptrain && cd bptrain && make demo && cd ..`
        clone = tmp_path / "bptrain"
        configs = clone / "configs"
        configs.mkdir(parents=True)
        (clone / "README.md").write_text("# bptrain\n")
        (clone / "runs" / "mnist_mlp" / "20240101-120000").mkdir(parents=True)
    else:  # another bptrain package, without the modules a run needs
        (tmp_path / "bptrain").mkdir(parents=True)
        (tmp_path / "bptrain" / "__init__.py").write_text('__version__ = "0.0.0+other"\n')
        configs = tmp_path / "configs"
        configs.mkdir()
    (configs / "tiny.yaml").write_text(yaml.safe_dump(small_config()))
    (configs / "sweep.yaml").write_text(SWEEP)
    return tmp_path, configs


KINDS = ["clone parent", pytest.param("other package", marks=needs_safe_path)]


def run(*args, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=120)


def best_val_accuracy(learning_rate: float, tmp_path: Path) -> float:
    """The score of a sweep run, trained here in this process."""
    config = small_config()
    config["optimizer"]["learning_rate"] = learning_rate
    result = fit(config, run_dir=tmp_path / f"ref-{learning_rate}", progress="none")
    return max(row["val_accuracy"] for row in result.history)


def test_python_dash_m_from_the_folder_holding_a_clone(tmp_path):
    cwd, _ = folder(tmp_path, "clone parent")
    proc = run(sys.executable, "-m", "bptrain", "--version", cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"bptrain, version {bptrain.__version__}\n"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "executor", ["local", pytest.param("dask", marks=needs_dask)], ids=["local", "dask"]
)
def test_sweep_runs_import_the_installed_bptrain(tmp_path, kind, executor):
    cwd, configs = folder(tmp_path / "cwd", kind)
    sweep = configs.relative_to(cwd) / "sweep.yaml"
    options = f"--workers 2 --executor {executor} --progress plain".split()
    proc = run(BPTRAIN, "sweep", sweep, *options, cwd=cwd)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (sweep_dir,) = (cwd / "runs" / "sweeps" / "sweep").iterdir()
    journal = [json.loads(line) for line in (sweep_dir / "sweep.jsonl").read_text().splitlines()]
    results = sorted(
        (e["run"], e["event"], e.get("score")) for e in journal if e["event"] in ("done", "failed")
    )
    expected = [best_val_accuracy(lr, tmp_path) for lr in (0.003, 0.03)]
    assert results == [(0, "done", expected[0]), (1, "done", expected[1])], proc.stdout


@needs_mpi
@pytest.mark.timeout(120)
@pytest.mark.parametrize("kind", KINDS)
def test_fit_processes_ranks_import_the_installed_bptrain(tmp_path, kind):
    cwd, configs = folder(tmp_path / "cwd", kind)
    config = configs.relative_to(cwd) / "tiny.yaml"
    proc = run(BPTRAIN, "fit", config, "--processes", "2", "--run-dir", "dp", cwd=cwd)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    rows = metrics_log.read(cwd / "dp" / "metrics.csv")
    reference = fit(small_config(), run_dir=tmp_path / "one", progress="none").history
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert [r["val_accuracy"] for r in rows] == [r["val_accuracy"] for r in reference]


def test_child_environment_leaves_the_working_directory_off_sys_path(tmp_path, monkeypatch):
    monkeypatch.delenv(SAFE_PATH, raising=False)
    assert child_environ()[SAFE_PATH] == "1" and SAFE_PATH not in os.environ
    with safe_path():
        assert os.environ[SAFE_PATH] == "1"
    assert SAFE_PATH not in os.environ
    monkeypatch.setenv(SAFE_PATH, "x")
    with safe_path():
        assert os.environ[SAFE_PATH] == "1"
    assert os.environ[SAFE_PATH] == "x"
    if sys.version_info >= (3, 11):
        script = "import os, sys; print('' in sys.path, os.getcwd() in sys.path)"
        proc = subprocess.run(
            [sys.executable, "-c", script],
            cwd=tmp_path,
            env=child_environ(),
            capture_output=True,
            text=True,
            check=True,
        )
        assert proc.stdout == "False False\n"
