"""Scoring the validation set through the pipeline: batches flow forward through the stages
(inference: no dropout, BatchNorm's running statistics), and the last stage's loss and
outputs reach every rank."""

from __future__ import annotations

import numpy as np

from bptrain.nn import backend
from bptrain.train.pipeline.step import VALIDATION, Links


def validate_stage(stage, links: Links, pipe, x, y, batch_size: int) -> tuple[float, np.ndarray]:
    """(mean loss with every stage's penalties, outputs (N, outputs)) of (x, y), as
    ``Model.evaluate`` computes them in one process, on every rank of ``pipe``."""
    network, total, outs = stage.network, 0.0, []
    activation = network.runs[-1].activation if stage.last and stage.fused else None
    for i, start in enumerate(range(0, len(x), batch_size)):
        rows = len(x[start : start + batch_size])
        if stage.first:
            xb = backend.asarray(x[start : start + batch_size])
        else:
            shape = (rows, *network.input_shape)
            xb = backend.asarray(links.recv(shape, stage.index - 1, VALIDATION, i))
        out = network.forward(xb, training=False, logits=stage.last and stage.fused)
        if not stage.last:
            links.send(out, stage.index + 1, VALIDATION, i)
            continue
        total += stage.loss.forward(out, backend.asarray(y[start : start + rows])) * rows
        outs.append(backend.to_numpy(activation.forward(out) if activation else out))
    links.wait()
    penalties = sum(pipe.allgather(stage.model.penalty()))  # stage order
    result = None
    if stage.last:
        outputs = np.concatenate(outs) if outs else np.empty((0,))
        result = (total / max(len(x), 1) + penalties, outputs)
    return pipe.bcast(result, root=stage.count - 1)
