"""Rows added into a table at indexes that repeat: an Embedding's gradient.

``scatter_rows_reference`` is ``target[ids] += rows`` with repeats accumulating, the backend's
``scatter_add`` (``np.add.at``; ``cupyx.scatter_add`` on a GPU, atomic adds in one kernel).
On NumPy, ``scatter_rows`` sorts the ids and sums each run of equal ids with ``add.reduceat``,
several times faster than ``np.add.at``; on a device it is the reference. The sums are the same,
added in another order.
"""

from __future__ import annotations

from bptrain.nn import backend


def scatter_rows_reference(target, ids, rows) -> None:
    """``target[ids[j]] += rows[j]`` for all j. target: (V, E), ids: (M,), rows: (M, E)."""
    backend.scatter_add(target, ids, rows)


def scatter_rows(target, ids, rows) -> None:
    """``scatter_rows_reference``, by sorted runs of equal ids on NumPy."""
    if backend.name != "numpy":
        scatter_rows_reference(target, ids, rows)
        return
    xp = backend.xp
    if len(ids) == 0:
        return
    order = xp.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    starts = xp.flatnonzero(xp.concatenate(([True], sorted_ids[1:] != sorted_ids[:-1])))
    target[sorted_ids[starts]] += xp.add.reduceat(rows[order], starts, axis=0)
