"""Predictions of a checkpoint for new inputs from .npy, .npz or .csv files, or from image
files and folders of them (``bptrain predict``).

Inputs are raw features as in the dataset's own files; the training run's scaling (its
``data.scale`` statistics, kept in the checkpoint) is applied unless told they are scaled
already. Each sample may be given flat (a CSV row of 784 pixels for a (1, 28, 28) model).
Images (PNG, JPEG) are resized and converted to the model's (C, H, W) input as in training
(``bptrain.data.images``), and each CSV row starts with the file's name.
"""

from __future__ import annotations

import csv
import io
import math
import os
import zipfile
from pathlib import Path

import numpy as np

from bptrain.data.images import EXTENSIONS as IMAGE_EXTENSIONS
from bptrain.data.images import image_files, read_images
from bptrain.data.npyfile import open_npz, read_npy
from bptrain.data.preprocess import reduce_axes, unscale_targets
from bptrain.data.tabular import read_csv_rows
from bptrain.errors import DataError
from bptrain.runs import checkpoint
from bptrain.runs.atomic import write_bytes
from bptrain.train.evaluate import as_trained, checkpoint_path, restore_model
from bptrain.train.metrics import predicted_classes

FORMATS = (".npy", ".npz", ".csv")


def read_inputs(path: str | os.PathLike, input_shape: tuple) -> np.ndarray:
    """(N, *input_shape) float32 from a file; flat rows are reshaped to the input shape."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise DataError(f"{path}: expected a .npy, .npz or .csv file")
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        if suffix == ".csv":
            x = _read_csv(path)
        else:
            x = _read_numpy(path)
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path} cannot be read: {' '.join(str(exc).split())}") from None
    if x.dtype.kind not in "biuf":
        raise DataError(f"{path}: inputs must be numbers, got dtype {x.dtype}")
    size = math.prod(input_shape)
    if tuple(x.shape) == tuple(input_shape):
        x = x[None]  # one sample
    elif tuple(x.shape[1:]) != tuple(input_shape):
        if x.ndim < 1 or math.prod(x.shape[1:]) != size:
            raise DataError(
                f"{path}: samples of shape {tuple(x.shape[1:])}, but the model takes "
                f"{tuple(input_shape)} ({size} values per sample)"
            )
        x = x.reshape(len(x), *input_shape)
    if not np.all(np.isfinite(x)):
        raise DataError(f"{path}: inputs hold NaN or infinite values")
    return np.ascontiguousarray(x, dtype=np.float32)


def _read_numpy(path: Path) -> np.ndarray:
    if path.suffix.lower() == ".npy":
        return read_npy(path)
    with open_npz(path) as npz:
        names = npz.names
        key = "x" if "x" in names else names[0] if len(names) == 1 else None
        if key is None:
            listed = ", ".join(names) or "none"
            raise DataError(f"{path} holds arrays {listed}; name the inputs 'x'")
        return npz.load(key)


def _read_csv(path: Path) -> np.ndarray:
    rows, lines = read_csv_rows(path)
    if rows and not _numeric(rows[0]):
        rows, lines = rows[1:], lines[1:]  # a header
    if not rows:
        raise DataError(f"{path} has no rows of numbers")
    for row, line in zip(rows, lines, strict=True):
        if len(row) != len(rows[0]) or not _numeric(row):
            raise DataError(
                f"{path}, line {line}: every cell must be a number, and rows equally long "
                f"({len(rows[0])} cells, as on line {lines[0]})"
            )
    return np.array(rows, dtype=np.float64)


def _numeric(row) -> bool:
    try:
        [float(c) for c in row]
    except ValueError:
        return False
    return True


def apply_scale(x: np.ndarray, scale: dict | None) -> np.ndarray:
    """Scale raw inputs with the training run's statistics (see bptrain.data.preprocess)."""
    if not scale:
        return x
    shape = [1] * x.ndim
    shift = np.asarray(scale["shift"], dtype=np.float32)
    if shift.size > 1:
        keep = [a for a in range(x.ndim) if a not in reduce_axes(x.ndim)]
        shape[keep[0]] = shift.size
    x = x - shift.reshape(shape)
    x /= np.asarray(scale["divisor"], dtype=np.float32).reshape(shape)
    return x


