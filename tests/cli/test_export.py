"""``bptrain export --format onnx``: for each shipped config's model (trained briefly on a
small slice), ONNX Runtime's outputs equal ``bptrain predict``'s to 1e-5 relative, raw inputs
in (data.scale folded in); and what cannot be exported is refused in one line."""

import os
import sys
from pathlib import Path

import numpy as np
import pytest

from bptrain.config import load_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
# Small and quick: one epoch on a slice; MNIST-shaped models on 256 images (Fashion-MNIST's
# architecture on MNIST, whose files are here).
SMALL = {
    "mnist": ["data.limit=256"],
    "fashion_mnist": ["data.dataset=mnist", "data.limit=256"],
    "adding": ["data.size=256"],
    "text": [f"data.path={CONFIGS / 'data' / 'tiny_text.txt'}", "data.step=8"],
}
SHIPPED = sorted(p.stem for p in CONFIGS.glob("*.yaml") if not p.stem.startswith("sweep"))


def raw_inputs(config, shape, n=16):
    """Inputs as predict reads them: raw pixels, token ids, or features."""
    rng = np.random.default_rng(0)
    dataset, layers = config.data["dataset"], config.model.layers
    if layers[0]["type"] == "Embedding":
        return rng.integers(0, layers[0]["input_dim"], (n, *shape)).astype(np.float32)
    if dataset in ("mnist", "fashion_mnist"):
        return rng.integers(0, 256, (n, *shape)).astype(np.float32)
    return rng.normal(size=(n, *shape)).astype(np.float32)


@pytest.mark.parametrize("name", SHIPPED)
def test_onnx_runtime_equals_predict_for_every_shipped_config(bptrain, name):
    pytest.importorskip("onnx", reason="bptrain export needs onnx: pip install 'bptrain[onnx]'")
    ort = pytest.importorskip("onnxruntime", reason="the proof needs onnxruntime")
    config = load_config(CONFIGS / f"{name}.yaml")
    dataset = config.data["dataset"]
    if dataset in ("mnist", "fashion_mnist") and not os.environ.get("BPTRAIN_DATA_DIR"):
        pytest.skip("needs BPTRAIN_DATA_DIR with the MNIST files (make test sets it)")
    small = [*SMALL.get(dataset, []), "training.epochs=1", "training.plots=false"]
    code, _, err = bptrain("fit", CONFIGS / f"{name}.yaml", "--run-dir", "run", *small)
    assert code == 0, err
    code, out, err = bptrain("export", "run", "--format", "onnx", "--output", "model.onnx")
    assert code == 0, err
    assert out.startswith("wrote model.onnx (ONNX: ")
    import onnx

    onnx.checker.check_model(onnx.load("model.onnx"))
    shape = tuple(onnx.load("model.onnx").graph.input[0].type.tensor_type.shape.dim)[1:]
    x = raw_inputs(config, tuple(d.dim_value for d in shape))
    np.save("x.npy", x)
    code, _, err = bptrain("predict", "run", "x.npy", "--output", "p.npy")
    assert code == 0, err
    want = np.load("p.npy")
    got = ort.InferenceSession("model.onnx").run(None, {"x": x})[0]
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


def test_export_without_a_checkpoint_is_a_one_line_error(bptrain):
    Path("empty").mkdir()
    code, out, err = bptrain("export", "empty", "--output", "m.onnx")
    assert code == 1
    assert err == "error: empty holds no checkpoints/best.safetensors or last.safetensors\n"


def test_export_without_onnx_says_what_to_install(bptrain, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # import fails
    code, out, err = bptrain("export", "run", "--output", "m.onnx")
    assert (code, out) == (2, "")
    assert err == "error: ONNX export needs the onnx package: pip install 'bptrain[onnx]'\n"


def test_inspect_a_run_without_diagnostics_is_a_one_line_error(bptrain, write_config):
    from tests.conftest import small_config

    code, _, err = bptrain("fit", write_config(small_config()), "--run-dir", "run")
    assert code == 0, err
    code, out, err = bptrain("inspect", "run")
    assert (code, out) == (1, "")
    assert err == (
        "error: run has no layers.csv: train with training.diagnostics: true (bptrain fit "
        "CONFIG training.diagnostics=true) to record it\n"
    )
