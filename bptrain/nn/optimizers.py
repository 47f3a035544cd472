"""Optimizers: in-place gradient-descent updates with per-parameter state in arrays.

``step(params)`` clips the gradients if asked, advances the step counter, asks the schedule for
the rate and applies ``update(w, g, slots, lr)`` to every parameter. Slot arrays (momentum,
second moments, ...) for all parameters live in one flat buffer per slot; each parameter gets a
view. When the parameters themselves are views of one flat buffer (a compiled ``Model``), the
update runs once over everything, a handful of large array operations per step.
"""

from __future__ import annotations

import math

from bptrain.nn import backend, registry, schedules
from bptrain.nn.kernels.adam import adam_update
from bptrain.nn.kernels.scratch import Scratch
from bptrain.nn.kernels.sgd_rmsprop import no_slot, rmsprop_update, sgd_update
from bptrain.nn.parameter import flat_views


class Optimizer:
    name = ""
    slot_names: tuple[str, ...] = ()
    # Whether ``update`` is one compiled pass over the flat buffers where it can run, of which a
    # second core can take half (``kernels.second_core.update``).
    compiled_update = False

    def __init__(
        self,
        learning_rate: float = 0.01,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        schedule=None,
    ):
        if learning_rate <= 0:
            raise ValueError(f"learning_rate must be positive, got {learning_rate}")
        self.learning_rate = float(learning_rate)
        self.clipnorm, self.clipvalue, self.global_clipnorm = clipnorm, clipvalue, global_clipnorm
        self.schedule = schedules.get(schedule)
        self.iterations = 0
        self.slots: dict = {}
        self._params = None

    @property
    def lr(self) -> float:
        """The rate of the most recent (or, before any step, the first) update."""
        return self.schedule(max(self.iterations, 1), self.learning_rate)

    def observe(self, value: float) -> None:
        """An epoch's monitored value, for a schedule that follows one (reduce_on_plateau)."""
        self.schedule.observe(value)

    # -- state ----------------------------------------------------------------------------------
    def build(self, params) -> None:
        xp = backend.xp
        total = sum(p.size for p in params)
        dtype = params[0].value.dtype if params else "float32"
        self.slots = {s: xp.zeros(total, dtype=dtype) for s in self.slot_names}
        self._init_slots()
        per_slot = {s: flat_views(buf, params) for s, buf in self.slots.items()}
        self._views = [{s: views[i] for s, views in per_slot.items()} for i in range(len(params))]
        self._params = params

    def _init_slots(self) -> None:
        """Set initial slot values (zeros unless an optimizer says otherwise)."""

    def state(self) -> dict:
        """Arrays (flat slots) and scalars that ``load_state`` restores exactly."""
        return {
            "iterations": self.iterations,
            "schedule": self.schedule.state(),
            "slots": {s: backend.to_numpy(buf) for s, buf in self.slots.items()},
        }

    def load_state(self, state: dict, params) -> None:
        self.build(params)
        for s, buf in self.slots.items():
            value = state["slots"][s]
            if value.shape != buf.shape:
                raise ValueError(f"optimizer slot {s!r} has {value.shape}, expected {buf.shape}")
            buf[...] = backend.asarray(value, dtype=buf.dtype)
        self.iterations = int(state["iterations"])
        self.schedule.load_state(state.get("schedule", {}))

    # -- stepping -------------------------------------------------------------------------------
    def step(self, params) -> None:
        """Apply one update to ``params`` (a list of Parameter) from their ``grad``."""
        if self._params is not params:
            if self._params is None or len(self._params) != len(params):
                self.build(params)
            self._params = params
        self._clip(params)
        self.iterations += 1
        lr = self.schedule(self.iterations, self.learning_rate)
        flat_value = getattr(params, "flat_value", None)
        if flat_value is not None:
            self.update(flat_value, params.flat_grad, self.slots, lr)
        else:
            for p, slots in zip(params, self._views, strict=True):
                self.update(p.value, p.grad, slots, lr)

    def _clip(self, params) -> None:
        # Elementwise and global clipping act on the one flat gradient buffer when there is one.
        flat = getattr(params, "flat_grad", None)
        grads = [p.grad for p in params] if flat is None else [flat]
        if self.clipvalue is not None:
            for g in grads:
                backend.xp.clip(g, -self.clipvalue, self.clipvalue, out=g)
        if self.clipnorm is not None:
            for p in params:
                norm = math.sqrt(backend.squared_norm(p.grad))
                if norm > self.clipnorm:
                    p.grad *= self.clipnorm / norm
        if self.global_clipnorm is not None:
            norm = math.sqrt(sum(backend.squared_norm(g) for g in grads))
            if norm > self.global_clipnorm:
                for g in grads:
                    g *= self.global_clipnorm / norm

    def update(self, w, g, slots: dict, lr: float) -> None:
        """Update ``w`` in place from gradient ``g`` and this parameter's ``slots``."""
        raise NotImplementedError


class SGD(Optimizer):
    """``v = momentum*v - lr*g; w += v`` (Nesterov: ``w += momentum*v - lr*g``)."""

    name = "sgd"
    compiled_update = True

    def __init__(self, learning_rate=0.01, momentum: float = 0.0, nesterov: bool = False, **kw):
        super().__init__(learning_rate, **kw)
        self.momentum, self.nesterov = momentum, nesterov
        self.slot_names = ("velocity",) if momentum else ()

    def update(self, w, g, slots, lr):
        v = slots["velocity"] if self.momentum else no_slot(w.dtype)
        sgd_update(w, g, v, lr, self.momentum, self.nesterov)  # (kernels.sgd_rmsprop)


