import numpy as np
import pytest

from bptrain.data import load_dataset
from bptrain.errors import ConfigError, DataError


def test_vocab_windows_and_next_character(tmp_path):
    text = "hello world, héllo!\n" * 5
    (tmp_path / "t.txt").write_text(text, encoding="utf-8")
    ds = load_dataset(
        {
            "dataset": "text",
            "path": str(tmp_path / "t.txt"),
            "seq_len": 6,
            "step": 2,
            "test_split": 0.0,
        }
    )
    vocab = ds.extra["vocab"]
    assert vocab == "".join(sorted(set(text)))
    assert ds.num_classes == len(vocab) and ds.class_names == list(vocab)
    assert ds.x_train.dtype == np.int64 and ds.y_train.dtype == np.int64
    assert ds.x_train.shape == ((len(text) - 6 - 1) // 2 + 1, 6) and ds.input_shape == (6,)

    def decode(ids):
        return "".join(vocab[i] for i in ids)

    for k in (0, 1, 17, len(ds.x_train) - 1):
        assert decode(ds.x_train[k]) == text[2 * k : 2 * k + 6]
        assert vocab[ds.y_train[k]] == text[2 * k + 6]


def test_test_windows_come_from_the_tail(tmp_path):
    text = "abcdefghij" * 10
    (tmp_path / "t.txt").write_text(text)
    ds = load_dataset(
        {
            "dataset": "text",
            "path": str(tmp_path / "t.txt"),
            "seq_len": 5,
            "step": 1,
            "test_split": 0.2,
        }
    )
    assert len(ds.x_train) == 80 - 5 and len(ds.x_test) == 20 - 5
    vocab = ds.extra["vocab"]
    assert "".join(vocab[i] for i in ds.x_test[0]) == text[80:85]


def test_non_utf8_file_is_a_data_error(tmp_path):
    (tmp_path / "latin1.txt").write_bytes("caf\u00e9 au lait".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1\.txt is not UTF-8 text \(byte 0xe9 at offset 3\)"):
        load_dataset({"dataset": "text", "path": str(tmp_path / "latin1.txt")})


def test_too_short_text_and_scaling_refused(tmp_path):
    (tmp_path / "s.txt").write_text("abc")
    with pytest.raises(DataError, match="too few for windows of seq_len=40"):
        load_dataset({"dataset": "text", "path": str(tmp_path / "s.txt")})
    (tmp_path / "l.txt").write_text("abcdef" * 100)
    with pytest.raises(ConfigError, match="token ids and cannot be scaled"):
        load_dataset({"dataset": "text", "path": str(tmp_path / "l.txt"), "scale": "minmax"})
