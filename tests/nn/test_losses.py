import warnings

import numpy as np
import pytest

from bptrain.nn import losses
from bptrain.nn.gradcheck import check_loss

rng = np.random.default_rng(0)


def probabilities(shape):
    e = np.exp(rng.normal(size=shape))
    return e / e.sum(axis=-1, keepdims=True)


CASES = [
    ("mean_squared_error", {}, lambda s: rng.normal(size=s), lambda s: rng.normal(size=s)),
    ("mean_absolute_error", {}, lambda s: rng.normal(size=s), lambda s: rng.normal(size=s)),
    ("huber", {"delta": 0.7}, lambda s: rng.normal(size=s) * 2, lambda s: rng.normal(size=s)),
    (
        "sparse_categorical_crossentropy",
        {"from_logits": True},
        lambda s: rng.normal(size=s),
        lambda s: rng.integers(0, s[-1], size=s[:-1]),
    ),
    (
        "sparse_categorical_crossentropy",
        {},
        probabilities,
        lambda s: rng.integers(0, s[-1], size=s[:-1]),
    ),
    (
        "categorical_crossentropy",
        {"from_logits": True},
        lambda s: rng.normal(size=s),
        probabilities,
    ),
    ("categorical_crossentropy", {}, probabilities, probabilities),
    (
        "binary_crossentropy",
        {"from_logits": True},
        lambda s: rng.normal(size=s) * 3,
        lambda s: rng.integers(0, 2, size=s).astype(float),
    ),
    (
        "binary_crossentropy",
        {},
        lambda s: rng.uniform(0.05, 0.95, size=s),
        lambda s: rng.uniform(size=s),
    ),
]


@pytest.mark.parametrize(("name", "kwargs", "make_pred", "make_true"), CASES)
@pytest.mark.parametrize("shape", [(5, 3), (4, 6, 4), (1, 2)])
def test_gradient(name, kwargs, make_pred, make_true, shape):
    loss = losses.get({"type": name, **kwargs})
    report = check_loss(loss, make_pred(shape), make_true(shape))
    assert report.passed(1e-6), report


def test_known_values():
    y_pred = np.array([[0.5], [2.0]])
    y_true = np.array([0.0, 1.0])  # (N,) targets against (N, 1) predictions
    assert losses.get("mse")(y_pred, y_true) == pytest.approx((0.25 + 1.0) / 2)
    assert losses.get("mae")(y_pred, y_true) == pytest.approx(0.75)
    assert losses.Huber(1.0)(y_pred, y_true) == pytest.approx((0.125 + 0.5) / 2)
    logits = np.array([[2.0, 1.0, 0.1]])
    p = np.exp(logits) / np.exp(logits).sum()
    sparse = losses.SparseCategoricalCrossentropy(from_logits=True)
    assert sparse(logits, np.array([0])) == pytest.approx(-np.log(p[0, 0]))
    assert losses.get("sparse_categorical_crossentropy")(p, np.array([0])) == pytest.approx(
        -np.log(p[0, 0])
    )
    onehot = losses.CategoricalCrossentropy(from_logits=True)
    assert onehot(logits, np.array([[0.0, 1.0, 0.0]])) == pytest.approx(-np.log(p[0, 1]))
    bce = losses.BinaryCrossentropy(from_logits=True)
    z = np.array([0.3, -1.2])
    expected = -np.mean([np.log(1 / (1 + np.exp(-0.3))), np.log(1 - 1 / (1 + np.exp(1.2)))])
    assert bce(z, np.array([1.0, 0.0])) == pytest.approx(expected)


def test_from_logits_is_stable_for_huge_logits():
    z = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 0.0]], dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ce = losses.SparseCategoricalCrossentropy(from_logits=True)
        assert ce(z, np.array([0, 0])) == pytest.approx(1e4)
        assert np.isfinite(ce.backward()).all()
        bce = losses.BinaryCrossentropy(from_logits=True)
        assert bce(np.array([1e4, -1e4]), np.array([0.0, 1.0])) == pytest.approx(1e4)
        assert np.isfinite(bce.backward()).all()


def test_fusion():
    sparse = losses.get("sparse_categorical_crossentropy")
    assert sparse.fused_with("softmax").from_logits
    assert sparse.fused_with("relu") is None
    assert losses.get("binary_crossentropy").fused_with("sigmoid").from_logits
    assert losses.get("mse").fused_with("softmax") is None
    assert losses.SparseCategoricalCrossentropy(from_logits=True).fused_with("softmax") is None


def test_unknown():
    with pytest.raises(ValueError, match="unknown loss 'hinge'"):
        losses.get("hinge")


@pytest.mark.parametrize(
    ("loss", "y_true"),
    [
        (losses.SparseCategoricalCrossentropy(), np.array([0, 1])),
        (losses.CategoricalCrossentropy(), np.array([[1.0, 0.0], [0.0, 1.0]])),
        (losses.BinaryCrossentropy(), np.array([[1.0, 0.0], [0.0, 1.0]])),
    ],
)
def test_probability_losses_give_no_gradient_where_the_clip_acts(loss, y_true):
    # Outputs outside [0, 1] (a linear last layer) sit on the flat part of the clip: pushing
    # them further out would diverge, so their gradient is zero; the others are untouched.
    y_pred = np.array([[1.5, 0.3], [-0.2, 0.6]])
    loss.forward(y_pred, y_true)
    g = loss.backward()
    assert g[0, 0] == 0 and g[1, 0] == 0
    assert g[1, 1] != 0


