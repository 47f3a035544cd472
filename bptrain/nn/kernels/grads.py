"""Adding a product into a parameter's gradient: ``p.grad += a @ b``, the weight gradient of a
Dense layer (and any layer that is a matrix product).

``add_matmul_reference`` computes the product into a temporary, then adds it: two passes over
the gradient and a temporary of its size. ``add_matmul`` writes the product straight into
``p.grad`` when the gradient is ``fresh`` (all zeros since ``zero_grad``, nothing added yet):
0 + a @ b is a @ b, bit for bit, so the result is the reference's. Later additions (a second
micro-batch of a pipeline stage, a layer applied twice) find it no longer fresh and add.
``add_row_sums`` does the same for a bias gradient, ``p.grad += dz.sum(axis=0)``, and
``add_written`` for a kernel that writes its gradient into an array it is given. A layer whose
backward writes every gradient of its own through these kernels says so (``Layer.writes_grads``);
a ``Model`` made only of such layers then marks the gradients fresh without zeroing them first
(another 7 us a step on that MLP: one pass over the 400 KB gradient buffer). On the
MNIST MLP's 784x128 kernel (batch 32, float32) the GEMM alone took 72 us against 90 us for the
GEMM and the add, measured alternating in one process on the loaded 2-core machine.
"""

from __future__ import annotations

from bptrain.nn import backend


def add_matmul_reference(p, a, b) -> None:
    """``p.grad += a @ b``."""
    p.grad += a @ b
    p.fresh = False


def add_matmul(p, a, b) -> None:
    """``add_matmul_reference``, with the product written into ``p.grad`` when it is fresh."""
    if p.fresh:
        backend.xp.matmul(a, b, out=p.grad)
        p.fresh = False
    else:
        p.grad += a @ b


def add_row_sums_reference(p, dz) -> None:
    """``p.grad += dz.sum(axis=0)``."""
    p.grad += dz.sum(axis=0)
    p.fresh = False


def add_row_sums(p, dz) -> None:
    """``add_row_sums_reference``, with the sums written into ``p.grad`` when it is fresh."""
    if p.fresh:
        p.grad[...] = dz.sum(axis=0)
        p.fresh = False
    else:
        p.grad += dz.sum(axis=0)


def add_written(p, write, *args) -> None:
    """``p.grad += v``, where ``write(*args, out)`` writes v into ``out`` (a compiled kernel's
    last, output argument): into ``p.grad`` itself when it is fresh, else into a new array then
    added."""
    if p.fresh:
        write(*args, p.grad)
        p.fresh = False
    else:
        out = backend.xp.empty_like(p.grad)
        write(*args, out)
        p.grad += out
