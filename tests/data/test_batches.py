import numpy as np
import pytest

from bptrain.data import iterate_minibatches


def test_every_index_once_in_the_given_order():
    x = np.arange(10 * 3, dtype=np.float32).reshape(10, 3)
    y = np.arange(10, dtype=np.int64) * 10
    order = np.random.default_rng(0).permutation(10)
    batches = list(iterate_minibatches(x, y, 4, order))
    assert [len(yb) for _, yb in batches] == [4, 4, 2]
    seen = np.concatenate([yb for _, yb in batches]) // 10
    np.testing.assert_array_equal(seen, order)
    for xb, yb in batches:
        np.testing.assert_array_equal(xb[:, 0] / 3, yb / 10)
        assert xb.flags.c_contiguous and xb.dtype == np.float32


def test_batches_are_copies_and_higher_rank_inputs_work():
    x = np.zeros((5, 1, 2, 2), dtype=np.float32)
    (xb, yb), *_ = iterate_minibatches(x, np.arange(5), 5, np.arange(5, dtype=np.int64))
    xb += 1
    assert x.sum() == 0 and xb.shape == (5, 1, 2, 2)


def test_empty_order_and_bad_arguments():
    x, y = np.zeros((3, 2)), np.zeros(3)
    assert list(iterate_minibatches(x, y, 2, np.array([], dtype=np.int64))) == []
    with pytest.raises(ValueError, match="batch_size"):
        next(iterate_minibatches(x, y, 0, np.arange(3)))
    with pytest.raises(ValueError, match="rows"):
        next(iterate_minibatches(x, np.zeros(2), 1, np.arange(3)))
    with pytest.raises(ValueError, match="order"):
        next(iterate_minibatches(x, y, 1, np.arange(3.0)))
