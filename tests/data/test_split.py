import numpy as np
import pytest

from bptrain.data import load_dataset
from bptrain.data.split import fold_indices, holdout_indices, rng_for
from bptrain.errors import ConfigError, DataError


def test_holdout_sizes_and_disjoint_cover():
    kept, out = holdout_indices(1000, 0.1, rng_for(0, "validation_split"))
    assert len(kept) == 900 and len(out) == 100
    np.testing.assert_array_equal(np.sort(np.concatenate([kept, out])), np.arange(1000))
    assert np.all(np.diff(kept) > 0) and np.all(np.diff(out) > 0)  # file order kept
    assert len(holdout_indices(100, 0.29, rng_for(0, "v"))[1]) == 29  # rounds, not floors


def test_holdout_is_the_tail_of_a_seeded_permutation():
    perm = rng_for(5, "validation_split").permutation(50)
    _, out = holdout_indices(50, 0.2, rng_for(5, "validation_split"))
    np.testing.assert_array_equal(out, np.sort(perm[40:]))


def test_validation_split_is_deterministic_per_seed():
    spec = {"dataset": "moons", "size": 500, "validation_split": 0.25, "test_split": 0.0}
    a, b, c = (load_dataset(spec, seed=s) for s in (1, 1, 2))
    assert len(a.x_train) == 375 and len(a.x_val) == 125 and len(a.y_val) == 125
    np.testing.assert_array_equal(a.x_val, b.x_val)
    assert not np.array_equal(a.x_val, c.x_val)
    # Together the parts are exactly the samples of the unsplit set.
    whole = load_dataset({**spec, "validation_split": 0.0}, seed=1)
    joined = np.concatenate([a.x_train, a.x_val])
    np.testing.assert_array_equal(
        joined[np.lexsort(joined.T)], whole.x_train[np.lexsort(whole.x_train.T)]
    )


def test_validation_split_does_not_change_the_test_set():
    a = load_dataset({"dataset": "spirals", "validation_split": 0.0}, seed=4)
    b = load_dataset({"dataset": "spirals", "validation_split": 0.3}, seed=4)
    np.testing.assert_array_equal(a.x_test, b.x_test)


def test_split_leaving_nothing_to_train_on(tmp_path):
    with pytest.raises(DataError, match="holds out all 1 samples"):
        load_dataset({"dataset": "sine", "size": 2, "test_split": 0.5, "validation_split": 0.9})


def test_seed_must_be_a_non_negative_int():
    with pytest.raises(ConfigError, match="seed must be a non-negative integer"):
        load_dataset({"dataset": "moons"}, seed=-1)


def test_folds_are_disjoint_and_cover_the_training_set():
    spec = {"dataset": "moons", "size": 203, "test_split": 0.0, "folds": 4}
    whole = load_dataset({"dataset": "moons", "size": 203, "test_split": 0.0}, seed=3)
    held = []
    for fold in range(4):
        ds = load_dataset({**spec, "fold": fold}, seed=3)
        assert len(ds.x_train) + len(ds.x_val) == 203
        assert len(ds.x_val) in (50, 51)  # sizes differ by at most one
        held.append(ds.x_val)
        joined = np.concatenate([ds.x_train, ds.x_val])
        np.testing.assert_array_equal(
            joined[np.lexsort(joined.T)], whole.x_train[np.lexsort(whole.x_train.T)]
        )
    held = np.concatenate(held)
    np.testing.assert_array_equal(
        held[np.lexsort(held.T)], whole.x_train[np.lexsort(whole.x_train.T)]
    )


def test_fold_partition_is_the_seeded_permutation_cut_in_parts():
    _, out = fold_indices(10, 3, 1, rng_for(2, "folds"))
    perm = rng_for(2, "folds").permutation(10)
    np.testing.assert_array_equal(out, np.sort(perm[4:7]))
    a = load_dataset({"dataset": "spirals", "folds": 3, "fold": 2}, seed=1)
    b = load_dataset({"dataset": "spirals", "folds": 3, "fold": 2}, seed=1)
    c = load_dataset({"dataset": "spirals", "folds": 3, "fold": 2}, seed=2)
    np.testing.assert_array_equal(a.x_val, b.x_val)
    assert not np.array_equal(a.x_val, c.x_val)
    # The test set does not depend on the folds.
    plain = load_dataset({"dataset": "spirals"}, seed=1)
    np.testing.assert_array_equal(a.x_test, plain.x_test)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"folds": 1}, "data.folds must be at least 2, got 1"),
        ({"folds": 3, "fold": 3}, r"data.fold must be in \[0, 3\)"),
        ({"fold": 1}, "data.fold needs data.folds"),
        ({"folds": 3, "validation_split": 0.1}, "set validation_split: 0 when using folds"),
    ],
)
def test_bad_fold_options(options, message):
    with pytest.raises(ConfigError, match=message):
        load_dataset({"dataset": "moons", **options})


def test_more_folds_than_samples():
    with pytest.raises(DataError, match="data.folds=5 needs at least 5 training samples"):
        load_dataset({"dataset": "sine", "size": 4, "test_split": 0.0, "folds": 5})
