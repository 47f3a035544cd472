"""One pipeline stage: a run of consecutive layers of the model as a ``Sequential`` of their
own, with what it needs to compute micro-batches (the loss on the last stage, the optimizer of
its own parameters) and to pass as the model the ``Trainer`` trains on its rank."""

from __future__ import annotations

import numpy as np

from bptrain.nn import regularizers
from bptrain.nn.context import BatchShare, sharing
from bptrain.nn.layers import Sequential
from bptrain.nn.model import Model
from bptrain.train.pipeline.split import describe, stage_ranges


class Stage:
    """Stage ``index`` of ``count``: ``network`` (a built Sequential of the stage's layers,
    with the model's names and weights) compiled as ``model`` (its flat parameter buffers and
    the optimizer of its own parameters), whose parameters begin at ``offset`` in the whole
    model's flat parameter order; ``loss`` the whole model's loss as training computes it
    (from logits when ``fused``), which the last stage applies; ``text`` the model summary with
    the stages' lines.

    Layers keep what backward needs of one forward pass only, so a micro-batch whose forward
    was not the stage's last is computed again before its backward (recomputation, as GPipe
    does), with the same dropout masks and the BatchNorm running statistics left as they were.
    """

    def __init__(self, model: Model, index, count, offset, loss, fused, text):
        self.model, self.network = model, model.network
        self.index, self.count, self.offset = index, count, offset
        self.first, self.last = index == 0, index == count - 1
        self.loss, self.fused, self.optimizer = loss, fused, model.optimizer
        self._text = text
        self._names = set(self.network.weights())
        self._cached: int | None = None  # the micro-batch the layers' caches hold

    # -- as the Trainer sees the model of its rank ----------------------------------------------
    @property
    def layers(self) -> list:
        return self.network.layers

    def parameters(self):
        return self.model.parameters()

    def apply_gradients(self) -> None:
        self.model.apply_gradients()

    def weights(self) -> dict:
        return self.network.weights()

    def load_weights(self, weights: dict) -> None:
        """Copy this stage's arrays out of the whole model's ``weights``."""
        self.network.load_weights({name: weights[name] for name in self._names})

    def rng_state(self) -> dict:
        return self.network.rng_state()

    def set_rng_state(self, state: dict) -> None:
        self.network.set_rng_state(state)

    def summary(self) -> str:
        return self._text

    # -- micro-batches ---------------------------------------------------------------------------
    def zero_grad(self) -> None:
        self.model.zero_grad()

    def forward(self, micro: int, x, share: BatchShare, rng: dict):
        """The stage's output for rows ``share.start:share.stop`` of the batch (x), in
        training; the dropout generator starts from ``rng`` (each micro-batch draws the whole
        batch's masks and keeps its rows, as a data-parallel worker does)."""
        self.network.set_rng_state(rng)
        with sharing(share):
            out = self.network.forward(x, training=True, logits=self.last and self.fused)
        self._cached = micro
        return out

    def backward(self, micro: int, x, dy, share: BatchShare, rng: dict):
        """Add the micro-batch's gradients into the parameters; returns dL/dx (None on the
        first stage). ``x``, ``share`` and ``rng`` as its forward had them."""
        if self._cached != micro:
            buffers = {k: v.copy() for k, v in self.network.state().items()}
            self.forward(micro, x, share, rng)
            self.network.load_state(buffers)
        self._cached = None
        with sharing(share):  # BatchNorm sums its gradient sums over the replicas
            return self.network.backward(dy)

    def loss_gradient(self, out, y, scale: float) -> tuple[float, np.ndarray]:
        """(scale x the loss of the last stage's ``out`` for targets ``y``, its gradient)."""
        value = self.loss.forward(out, y)
        dy = self.loss.backward()
        return value * scale, dy * dy.dtype.type(scale)

    def penalty(self, scale: float) -> float:
        """The weight penalties of this stage's parameters, times ``scale``, with their
        gradients (times ``scale``) added."""
        regularizers.add_gradients(self.parameters(), scale)
        return self.model.penalty() * scale


def stage_of(model: Model, bounds: list[int], index: int, replicas: int = 1) -> Stage:
    """Stage ``index`` of the compiled ``model`` split at ``bounds``: the stage's layers
    rebuilt as a Sequential of their own and given the model's weights and generator state (so
    the stages start exactly where one process does), compiled with the model's optimizer
    (each rank's own copy, which builds its slots for the stage's parameters). ``model`` is not
    used after."""
    network = model.network
    ranges = stage_ranges(bounds, len(network.layers))
    layers = [network.layers[i] for i in ranges[index]]
    offset = sum(p.size for layer in network.layers[: ranges[index][0]] for p in layer.parameters())
    weights, rng = network.weights(), network.rng_state()
    text = "\n".join([model.summary(), *describe(network, bounds, replicas)])
    part = Sequential(layers, fuse=network.fuse)
    part.build(layers[0].input_shape, np.random.default_rng(0), dtype=network.dtype)
    part.load_weights({name: weights[name] for name in part.weights()})
    part.set_rng_state(rng)
    compiled = Model(part, optimizer=model.optimizer, input_grad=index > 0)
    return Stage(compiled, index, len(ranges), offset, model.step_loss, model.fused, text)
