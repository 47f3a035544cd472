"""Embedding: integer token ids to learned vectors."""

from __future__ import annotations

from bptrain.nn import backend
from bptrain.nn.kernels.scatter import scatter_rows
from bptrain.nn.layer import Layer


class Embedding(Layer):
    """ids: (N, ...) integers in [0, input_dim) -> (N, ..., output_dim), rows of
    ``embeddings`` (input_dim, output_dim).

    Backward adds each output gradient row into the row of its token; there is no input
    gradient (token ids are integers), so ``backward`` returns None and the layer goes first.
    """

    def __init__(
        self,
        input_dim: int,
        output_dim: int,
        embeddings_initializer: str | dict = "random_uniform",
        embeddings_regularizer: str | dict | None = None,
        name: str | None = None,
    ):
        super().__init__(name)
        for key, value in (("input_dim", input_dim), ("output_dim", output_dim)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"Embedding {key} must be a positive integer, got {value}")
        self.input_dim, self.output_dim = input_dim, output_dim
        self.embeddings_initializer = embeddings_initializer
        self.embeddings_regularizer = embeddings_regularizer

    def build(self, input_shape, rng):
        self.embeddings = self.add_parameter(
            "embeddings",
            (self.input_dim, self.output_dim),
            self.embeddings_initializer,
            rng,
            self.embeddings_regularizer,
        )
        return (*input_shape, self.output_dim)

    def forward(self, x, training=False):
        xp = backend.xp
        ids = backend.asarray(x)
        if ids.dtype.kind not in "iu":
            if ids.dtype.kind != "f" or not bool(xp.all(ids == xp.round(ids))):
                raise ValueError(f"Embedding expects integer token ids, got dtype {ids.dtype}")
            ids = ids.astype(xp.int64)
        if ids.size and (int(ids.min()) < 0 or int(ids.max()) >= self.input_dim):
            raise ValueError(
                f"token ids must lie in [0, {self.input_dim}), got values from {int(ids.min())} "
                f"to {int(ids.max())}; raise input_dim to the vocabulary size"
            )
        self._ids = ids
        return xp.take(self.embeddings.value, ids, axis=0)

    def backward(self, dy):
        scatter_rows(self.embeddings.grad, self._ids.reshape(-1), dy.reshape(-1, self.output_dim))
        return None

    def config(self):
        return {"input_dim": self.input_dim, "output_dim": self.output_dim}
