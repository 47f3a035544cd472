import numpy as np
import pytest

from bptrain.nn import GRU, LSTM, Bidirectional, Dense, Model, Sequential, SimpleRNN
from bptrain.nn.gradcheck import check_layer, check_model

rng = np.random.default_rng(0)

LAYERS = {
    "SimpleRNN": lambda **kw: SimpleRNN(4, **kw),
    "LSTM": lambda **kw: LSTM(4, **kw),
    "GRU": lambda **kw: GRU(4, **kw),
    "GRU-reset-before": lambda **kw: GRU(4, reset_after=False, **kw),
}
# Nonzero biases, so that every bias path (LSTM's forget bias, GRU's two biases) is exercised.
BIAS = {"type": "random_uniform", "minval": -0.5, "maxval": 0.5}


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def built(layer, x):
    layer.build(x.shape[1:], np.random.default_rng(1))
    layer.built = True
    layer.cast(np.float64)
    return layer


# -- references: plain step-by-step formulas, batch-major, as in the Keras source --------------


def ref_simple_rnn(layer, x):
    w, u, b = layer.kernel.value, layer.recurrent_kernel.value, layer.bias.value
    h, out = np.zeros((len(x), layer.units)), []
    for t in range(x.shape[1]):
        h = np.tanh(x[:, t] @ w + h @ u + b)
        out.append(h)
    return np.stack(out, axis=1)


def ref_lstm(layer, x):
    w, u, b = layer.kernel.value, layer.recurrent_kernel.value, layer.bias.value
    n = layer.units
    h = c = np.zeros((len(x), n))
    out = []
    for t in range(x.shape[1]):
        z = x[:, t] @ w + h @ u + b
        i, f, g, o = sigmoid(z[:, :n]), sigmoid(z[:, n : 2 * n]), z[:, 2 * n : 3 * n], z[:, 3 * n :]
        c = f * c + i * np.tanh(g)
        h = sigmoid(o) * np.tanh(c)
        out.append(h)
    return np.stack(out, axis=1)


def ref_gru(layer, x):
    w, u, b = layer.kernel.value, layer.recurrent_kernel.value, layer.bias.value
    n = layer.units
    h, out = np.zeros((len(x), n)), []
    for t in range(x.shape[1]):
        if layer.reset_after:
            xw, hu = x[:, t] @ w + b[0], h @ u + b[1]
            z = sigmoid(xw[:, :n] + hu[:, :n])
            r = sigmoid(xw[:, n : 2 * n] + hu[:, n : 2 * n])
            hh = np.tanh(xw[:, 2 * n :] + r * hu[:, 2 * n :])
        else:
            xw = x[:, t] @ w + b
            z = sigmoid(xw[:, :n] + h @ u[:, :n])
            r = sigmoid(xw[:, n : 2 * n] + h @ u[:, n : 2 * n])
            hh = np.tanh(xw[:, 2 * n :] + (r * h) @ u[:, 2 * n :])
        h = z * h + (1 - z) * hh
        out.append(h)
    return np.stack(out, axis=1)


REFERENCES = {
    "SimpleRNN": ref_simple_rnn,
    "LSTM": ref_lstm,
    "GRU": ref_gru,
    "GRU-reset-before": ref_gru,
}


@pytest.mark.parametrize("kind", LAYERS)
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_forward_matches_step_by_step_reference(kind, go_backwards, return_sequences):
    x = rng.normal(size=(3, 6, 5))
    layer = built(
        LAYERS[kind](
            return_sequences=return_sequences, go_backwards=go_backwards, bias_initializer=BIAS
        ),
        x,
    )
    # Keras' go_backwards: the reversed sequence goes in, outputs stay in processing order.
    expected = REFERENCES[kind](layer, x[:, ::-1] if go_backwards else x)
    if not return_sequences:
        expected = expected[:, -1]
    y = layer.forward(x)
    assert y.shape == expected.shape
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", LAYERS)
@pytest.mark.parametrize("steps", [1, 3, 7])
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_gradient(kind, steps, return_sequences, go_backwards):
    layer = LAYERS[kind](
        return_sequences=return_sequences, go_backwards=go_backwards, bias_initializer=BIAS
    )
    report = check_layer(layer, rng.normal(size=(2, steps, 3)))
    assert report.passed(1e-6), report
    assert set(report.errors) == {"input", "kernel", "recurrent_kernel", "bias"}


