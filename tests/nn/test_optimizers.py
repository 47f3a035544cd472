import math

import numpy as np
import pytest

from bptrain.nn import Dense, Model, Sequential, optimizers
from bptrain.nn.parameter import Parameter, ParameterList

W0 = np.array([0.5, -1.0, 2.0])
GRADS = [np.array([0.1, -0.2, 0.3]), np.array([-0.4, 0.5, 0.05]), np.array([0.2, 0.2, -0.6])]


def run(opt, packed=False):
    """Three steps of ``opt`` from W0 with the fixed gradient sequence GRADS."""
    if packed:
        flat_v, flat_g = W0.copy(), np.zeros(3)
        p = Parameter(flat_v, "w")
        p.grad = flat_g
        params = ParameterList([p], flat_v, flat_g)
    else:
        p = Parameter(W0.copy(), "w")
        params = ParameterList([p])
    for g in GRADS:
        p.grad[...] = g
        opt.step(params)
    return p.value


def textbook(name, lr, **kw):
    """The same updates written out plainly, one formula per line."""
    w = W0.copy()
    m = np.zeros(3)
    v = np.zeros(3)
    mg = np.zeros(3)
    mom = np.zeros(3)
    acc = np.full(3, 0.1)
    for t, g in enumerate(GRADS, start=1):
        if name == "sgd":
            w = w - lr * g
        elif name == "momentum":
            m = 0.9 * m - lr * g
            w = w + m
        elif name == "nesterov":
            m = 0.9 * m - lr * g
            w = w + 0.9 * m - lr * g
        elif name == "rmsprop":
            v = 0.9 * v + 0.1 * g**2
            w = w - lr * g / np.sqrt(v + 1e-7)
        elif name == "rmsprop_centered_momentum":
            v = 0.9 * v + 0.1 * g**2
            mg = 0.9 * mg + 0.1 * g
            mom = 0.5 * mom + lr * g / np.sqrt(v - mg**2 + 1e-7)
            w = w - mom
        elif name in ("adam", "adamw"):
            if name == "adamw":
                w = w - lr * 0.1 * w
            m = 0.9 * m + 0.1 * g
            v = 0.999 * v + 0.001 * g**2
            lr_t = lr * math.sqrt(1 - 0.999**t) / (1 - 0.9**t)
            w = w - lr_t * m / (np.sqrt(v) + 1e-7)
        elif name == "adagrad":
            acc = acc + g**2
            w = w - lr * g / (np.sqrt(acc) + 1e-7)
    return w


OPTIMIZERS = {
    "sgd": lambda: optimizers.SGD(0.1),
    "momentum": lambda: optimizers.get({"type": "momentum", "lr": 0.1}),
    "nesterov": lambda: optimizers.SGD(0.1, momentum=0.9, nesterov=True),
    "rmsprop": lambda: optimizers.RMSprop(0.1),
    "rmsprop_centered_momentum": lambda: optimizers.RMSprop(0.1, centered=True, momentum=0.5),
    "adam": lambda: optimizers.Adam(0.1),
    "adamw": lambda: optimizers.AdamW(0.1, weight_decay=0.1),
    "adagrad": lambda: optimizers.Adagrad(0.1),
}


@pytest.mark.parametrize("name", OPTIMIZERS)
@pytest.mark.parametrize("packed", [False, True])
def test_three_steps_match_hand_computation(name, packed):
    np.testing.assert_allclose(run(OPTIMIZERS[name](), packed), textbook(name, 0.1), rtol=1e-12)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_state_round_trip_continues_exactly(name):
    reference = OPTIMIZERS[name]()
    p = Parameter(W0.copy(), "w")
    params = ParameterList([p])
    for g in GRADS[:2]:
        p.grad[...] = g
        reference.step(params)
    state = reference.state()
    resumed = OPTIMIZERS[name]()
    q = Parameter(p.value.copy(), "w")
    resumed.load_state(state, ParameterList([q]))
    for opt, param in ((reference, p), (resumed, q)):
        param.grad[...] = GRADS[2]
        opt.step(ParameterList([param]) if opt is resumed else params)
    np.testing.assert_array_equal(p.value, q.value)
    assert resumed.iterations == 3


