import numpy as np
import pytest

from bptrain.nn import LSTM, Dense, Embedding, Model, Sequential
from bptrain.nn.gradcheck import check_layer, check_model
from bptrain.nn.layers.embedding import scatter_rows

rng = np.random.default_rng(0)


def test_forward_picks_rows():
    layer = Embedding(6, 3)
    assert layer.build((4,), rng) == (4, 3)
    table = layer.embeddings.value
    assert table.dtype == np.float32 and np.abs(table).max() <= 0.05  # Keras' uniform(-0.05, 0.05)
    ids = np.array([[0, 5, 5, 2], [1, 1, 0, 3]])
    y = layer.forward(ids)
    assert y.shape == (2, 4, 3)
    np.testing.assert_array_equal(y, table[ids])
    y[0, 0] = 7.0  # the output is a copy, not a view of the table
    assert not np.any(table == 7.0)


def test_backward_adds_into_repeated_rows():
    layer = Embedding(5, 2)
    layer.build((3,), rng)
    ids = np.array([[4, 1, 4], [4, 0, 1]])
    layer.forward(ids)
    dy = rng.normal(size=(2, 3, 2)).astype(np.float32)
    assert layer.backward(dy) is None  # integer inputs have no gradient
    expected = np.zeros((5, 2), np.float32)
    np.add.at(expected, ids.ravel(), dy.reshape(-1, 2))
    np.testing.assert_allclose(layer.embeddings.grad, expected, rtol=1e-6)
    assert np.all(layer.embeddings.grad[[2, 3]] == 0)


def test_scatter_rows_matches_add_at():
    ids = rng.integers(0, 50, 1000)
    rows = rng.normal(size=(1000, 7))
    target, expected = np.ones((50, 7)), np.ones((50, 7))
    scatter_rows(target, ids, rows)
    np.add.at(expected, ids, rows)
    np.testing.assert_allclose(target, expected, rtol=1e-12)
    scatter_rows(target, ids[:0], rows[:0])  # nothing to add
    np.testing.assert_allclose(target, expected, rtol=1e-12)


@pytest.mark.parametrize("shape", [(3, 5), (4,), (2, 3, 2)])
def test_gradient(shape):
    layer = Embedding(7, 4, embeddings_regularizer="l2")
    report = check_layer(layer, rng.integers(0, 7, shape))
    assert report.passed(1e-6), report
    assert set(report.errors) == {"embeddings"}  # the integer input is skipped


def test_character_model_gradient_and_next_char_probabilities():
    vocab = 9
    network = Sequential(
        [Embedding(vocab, 5), LSTM(6, return_sequences=True), LSTM(4), Dense(vocab, "softmax")]
    )
    network.build((7,), np.random.default_rng(0))
    model = Model(network, "sparse_categorical_crossentropy", "adam")
    ids = rng.integers(0, vocab, (3, 7))
    report = check_model(model, ids, rng.integers(0, vocab, 3))
    assert report.passed(1e-6), report
    assert "embedding/embeddings" in report.errors
    probs = model.predict(ids[:1])  # one prompt of token ids -> next-token distribution
    assert probs.shape == (1, vocab)
    np.testing.assert_allclose(probs.sum(), 1.0, rtol=1e-6)


def test_token_ids_are_checked():
    layer = Embedding(4, 2)
    layer.build((3,), rng)
    with pytest.raises(ValueError, match=r"must lie in \[0, 4\)"):
        layer.forward(np.array([[0, 4, 1]]))
    with pytest.raises(ValueError, match=r"from -1"):
        layer.forward(np.array([[0, -1, 1]]))
    with pytest.raises(ValueError, match="integer token ids"):
        layer.forward(np.array([[0.5, 1.0, 2.0]]))
    # whole numbers stored as floats (e.g. a batch cast to float32) are accepted
    np.testing.assert_array_equal(
        layer.forward(np.array([[3.0, 1.0, 0.0]], np.float32)), layer.forward(np.array([[3, 1, 0]]))
    )
    with pytest.raises(ValueError, match="positive integer"):
        Embedding(0, 3)