@pytest.mark.parametrize(
    "layer",
    [
        SimpleRNN(3, activation="relu", return_sequences=True),
        SimpleRNN(3, activation="sigmoid", use_bias=False),
        LSTM(3, activation="elu", return_sequences=True),
        LSTM(3, recurrent_activation="tanh", use_bias=False, unit_forget_bias=False),
        GRU(3, activation="gelu", recurrent_activation="sigmoid", return_sequences=True),
        GRU(3, use_bias=False),
        GRU(3, activation="sigmoid", recurrent_activation="tanh"),
        LSTM(3, activation="sigmoid"),
        GRU(3, reset_after=False, use_bias=False, activation="leaky_relu"),
        LSTM(3, kernel_regularizer="l2", recurrent_regularizer="l1", bias_regularizer="l2"),
    ],
    ids=repr,
)
def test_gradient_other_activations_and_options(layer):
    report = check_layer(layer, rng.normal(size=(2, 5, 3)))
    assert report.passed(1e-6), report


@pytest.mark.parametrize("kind", ["SimpleRNN", "LSTM", "GRU"])
def test_stacked_two_deep_as_a_layer(kind):
    model = Sequential([LAYERS[kind](return_sequences=True, bias_initializer=BIAS), LAYERS[kind]()])
    report = check_layer(model, rng.normal(size=(2, 5, 3)))
    assert report.passed(1e-6), report
    assert len(report.errors) == 7  # input and 3 parameters per layer


def test_stacked_model_with_fused_softmax_loss():
    network = Sequential(
        [
            LSTM(5, return_sequences=True, go_backwards=True),
            GRU(4, truncate_bptt=6),  # k >= T: full BPTT
            Dense(3, activation="softmax"),
        ]
    )
    network.build((6, 2), np.random.default_rng(0))
    model = Model(network, "sparse_categorical_crossentropy", "adam")
    report = check_model(model, rng.normal(size=(4, 6, 2)), np.array([0, 2, 1, 2]))
    assert report.passed(1e-6), report


def test_layout_and_shapes():
    lstm = LSTM(5, return_sequences=True)
    assert lstm.build((7, 3), rng) == (7, 5)
    assert lstm.kernel.shape == (3, 20) and lstm.recurrent_kernel.shape == (5, 20)
    np.testing.assert_array_equal(lstm.bias.value, np.r_[np.zeros(5), np.ones(5), np.zeros(10)])
    gru = GRU(5)
    assert gru.build((7, 3), rng) == (5,)
    assert gru.bias.shape == (2, 15) and gru.recurrent_kernel.shape == (5, 15)
    gru = GRU(5, reset_after=False)
    gru.build((7, 3), rng)
    assert gru.bias.shape == (15,)
    rnn = SimpleRNN(5)
    rnn.build((7, 3), rng)
    w = rnn.recurrent_kernel.value
    np.testing.assert_allclose(w.T @ w, np.eye(5), atol=1e-6)  # orthogonal by default


def test_outputs_are_not_overwritten_by_later_calls():
    layer = LSTM(4, return_sequences=True)
    layer.build((5, 3), rng)
    x1 = rng.normal(size=(2, 5, 3)).astype(np.float32)
    y1 = layer.forward(x1)
    keep = y1.copy()
    layer.forward(rng.normal(size=(2, 5, 3)).astype(np.float32))
    layer.forward(rng.normal(size=(6, 5, 3)).astype(np.float32))  # another batch size
    np.testing.assert_array_equal(y1, keep)
    np.testing.assert_array_equal(layer.forward(x1), keep)
    assert keep.dtype == np.float32


