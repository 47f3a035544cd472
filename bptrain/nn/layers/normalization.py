"""Batch normalization over the channel axis (axis 1: features of (N, C), channels of NCHW)."""

from __future__ import annotations

from bptrain.nn import backend, context, initializers
from bptrain.nn.kernels.normalization import batch_means, batch_moments
from bptrain.nn.layer import Layer


class BatchNorm(Layer):
    """``y = gamma * (x - mean) / sqrt(var + epsilon) + beta`` per channel.

    x: (N, C) or (N, C, H, W) -> y: same shape; statistics are per channel C, over the batch
    (and positions); gamma, beta, moving_mean, moving_variance: (C,).

    In training the mean and (biased) variance are the batch's, and the running statistics move
    towards them: ``moving = momentum * moving + (1 - momentum) * batch`` (Keras' convention,
    so momentum=0.99 keeps 99% of the old value; Keras also uses the biased batch variance).
    In inference the running statistics are used. They are buffers, not parameters: ``state()``
    returns them (checkpoints save them) and ``load_state`` writes them in place.

    ``reducer``, in data-parallel training the ``reduce`` of ``bptrain.nn.context`` (else
    None), makes the batch statistics those of a global batch split across the workers
    (synchronized batch normalization): a callable that takes a float64 vector and returns its
    elementwise sum over all workers, each worker passing its own. The forward pass then sums
    per-channel sums and counts, and then squared deviations from the global mean; the backward
    pass sums the two per-channel gradient sums. Every worker computes the same statistics, so
    the running statistics stay equal too.
    """

    @property
    def reducer(self):
        share = context.current()
        return share.reduce if share is not None else None

    def __init__(
        self,
        momentum: float = 0.99,
        epsilon: float = 1e-3,
        center: bool = True,
        scale: bool = True,
        beta_initializer: str | dict = "zeros",
        gamma_initializer: str | dict = "ones",
        moving_mean_initializer: str | dict = "zeros",
        moving_variance_initializer: str | dict = "ones",
        beta_regularizer: str | dict | None = None,
        gamma_regularizer: str | dict | None = None,
        name: str | None = None,
    ):
        super().__init__(name)
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"BatchNorm momentum must be in [0, 1], got {momentum}")
        if epsilon <= 0:
            raise ValueError(f"BatchNorm epsilon must be positive, got {epsilon}")
        self.momentum, self.epsilon = float(momentum), float(epsilon)
        self.center, self.scale = center, scale
        self.beta_initializer, self.gamma_initializer = beta_initializer, gamma_initializer
        self.moving_mean_initializer = moving_mean_initializer
        self.moving_variance_initializer = moving_variance_initializer
        self.beta_regularizer, self.gamma_regularizer = beta_regularizer, gamma_regularizer

    def build(self, input_shape, rng):
        if len(input_shape) not in (1, 3):
            raise ValueError(
                "BatchNorm normalizes features (N, C) or image channels (N, C, H, W), "
                f"got inputs of shape {('N', *input_shape)}"
            )
        c = input_shape[0]
        if self.scale:
            self.gamma = self.add_parameter(
                "gamma", (c,), self.gamma_initializer, rng, self.gamma_regularizer
            )
        if self.center:
            self.beta = self.add_parameter(
                "beta", (c,), self.beta_initializer, rng, self.beta_regularizer
            )
        self.moving_mean = initializers.get(self.moving_mean_initializer)((c,), rng, self.dtype)
        self.moving_variance = initializers.get(self.moving_variance_initializer)(
            (c,), rng, self.dtype
        )
        return tuple(input_shape)

    def _channel_shape(self, x) -> tuple:
        """(1, C, 1, ...): per-channel arrays broadcast against x."""
        return (1, x.shape[1]) + (1,) * (x.ndim - 2)

    def forward(self, x, training=False):
        xp = backend.xp
        if x.ndim not in (2, 4):
            raise ValueError(f"BatchNorm expects (N, C) or (N, C, H, W) inputs, got {x.shape}")
        axes = (0, *range(2, x.ndim))
        cshape = self._channel_shape(x)
        one = x.dtype.type(1.0)
        if training:
            mean, centered, var, self._count = batch_moments(x, axes, self.reducer)
            m = self.momentum
            self.moving_mean *= m
            self.moving_mean += (1.0 - m) * mean
            self.moving_variance *= m
            self.moving_variance += (1.0 - m) * var
        else:
            centered = x - self.moving_mean.reshape(cshape)
            var = self.moving_variance
        inv_std = one / xp.sqrt(var + x.dtype.type(self.epsilon))
        xhat = centered
        xhat *= inv_std.reshape(cshape)
        self._xhat, self._inv_std, self._training = xhat, inv_std, training
        y = xhat * self.gamma.value.reshape(cshape) if self.scale else xhat.copy()
        if self.center:
            y += self.beta.value.reshape(cshape)
        return y

    def backward(self, dy):
        xhat, cshape = self._xhat, self._channel_shape(dy)
        axes = (0, *range(2, dy.ndim))
        sum_dy = dy.sum(axis=axes)
        sum_dy_xhat = (dy * xhat).sum(axis=axes)
        if self.center:
            self.beta.grad += sum_dy
        if self.scale:
            self.gamma.grad += sum_dy_xhat
        g = self._inv_std * self.gamma.value if self.scale else self._inv_std
        if not self._training:
            return dy * g.reshape(cshape)  # the running statistics are constants
        # The batch mean and variance depend on every x, which adds two per-channel terms:
        # dx = g * (dy - mean(dy) - xhat * mean(dy * xhat)), the means over the whole batch:
        # all workers' with a reducer (gamma and beta above keep this worker's sums; the trainer
        # sums parameter gradients across workers).
        mean_dy, mean_dy_xhat = batch_means([sum_dy, sum_dy_xhat], self._count, self.reducer)
        dx = xhat * mean_dy_xhat.reshape(cshape)
        dx += mean_dy.reshape(cshape)
        dx -= dy
        dx *= (-g).reshape(cshape)
        return dx

    def state(self) -> dict:
        return {"moving_mean": self.moving_mean, "moving_variance": self.moving_variance}

    def cast(self, dtype) -> None:
        super().cast(dtype)
        self.moving_mean = self.moving_mean.astype(dtype)
        self.moving_variance = self.moving_variance.astype(dtype)

    def config(self):
        return {"momentum": self.momentum, "epsilon": self.epsilon}