def is_image_input(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder or an image file (PNG, JPEG)."""
    return Path(path).is_dir() or Path(path).suffix.lower() in IMAGE_EXTENSIONS


def read_image_inputs(paths, input_shape: tuple) -> tuple[np.ndarray, list[str]]:
    """((N, C, H, W) float32 raw pixels, file names) of image files and folders of them,
    resized and converted to ``input_shape`` (C, H, W) as in training."""
    if len(input_shape) != 3 or input_shape[0] not in (1, 3):
        shape = "x".join(str(d) for d in input_shape)
        raise DataError(
            f"this model takes inputs of shape {shape}, not images (1 or 3 channels, NCHW); "
            "give a .npy, .npz or .csv file"
        )
    files = [f for p in paths for f in image_files(Path(p))]
    if not files:
        raise DataError(f"{', '.join(map(str, paths))}: no .png or .jpg images found")
    color = "grayscale" if input_shape[0] == 1 else "rgb"
    return read_images(files, input_shape[1:], color), [str(f) for f in files]


def predict_file(path, inputs, output=None, scaled: bool = False, batch_size: int = 1024):
    """Predict for ``inputs`` (a file, or a list of image files and folders); write CSV (or
    .npy of the raw outputs) to ``output``, or return the CSV text when ``output`` is None.
    Returns (text or None, number of samples)."""
    ckpt = checkpoint.load(checkpoint_path(path))
    config, model = restore_model(ckpt)
    info = ckpt.state["data"]
    paths = [inputs] if isinstance(inputs, str | os.PathLike) else list(inputs)
    names = None
    if all(is_image_input(p) for p in paths):
        x, names = read_image_inputs(paths, tuple(info["input_shape"]))
    elif len(paths) == 1:
        x = read_inputs(paths[0], tuple(info["input_shape"]))
    else:
        raise DataError("give one .npy, .npz or .csv file, or any number of images and folders")
    if not scaled:
        x = apply_scale(x, info.get("scale"))
    with as_trained(config, model):
        outputs = model.predict(x, batch_size)
    if info["task"] == "regression":  # in the targets' own units (data.scale_target undone)
        outputs = unscale_targets(outputs, info.get("scale_target"))
    if output is not None and Path(output).suffix.lower() == ".npy":
        buf = io.BytesIO()
        np.save(buf, outputs, allow_pickle=False)
        write_bytes(output, buf.getvalue())
        return None, len(x)
    text = _csv(outputs, info, names)
    if output is None:
        return text, len(x)
    write_bytes(output, text.encode("utf-8"))
    return None, len(x)


def _csv(outputs: np.ndarray, info: dict, files: list[str] | None = None) -> str:
    """CSV of the predictions; ``files`` (image files) become a first column, ``file``."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    if info["task"] == "classification":
        names = info["class_names"] or [str(c) for c in range(info["num_classes"])]
        classes = predicted_classes(outputs)
        probs = outputs if outputs.shape[-1] > 1 else np.c_[1 - outputs, outputs]
        header = ["prediction", *(f"p_{n}" for n in names)]
        rows = [[names[c], *(f"{v:.6g}" for v in p)] for c, p in zip(classes, probs, strict=True)]
    else:
        flat = outputs.reshape(len(outputs), -1)
        header = [f"y_{j}" for j in range(flat.shape[1])] if flat.shape[1] > 1 else ["y"]
        rows = [[f"{v:.7g}" for v in row] for row in flat]
    if files is not None:
        header = ["file", *header]
        rows = [[name, *row] for name, row in zip(files, rows, strict=True)]
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()
