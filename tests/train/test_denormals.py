import platform
import threading

import numpy as np
import pytest

from bptrain.nn.kernels.adam import adam_fused, adam_reference
from bptrain.train import denormals
from bptrain.train.denormals import flush_denormals
from bptrain.train.fit import fit
from bptrain.train.loop import Trainer
from bptrain.train.resume import as_saved

SUPPORTED = platform.system() == "Linux" and platform.machine() in ("x86_64", "aarch64")
needs_mode = pytest.mark.skipif(not SUPPORTED, reason="flushing is set on Linux x86-64/ARM64")
TINY = np.finfo(np.float32).tiny  # the smallest normal float32, 1.18e-38


def half_tiny() -> float:
    """Half the smallest normal float32: a denormal, or 0 where the thread flushes."""
    return float(np.float32(TINY) * np.float32(0.5))


def denormal_bits() -> np.ndarray:
    """The smallest float32 denormal, 1.4e-45, made from its bits (no arithmetic)."""
    return np.array([1], dtype=np.uint32).view(np.float32)


def spy_on_training_mode(monkeypatch) -> list:
    """``half_tiny()`` as each training loop starts: 0.0 where it flushes."""
    seen = []
    run_epochs = Trainer.run_epochs

    def spy(self, stop):
        seen.append(half_tiny())
        return run_epochs(self, stop)

    monkeypatch.setattr(Trainer, "run_epochs", spy)
    return seen


@needs_mode
def test_inside_the_block_results_and_inputs_below_normal_are_zero():
    assert half_tiny() == pytest.approx(5.877e-39, rel=1e-3)
    with flush_denormals() as on:
        assert on
        assert half_tiny() == 0.0  # flush to zero: a denormal result becomes 0
        assert (denormal_bits() * np.float32(1e30))[0] == 0.0  # denormals are zero: read as 0
        assert np.float32(TINY) * np.float32(2) == np.float32(2 * TINY)  # normal: unchanged
    assert half_tiny() == pytest.approx(5.877e-39, rel=1e-3)  # restored on exit
    assert (denormal_bits() * np.float32(1e30))[0] == pytest.approx(1.4013e-15, rel=1e-3)


def test_disabled_or_unsupported_it_changes_nothing(monkeypatch):
    with flush_denormals(False) as on:
        assert not on
        assert half_tiny() > 0
    monkeypatch.setattr(denormals.platform, "machine", lambda: "sparc64")
    with flush_denormals() as on:
        assert not on
        assert half_tiny() > 0


@needs_mode
def test_threads_started_inside_inherit_the_mode_and_earlier_ones_do_not():
    seen = {}
    go = threading.Event()

    def early():
        go.wait()
        seen["early"] = half_tiny()

    before = threading.Thread(target=early)
    before.start()
    with flush_denormals():
        inside = threading.Thread(target=lambda: seen.update(inside=half_tiny()))
        inside.start()
        inside.join()
        go.set()
        before.join()
    assert seen["inside"] == 0.0
    assert seen["early"] > 0.0


@needs_mode
def test_adam_fused_and_reference_agree_bit_for_bit_while_flushing():
    rng = np.random.default_rng(0)
    n = 4096
    g = rng.standard_normal(n).astype(np.float32) * 1e-3
    g[::3] = 0.0  # weights whose input was zero this step: m decays by beta_1 = 0.9
    m = np.where(np.arange(n) % 3 == 0, np.float32(1.05 * TINY), 1e-4).astype(np.float32)
    v = np.full(n, 1e-6, np.float32)
    w = rng.standard_normal(n).astype(np.float32)
    ieee = [w.copy(), g.copy(), m.copy(), v.copy()]
    adam_reference(*ieee, 1e-3, 0.9, 0.999, 1e-7, np.empty_like(w))
    assert ieee[2][0] == pytest.approx(0.945 * TINY, rel=1e-3)  # a denormal
    with flush_denormals():
        a = [w.copy(), g.copy(), m.copy(), v.copy()]
        b = [w.copy(), g.copy(), m.copy(), v.copy()]
        adam_reference(*a, 1e-3, 0.9, 0.999, 1e-7, np.empty_like(w))
        adam_fused(*b, 1e-3, 0.9, 0.999, 1e-7)
    for x, y in zip(a, b, strict=True):
        assert np.array_equal(x, y)
    assert np.all(b[2][::3] == 0.0)  # flushed
    assert np.array_equal(b[2][1::3], ieee[2][1::3])  # normal values: the IEEE bits
    assert np.array_equal(b[0], ieee[0])


@needs_mode
@pytest.mark.parametrize("flush", [True, False])
def test_fit_trains_in_the_mode_its_config_asks_for_and_restores_it(
    tmp_path, monkeypatch, small_config, flush
):
    seen = spy_on_training_mode(monkeypatch)
    config = small_config(epochs=1, flush_denormals=flush)
    result = fit(config, runs_root=tmp_path, progress="none")
    assert seen == [0.0] if flush else seen[0] > 0
    assert result.config.training.flush_denormals is flush
    assert f"flush_denormals: {str(flush).lower()}" in (result.run_dir / "config.yaml").read_text()
    assert half_tiny() > 0  # the caller's thread is as it was


def test_a_config_saved_before_the_option_resumes_with_ieee_denormals():
    old = {"name": "x", "training": {"epochs": 2, "batch_size": 8}}
    saved = {"epochs": 2, "batch_size": 8, "flush_denormals": False, "second_core": False}
    assert as_saved(old)["training"] == saved
    assert "flush_denormals" not in old["training"]  # the saved config itself is untouched
    new = {"name": "x", "training": {"epochs": 2, "flush_denormals": True, "second_core": True}}
    assert as_saved(new) is new
    between = {"name": "x", "training": {"flush_denormals": True}}  # before second_core only
    assert as_saved(between)["training"] == {"flush_denormals": True, "second_core": False}
    assert as_saved({"name": "x"}) == {"name": "x"}  # no training section: defaults as ever


@needs_mode
def test_a_run_from_before_the_option_resumes_in_its_own_mode(tmp_path, monkeypatch, small_config):
    """A run whose config.yaml predates training.flush_denormals, stopped before its first
    checkpoint, starts over in place with IEEE denormals, as it began."""
    run_dir = tmp_path / "run"
    fit(small_config(epochs=1), run_dir=run_dir, progress="none")
    config = run_dir / "config.yaml"
    text = config.read_text()
    assert "  flush_denormals: true\n" in text
    config.write_text(text.replace("  flush_denormals: true\n", ""))
    for path in (run_dir / "checkpoints").iterdir():
        path.unlink()
    seen = spy_on_training_mode(monkeypatch)
    result = fit(resume=run_dir, progress="none")
    assert seen[0] > 0
    assert result.config.training.flush_denormals is False