def test_lstm_backward_needs_its_own_forward_pass():
    # The backward pass turns the forward cache into the gradient factors in place.
    layer = LSTM(4, name="rows")
    layer.build((5, 3), rng)
    x = rng.normal(size=(2, 5, 3)).astype(np.float32)
    dy = rng.normal(size=(2, 4)).astype(np.float32)
    layer.forward(x)
    layer.backward(dy)
    first = layer.kernel.grad.copy()
    with pytest.raises(RuntimeError, match="rows: backward.. already ran .* run forward.. again"):
        layer.backward(dy)
    layer.kernel.zero_grad()
    layer.forward(x)
    layer.backward(dy)
    np.testing.assert_array_equal(layer.kernel.grad, first)


def test_bad_arguments_and_inputs():
    with pytest.raises(ValueError, match="units must be a positive integer"):
        LSTM(0)
    with pytest.raises(ValueError, match="truncate_bptt"):
        GRU(3, truncate_bptt=0)
    with pytest.raises(ValueError, match="softmax"):
        SimpleRNN(3, activation="softmax")
    with pytest.raises(ValueError, match=r"\(time, features\)"):
        LSTM(3).build((28, 28, 1), rng)


# -- truncated backprop through time --------------------------------------------------------


def grads(layer, x, dy):
    for p in layer.parameters():
        p.zero_grad()
    layer.forward(x)
    dx = layer.backward(dy)
    return {"input": dx, **{k: p.grad.copy() for k, p in layer.named_parameters()}}


@pytest.mark.parametrize("kind", LAYERS)
def test_gradients_are_bit_identical_across_calls_and_batch_sizes(kind):
    # The scratch buffers (joint [h; x; 1] blocks, LSTM's per-step factors) and the per-step
    # views of them are reused, and remade when the batch size or the length changes; nothing
    # of an earlier call may leak into a later one.
    x = rng.normal(size=(4, 6, 3)).astype(np.float32)
    dy = rng.normal(size=(4, 6, 4)).astype(np.float32)
    layer = LAYERS[kind](return_sequences=True, bias_initializer=BIAS)
    layer.build(x.shape[1:], np.random.default_rng(1))
    first = grads(layer, x, dy)
    grads(layer, x[:2] * 3, dy[:2])  # a smaller batch in between
    grads(layer, x[:, :4] * 2, dy[:, :4])  # a shorter sequence
    grads(layer, -x, dy)
    again = grads(layer, x, dy)
    for name in first:
        np.testing.assert_array_equal(again[name], first[name])


@pytest.mark.parametrize("kind", LAYERS)
@pytest.mark.parametrize("return_sequences", [False, True])
def test_truncation_at_or_beyond_the_length_is_full_bptt(kind, return_sequences):
    x = rng.normal(size=(3, 5, 2))
    full = built(LAYERS[kind](return_sequences=return_sequences, bias_initializer=BIAS), x)
    dy = rng.normal(size=full.forward(x).shape)
    for k in (5, 9):
        cut = built(LAYERS[kind](return_sequences=return_sequences, truncate_bptt=k), x)
        for name, p in cut.named_parameters():
            p.value[...] = dict(full.named_parameters())[name].value
        a, b = grads(full, x, dy), grads(cut, x, dy)
        for name in a:
            np.testing.assert_array_equal(a[name], b[name])


def test_truncation_k1_simple_rnn_by_hand():
    # With k=1 no gradient crosses a step: dx_t and dU come from each step alone.
    x = rng.normal(size=(3, 4, 2))
    layer = built(SimpleRNN(3, return_sequences=True, truncate_bptt=1, bias_initializer=BIAS), x)
    dy = rng.normal(size=(3, 4, 3))
    g = grads(layer, x, dy)
    h = ref_simple_rnn(layer, x)
    dz = dy * (1 - h**2)
    np.testing.assert_allclose(g["input"], dz @ layer.kernel.value.T, rtol=1e-12)
    h_prev = np.concatenate([np.zeros((3, 1, 3)), h[:, :-1]], axis=1)
    np.testing.assert_allclose(
        g["recurrent_kernel"], np.einsum("ntu,ntv->uv", h_prev, dz), rtol=1e-12
    )