@pytest.mark.parametrize(
    ("name", "lr", "steps"),
    [
        ("sgd", 0.1, 3000),
        ("momentum", 0.05, 1500),
        ("rmsprop", 0.01, 3000),
        ("adam", 0.05, 3000),
        ("adagrad", 0.5, 3000),
    ],
)
def test_converges_to_least_squares_solution(name, lr, steps):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 4))
    y = x @ np.array([[1.5], [-2.0], [0.5], [3.0]]) + 0.7 + 0.1 * rng.normal(size=(200, 1))
    network = Sequential([Dense(1)])
    network.build((4,), np.random.default_rng(1), dtype=np.float64)
    opt = optimizers.get({"type": name, "learning_rate": lr})
    if name == "rmsprop":  # decay the rate so the final iterate settles
        opt = optimizers.RMSprop(
            lr, schedule={"type": "exponential", "decay_steps": 500, "decay_rate": 0.3}
        )
    model = Model(network, "mse", opt)
    for _ in range(steps):
        model.train_step(x, y)
    design = np.hstack([x, np.ones((200, 1))])
    solution = np.linalg.lstsq(design, y, rcond=None)[0].ravel()
    dense = network.layers[0]
    learned = np.concatenate([dense.kernel.value.ravel(), dense.bias.value])
    np.testing.assert_allclose(learned, solution, atol=1e-4)


def test_clipping():
    p = Parameter(np.zeros(2), "a")
    q = Parameter(np.zeros(2), "b")
    p.grad[...] = [3.0, 4.0]
    q.grad[...] = [0.0, 0.5]
    optimizers.SGD(1.0, clipnorm=1.0).step(ParameterList([p, q]))
    np.testing.assert_allclose(p.value, [-0.6, -0.8])
    np.testing.assert_allclose(q.value, [0.0, -0.5])
    p.value[...] = 0
    q.value[...] = 0
    p.grad[...] = [3.0, -4.0]
    q.grad[...] = [0.0, 0.5]
    optimizers.SGD(1.0, clipvalue=1.0).step(ParameterList([p, q]))
    np.testing.assert_allclose(p.value, [-1.0, 1.0])
    np.testing.assert_allclose(q.value, [0.0, -0.5])
    p.value[...] = 0
    q.value[...] = 0
    p.grad[...] = [3.0, 0.0]
    q.grad[...] = [0.0, 4.0]
    optimizers.SGD(1.0, global_clipnorm=1.0).step(ParameterList([p, q]))
    np.testing.assert_allclose(np.concatenate([p.value, q.value]), [-0.6, 0, 0, -0.8])


def test_schedule_drives_rate():
    opt = optimizers.SGD(1.0, schedule={"type": "step", "step_size": 2, "gamma": 0.5})
    p = Parameter(np.zeros(1), "w")
    seen = []
    for _ in range(5):
        p.grad[...] = 1.0
        opt.step(ParameterList([p]))
        seen.append(opt.lr)
    assert seen == [1.0, 1.0, 0.5, 0.5, 0.25]
    np.testing.assert_allclose(p.value, [-3.25])


def test_bad_arguments():
    with pytest.raises(ValueError, match="learning_rate must be positive"):
        optimizers.Adam(0.0)
    with pytest.raises(ValueError, match="unknown optimizer 'adamax'"):
        optimizers.get("adamax")


@pytest.mark.parametrize("name", ["adam", "adamw"])
def test_adam_slots_hold_the_first_and_second_moments(name):
    opt = optimizers.get({"type": name, "beta_1": 0.8, "beta_2": 0.99})
    w = Parameter(np.array([1.0, -2.0, 3.0]))
    m = v = 0.0
    for g in np.random.default_rng(0).normal(size=(4, 3)):
        w.grad[...] = g
        opt.step([w])
        m, v = 0.8 * m + 0.2 * g, 0.99 * v + 0.01 * g**2
    np.testing.assert_allclose(opt.state()["slots"]["m"], m, rtol=1e-14)
    np.testing.assert_allclose(opt.state()["slots"]["v"], v, rtol=1e-14)
