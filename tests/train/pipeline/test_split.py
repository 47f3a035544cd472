"""Which layers each stage holds: balanced by parameter count, or where the config says; the
lines that the summary and ``bptrain config show`` print; config checks."""

from __future__ import annotations

import itertools

import pytest

from bptrain.config import build_model, resolve_with_overrides
from bptrain.errors import ConfigError
from bptrain.train.pipeline.split import balanced_boundaries, describe, stage_ranges

MNIST_CNN = [320, 0, 18496, 0, 0, 204928, 1290]  # configs/mnist_cnn.yaml, layer by layer


def brute_force(sizes: list[int], stages: int) -> int:
    """The smallest largest-stage parameter count over every split."""
    best = None
    for bounds in itertools.combinations(range(1, len(sizes)), stages - 1):
        ranges = stage_ranges(list(bounds), len(sizes))
        worst = max(sum(sizes[i] for i in r) for r in ranges)
        best = worst if best is None else min(best, worst)
    return best


@pytest.mark.parametrize(
    "sizes, stages, expected",
    [
        ([0, 100480, 1290], 2, [2]),  # MNIST MLP: Flatten + Dense 128 | Dense 10
        ([0, 100480, 1290], 3, [1, 2]),
        (MNIST_CNN, 2, [5]),  # the convolutions and Flatten | the two dense layers
        ([5, 5, 5, 5], 2, [2]),
        ([1, 1, 1, 1, 1, 1], 3, [2, 4]),
        ([0, 0, 0], 3, [1, 2]),
        ([7], 1, []),
    ],
)
def test_balanced_boundaries(sizes, stages, expected):
    assert balanced_boundaries(sizes, stages) == expected


@pytest.mark.parametrize("seed", range(20))
def test_balanced_boundaries_minimise_the_largest_stage(seed):
    import numpy as np

    rng = np.random.default_rng(seed)
    sizes = [int(v) for v in rng.integers(0, 50, size=int(rng.integers(2, 9)))]
    stages = int(rng.integers(1, len(sizes) + 1))
    bounds = balanced_boundaries(sizes, stages)
    ranges = stage_ranges(bounds, len(sizes))
    assert len(ranges) == stages and all(len(r) for r in ranges)
    assert max(sum(sizes[i] for i in r) for r in ranges) == brute_force(sizes, stages)


def test_each_stage_is_described_with_its_ranks_layers_and_parameters(small_config):
    config = resolve_with_overrides(small_config())
    model = build_model(config, (2,), 3)
    assert describe(model.network, [1]) == [
        "pipeline stage 0 (rank 0): layer 0 (dense), 48 params",
        "pipeline stage 1 (rank 1): layer 1 (dense_1), 51 params",
    ]
    assert describe(model.network, [1], replicas=2)[1] == (
        "pipeline stage 1 (ranks 1, 3): layer 1 (dense_1), 51 params"
    )


@pytest.mark.parametrize(
    "pipeline, message",
    [
        ({"stages": 3}, "pipeline.stages: 3 stages need at least 3 layers; the model has 2"),
        ({"stage_boundaries": [0]}, "layer indices must be between 1 and 1"),
        ({"stage_boundaries": [1, 1]}, "expected a list of 1 increasing layer indices"),
        ({"schedule": "pipedream"}, "expected one of 'gpipe', '1f1b'"),
        ({"micro_batches": 0}, "pipeline.micro_batches: must be at least 1, got 0"),
    ],
)
def test_bad_pipeline_settings_are_refused_with_their_path(small_config, pipeline, message):
    with pytest.raises(ConfigError, match=message):
        resolve_with_overrides(small_config(pipeline=pipeline))


def test_pipeline_defaults_are_filled_in(small_config):
    config = resolve_with_overrides(small_config(pipeline={}))
    assert config.to_dict()["training"]["pipeline"] == {
        "stages": 2, "micro_batches": 4, "schedule": "1f1b", "stage_boundaries": None,
    }  # fmt: skip
    assert resolve_with_overrides(config) == config
