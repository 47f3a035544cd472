"""plots/gradients.png and plots/updates.png from layers.csv rows."""

import math

import numpy as np

from bptrain.runs.layer_plots import MIN_DECADES, gradient_map, plot_layers, series


def rows():
    out = []
    for step, scale in ((1, 1.0), (5, 10.0)):
        out += [
            {"step": step, "layer": "dense", "parameter": "kernel", "grad_norm": 1e-5 * scale,
             "update_ratio": 1e-7 * scale},
            {"step": step, "layer": "dense", "parameter": "bias", "grad_norm": 0.0,
             "update_ratio": None},
            {"step": step, "layer": "dense", "parameter": "", "grad_norm": None,
             "update_ratio": None},
        ]  # fmt: skip
    return out


def test_series_is_a_parameter_by_step_table_without_what_a_log_scale_cannot_show():
    names, steps, values = series(rows(), "grad_norm")
    assert names == ["dense/kernel", "dense/bias"] and steps == [1, 5]
    np.testing.assert_allclose(values[0], [1e-5, 1e-4])
    assert np.isnan(values[1]).all()  # zero gradients have no logarithm


def test_the_heat_map_spans_at_least_min_decades_and_both_plots_are_written(tmp_path):
    names, steps, values = series(rows(), "grad_norm")
    image = gradient_map(names, steps, values, "t").axes[0].images[0]
    low, high = image.get_clim()
    assert high == math.log10(1e-4) and high - low == MIN_DECADES
    written = plot_layers(rows(), tmp_path, "t")
    assert [p.name for p in written] == ["gradients.png", "updates.png"]
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in written)
    assert plot_layers([], tmp_path / "none") == []
