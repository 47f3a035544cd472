"""Test-only fault injection: a process kills or signals itself at a named point.

The reliability tests (tests/reliability) use this to stop a real ``bptrain`` process at an
exact moment, such as between writing a checkpoint's temporary file and renaming it, which
wall-clock kills can only hit by luck. It is off unless the environment variable
``BPTRAIN_FAULT`` is set when bptrain is imported; then it holds comma-separated items

    kill_at:<point>:<n>               SIGKILL this process the n-th time <point> is reached
    signal_at:<point>:<n>:<SIGNAL>    send it SIGNAL (SIGINT, SIGTERM, ...) instead

e.g. ``BPTRAIN_FAULT=kill_at:atomic.written:3`` or
``BPTRAIN_FAULT=signal_at:train.step:10:SIGINT,signal_at:atomic.written:6:SIGINT``.
n counts from 1, per process. The points, where ``point(name)`` is called:

    train.step         Trainer.train_step: gradients computed, update not yet applied
    metrics.appended   Trainer.end_epoch: a metrics.csv row is on disk, the epoch's
                       checkpoints are not yet written
    metrics.truncated  MetricsLog.resume: metrics.csv was cut back to the checkpoint's length
    atomic.opened      atomic.write_bytes (checkpoints, config.yaml, ...): the temporary file
                       exists, empty
    atomic.written     its data are written and fsynced, not yet renamed over the target
    atomic.renamed     renamed over the target, the directory not yet fsynced
"""

from __future__ import annotations

import os
import signal

ENV = "BPTRAIN_FAULT"


def _parse(text: str) -> dict[str, dict[int, int]]:
    """point -> {n: signal number}."""
    plan: dict[str, dict[int, int]] = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        parts = item.split(":")
        try:
            if parts[0] == "kill_at" and len(parts) == 3:
                signum = signal.SIGKILL
            elif parts[0] == "signal_at" and len(parts) == 4:
                signum = signal.Signals[parts[3]]
            else:
                raise ValueError
            plan.setdefault(parts[1], {})[int(parts[2])] = signum
        except (ValueError, KeyError):
            raise ValueError(
                f"{ENV}: cannot read {item!r}; expected kill_at:<point>:<n> or "
                "signal_at:<point>:<n>:<SIGNAL>"
            ) from None
    return plan


_plan = _parse(os.environ.get(ENV, ""))
_counts: dict[str, int] = {}


def point(name: str) -> None:
    """Mark that the code reached fault point ``name`` (a no-op unless BPTRAIN_FAULT is set)."""
    if not _plan:
        return
    n = _counts[name] = _counts.get(name, 0) + 1
    signum = _plan.get(name, {}).get(n)
    if signum is not None:
        os.kill(os.getpid(), signum)
