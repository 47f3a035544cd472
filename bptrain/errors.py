"""Errors a user can cause. The CLI prints them as one line, without a traceback.

Programming errors are ordinary exceptions and keep their tracebacks.
"""

import difflib
from collections.abc import Iterable


def closest(word, choices: Iterable) -> str | None:
    """The choice most like ``word`` (difflib's similarity, at least 0.6), for a "did you
    mean" hint; None when no choice is close."""
    found = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1)
    return found[0] if found else None


def did_you_mean(word, choices: Iterable) -> str:
    """``"; did you mean 'x'?"`` naming the choice most like ``word``, or ``""``."""
    match = closest(word, choices)
    return f"; did you mean {match!r}?" if match else ""


class BptrainError(Exception):
    """Base class: a problem in the user's input or environment, with a message saying what to
    fix."""

    exit_code = 1
    prefix = "error: "  # what the command line prints before the message


class ConfigError(BptrainError):
    """A broken experiment or sweep file, or a bad command-line override (usage error)."""

    exit_code = 2


class DataError(BptrainError):
    """A dataset that is missing, truncated or malformed; the message names the file."""


class CheckpointError(BptrainError):
    """A checkpoint that is missing, truncated, tampered with or of an unsupported format."""


class DivergenceError(BptrainError):
    """Training produced a non-finite loss or gradient."""


class StorageError(BptrainError):
    """A file bptrain must write cannot be written (disk full, read-only, not permitted) or
    would land outside its run directory; the message names the path."""


class DeviceError(BptrainError):
    """The device a run asks for is not there: ``gpu`` without CuPy, or without a GPU."""