def test_probability_loss_trains_a_linear_output_without_diverging():
    from bptrain.nn import SGD, Dense, Model, Sequential

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    network = Sequential([Dense(2)])  # no softmax: the loss sees raw scores as "probabilities"
    network.build((4,), rng)
    model = Model(network, "sparse_categorical_crossentropy", SGD(0.01))
    values = [model.train_step(x, y) for _ in range(50)]
    assert np.isfinite(values).all() and np.isfinite(model.parameters().flat_value).all()


# -- label smoothing --------------------------------------------------------------------------
SMOOTHED = [case for case in CASES if "crossentropy" in case[0]]


@pytest.mark.parametrize(("name", "kwargs", "make_pred", "make_true"), SMOOTHED)
@pytest.mark.parametrize("shape", [(5, 3), (4, 6, 4)])
def test_gradient_with_label_smoothing(name, kwargs, make_pred, make_true, shape):
    loss = losses.get({"type": name, **kwargs, "label_smoothing": 0.1})
    report = check_loss(loss, make_pred(shape), make_true(shape))
    assert report.passed(1e-6), report


@pytest.mark.parametrize("from_logits", [True, False])
def test_label_smoothing_trains_against_softened_one_hot_targets(from_logits):
    scores = rng.normal(size=(6, 4))
    pred = scores if from_logits else np.exp(scores) / np.exp(scores).sum(-1, keepdims=True)
    y = rng.integers(0, 4, 6)
    soft = np.eye(4)[y] * 0.8 + 0.2 / 4
    sparse = losses.get(
        {
            "type": "sparse_categorical_crossentropy",
            "from_logits": from_logits,
            "label_smoothing": 0.2,
        }
    )
    plain = losses.get({"type": "categorical_crossentropy", "from_logits": from_logits})
    assert sparse(pred, y) == pytest.approx(plain(pred, soft), rel=1e-12)
    np.testing.assert_allclose(sparse.backward(), plain.backward(), rtol=1e-10, atol=1e-15)
    smoothed = losses.get(
        {"type": "categorical_crossentropy", "from_logits": from_logits, "label_smoothing": 0.2}
    )
    assert smoothed(pred, np.eye(4)[y]) == pytest.approx(plain(pred, soft), rel=1e-12)
    binary = losses.get({"type": "binary_crossentropy", "label_smoothing": 0.2})
    p = rng.uniform(0.1, 0.9, (5, 1))
    expected = -(0.9 * np.log(p) + 0.1 * np.log(1 - p)).mean()
    assert binary(p, np.ones((5, 1))) == pytest.approx(expected, rel=1e-12)


def test_label_smoothing_survives_fusion_and_is_checked():
    loss = losses.get({"type": "sparse_categorical_crossentropy", "label_smoothing": 0.1})
    assert loss.fused_with("softmax").label_smoothing == 0.1
    with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 1\)"):
        losses.get({"type": "binary_crossentropy", "label_smoothing": 1.5})


# -- sample weights ---------------------------------------------------------------------------
class Weighted(losses.Loss):
    """``inner`` with fixed sample weights, for the gradient checker."""

    def __init__(self, inner, weights):
        self.inner, self.weights = inner, weights

    def forward(self, y_pred, y_true, sample_weight=None):
        return self.inner.forward(y_pred, y_true, self.weights)

    def backward(self):
        return self.inner.backward()


@pytest.mark.parametrize(("name", "kwargs", "make_pred", "make_true"), CASES)
@pytest.mark.parametrize("shape", [(5, 3), (4, 6, 4)])
def test_gradient_with_sample_weights(name, kwargs, make_pred, make_true, shape):
    loss = losses.get({"type": name, **kwargs})
    weights = rng.uniform(0.0, 3.0, shape[0])
    report = check_loss(Weighted(loss, weights), make_pred(shape), make_true(shape))
    assert report.passed(1e-6), report


@pytest.mark.parametrize(("name", "kwargs", "make_pred", "make_true"), CASES)
def test_a_weighted_loss_is_the_sum_of_weighted_sample_losses_over_the_batch_size(
    name, kwargs, make_pred, make_true
):
    shape = (5, 3)
    pred, true = make_pred(shape), make_true(shape)
    weights = rng.uniform(0.0, 3.0, 5)
    loss = losses.get({"type": name, **kwargs})
    each = [loss(pred[i : i + 1], true[i : i + 1]) for i in range(5)]
    assert loss(pred, true, weights) == pytest.approx(np.dot(weights, each) / 5, rel=1e-12)
    assert loss(pred, true, np.ones(5)) == pytest.approx(loss(pred, true), rel=1e-12)