@pytest.mark.parametrize("kind", LAYERS)
def test_truncation_blocks(kind):
    # k=2, T=6: blocks of steps [0, 1], [2, 3], [4, 5].
    x = rng.normal(size=(2, 6, 3))
    layer = built(LAYERS[kind](return_sequences=True, truncate_bptt=2, bias_initializer=BIAS), x)
    full = built(LAYERS[kind](return_sequences=True, bias_initializer=BIAS), x)
    for name, p in full.named_parameters():
        p.value[...] = dict(layer.named_parameters())[name].value
    dy = rng.normal(size=(2, 6, 4))
    dx = grads(layer, x, dy)["input"]
    # The gradient of a block's inputs ignores the outputs of later blocks ...
    other = dy.copy()
    other[:, 2:] = rng.normal(size=(2, 4, 4))
    np.testing.assert_allclose(grads(layer, x, other)["input"][:, :2], dx[:, :2], rtol=1e-12)
    # ... and within its block it is exact: equal to full BPTT when later outputs have no
    # gradient.
    only_first = dy.copy()
    only_first[:, 2:] = 0
    np.testing.assert_allclose(dx[:, :2], grads(full, x, only_first)["input"][:, :2], rtol=1e-10)
    # Without return_sequences only the last block sees any gradient.
    last = built(LAYERS[kind](truncate_bptt=2), x)
    g = grads(last, x, rng.normal(size=(2, 4)))["input"]
    assert np.all(g[:, :4] == 0) and np.all(g[:, 4:] != 0)


# -- Bidirectional --------------------------------------------------------------------------


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "ave", "mul"])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_bidirectional_gradient(merge_mode, return_sequences):
    layer = Bidirectional(
        {"type": "GRU", "units": 3, "return_sequences": return_sequences}, merge_mode=merge_mode
    )
    report = check_layer(layer, rng.normal(size=(2, 4, 3)))
    assert report.passed(1e-6), report
    assert "backward/recurrent_kernel" in report.errors


def test_bidirectional_values_and_names():
    x = rng.normal(size=(2, 5, 3))
    layer = built(Bidirectional(LSTM(4, return_sequences=True)), x)
    fwd, bwd = layer.forward_layer, layer.backward_layer
    assert not fwd.go_backwards and bwd.go_backwards
    y = layer.forward(x)
    assert y.shape == (2, 5, 8)
    np.testing.assert_allclose(y[..., :4], ref_lstm(fwd, x), rtol=1e-12)
    # the backward direction's outputs are put back in time order
    np.testing.assert_allclose(y[..., 4:], ref_lstm(bwd, x[:, ::-1])[:, ::-1], rtol=1e-12)
    model = Sequential([Bidirectional(GRU(2)), Dense(1)])
    model.build((5, 3))
    names = [name for name, _ in model.named_parameters()]
    assert names[:3] == [
        "bidirectional/forward/kernel",
        "bidirectional/forward/recurrent_kernel",
        "bidirectional/forward/bias",
    ]
    assert "bidirectional/backward/bias" in names
    assert model.count_params() == 2 * (3 * 6 + 2 * 6 + 2 * 6) + 5


def test_bidirectional_rejects():
    with pytest.raises(ValueError, match="wraps a SimpleRNN, LSTM or GRU"):
        Bidirectional(Dense(3))
    with pytest.raises(ValueError, match="merge_mode"):
        Bidirectional(LSTM(3), merge_mode="max")
    with pytest.raises(ValueError, match="type must be one of"):
        Bidirectional({"type": "Conv", "units": 3})
    with pytest.raises(ValueError, match="unexpected keyword"):
        Bidirectional({"type": "LSTM", "unitz": 3})


# -- learning -------------------------------------------------------------------------------


def test_lstm_learns_which_half_holds_the_larger_sum():
    data = np.random.default_rng(3)
    x = data.normal(size=(256, 8, 1)).astype(np.float32)
    y = (x[:, :4, 0].sum(1) > x[:, 4:, 0].sum(1)).astype(np.int64)
    network = Sequential([LSTM(16), Dense(2, activation="softmax")])
    network.build((8, 1), np.random.default_rng(0))
    model = Model(
        network, "sparse_categorical_crossentropy", {"type": "adam", "learning_rate": 0.02}
    )
    for _ in range(60):
        for i in range(0, 256, 32):
            model.train_step(x[i : i + 32], y[i : i + 32])
    accuracy = (model.predict(x).argmax(1) == y).mean()
    assert accuracy > 0.9


