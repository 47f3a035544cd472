"""bench/bench_gpu.py end to end on the CPU: the checked namespace stands in for CuPy and
PyTorch runs on its CPU build, so the one GPU run the script gets finds no slip in it (the
timings here mean nothing). Skipped without PyTorch (``make bench`` installs it)."""

from __future__ import annotations

import os

import pytest

from bptrain.train import device
from tests.checked_xp import namespace

pytest.importorskip(
    "torch", reason="PyTorch is not installed (pip install -r bench/requirements.txt)"
)


@pytest.mark.skipif(not os.environ.get("BPTRAIN_DATA_DIR"), reason="needs BPTRAIN_DATA_DIR")
def test_the_gpu_benchmark_runs_through(monkeypatch, capsys):
    from bench import bench_gpu

    monkeypatch.setattr(device, "gpu_module", lambda: namespace)
    monkeypatch.setattr(bench_gpu, "TORCH_DEVICE", "cpu")
    monkeypatch.setattr(bench_gpu, "synchronize", lambda: None)
    monkeypatch.setattr(bench_gpu, "describe_gpu", lambda: "checked namespace")
    monkeypatch.setattr(bench_gpu, "WORKLOADS", [("mlp", 16), ("cnn", 8), ("lstm", 8)])
    monkeypatch.setattr(bench_gpu, "FIRST_STEPS", 2)
    args = ["--batches", "2", "--rounds", "1", "--gradcheck-elements", "4"]
    assert bench_gpu.main(bench_gpu.parse_args(args)) == 0
    out = capsys.readouterr().out
    assert "FAILED" not in out, out
    assert "gradient checks on the GPU, float64: 25/25 layers pass" in out
    table = [line for line in out.splitlines() if line.startswith("|")]
    assert len(table) == 2 + len(bench_gpu.WORKLOADS)
    for row in table[2:]:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert float(cells[2]) > 0 and float(cells[3]) > 0 and float(cells[4]) >= 0
        # NumPy underneath: the CPU's losses, but for the MLP's fused float32 softmax
        # cross-entropy on the CPU side (kernels.softmax_xent, within rtol 1e-6)
        diff, verdict = cells[7].split()
        assert cells[6] in ("yes", "no") and verdict == "ok" and float(diff) <= 1e-6
    assert "`bptrain fit configs/mnist_mlp.yaml` (1 epoch" in out
