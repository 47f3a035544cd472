"""The Python processes bptrain starts import the installed bptrain, whatever the working
directory.

A Python started with ``-m`` or ``-c`` (a sweep run, an MPI rank, multiprocessing's forkserver)
puts the working directory first on ``sys.path``, so a ``bptrain`` package or module there (a
checkout of another version, a script named ``bptrain.py``) would be imported in its place.
``PYTHONSAFEPATH=1`` (Python 3.11 and later) leaves the working directory out.

Python 3.10 ignores the variable. There the installed package still wins over a ``bptrain``
folder without ``__init__.py``, such as a checkout seen from the folder that holds it: on the
path a regular package beats a namespace folder (the reason ``pyproject.toml`` names the
package root, see there). Only a regular package or module named ``bptrain`` in the working
directory can shadow it on 3.10.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

SAFE_PATH = "PYTHONSAFEPATH"


def child_environ() -> dict[str, str]:
    """This process's environment for a Python process it starts: with PYTHONSAFEPATH=1."""
    return {**os.environ, SAFE_PATH: "1"}


@contextlib.contextmanager
def safe_path() -> Iterator[None]:
    """PYTHONSAFEPATH=1 in this process's own environment while the block runs, for a process
    that takes its environment from there (multiprocessing's forkserver, started within)."""
    before = os.environ.get(SAFE_PATH)
    os.environ[SAFE_PATH] = "1"
    try:
        yield
    finally:
        if before is None:
            del os.environ[SAFE_PATH]
        else:
            os.environ[SAFE_PATH] = before
