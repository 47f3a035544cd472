"""The GPU tests run only where CuPy finds a GPU; elsewhere every test here is skipped, and the
reason is printed at the end of the run (``-q`` hides skip reasons otherwise)."""

from __future__ import annotations

import pytest

from bptrain.errors import DeviceError
from bptrain.train.device import gpu_module


def _why_not() -> str | None:
    try:
        gpu_module()
    except DeviceError as exc:
        return str(exc)
    return None


WHY_NOT = _why_not()


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "tests/gpu/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.gpu)
            if WHY_NOT is not None:
                item.add_marker(pytest.mark.skip(reason=WHY_NOT))


def pytest_terminal_summary(terminalreporter):
    if WHY_NOT is not None:
        terminalreporter.write_line(f"tests/gpu skipped: {WHY_NOT}")
