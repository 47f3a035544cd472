"""Run the real command line in-process: ``bptrain(*args)`` -> (exit code, stdout, stderr)."""

from __future__ import annotations

import pytest

from bptrain.cli import main


@pytest.fixture
def bptrain(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # runs/ lands in the test's directory

    def run(*args):
        capsys.readouterr()
        try:
            main([str(a) for a in args])
        except SystemExit as exc:
            code = exc.code
        else:  # pragma: no cover - main always exits
            code = None
        out, err = capsys.readouterr()
        return code, out, err

    return run
