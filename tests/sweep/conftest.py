"""Fixtures for the sweep tests: a tiny spirals experiment and sweep files beside it."""

from __future__ import annotations

import textwrap

import pytest

BASE = """\
name: tiny
seed: 0
data: {dataset: spirals, size: 40, classes: 3}
model:
  layers:
    - {type: Dense, units: 8, activation: relu}
    - {type: Dense, units: 3, activation: softmax}
loss: sparse_categorical_crossentropy
optimizer: {type: adam, lr: 0.01}
training: {epochs: 2, batch_size: 32, plots: false}
metrics: [accuracy]
"""


@pytest.fixture
def write_sweep(tmp_path):
    """write_sweep(text, base=BASE, name="sweep.yaml") -> path of the sweep file; the base
    config is written as base.yaml beside it."""

    def write(text: str, base: str = BASE, name: str = "sweep.yaml"):
        (tmp_path / "base.yaml").write_text(textwrap.dedent(base))
        path = tmp_path / name
        path.write_text(textwrap.dedent(text))
        return path

    return write
