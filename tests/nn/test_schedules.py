import math

import pytest

from bptrain.nn import schedules


def test_constant_and_step():
    assert schedules.get(None)(100, 0.1) == 0.1
    s = schedules.StepDecay(step_size=10, gamma=0.5)
    assert [s(t, 1.0) for t in (1, 10, 11, 21)] == [1.0, 1.0, 0.5, 0.25]


def test_exponential():
    s = schedules.ExponentialDecay(decay_steps=10, decay_rate=0.5)
    assert s(11, 2.0) == pytest.approx(1.0)
    assert s(6, 2.0) == pytest.approx(2.0 * 0.5**0.5)
    stair = schedules.ExponentialDecay(decay_steps=10, decay_rate=0.5, staircase=True)
    assert stair(6, 2.0) == 2.0 and stair(11, 2.0) == 1.0


def test_cosine_with_warmup():
    s = schedules.CosineDecay(decay_steps=100, alpha=0.1, warmup_steps=10)
    assert s(5, 1.0) == pytest.approx(0.5)
    assert s(10, 1.0) == pytest.approx(1.0)
    assert s(60, 1.0) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert s(110, 1.0) == pytest.approx(0.1)
    assert s(500, 1.0) == pytest.approx(0.1)


def test_reduce_on_plateau_and_state():
    s = schedules.ReduceLROnPlateau(factor=0.5, patience=2, min_delta=0.0, min_lr=0.2)
    rates = []
    for loss in [1.0, 0.9, 0.95, 0.92, 0.91, 0.93, 0.99, 0.97]:
        s.observe(loss)
        rates.append(s(1, 1.0))
    assert rates == [1.0, 1.0, 1.0, 0.5, 0.5, 0.25, 0.25, 0.2]
    restored = schedules.ReduceLROnPlateau(factor=0.5, patience=2, min_delta=0.0, min_lr=0.2)
    restored.load_state(s.state())
    assert restored.state() == s.state()


def test_reduce_on_plateau_max_mode():
    s = schedules.ReduceLROnPlateau(factor=0.1, patience=1, mode="max")
    s.observe(0.5)
    s.observe(0.4)
    assert s(1, 1.0) == pytest.approx(0.1)


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown schedule"):
        schedules.get("linear")
    with pytest.raises(ValueError, match="factor"):
        schedules.ReduceLROnPlateau(factor=2.0)
