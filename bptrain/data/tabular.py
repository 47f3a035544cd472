"""Tables from CSV and NPZ files.

Targets: a numeric target that is integer-valued with at most ``MAX_AUTO_CLASSES`` distinct
values, or any non-numeric target, is a classification target under ``task: auto``; class
indices are the positions of the sorted distinct labels, and ``class_names`` keeps the labels.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from bptrain.data.dataset import Dataset, classification, regression
from bptrain.data.npyfile import open_npz
from bptrain.data.options import (
    CommonOptions,
    Footprint,
    check_fraction,
    data_file,
    file_footprint,
)
from bptrain.data.split import hold_out_test_set
from bptrain.errors import DataError, closest
from bptrain.memory import format_bytes

MAX_AUTO_CLASSES = 50
Task = Literal["classification", "regression", "auto"]


@dataclass(kw_only=True)
class CsvOptions(CommonOptions):
    """A CSV table: one sample per row, one feature or target per column.

    path: the CSV file (UTF-8).
    target: the target column, by name (or, without a header, "0", "1", ...) or by index
        (negative counts from the end; default: the last column).
    features: the feature columns by name; null means every column but the target.
    header: whether the first row holds column names.
    task: "classification", "regression", or "auto" (an integer-valued target with at most
        50 distinct values, or a non-numeric one, is classification).
    test_split: fraction of rows held out (seeded) as the test set, in [0, 1).
    delimiter: the field separator.
    weight_column: a column of sample weights (non-negative numbers; by name or index, as
        ``target``), not a feature: each row's loss is multiplied by it (``w_*`` of the
        Dataset, see ``bptrain.data.weights``).
    x: (N, F) float32; y: (N,) int64 class indices, or (N, 1) float32 for regression.
    """

    path: str
    target: str | int = -1
    features: list[str] | None = None
    header: bool = True
    task: Task = "auto"
    test_split: float = 0.2
    delimiter: str = ","
    weight_column: str | int | None = None

    def footprint(self, source=None) -> Footprint | None:
        # Python lists of strings, a string array, float arrays (measured: 12 to 22 bytes of
        # memory per byte of file, more for short cells), with a margin.
        return file_footprint(data_file(self.path, source), ("path",), 32)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_fraction("test_split", self.test_split)


@dataclass(kw_only=True)
class NpzOptions(CommonOptions):
    """Arrays in a NumPy .npz file (loaded without pickle; object arrays are refused).

    path: the .npz file.
    x_train, y_train, x_test, y_test: the names of the arrays in the file. Without the two
        test arrays, ``test_split`` of the training rows are held out (seeded) as the test set.
    task: "classification", "regression" or "auto" (as for csv).
    x: (N, ...) float32 with the file's per-sample shape; y: (N,) int64 class indices, or
        (N, outputs) float32 for regression.
    """

    path: str
    x_train: str = "x_train"
    y_train: str = "y_train"
    x_test: str = "x_test"
    y_test: str = "y_test"
    task: Task = "auto"
    test_split: float = 0.2

    def footprint(self, source=None) -> Footprint | None:
        path = data_file(self.path, source)
        if not path.is_file():
            return None
        with open_npz(path) as npz:  # the arrays' declared sizes (checked against the file)
            names = [self.x_train, self.y_train, self.x_test, self.y_test]
            declared = sum(npz.nbytes(n) for n in names if n in npz.names)
        # the arrays, their float32 copies and the splits
        return Footprint(3 * declared, ("path",), f"{path} ({format_bytes(declared)} of arrays)")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_fraction("test_split", self.test_split)


def load_csv(opts: CsvOptions, seed: int, source: str | None = None) -> Dataset:
    """Load a CSV table; the validation split is left empty. ``source``: see ``data_file``."""
    path = data_file(opts.path, source)
    names, rows, lines = _read_rows(path, opts)
    table = np.array(rows, dtype=str)
    target = _column(path, names, opts.target)
    weight = None if opts.weight_column is None else _column(path, names, opts.weight_column)
    if weight == target:
        raise DataError(f"{path}: column {names[target]!r} is both target and weight_column")
    if opts.features is None:
        features = [j for j in range(len(names)) if j not in (target, weight)]
    else:
        features = [_column(path, names, name) for name in opts.features]
        for j, role in ((target, "target"), (weight, "weight_column")):
            if j in features:
                raise DataError(f"{path}: column {names[j]!r} is both {role} and a feature")
    if not features:
        raise DataError(f"{path} has no feature columns besides the target")

    x = _parse_features(path, table[:, features], [names[j] for j in features], lines)
    labels = np.char.strip(table[:, target])
    empty = np.flatnonzero(labels == "")
    if empty.size:
        raise DataError(
            f"{path}: row {empty[0] + 1} (line {lines[empty[0]]}), column "
            f"{names[target]!r}: the target is empty; fill it in or remove the row"
        )
    numeric = _try_float(labels)
    if numeric is not None and not np.all(np.isfinite(numeric)):
        i = int(np.flatnonzero(~np.isfinite(numeric))[0])
        raise DataError(
            f"{path}: row {i + 1} (line {lines[i]}), column {names[target]!r}: the target is "
            f"{str(labels[i])!r}; targets must be finite numbers or labels"
        )
    y = numeric if numeric is not None else labels
    task = _task(path, y, opts.task)

    x_train, y_train, x_test, y_test = hold_out_test_set(x, y, opts.test_split, seed)
    extra = {"feature_names": [names[j] for j in features], "target_name": names[target]}
    ds = _dataset(path, task, x_train, y_train, x_test, y_test, extra)
    if weight is not None:
        w = _parse_features(path, table[:, [weight]], [names[weight]], lines)[:, 0]
        negative = np.flatnonzero(w < 0)
        if negative.size:
            i = int(negative[0])
            raise DataError(
                f"{path}: row {i + 1} (line {lines[i]}), column {names[weight]!r}: the weight "
                f"is {w[i]:g}; sample weights must not be negative"
            )
        ds.w_train, _, ds.w_test, _ = hold_out_test_set(w, w, opts.test_split, seed)
    return ds


def load_npz(opts: NpzOptions, seed: int, source: str | None = None) -> Dataset:
    """Load arrays from a .npz file; the validation split is left empty. ``source``: see
    ``data_file``."""
    path = data_file(opts.path, source)
    arrays = _read_npz(path, [opts.x_train, opts.y_train], [opts.x_test, opts.y_test])
    x_train, y_train = arrays[opts.x_train], arrays[opts.y_train]
    for key in (opts.x_train, opts.x_test):
        if key in arrays and arrays[key].dtype.kind not in "biuf":
            raise DataError(
                f"{path}: array {key!r} has dtype {arrays[key].dtype}; inputs must be numeric"
            )
    for key, array in arrays.items():
        if array.dtype.kind in "biuf" and not np.all(np.isfinite(array)):
            raise DataError(f"{path}: array {key!r} holds NaN or infinite values; clean it first")
    if opts.x_test in arrays:
        x_test, y_test = arrays[opts.x_test], arrays[opts.y_test]
    else:
        x_train, y_train, x_test, y_test = hold_out_test_set(
            x_train, y_train, opts.test_split, seed
        )
    if y_train.ndim == 2 and y_train.shape[1] == 1:
        y_train, y_test = y_train[:, 0], y_test[:, 0]
    task = _task(path, np.concatenate([y_train, y_test]), opts.task)
    if task == "classification" and y_train.ndim != 1:
        raise DataError(
            f"{path}: classification targets must be one label per sample, shape (N,), but "
            f"{opts.y_train!r} has shape {y_train.shape}; store class indices (argmax of one-hot)"
        )
    return _dataset(path, task, x_train, y_train, x_test, y_test, {})


def _dataset(path: Path, task: str, x_train, y_train, x_test, y_test, extra: dict) -> Dataset:
    name = path.name
    if task == "regression":
        ds = regression(name, x_train, y_train, x_test, y_test, extra)
    else:
        classes, inverse = np.unique(np.concatenate([y_train, y_test]), return_inverse=True)
        inverse = inverse.reshape(-1)
        class_names = [_label_name(c) for c in classes]
        n = len(y_train)
        ds = classification(name, x_train, inverse[:n], x_test, inverse[n:], class_names, extra)
    ds.source = str(path.resolve())
    return ds


def _task(path: Path, y: np.ndarray, task: str) -> str:
    numeric = y.dtype.kind in "biuf"
    if task == "regression" and not numeric:
        raise DataError(f"{path}: the target is not numeric, so it cannot be a regression target")
    if task != "auto":
        return task
    if not numeric:
        return "classification"
    y = y.astype(np.float64)
    if y.ndim == 1 and np.all(y == np.round(y)) and len(np.unique(y)) <= MAX_AUTO_CLASSES:
        return "classification"
    return "regression"


def _label_name(label) -> str:
    if isinstance(label, np.floating) and label == int(label):
        return str(int(label))
    return str(label)


def read_csv_rows(path: Path, delimiter: str = ",") -> tuple[list[list[str]], list[int]]:
    """The rows of a CSV file (UTF-8, a byte-order mark allowed) and each row's line number.

    Empty rows (a blank line, or only delimiters) at the end of the file are dropped; anywhere
    else they are refused with their line number: dropping them would make every row after
    them pair with the wrong target or prediction.
    """
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f, delimiter=delimiter)
            rows, lines, empty = [], [], None
            for row in reader:
                if not any(cell.strip() for cell in row):
                    empty = empty or reader.line_num
                    continue
                if empty is not None:
                    raise DataError(
                        f"{path}, line {empty}: an empty row (no value in any column); fill it "
                        "in or remove it"
                    )
                rows.append(row)
                lines.append(reader.line_num)
    except FileNotFoundError:
        raise DataError(f"{path} does not exist; check data.path") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except (OSError, csv.Error) as exc:
        raise DataError(f"{path} cannot be read as CSV: {exc}") from None
    return rows, lines


def _read_rows(path: Path, opts: CsvOptions) -> tuple[list[str], list[list[str]], list[int]]:
    """Column names, data rows and each row's line number."""
    rows, lines = read_csv_rows(path, opts.delimiter)
    if opts.header:
        if not rows:
            raise DataError(f"{path} is empty")
        names, rows, header_line = [c.strip() for c in rows[0]], rows[1:], lines[0]
        lines = lines[1:]
    else:
        names, header_line = [str(j) for j in range(len(rows[0]) if rows else 0)], None
    if not rows:
        raise DataError(f"{path} has no data rows")
    for row, line in zip(rows, lines, strict=True):
        if len(row) != len(names):
            expected = (
                f"the {len(names)} of the header (line {header_line})"
                if opts.header
                else len(names)
            )
            raise DataError(
                f"{path}, line {line}: {len(row)} fields, expected {expected}; "
                f"check the delimiter ({opts.delimiter!r}) and quoting"
            )
    return names, rows, lines


