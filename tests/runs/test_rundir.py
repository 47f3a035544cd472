import time

from bptrain.runs import RunDir, new_run_dir, run_dir_of


def test_names_are_timestamps_and_unique_within_a_second(tmp_path):
    now = time.mktime((2024, 3, 5, 14, 7, 9, 0, 0, -1))
    runs = [new_run_dir(tmp_path, "exp", now) for _ in range(3)]
    assert [r.path.name for r in runs] == [
        "20240305-140709",
        "20240305-140709-2",
        "20240305-140709-3",
    ]
    assert all(r.path.parent == tmp_path / "exp" for r in runs)
    assert runs[0].checkpoints.is_dir() and runs[0].plots.is_dir()


def test_paths_inside_a_run(tmp_path):
    run = RunDir(tmp_path)
    assert run.last == tmp_path / "checkpoints" / "last.safetensors"
    assert run.best.name == "best.safetensors" and run.metrics.name == "metrics.csv"
    assert run_dir_of(run.best).path == tmp_path.resolve()
    assert run_dir_of(tmp_path / "loose.safetensors").path == tmp_path.resolve()
