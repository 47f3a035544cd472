import numpy as np
import pytest

from bptrain.nn import initializers


def draw(name, shape, **kw):
    init = initializers.get({"type": name, **kw})
    return init(shape, np.random.default_rng(0), np.float64)


@pytest.mark.parametrize(
    ("name", "expected_var"),
    [
        ("glorot_uniform", 2 / (400 + 600)),
        ("glorot_normal", 2 / (400 + 600)),
        ("he_uniform", 2 / 400),
        ("he_normal", 2 / 400),
        ("lecun_normal", 1 / 400),
    ],
)
def test_variance_scaling(name, expected_var):
    w = draw(name, (400, 600))
    assert w.shape == (400, 600) and w.dtype == np.float64
    assert abs(w.mean()) < 3e-3
    np.testing.assert_allclose(w.var(), expected_var, rtol=0.03)


def test_uniform_limits_and_truncation():
    w = draw("glorot_uniform", (50, 50))
    assert np.abs(w).max() <= np.sqrt(6 / 100)
    w = draw("he_normal", (200, 300))
    std = np.sqrt(2 / 200) / 0.87962566103423978
    assert np.abs(w).max() <= 2 * std


def test_conv_fans():
    assert initializers.fans((32, 3, 5, 5)) == (75, 800)
    assert initializers.fans((10, 20)) == (10, 20)


@pytest.mark.parametrize("shape", [(6, 6), (4, 9), (9, 4)])
def test_orthogonal(shape):
    w = draw("orthogonal", shape)
    small = min(shape)
    gram = w.T @ w if shape[0] >= shape[1] else w @ w.T
    np.testing.assert_allclose(gram, np.eye(small), atol=1e-12)


def test_constants_and_seed():
    assert (draw("zeros", (3,)) == 0).all()
    assert (draw("ones", (3,)) == 1).all()
    assert (draw("constant", (3,), value=0.5) == 0.5).all()
    np.testing.assert_array_equal(draw("he_uniform", (5, 5)), draw("he_uniform", (5, 5)))
    f32 = initializers.get("glorot_uniform")((3, 3), np.random.default_rng(0))
    assert f32.dtype == np.float32


def test_unknown():
    with pytest.raises(ValueError, match="unknown initializer"):
        initializers.get("xavier")
