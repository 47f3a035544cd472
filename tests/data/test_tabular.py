import numpy as np
import pytest

from bptrain.data import load_dataset
from bptrain.errors import DataError


def _csv(tmp_path, text, name="t.csv"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_csv_numeric_classification_and_features(tmp_path):
    rows = "\n".join(f"{i},{i * 0.5},{i % 3}" for i in range(10))
    path = _csv(tmp_path, "a,b,label\n" + rows + "\n")
    ds = load_dataset({"dataset": "csv", "path": path, "target": "label", "test_split": 0.0})
    assert ds.task == "classification" and ds.num_classes == 3
    assert ds.class_names == ["0", "1", "2"]
    np.testing.assert_array_equal(ds.x_train[:, 0], np.arange(10, dtype=np.float32))
    np.testing.assert_array_equal(ds.x_train[:, 1], np.arange(10, dtype=np.float32) * 0.5)
    np.testing.assert_array_equal(ds.y_train, np.arange(10) % 3)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    assert ds.input_shape == (2,)
    assert ds.extra == {"feature_names": ["a", "b"], "target_name": "label"}

    only_b = load_dataset(
        {"dataset": "csv", "path": path, "target": 2, "features": ["b"], "test_split": 0.0}
    )
    np.testing.assert_array_equal(only_b.x_train[:, 0], np.arange(10, dtype=np.float32) * 0.5)


def test_csv_string_labels_map_to_sorted_indices(tmp_path):
    path = _csv(tmp_path, "x,species\n1,virginica\n2,setosa\n3,versicolor\n4,setosa\n")
    ds = load_dataset({"dataset": "csv", "path": path, "test_split": 0.0})
    assert ds.class_names == ["setosa", "versicolor", "virginica"]
    np.testing.assert_array_equal(ds.y_train, [2, 0, 1, 0])


def test_csv_regression_auto_and_forced(tmp_path):
    path = _csv(tmp_path, "x,y\n1,0.5\n2,1.5\n3,2.25\n")
    ds = load_dataset({"dataset": "csv", "path": path, "test_split": 0.0})
    assert ds.task == "regression" and ds.num_classes is None
    np.testing.assert_array_equal(ds.y_train, np.array([[0.5], [1.5], [2.25]], np.float32))
    ints = _csv(tmp_path, "x,y\n1,1\n2,2\n3,3\n", name="ints.csv")
    forced = load_dataset({"dataset": "csv", "path": ints, "task": "regression", "test_split": 0})
    assert forced.task == "regression" and forced.y_train.shape == (3, 1)


def test_csv_without_header(tmp_path):
    path = _csv(tmp_path, "1;2;0\n3;4;1\n")
    ds = load_dataset(
        {"dataset": "csv", "path": path, "header": False, "delimiter": ";", "test_split": 0.0}
    )
    np.testing.assert_array_equal(ds.x_train, [[1, 2], [3, 4]])
    np.testing.assert_array_equal(ds.y_train, [0, 1])


def test_csv_test_split_is_seeded_and_disjoint(tmp_path):
    path = _csv(tmp_path, "x,y\n" + "".join(f"{i},{i % 2}\n" for i in range(50)))
    a = load_dataset({"dataset": "csv", "path": path}, seed=3)
    b = load_dataset({"dataset": "csv", "path": path}, seed=3)
    assert len(a.x_test) == 10 and len(a.x_train) == 40
    np.testing.assert_array_equal(a.x_test, b.x_test)
    all_x = np.sort(np.concatenate([a.x_train[:, 0], a.x_test[:, 0]]))
    np.testing.assert_array_equal(all_x, np.arange(50))


def test_csv_nan_names_row_and_column(tmp_path):
    path = _csv(tmp_path, "a,b,y\n1,2,0\n3,nan,1\n")
    with pytest.raises(DataError) as err:
        load_dataset({"dataset": "csv", "path": path})
    assert str(err.value).startswith(f"{path}: row 2 (line 3), column 'b' is 'nan'")


def test_csv_empty_and_non_numeric_cells(tmp_path):
    path = _csv(tmp_path, "a,b,y\n1,2,0\n3,4,1\n,5,0\n")
    with pytest.raises(DataError, match=r"row 3 \(line 4\), column 'a' is empty"):
        load_dataset({"dataset": "csv", "path": path})
    path = _csv(tmp_path, "a,b,y\n1,two,0\n", name="words.csv")
    with pytest.raises(DataError, match=r"words\.csv: row 1 \(line 2\), column 'b' is 'two'"):
        load_dataset({"dataset": "csv", "path": path})


def test_csv_ragged_row_and_unknown_column(tmp_path):
    path = _csv(tmp_path, "a,b,y\n1,2,0\n1,2\n")
    with pytest.raises(DataError, match=r"t\.csv, line 3: 2 fields, expected the 3"):
        load_dataset({"dataset": "csv", "path": path})
    path = _csv(tmp_path, "alpha,label\n1,0\n", name="u.csv")
    with pytest.raises(DataError, match="no column 'lable'; did you mean 'label'"):
        load_dataset({"dataset": "csv", "path": path, "target": "lable"})


def test_csv_missing_file(tmp_path):
    with pytest.raises(DataError, match="nope.csv does not exist"):
        load_dataset({"dataset": "csv", "path": str(tmp_path / "nope.csv")})


def test_npz_with_test_arrays(tmp_path):
    rng = np.random.default_rng(0)
    x, xt = rng.random((12, 3, 4)), rng.random((5, 3, 4))
    y, yt = rng.integers(0, 4, 12), np.array([0, 1, 2, 3, 3])
    np.savez(tmp_path / "d.npz", x_train=x, y_train=y, x_test=xt, y_test=yt)
    ds = load_dataset({"dataset": "npz", "path": str(tmp_path / "d.npz")})
    assert ds.input_shape == (3, 4) and ds.x_train.dtype == np.float32
    np.testing.assert_allclose(ds.x_test, xt.astype(np.float32))
    assert ds.task == "classification" and ds.num_classes == 4
    np.testing.assert_array_equal(ds.y_train, y)


def test_npz_integer_inputs_become_float32(tmp_path):
    x = np.arange(24, dtype=np.int64).reshape(6, 4)
    np.savez(tmp_path / "i.npz", x_train=x, y_train=np.arange(6) % 2)
    ds = load_dataset({"dataset": "npz", "path": str(tmp_path / "i.npz"), "scale": "minmax"})
    assert ds.x_train.dtype == np.float32
    assert ds.x_train.min() == 0.0 and ds.x_train.max() == 1.0


def test_npz_custom_names_and_test_split(tmp_path):
    x = np.arange(20, dtype=np.float64).reshape(10, 2)
    np.savez(tmp_path / "r.npz", inputs=x, targets=x.sum(axis=1) + 0.5)
    spec = {
        "dataset": "npz",
        "path": str(tmp_path / "r.npz"),
        "x_train": "inputs",
        "y_train": "targets",
        "test_split": 0.3,
    }
    ds = load_dataset(spec, seed=1)
    assert ds.task == "regression"
    assert len(ds.x_train) == 7 and len(ds.x_test) == 3 and ds.y_test.shape == (3, 1)
    np.testing.assert_allclose(ds.y_train[:, 0], ds.x_train.sum(axis=1) + 0.5)


def test_npz_with_pickled_objects_is_refused(tmp_path):
    objects = np.empty(2, dtype=object)
    objects[:] = [{"a": 1}, None]
    np.savez(tmp_path / "p.npz", x_train=objects, y_train=np.zeros(2))
    with pytest.raises(DataError, match=r"p\.npz: array 'x_train' holds Python objects"):
        load_dataset({"dataset": "npz", "path": str(tmp_path / "p.npz")})


def test_npz_missing_array_and_one_hot_labels(tmp_path):
    np.savez(tmp_path / "m.npz", x=np.zeros((3, 2)), y=np.zeros(3))
    with pytest.raises(DataError, match=r"m\.npz has no array 'x_train' \(arrays: x, y\)"):
        load_dataset({"dataset": "npz", "path": str(tmp_path / "m.npz")})
    np.savez(tmp_path / "o.npz", x_train=np.zeros((4, 2)), y_train=np.eye(4))
    with pytest.raises(DataError, match="one label per sample"):
        load_dataset({"dataset": "npz", "path": str(tmp_path / "o.npz"), "task": "classification"})


def test_npz_not_a_zip(tmp_path):
    (tmp_path / "junk.npz").write_bytes(b"not a zip file")
    with pytest.raises(DataError, match=r"junk\.npz is not a readable \.npz file"):
        load_dataset({"dataset": "npz", "path": str(tmp_path / "junk.npz")})


def test_csv_empty_rows_inside_the_table_are_refused_with_their_line(tmp_path):
    # Dropping them silently would pair every later row with another row's line number.
    path = _csv(tmp_path, "a,b,y\n1,2,0\n,,\n3,4,1\n")
    with pytest.raises(DataError) as err:
        load_dataset({"dataset": "csv", "path": path})
    assert str(err.value) == (
        f"{path}, line 3: an empty row (no value in any column); fill it in or remove it"
    )
    path = _csv(tmp_path, "a,b,y\n1,2,0\n\n3,4,1\n", name="blank.csv")
    with pytest.raises(DataError, match=r"blank\.csv, line 3: an empty row"):
        load_dataset({"dataset": "csv", "path": path})


def test_csv_empty_rows_at_the_end_are_ignored(tmp_path):
    path = _csv(tmp_path, "a,b,y\n1,2,0\n3,4,1\n,,\n\n")
    ds = load_dataset({"dataset": "csv", "path": path, "test_split": 0.0})
    np.testing.assert_array_equal(ds.x_train, [[1, 2], [3, 4]])
    np.testing.assert_array_equal(ds.y_train, [0, 1])


def test_csv_target_errors_print_plain_values(tmp_path):
    path = _csv(tmp_path, "a,y\n1,0.5\n2,nan\n")
    with pytest.raises(DataError) as err:
        load_dataset({"dataset": "csv", "path": path})
    assert str(err.value) == (
        f"{path}: row 2 (line 3), column 'y': the target is 'nan'; targets must be finite "
        "numbers or labels"
    )


def test_npz_dataset_with_a_crafted_header_is_refused(tmp_path):
    import zipfile

    from tests.data.test_npyfile import npy_bytes

    with zipfile.ZipFile(tmp_path / "c.npz", "w") as z:
        z.writestr("x_train.npy", npy_bytes((100_000_000_000, 2)))
        z.writestr("y_train.npy", npy_bytes((2,), descr="<i8"))
    with pytest.raises(DataError, match=r"c\.npz: array 'x_train': its header declares an array"):
        load_dataset({"dataset": "npz", "path": str(tmp_path / "c.npz")})
