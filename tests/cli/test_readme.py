"""The README's library example runs and does what it says."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def test_library_example_trains(capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert blocks, "README has no python example"
    exec(compile(blocks[0], "README.md", "exec"), {})
    out = capsys.readouterr().out
    loss, accuracy = map(float, re.fullmatch(r"loss (\S+), accuracy (\S+)\n", out).groups())
    assert accuracy > 0.95


def test_sections():
    text = README.read_text()
    for heading in (
        "## On a fresh machine",
        "## Data",
        "## Commands",
        "## Config reference",
        "## The run directory",
        "## As a library",
        "## Performance",
    ):
        assert heading in text
    assert "make demo" in text and "make test" in text and "BPTRAIN_DATA_DIR" in text
