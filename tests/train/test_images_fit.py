"""Training on an image folder with augmentation: a crash or a SIGKILL and ``--resume`` end
bit-identical to the uninterrupted run; augmentation changes training batches only."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from bptrain.train import fit
from tests.data.test_images import write_folder
from tests.reliability.conftest import assert_same_files, bptrain
from tests.train.test_fit import assert_crash_resume_exact

pytest.importorskip("PIL")

AUGMENT = [
    {"type": "random_shift", "pixels": 1},
    {"type": "random_flip", "mode": "horizontal"},
    {"type": "random_rotation", "degrees": 10},
    {"type": "random_crop", "size": [7, 7]},
]


@pytest.fixture
def photos(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    write_folder(tmp_path / "photos", {"cat": 12, "dog": 12, "fish": 12}, size=(8, 8))
    return tmp_path / "photos"


def image_config(photos, augment=AUGMENT, **training) -> dict:
    """36 images (29 for training: 8 steps of 4), a small CNN with dropout."""
    return {
        "name": "pets",
        "seed": 0,
        "data": {
            "dataset": "images",
            "path": str(photos),
            "image_size": [8, 8],
            "validation_split": 0.2,
            "augment": augment,
        },
        "model": {
            "layers": [
                {"type": "Conv2D", "filters": 4, "kernel_size": 3, "activation": "relu"},
                {"type": "Flatten"},
                {"type": "Dropout", "rate": 0.2},
                {"type": "Dense", "units": 3, "activation": "softmax"},
            ]
        },
        "loss": "sparse_categorical_crossentropy",
        "optimizer": {"type": "adam", "learning_rate": 0.01},
        "training": {"epochs": 3, "batch_size": 4, "plots": False, **training},
    }


def test_augmentation_changes_every_training_batch(tmp_path, photos, monkeypatch):
    from bptrain.train.loop import Trainer

    seen = []
    original = Trainer.train_step
    monkeypatch.setattr(
        Trainer,
        "train_step",
        lambda self, xb, yb, wb=None: seen.append(xb.copy()) or original(self, xb, yb, wb),
    )
    plain = fit(image_config(photos, augment=None), run_dir=tmp_path / "a", progress="none")
    n = len(seen)
    augmented = fit(image_config(photos), run_dir=tmp_path / "b", progress="none")
    assert len(seen) == 2 * n
    changed = [not np.array_equal(a, b) for a, b in zip(seen[:n], seen[n:], strict=True)]
    assert all(changed)
    assert plain.history[0]["val_loss"] != augmented.history[0]["val_loss"]  # other weights


def test_crash_and_resume_with_augmentation_is_bit_identical(tmp_path, photos, monkeypatch):
    config = image_config(photos, checkpoint={"every_steps": 3})
    # crashes in epoch 2, after its checkpoint at step 3
    assert_crash_resume_exact(config, tmp_path, monkeypatch, 13)


def test_sigkill_and_resume_with_augmentation_is_bit_identical(tmp_path, photos):
    (tmp_path / "pets.yaml").write_text(
        yaml.safe_dump(image_config(photos, checkpoint={"every_steps": 3}))
    )
    args = ("fit", "pets.yaml", "--progress", "none", "--run-dir")
    done = bptrain(*args, "full", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    killed = bptrain(*args, "killed", cwd=tmp_path, fault="kill_at:train.step:12")
    assert killed.returncode == -9
    resumed = bptrain("fit", "--resume", "killed", "--progress", "none", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert_same_files(tmp_path / "killed", tmp_path / "full")
