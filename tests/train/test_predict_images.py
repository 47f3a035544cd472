"""``predict`` on image files and folders: converted like the training images, one row per
file; a model that does not take images says so."""

from __future__ import annotations

import numpy as np
import pytest

from bptrain.data.images import read_images
from bptrain.errors import DataError
from bptrain.runs import checkpoint
from bptrain.train import fit
from bptrain.train.evaluate import checkpoint_path, restore_model
from bptrain.train.predict import predict_file
from tests.data.test_images import write_folder
from tests.train.test_images_fit import image_config

Image = pytest.importorskip("PIL.Image")


def test_files_and_folders_give_one_row_each_as_training_reads_them(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    write_folder(tmp_path / "photos", {"cat": 4, "dog": 4, "fish": 4}, size=(8, 8))
    run = fit(
        image_config(tmp_path / "photos", augment=None), run_dir=tmp_path / "run", progress="none"
    )
    text, n = predict_file(
        run.run_dir, [str(tmp_path / "photos" / "dog"), str(tmp_path / "photos" / "cat" / "1.png")]
    )
    lines = text.splitlines()
    assert n == 5 and lines[0] == "file,prediction,p_cat,p_dog,p_fish"
    assert [line.split(",")[0] for line in lines[1:]] == [
        *(str(tmp_path / "photos" / "dog" / f"{i}.png") for i in range(4)),
        str(tmp_path / "photos" / "cat" / "1.png"),
    ]
    files = [tmp_path / "photos" / "dog" / f"{i}.png" for i in range(4)]
    pixels = read_images([*files, tmp_path / "photos" / "cat" / "1.png"], (8, 8), "rgb")
    _, model = restore_model(checkpoint.load(checkpoint_path(run.run_dir)))  # the best
    expected = model.predict(pixels / np.float32(255))
    got = np.array([[float(v) for v in line.split(",")[2:]] for line in lines[1:]])
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_a_model_of_other_inputs_refuses_images(tmp_path, small_config):
    run = fit(small_config(epochs=1), run_dir=tmp_path / "run", progress="none")
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "a.png")
    with pytest.raises(DataError, match="not images"):
        predict_file(run.run_dir, [str(tmp_path / "a.png")])
    (tmp_path / "p.csv").write_text("0.1,0.2\n")
    with pytest.raises(DataError, match="give one .npy, .npz or .csv file"):
        predict_file(run.run_dir, [str(tmp_path / "p.csv"), str(tmp_path / "a.png")])
