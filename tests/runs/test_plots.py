from bptrain.runs.plots import plot_confusion_matrix, plot_history

PNG = b"\x89PNG\r\n\x1a\n"


def test_history_plots_one_file_per_quantity(tmp_path):
    history = [
        {"epoch": e, "loss": 1 / e, "val_loss": 1.1 / e, "val_accuracy": 1 - 1 / e, "lr": 0.1}
        for e in (1, 2, 3)
    ]
    written = plot_history(history, tmp_path)
    assert sorted(p.name for p in written) == ["accuracy.png", "loss.png"]
    assert all(p.read_bytes().startswith(PNG) for p in written)
    assert plot_history([], tmp_path) == []


def test_confusion_matrix(tmp_path):
    path = plot_confusion_matrix([[5, 1], [0, 4]], ["cat", "dog"], tmp_path / "cm.png", "t")
    assert path.read_bytes().startswith(PNG)