def _column(path: Path, names: list[str], key: str | int) -> int:
    """The index of a column given by name or by (possibly negative) index."""
    if isinstance(key, int):
        if not -len(names) <= key < len(names):
            raise DataError(f"{path} has {len(names)} columns; column index {key} is out of range")
        return key % len(names)
    if key in names:
        return names.index(key)
    close = closest(key, names)
    hint = f"; did you mean {close!r}?" if close else f" (columns: {', '.join(names)})"
    raise DataError(f"{path} has no column {key!r}{hint}")


def _try_float(cells: np.ndarray) -> np.ndarray | None:
    try:
        return cells.astype(np.float64)
    except ValueError:
        return None


def _parse_features(
    path: Path, cells: np.ndarray, names: list[str], lines: list[int]
) -> np.ndarray:
    """(N, F) float32 from strings; names the first bad cell's row and column."""
    x = _try_float(cells)
    if x is None:
        bad = None
        for (i, j), cell in np.ndenumerate(cells):  # only on the error path
            if _try_float(np.array([cell])) is None:
                bad = (i, j, cell)
                break
        i, j, cell = bad
        what = "empty" if cell.strip() == "" else f"{cell.strip()!r}, not a number"
        raise DataError(
            f"{path}: row {i + 1} (line {lines[i]}), column {names[j]!r} is {what}; "
            "every feature must be a number"
        )
    nonfinite = np.argwhere(~np.isfinite(x))
    if nonfinite.size:
        i, j = nonfinite[0]
        raise DataError(
            f"{path}: row {i + 1} (line {lines[i]}), column {names[j]!r} is "
            f"{cells[i, j].strip()!r}; every feature must be a finite number (fill in or "
            "remove missing values)"
        )
    return x.astype(np.float32)


def _read_npz(path: Path, required: list[str], optional_pair: list[str]) -> dict[str, np.ndarray]:
    """The arrays named in ``required`` and, if either is present, both of ``optional_pair``."""
    with open_npz(path) as npz:
        present = set(npz.names)
        wanted = list(required)
        if any(key in present for key in optional_pair):
            wanted += optional_pair
        missing = [key for key in wanted if key not in present]
        if missing:
            raise DataError(
                f"{path} has no array {missing[0]!r} (arrays: {', '.join(sorted(present))}); "
                "name the arrays with data.x_train, data.y_train, data.x_test, data.y_test"
            )
        arrays = {key: npz.load(key) for key in wanted}
    for x_key, y_key in zip(wanted[0::2], wanted[1::2], strict=True):
        if len(arrays[x_key]) != len(arrays[y_key]):
            raise DataError(
                f"{path}: {x_key!r} has {len(arrays[x_key])} rows but {y_key!r} has "
                f"{len(arrays[y_key])}; they must match"
            )
    return arrays
