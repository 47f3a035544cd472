"""Pipeline schedules as instruction streams: for each stage, the list of operations it runs
for one batch of M micro-batches, in order. Pure functions of (stage, stages, M); the stage
runner (``bptrain.train.pipeline.ranks``) executes them with MPI.

A forward of micro-batch m on stage s receives its input from stage s-1 (unless s is the
first) and sends its output to stage s+1 (unless s is the last, which computes the loss and
its gradient at once). A backward receives the gradient of its output from stage s+1 (unless
s is the last) and sends the gradient of its input to stage s-1 (unless s is the first).
Sends never wait; receives do.

- ``gpipe`` (Huang et al. 2019): every forward, then every backward (last micro-batch first).
  Simple; a stage keeps the inputs of all M micro-batches until their backward.
- ``one_f_one_b`` (PipeDream-flush, Narayanan et al. 2021): stage s runs S-s-1 warm-up
  forwards, then alternates one forward and one backward, then drains the backwards; at most
  S-s micro-batches are in flight on stage s, whatever M.

Both leave each stage idle for (S-1)/(M+S-1) of the step when forward and backward times are
the same on every stage (``bubble_fraction``); 1F1B only holds fewer micro-batches.
"""

from __future__ import annotations

from dataclasses import dataclass

RECV_ACTIVATION = "recv_activation"
FORWARD = "forward"
SEND_ACTIVATION = "send_activation"
RECV_GRAD = "recv_grad"
BACKWARD = "backward"
SEND_GRAD = "send_grad"


@dataclass(frozen=True)
class Op:
    """One operation of a stage: ``kind`` (one of the names above) on micro-batch ``micro``."""

    kind: str
    micro: int


def forward_ops(stage: int, stages: int, m: int) -> list[Op]:
    """Receive micro-batch ``m``'s input (not on the first stage), forward, send the output
    (not on the last stage)."""
    ops = [Op(RECV_ACTIVATION, m)] if stage > 0 else []
    ops.append(Op(FORWARD, m))
    return ops + ([Op(SEND_ACTIVATION, m)] if stage < stages - 1 else [])


def backward_ops(stage: int, stages: int, m: int) -> list[Op]:
    """Receive the gradient of micro-batch ``m``'s output (not on the last stage), backward,
    send the gradient of its input (not on the first stage)."""
    ops = [Op(RECV_GRAD, m)] if stage < stages - 1 else []
    ops.append(Op(BACKWARD, m))
    return ops + ([Op(SEND_GRAD, m)] if stage > 0 else [])


def gpipe(stage: int, stages: int, micro_batches: int) -> list[Op]:
    """All forwards in order, then all backwards from the last micro-batch."""
    ops = [op for m in range(micro_batches) for op in forward_ops(stage, stages, m)]
    return ops + [
        op for m in reversed(range(micro_batches)) for op in backward_ops(stage, stages, m)
    ]


def one_f_one_b(stage: int, stages: int, micro_batches: int) -> list[Op]:
    """Warm-up forwards, then one forward and one backward at a time, then the last
    backwards; forwards and backwards each in micro-batch order."""
    warmup = min(stages - stage - 1, micro_batches)
    ops = [op for m in range(warmup) for op in forward_ops(stage, stages, m)]
    for i in range(micro_batches - warmup):
        ops += forward_ops(stage, stages, warmup + i) + backward_ops(stage, stages, i)
    for m in range(micro_batches - warmup, micro_batches):
        ops += backward_ops(stage, stages, m)
    return ops


SCHEDULES = {"gpipe": gpipe, "1f1b": one_f_one_b}


def bubble_fraction(stages: int, micro_batches: int) -> float:
    """The theoretical idle share of a step: (S-1)/(M+S-1)."""
    return (stages - 1) / (micro_batches + stages - 1)


def micro_slices(start: int, stop: int, micro_batches: int) -> list[tuple[int, int]]:
    """Rows ``start:stop`` cut into min(M, rows) nearly equal consecutive (start, stop) pieces
    (a batch with fewer rows than M has fewer micro-batches, none empty)."""
    n = stop - start
    k = max(1, min(micro_batches, n))
    return [(start + n * i // k, start + n * (i + 1) // k) for i in range(k)]
