"""The core must stay readable alone: it imports NumPy, the standard library and itself (and,
each in one module, CuPy for the GPU backend, Numba for the fused kernels (and the second
core's loop, with llvmlite for two instructions) and threadpoolctl for switching BLAS threads,
all of which the core runs without)."""

import ast
import sys
from pathlib import Path

NN = Path(__file__).resolve().parents[2] / "bptrain" / "nn"
ALLOWED = {"numpy", "bptrain"} | set(sys.stdlib_module_names)


def test_nn_imports_only_numpy_and_stdlib():
    for path in NN.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top == "cupy" or top == "cupyx":  # the optional GPU backend, in backend.py only
                    assert path.name == "backend.py", path
                    continue
                if top == "numba":  # compiles the fused kernels and the second core's loop
                    assert path.name in ("compiled.py", "partner.py"), path
                    continue
                if top == "llvmlite":  # Numba's code generator: PAUSE, and the prefetch hint
                    assert path.name in ("compiled.py", "partner.py"), path
                    continue
                if top == "threadpoolctl":  # switches BLAS threads, in kernels/blas_threads.py
                    assert path.name == "blas_threads.py", path
                    continue
                assert top in ALLOWED, f"{path.relative_to(NN)} imports {name}"
                if top == "bptrain":
                    assert name.startswith("bptrain.nn"), f"{path.relative_to(NN)} imports {name}"


def test_library_usage():
    import numpy as np

    from bptrain.nn import Adam, Dense, Model, Sequential

    x = np.random.default_rng(0).normal(size=(64, 2)).astype(np.float32)
    y = (x[:, 0] * x[:, 1] > 0).astype(np.int64)
    network = Sequential([Dense(16, activation="relu"), Dense(2, activation="softmax")])
    network.build(input_shape=(2,))
    model = Model(network, loss="sparse_categorical_crossentropy", optimizer=Adam(0.01))
    for _ in range(200):
        model.train_step(x, y)
    assert (model.predict(x).argmax(axis=1) == y).mean() > 0.9


def test_imports_go_one_way_layers_to_kernels():
    """Kernels know no layers; optimizers know no layers; a layer knows no other layer
    (only fused layers, wrappers and containers name the layers they hold)."""
    for path in NN.rglob("*.py"):
        tree = ast.parse(path.read_text())
        modules = {
            node.module
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module
        }
        layers = {m for m in modules if m.startswith("bptrain.nn.layers")}
        if path.parent.name == "kernels" or path.name == "optimizers.py":
            assert not layers, f"{path.relative_to(NN)} imports {layers}"
        if path.parent.name == "layers" and path.stem not in (
            "fused",
            "sequential",
            "bidirectional",
            "__init__",
        ):
            # the shared bases of SimpleRNN, LSTM and GRU
            base = {"bptrain.nn.layers.recurrent", "bptrain.nn.layers.unrolled"}
            assert layers <= base, f"{path.relative_to(NN)} imports {layers}"
