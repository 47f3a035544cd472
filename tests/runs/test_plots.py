import pytest

from bptrain.runs.plots import history_figures, plot_confusion_matrix, plot_history

PNG = b"\x89PNG\r\n\x1a\n"


def rows(epochs, **curves):
    """History rows: ``curves`` maps a column to a function of the epoch."""
    return [{"epoch": e, **{k: f(e) for k, f in curves.items()}, "lr": 0.1} for e in epochs]


def curves(fig) -> dict:
    """label -> (x, y) of the data lines of ``fig``'s axes (the best-epoch line left out)."""
    (ax,) = fig.axes
    return {
        line.get_label(): (list(line.get_xdata()), list(line.get_ydata()))
        for line in ax.get_lines()
        if not line.get_label().startswith(("_", "best"))
    }


def test_history_plots_one_file_per_quantity(tmp_path):
    history = rows(
        (1, 2, 3),
        loss=lambda e: 1 / e,
        accuracy=lambda e: 1 - 1.2 / e,
        val_loss=lambda e: 1.1 / e,
        val_accuracy=lambda e: 1 - 1 / e,
    )
    written = plot_history(history, tmp_path, "spirals (run-1)", 2, "val_loss")
    assert sorted(p.name for p in written) == ["accuracy.png", "loss.png"]
    assert all(p.read_bytes().startswith(PNG) for p in written)
    assert plot_history([], tmp_path) == []


def test_plots_have_the_run_as_title_both_curves_and_the_best_epoch():
    history = rows(
        range(1, 6),
        loss=lambda e: 1 / e,
        accuracy=lambda e: 0.5 + e / 20,
        val_loss=lambda e: 1.2 / e + (0.2 if e == 5 else 0),
        val_accuracy=lambda e: 0.4 + e / 20,
    )
    figures = history_figures(history, "spirals (20261126-163825)", 4, "val_loss")
    assert list(figures) == ["loss", "accuracy"]
    loss = figures["loss"].axes[0]
    assert loss.get_title() == "spirals (20261126-163825): loss"
    assert curves(figures["loss"]) == {
        "training": ([1, 2, 3, 4, 5], [1 / e for e in range(1, 6)]),
        "validation": ([1, 2, 3, 4, 5], [r["val_loss"] for r in history]),
    }
    assert curves(figures["accuracy"])["training"][1] == [0.55, 0.6, 0.65, 0.7, 0.75]
    for fig in figures.values():  # the best epoch, marked on every plot
        best = [line for line in fig.axes[0].get_lines() if line.get_label().startswith("best")]
        assert [b.get_label() for b in best] == ["best: epoch 4 by val_loss"]
        assert list(best[0].get_xdata()) == [4, 4]
    stars = [line for line in loss.get_lines() if line.get_marker() == "*"]
    assert [(list(s.get_xdata()), list(s.get_ydata())) for s in stars] == [([4], [0.3])]
    assert [t for t in loss.get_xticks() if 1 <= t <= 5] == [1, 2, 3, 4, 5]  # whole epochs
    assert loss.get_yscale() == "linear"  # 1 to 0.2: less than 1.5 decades


def test_a_loss_that_spans_decades_gets_a_log_axis():
    history = rows(range(1, 31), loss=lambda e: 10.0 / e**2, mse=lambda e: 10.0 / e**2)
    history += rows([31], loss=lambda e: 0.0, mse=lambda e: 0.0)  # not drawn on a log axis
    figures = history_figures(history[:-1])
    assert figures["loss"].axes[0].get_yscale() == "log"  # 10 to 0.011: 2.95 decades
    assert figures["mse"].axes[0].get_yscale() == "log"
    assert history_figures(history)["loss"].axes[0].get_yscale() == "linear"
    accuracy = history_figures(rows(range(1, 31), loss=lambda e: 1, accuracy=lambda e: 1e-3 * e))
    assert accuracy["accuracy"].axes[0].get_yscale() == "linear"  # only errors


def test_one_epoch_shows_one_tick_and_the_scale():
    history = rows([1], loss=lambda e: 1.0005, accuracy=lambda e: 0.3819, val_loss=lambda e: 0.9431)
    figures = history_figures(history, "spirals (one)", 1, "val_loss")
    loss, accuracy = figures["loss"].axes[0], figures["accuracy"].axes[0]
    assert list(loss.get_xticks()) == [1]  # not 0.96, 0.98, ... 1.04
    assert loss.get_xlim() == (0.5, 1.5)
    assert loss.get_ylim() == pytest.approx((0.0, 1.0005 * 1.25))
    assert accuracy.get_ylim() == pytest.approx((-0.05, 1.05))
    assert sorted(curves(figures["loss"])) == ["training 1.000", "validation 0.9431"]


def test_a_run_without_validation_draws_its_training_curves():
    history = rows((1, 2, 3), loss=lambda e: 3 - e / 2, accuracy=lambda e: e / 10)
    figures = history_figures(history, "char_lstm (run)", 3, "loss")
    assert sorted(figures) == ["accuracy", "loss"]
    assert curves(figures["accuracy"]) == {"training": ([1, 2, 3], [0.1, 0.2, 0.3])}


def test_confusion_matrix(tmp_path):
    path = plot_confusion_matrix([[5, 1], [0, 4]], ["cat", "dog"], tmp_path / "cm.png", "t")
    assert path.read_bytes().startswith(PNG)