class RMSprop(Optimizer):
    """``v = rho*v + (1-rho)*g^2; w -= lr*g/sqrt(v - mg^2 + eps)`` (``mg`` only if centered)."""

    name = "rmsprop"

    def __init__(
        self,
        learning_rate=0.001,
        rho: float = 0.9,
        momentum: float = 0.0,
        epsilon: float = 1e-7,
        centered: bool = False,
        **kw,
    ):
        super().__init__(learning_rate, **kw)
        self.rho, self.momentum, self.epsilon, self.centered = rho, momentum, epsilon, centered
        names = ["velocity"]
        if centered:
            names.append("average_gradient")
        if momentum:
            names.append("momentum")
        self.slot_names = tuple(names)
        self.compiled_update = not centered and not momentum

    def update(self, w, g, slots, lr):
        v = slots["velocity"]
        if self.compiled_update:
            return rmsprop_update(w, g, v, lr, self.rho, self.epsilon)
        xp = backend.xp
        v *= self.rho
        v += (1 - self.rho) * g * g
        denom = v
        if self.centered:
            mg = slots["average_gradient"]
            mg *= self.rho
            mg += (1 - self.rho) * g
            denom = v - mg * mg
        step = lr * g / xp.sqrt(denom + self.epsilon)
        if self.momentum:
            m = slots["momentum"]
            m *= self.momentum
            m += step
            step = m
        w -= step


class Adam(Optimizer):
    """Adam (Kingma & Ba) as Keras writes it, with slots ``m`` and ``v`` the moments:

        m = b1 m + (1 - b1) g
        v = b2 v + (1 - b2) g^2
        w -= lr_t m / (sqrt(v) + eps),   lr_t = lr sqrt(1 - b2^t) / (1 - b1^t)

    (lr_t folds in the bias correction.) The update is ``kernels.adam.adam_update``: one
    compiled pass over the flat buffers where it can run, else twelve NumPy passes.
    """

    name = "adam"
    slot_names = ("m", "v")
    compiled_update = True

    def __init__(
        self,
        learning_rate=0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        **kw,
    ):
        super().__init__(learning_rate, **kw)
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon
        self._scratch = Scratch()

    def update(self, w, g, slots, lr):
        b1, b2, t = self.beta_1, self.beta_2, self.iterations
        lr_t = lr * math.sqrt(1 - b2**t) / (1 - b1**t)
        adam_update(w, g, slots["m"], slots["v"], lr_t, b1, b2, self.epsilon, self._scratch)


class AdamW(Adam):
    """Adam with decoupled weight decay: ``w -= lr * weight_decay * w`` before the Adam step."""

    name = "adamw"
    compiled_update = False  # (the decay is a NumPy pass over all of w first)

    def __init__(self, learning_rate=0.001, weight_decay: float = 0.004, **kw):
        super().__init__(learning_rate, **kw)
        self.weight_decay = weight_decay

    def update(self, w, g, slots, lr):
        w *= 1 - lr * self.weight_decay
        super().update(w, g, slots, lr)


class Adagrad(Optimizer):
    """``acc += g^2; w -= lr*g/(sqrt(acc) + eps)``, the accumulator starting at 0.1 (Keras)."""

    name = "adagrad"
    slot_names = ("accumulator",)

    def __init__(
        self,
        learning_rate=0.001,
        initial_accumulator_value: float = 0.1,
        epsilon: float = 1e-7,
        **kw,
    ):
        super().__init__(learning_rate, **kw)
        self.initial_accumulator_value, self.epsilon = initial_accumulator_value, epsilon

    def _init_slots(self):
        self.slots["accumulator"].fill(self.initial_accumulator_value)

    def update(self, w, g, slots, lr):
        acc = slots["accumulator"]
        acc += g * g
        w -= lr * g / (backend.xp.sqrt(acc) + self.epsilon)


OPTIMIZERS: dict[str, type[Optimizer]] = {
    cls.name: cls for cls in (SGD, RMSprop, Adam, AdamW, Adagrad)
}
ALIASES = {"momentum": "sgd"}
# Other names of constructor keywords (Keras' older ``lr``); the config's key paths use these too.
KEY_ALIASES = {"lr": "learning_rate"}


def get(optimizer) -> Optimizer:
    """An optimizer from a name (``"adam"``), a ``{"type": "adam", "learning_rate": 1e-3}``
    mapping (``lr`` is accepted for ``learning_rate``) or an instance. ``momentum`` is SGD
    with momentum 0.9 unless the mapping says otherwise."""
    if isinstance(optimizer, str):
        optimizer = {"type": optimizer}
    if isinstance(optimizer, dict):
        optimizer = dict(optimizer)
        for alias, name in KEY_ALIASES.items():
            if alias in optimizer:
                if name in optimizer:
                    raise ValueError(f"give either {alias} or {name}, not both")
                optimizer[name] = optimizer.pop(alias)
        if optimizer.get("type") == "momentum":
            optimizer.setdefault("momentum", 0.9)
    return registry.build(optimizer, OPTIMIZERS, "optimizer", Optimizer, ALIASES)