# -- PyTorch as an oracle -------------------------------------------------------------------


def _torch_pair(kind, x):
    torch = pytest.importorskip("torch", reason="PyTorch is only installed for the benchmarks")
    layer = built(LAYERS[kind](return_sequences=True, bias_initializer=BIAS), x)
    n, d = layer.units, x.shape[2]
    w, u = layer.kernel.value, layer.recurrent_kernel.value
    if kind == "LSTM":
        net = torch.nn.LSTM(d, n, batch_first=True).double()
        perm, b_ih, b_hh = np.arange(4 * n), layer.bias.value, np.zeros(4 * n)  # i, f, g, o
    else:  # Keras' (z, r, h) blocks are PyTorch's (r, z, n) reordered
        net = torch.nn.GRU(d, n, batch_first=True).double()
        perm = np.r_[n : 2 * n, :n, 2 * n : 3 * n]
        b_ih, b_hh = layer.bias.value[0], layer.bias.value[1]
    with torch.no_grad():
        net.weight_ih_l0.copy_(torch.from_numpy(w[:, perm].T))
        net.weight_hh_l0.copy_(torch.from_numpy(u[:, perm].T))
        net.bias_ih_l0.copy_(torch.from_numpy(b_ih[perm]))
        net.bias_hh_l0.copy_(torch.from_numpy(b_hh[perm]))
    return torch, layer, net, perm


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_matches_torch(kind):
    x = rng.normal(size=(3, 6, 5))
    torch, layer, net, perm = _torch_pair(kind, x)
    xt = torch.from_numpy(x.copy()).requires_grad_()
    yt, _ = net(xt)
    y = layer.forward(x)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-10, atol=1e-12)

    dy = rng.normal(size=y.shape)
    yt.backward(torch.from_numpy(dy))
    g = grads(layer, x, dy)
    np.testing.assert_allclose(g["input"], xt.grad.numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(g["kernel"][:, perm].T, net.weight_ih_l0.grad.numpy(), rtol=1e-9)
    np.testing.assert_allclose(
        g["recurrent_kernel"][:, perm].T, net.weight_hh_l0.grad.numpy(), rtol=1e-9
    )
    if kind == "LSTM":  # one Keras bias; PyTorch's two biases get the same gradient
        np.testing.assert_allclose(g["bias"][perm], net.bias_ih_l0.grad.numpy(), rtol=1e-9)
    else:
        np.testing.assert_allclose(g["bias"][0][perm], net.bias_ih_l0.grad.numpy(), rtol=1e-9)
        np.testing.assert_allclose(g["bias"][1][perm], net.bias_hh_l0.grad.numpy(), rtol=1e-9)


@pytest.mark.parametrize("first", [lambda: LSTM(5), lambda: Bidirectional(GRU(3))])
def test_a_first_trainable_layer_skips_the_input_gradient(first):
    from bptrain.nn import Reshape

    def gradients(input_grad):
        network = Sequential([Reshape([4, 3]), first(), Dense(2, activation="softmax")])
        network.build((12,), np.random.default_rng(0))
        # input_grad=True: as a pipeline stage after the first, which passes dL/dx on
        model = Model(network, "sparse_categorical_crossentropy", "sgd", input_grad=input_grad)
        model.compute_gradients(x, y)
        return model, model.parameters().flat_grad.copy()

    x, y = rng.normal(size=(6, 12)).astype(np.float32), np.array([0, 1, 1, 0, 1, 0])
    model, skipped = gradients(False)
    layer = model.network.layers[1]
    assert layer.needs_input_grad is False
    model.forward(x)  # a backward pass consumes its forward pass's cache
    assert layer.backward(np.ones((6, layer.output_shape[0]), np.float32)) is None
    np.testing.assert_array_equal(gradients(True)[1], skipped)
