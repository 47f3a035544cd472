"""SIGINT and SIGTERM during training: finish the current step, save a checkpoint, stop.

The first signal sets a flag the loop checks after every step; a second one interrupts at
once (KeyboardInterrupt). Handlers are installed only in the main thread of a process.
"""

from __future__ import annotations

import contextlib
import signal
import threading

from bptrain.errors import BptrainError


class Interrupted(BptrainError):
    """Training stopped by a signal after saving a checkpoint; exit status 128 + signal."""

    prefix = ""  # not an error: the message says where the run stopped

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + signum


class StopFlag:
    def __init__(self):
        self.signum: int | None = None

    def __bool__(self) -> bool:
        return self.signum is not None

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else ""


@contextlib.contextmanager
def stop_on_signals():
    """Yield a StopFlag that becomes true on SIGINT or SIGTERM."""
    flag = StopFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, frame):
        if flag:
            raise KeyboardInterrupt
        flag.signum = signum

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield flag
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
