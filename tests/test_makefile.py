"""The Makefile's targets install what they need and no more: `make demo` bptrain with its
fused kernels (the `fast` extra), `make test` the development set as well (pyproject.toml's
`dev` extra)."""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import small_config

REPO = Path(__file__).resolve().parents[1]
MAKE_VARIABLES = (
    "MAKEFLAGS",
    "MFLAGS",
    "MAKELEVEL",
    "MAKEOVERRIDES",
    "MAKE_TERMOUT",
    "MAKE_TERMERR",
)
DEV_ONLY = ("pytest", "hypothesis", "ruff", "dask", "distributed", "mpi4py", "mpich")
# Optional extras the dev extra installs; a plain run must not import them either.
EXTRAS = ("tensorboardX", "tensorboard", "onnx", "onnxruntime")


def recipe(target: str) -> list[str]:
    """The commands ``make TARGET`` runs in a fresh clone (``make -n -B``: print every
    recipe on the way, as if nothing were built yet)."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    command = ["make", "-n", "-B", "--no-print-directory", target, "PYTHON=python3", "VENV=.venv"]
    # not the flags of a `make test` that runs these tests
    env = {k: v for k, v in os.environ.items() if k not in MAKE_VARIABLES}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, check=True)
    return done.stdout.splitlines()


def test_demo_installs_bptrain_with_its_fused_kernels_and_trains_mnist_mlp():
    commands = recipe("demo")
    assert commands == [
        "python3 -m venv .venv",
        ".venv/bin/pip install --quiet --upgrade pip",
        ".venv/bin/pip install --quiet -e '.[fast]'",
        "touch .venv/bin/bptrain",
        ".venv/bin/bptrain fit configs/mnist_mlp.yaml",
    ]


def test_test_and_lint_install_the_dev_extra_first():
    lint = ["check bptrain tests bench", "format --check bptrain tests bench"]
    for target, last in (
        ("test", [".venv/bin/python -m pytest"]),
        ("lint", [f".venv/bin/ruff {args}" for args in lint]),
    ):
        commands = recipe(target)
        assert commands[2:] == [
            ".venv/bin/pip install --quiet -e '.[fast]'",
            "touch .venv/bin/bptrain",
            ".venv/bin/pip install --quiet -e '.[dev]'",
            "touch .venv/.dev",
            *last,
        ]


def test_the_dev_extra_holds_the_test_tools_and_bptrain_needs_none_of_them():
    requires = importlib.metadata.requires("bptrain")
    needed = " ".join(r for r in requires if "extra ==" not in r)
    dev = " ".join(r for r in requires if 'extra == "dev"' in r)
    assert all(name in dev for name in ("pytest", "hypothesis", "ruff", "dask", "mpi", "onnx"))
    assert "tensorboard" in dev
    assert not any(name in needed for name in DEV_ONLY)


def test_a_demo_run_imports_no_development_package(tmp_path):
    """`make demo`'s environment lacks them: fit, eval and predict must not import one."""
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(small_config(plots=True)))
    (tmp_path / "points.csv").write_text("0.1,0.9\n")
    script = (
        "import sys\n"
        "from bptrain.cli import main\n"
        "for args in (['fit', 'tiny.yaml', '--run-dir', 'run'], ['eval', 'run'],"
        " ['predict', 'run', 'points.csv']):\n"
        "    try:\n"
        "        main(args)\n"
        "    except SystemExit as exit_:\n"
        "        assert exit_.code == 0, args\n"
        f"dev = {DEV_ONLY + EXTRAS!r}\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & set(dev)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "[]"
