"""Where each key of a config came from (file and line, or a command-line override), and the
ConfigError messages that name it: ``configs/x.yaml:7: model.layers[1].unit: unknown key``."""

from __future__ import annotations

from bptrain.errors import ConfigError

Path_ = tuple  # a key path: ("model", "layers", 1, "units")


def format_path(path: Path_) -> str:
    """("model", "layers", 1, "units") -> "model.layers[1].units"."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "<config>"


class Locations:
    """Maps key paths to the place they were written: ``"file.yaml:7"`` or an override.

    A path with no entry of its own takes the place of its closest recorded ancestor, so a value
    set by an override (and everything inside it) points at that override.
    """

    def __init__(self, source: str | None = None):
        self.source = source
        self._where: dict[Path_, str] = {}

    def set(self, path: Path_, where: str) -> None:
        self._where[tuple(path)] = where

    def forget(self, path: Path_) -> None:
        """Drop ``path`` and everything under it (a value replaced by an override)."""
        n = len(path)
        for key in [k for k in self._where if k[:n] == tuple(path)]:
            del self._where[key]

    def exact(self, path: Path_) -> str | None:
        """Where ``path`` itself was written, or None."""
        return self._where.get(tuple(path))

    def of(self, path: Path_) -> str | None:
        path = tuple(path)
        for n in range(len(path), -1, -1):
            where = self._where.get(path[:n])
            if where is not None:
                return where
        return self.source

    def error(self, path: Path_, message: str) -> ConfigError:
        """A ConfigError ``"<where>: <path>: <message>"`` (``where`` left out when unknown)."""
        return config_error(path, message, self.of(path))


def config_error(path: Path_, message: str, where: str | None = None) -> ConfigError:
    """A ConfigError naming ``path``; ``key_path`` lets a caller with locations add the line."""
    text = f"{format_path(path)}: {message}" if path else message
    err = ConfigError(f"{where}: {text}" if where else text)
    err.key_path = tuple(path)
    err.located = where is not None
    err.detail = message
    return err


def locate_error(err: ConfigError, where: Locations | None) -> ConfigError:
    """Add file and line to a ConfigError raised without them (e.g. while building a model)."""
    if where is None or getattr(err, "located", True) or not hasattr(err, "key_path"):
        return err
    place = where.of(err.key_path)
    return config_error(err.key_path, err.detail, place) if place else err
