"""Holding a recurrent layer to its textbook reference: shared by the LSTM and GRU tests."""

import numpy as np

rng = np.random.default_rng(0)


def built(cls, options: dict):
    """A float64 ``cls(5, **options)`` for inputs (N, 4, 3), with random weights."""
    layer = cls(5, **options)
    layer.dtype = np.float64
    layer.build((4, 3), rng)
    layer.cast(np.float64)
    for p in layer.parameters():
        p.value[...] = rng.normal(scale=0.5, size=p.shape)
    return layer


def weights(layer) -> tuple:
    return (
        layer.kernel.value,
        layer.recurrent_kernel.value,
        layer.bias.value,
        layer.recurrent_activation,
        layer.cell_activation,
    )


def assert_matches_reference(layer, reference, reference_backward) -> None:
    """The layer's output, dx and weight gradients against ``reference(x) -> (hs, cache)``
    and ``reference_backward(dhs, cache, truncate_bptt) -> (dx, dkernel, drecurrent,
    dbias)``, with go_backwards, return_sequences and truncation as the layer has them."""
    x = rng.normal(size=(2, 4, 3))
    hs, cache = reference(x[:, ::-1] if layer.go_backwards else x)
    y = layer.forward(x)
    np.testing.assert_allclose(y, hs if layer.return_sequences else hs[:, -1], rtol=1e-12)
    dy = rng.normal(size=y.shape)
    dhs = dy if layer.return_sequences else np.zeros_like(hs)
    if not layer.return_sequences:
        dhs[:, -1] = dy
    dx_ref, dkernel, drecurrent, dbias = reference_backward(dhs, cache, layer.truncate_bptt)
    dx = layer.backward(dy)
    np.testing.assert_allclose(dx, dx_ref[:, ::-1] if layer.go_backwards else dx_ref, rtol=1e-10)
    np.testing.assert_allclose(layer.kernel.grad, dkernel, rtol=1e-10)
    np.testing.assert_allclose(layer.recurrent_kernel.grad, drecurrent, rtol=1e-10)
    np.testing.assert_allclose(layer.bias.grad, dbias, rtol=1e-10, atol=1e-14)
