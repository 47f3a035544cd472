"""Character-level language modelling data from any UTF-8 text file."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bptrain.data.dataset import Dataset, classification
from bptrain.data.options import (
    CommonOptions,
    Footprint,
    check_fraction,
    check_positive,
    data_file,
    file_footprint,
)
from bptrain.errors import DataError


@dataclass(kw_only=True)
class TextOptions(CommonOptions):
    """Windows of characters and the character that follows each window.

    path: a UTF-8 text file. The vocabulary is the sorted set of its characters, kept as a
        string in ``Dataset.extra["vocab"]``; token id i stands for vocab[i].
    seq_len: characters per window; step: stride between window starts.
    test_split: fraction of the text, taken from its end, that the test windows come from
        (a contiguous tail, so no test window overlaps training text).
    x: (N, seq_len) int64 token ids; y: (N,) int64 id of the next character
    (classification with num_classes = vocabulary size). ``scale`` must stay "none".
    """

    task = "classification"

    path: str
    seq_len: int = 40
    step: int = 3
    test_split: float = 0.1

    def footprint(self, source=None) -> Footprint | None:
        # Every window is a row of seq_len int64 ids, and windows start every ``step``
        # characters: (seq_len + 1) / step ids per character, twice (the windows and their
        # splits), and the decoded text (measured: 210 bytes per character for seq_len 40,
        # step 3; 630 for step 1).
        per_character = 16 * (self.seq_len + 1) / self.step + 32
        return file_footprint(
            data_file(self.path, source), ("path", "seq_len", "step"), per_character
        )

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive("seq_len", self.seq_len)
        check_positive("step", self.step)
        check_fraction("test_split", self.test_split)


def load_text(opts: TextOptions, seed: int, source: str | None = None) -> Dataset:
    """Load ``opts.path`` as windows of token ids; the validation split is left empty.
    ``source``: see ``data_file``."""
    path = data_file(opts.path, source)
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise DataError(f"{path} does not exist; check data.path") from None
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{path} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset "
            f"{exc.start}); convert it, e.g. with iconv -t UTF-8"
        ) from None
    except OSError as exc:
        raise DataError(f"{path} cannot be read: {exc}") from None
    if not text:
        raise DataError(f"{path} is empty")

    vocab = "".join(sorted(set(text)))
    codes = np.frombuffer(text.encode("utf-32-le"), dtype="<u4")
    vocab_codes = np.frombuffer(vocab.encode("utf-32-le"), dtype="<u4")
    ids = np.searchsorted(vocab_codes, codes).astype(np.int64)

    cut = len(ids) - int(round(len(ids) * opts.test_split))
    x_train, y_train = windows(ids[:cut], opts.seq_len, opts.step)
    x_test, y_test = windows(ids[cut:], opts.seq_len, opts.step)
    if len(x_train) == 0 or (cut < len(ids) and len(x_test) == 0):
        raise DataError(
            f"{path} has {len(ids)} characters, too few for windows of seq_len={opts.seq_len} "
            f"in both the training text and the last test_split={opts.test_split} of it; "
            "use a longer file or a smaller seq_len"
        )
    ds = classification(
        path.name, x_train, y_train, x_test, y_test, list(vocab), {"vocab": vocab}, np.int64
    )
    ds.source = str(path.resolve())
    return ds


def windows(ids: np.ndarray, seq_len: int, step: int) -> tuple[np.ndarray, np.ndarray]:
    """x: (N, seq_len) windows ids[i : i + seq_len] for i = 0, step, 2 * step, ...;
    y: (N,) the id right after each window."""
    if len(ids) <= seq_len:
        return np.empty((0, seq_len), np.int64), np.empty(0, np.int64)
    w = np.lib.stride_tricks.sliding_window_view(ids, seq_len + 1)[::step]
    return np.ascontiguousarray(w[:, :-1]), np.ascontiguousarray(w[:, -1])
