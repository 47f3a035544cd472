"""``training.second_core``: which runs share their Dense layers with a second core, the line
the summary prints, and such a run's results: equal to one core's to round-off, repeatable, and
resumed after a crash bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from bptrain.config import build_model
from bptrain.config.schema import resolve
from bptrain.nn.kernels import partner
from bptrain.train import fit
from bptrain.train.evaluate import evaluate_checkpoint
from bptrain.train.threads import second_core_weights, usable_cores
from tests.train.test_fit import assert_crash_resume_exact

needs_partner = pytest.mark.skipif(
    not partner.available() or usable_cores() < 2,
    reason="the second core needs two cores, Linux on x86-64, NumPy's OpenBLAS and Numba",
)


def wide_config(small_config, units: int = 512, **training) -> dict:
    """``small_config`` with a hidden kernel of ``units`` x ``units``: 512 are worth splitting
    at its batch of 16 (4.2M multiply-adds a GEMM, ``SPLIT_WORK``)."""
    config = small_config(**training)
    config["model"]["layers"] = [
        {"type": "Dense", "units": units, "activation": "relu"},
        {"type": "Dense", "units": units, "activation": "relu"},
        {"type": "Dense", "units": 3, "activation": "softmax"},
    ]
    return config


def shared_by(config: dict, single_model: bool = True) -> list:
    cfg = resolve(config)
    return second_core_weights(cfg.training, build_model(cfg, (2,)), single_model)


def test_which_runs_split_their_dense_kernels(small_config):
    assert [p.shape for p in shared_by(wide_config(small_config))] == [(512, 512)]
    assert shared_by(small_config()) == []  # every kernel too small to split
    assert shared_by(wide_config(small_config, units=128)) == []  # GEMMs too short to pay
    assert shared_by(wide_config(small_config, units=128, batch_size=128)) == []  # Adam in NumPy
    assert shared_by(wide_config(small_config, units=256, batch_size=32)) != []  # 2.1M, 66K
    assert shared_by(wide_config(small_config, second_core=False)) == []
    assert shared_by(wide_config(small_config, threads=1)) == []  # threads chosen by the user
    assert shared_by(wide_config(small_config, batch_size=4096)) == []  # a large model's step
    assert shared_by(wide_config(small_config), single_model=False) == []  # replicas, ranks
    for optimizer, split in [
        ({"type": "sgd", "learning_rate": 0.1, "momentum": 0.9}, True),
        ({"type": "rmsprop"}, True),
        ({"type": "rmsprop", "centered": True}, False),  # updates the partner has no pass for
        ({"type": "adagrad"}, False),
        ({"type": "adamw"}, False),
    ]:
        config = wide_config(small_config)
        config["optimizer"] = optimizer
        assert (shared_by(config) != []) is split, optimizer


@needs_partner
def test_a_run_on_two_cores_equals_one_core_to_round_off_and_repeats_itself(
    tmp_path, small_config, capsys
):
    config = wide_config(small_config, epochs=2)
    one = fit(wide_config(small_config, epochs=2, second_core=False), run_dir=tmp_path / "one")
    assert "second core" not in capsys.readouterr().out
    two = fit(config, run_dir=tmp_path / "two", progress="plain")
    expected = "a second core takes half of 1 Dense kernel(s) and of the adam update"
    assert expected in capsys.readouterr().out
    again = fit(config, run_dir=tmp_path / "again", progress="none")
    for a, b in zip(two.model.parameters(), again.model.parameters(), strict=True):
        np.testing.assert_array_equal(a.value, b.value)  # repeatable, bit for bit
    for a, b in zip(two.model.parameters(), one.model.parameters(), strict=True):
        np.testing.assert_allclose(a.value, b.value, atol=1e-3)  # round-off, through Adam
    assert two.history[-1]["loss"] == pytest.approx(one.history[-1]["loss"], rel=1e-3)


@needs_partner
def test_a_run_on_two_cores_resumes_exactly_after_a_crash(tmp_path, monkeypatch, small_config):
    config = wide_config(small_config, epochs=3, checkpoint={"every_steps": 3})
    assert_crash_resume_exact(config, tmp_path, monkeypatch, 14)  # epoch 2, after step 3


@needs_partner
def test_eval_scores_a_two_core_run_as_its_validation_did(tmp_path, small_config):
    result = fit(wide_config(small_config, epochs=2), run_dir=tmp_path / "run", progress="none")
    report = evaluate_checkpoint(tmp_path / "run", split="val", plots=False).report
    assert report["loss"] == result.best_metrics["val_loss"]  # the split forward, bit for bit
