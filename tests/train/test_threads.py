import numpy as np

from bptrain.nn import LSTM, Dense, Flatten, Reshape, Sequential
from bptrain.train.threads import PARALLEL_WORK, default_threads, step_work


def mlp(width):
    m = Sequential([Flatten(), Dense(width, activation="relu"), Dense(10)])
    m.build((1, 28, 28), np.random.default_rng(0))
    return m


def test_step_work_counts_three_passes_per_parameter_and_sample():
    params = 784 * 128 + 128 + 128 * 10 + 10
    assert step_work(mlp(128), 32) == 3 * params * 32


def test_small_models_use_one_thread_and_large_ones_all_cores(monkeypatch):
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    assert default_threads(mlp(128), 32) == 1  # the MNIST MLP: 10M multiply-adds per step
    big = mlp(4096)
    assert step_work(big, 256) > PARALLEL_WORK
    assert default_threads(big, 256) == 4


def test_a_recurrent_layer_counts_its_input_time_steps():
    """LSTM(128) returning its last step only: every step of the 28 uses its weights."""
    m = Sequential([Reshape([28, 28]), LSTM(128), Dense(10)])
    m.build((1, 28, 28), np.random.default_rng(0))
    lstm = 4 * 128 * (28 + 128 + 1)
    assert step_work(m, 64) == 3 * (lstm * 28 + 128 * 10 + 10) * 64
