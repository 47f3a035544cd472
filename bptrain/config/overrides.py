"""Command-line overrides: ``optimizer.lr=0.01``, ``model.layers.1.units=64`` (or
``model.layers[1].units=64``). The value is read as YAML, so ``64`` is an int, ``1e-3`` a float,
``true`` a bool, ``null`` None and ``[64, 32]`` or ``{type: adam}`` a list or mapping."""

from __future__ import annotations

import copy
import re

from bptrain.config.locations import Locations, format_path
from bptrain.config.run_length import EPOCH_KEYS
from bptrain.config.yamlio import load_text
from bptrain.errors import ConfigError
from bptrain.nn.optimizers import KEY_ALIASES as OPTIMIZER_KEY_ALIASES

# Key paths that are other names of a key: optimizer.lr is optimizer.learning_rate. Every key
# path a user writes (an override, a sweep's fixed, grid or random key) means its canonical
# path, and the schema reads a section that spells a key by its alias the same way.
KEY_ALIASES = {
    ("optimizer", alias): ("optimizer", name) for alias, name in OPTIMIZER_KEY_ALIASES.items()
}


def parse_override(text: str) -> tuple[tuple, object]:
    """``"model.layers[1].units=64"`` -> (("model", "layers", 1, "units"), 64)."""
    if "=" not in text:
        raise ConfigError(
            f"override {text!r}: expected key.path=value (for example optimizer.lr=0.01)"
        )
    key, raw = text.split("=", 1)
    path = parse_path(key.strip(), text)
    value, _ = load_text(raw, f"override {text}", lines=False)
    return path, value


def parse_path(key: str, text: str | None = None) -> tuple:
    """``"model.layers[1].units"`` or ``"model.layers.1.units"`` -> a path tuple; a segment
    that reads as an integer is a list index."""
    parts = re.sub(r"\[\s*(-?\d+)\s*\]", r".\1", key).split(".")
    if not key or any(not p.strip() for p in parts):
        raise ConfigError(
            f"override {text or key!r}: {key!r} is not a key path like model.layers.1.units"
        )
    return tuple(int(p) if re.fullmatch(r"-?\d+", p.strip()) else p.strip() for p in parts)


def canonical_path(path: tuple) -> tuple:
    """``path`` with an alias replaced by the key it names:
    ``("optimizer", "lr")`` -> ``("optimizer", "learning_rate")``; other paths unchanged."""
    path = tuple(path)
    for n in range(len(path), 0, -1):
        name = KEY_ALIASES.get(path[:n])
        if name is not None:
            return (*name, *path[n:])
    return path


# A schedule's length in steps and in epochs set one thing: setting one replaces the other.
RIVALS = {
    ("training", "schedule", a): ("training", "schedule", b)
    for steps, epochs in EPOCH_KEYS.items()
    for a, b in ((steps, epochs), (epochs, steps))
}


def replaced_keys(path: tuple) -> list:
    """The keys beside the key at canonical ``path`` that setting it replaces: its other names
    (``lr`` for ``learning_rate``) and its twin in other units (``decay_steps`` for
    ``decay_epochs``)."""
    path = tuple(path)
    aliases = [alias[-1] for alias, name in KEY_ALIASES.items() if name == path]
    return aliases + ([RIVALS[path][-1]] if path in RIVALS else [])


def apply_overrides(config: dict, overrides, where: Locations | None = None) -> dict:
    """A copy of ``config`` with each ``key.path=value`` set; ``where`` learns their origin.

    Intermediate mappings are created as needed; list indices must exist (negative ones count
    from the end). Whether a key is allowed at all is for validation to say.
    """
    config = copy.deepcopy(config)
    for text in overrides:
        path, value = parse_override(text)
        path = canonical_path(path)
        set_path(config, path, value, f"override {text}")
        if where is not None:
            for alias in replaced_keys(path):
                where.forget((*path[:-1], alias))
            where.forget(path)
            origin = f"override {text}"
            for n in range(1, len(path)):  # sections the override created point at it too
                if where.exact(path[:n]) is None:
                    where.set(path[:n], origin)
            where.set(path, origin)
    return config


def set_path(config: dict, path: tuple, value, origin: str = "override") -> None:
    """Set ``config[path[0]][path[1]]... = value`` in place, at the canonical path: the key
    replaces its aliases as well (``optimizer.lr`` sets ``learning_rate`` and drops ``lr``)."""
    path = canonical_path(path)
    node = config
    for i, part in enumerate(path):
        last = i == len(path) - 1
        here = format_path(path[: i + 1])
        if isinstance(node, list):
            if not isinstance(part, int):
                raise ConfigError(f"{origin}: {format_path(path[:i])} is a list; use an index")
            if not -len(node) <= part < len(node):
                raise ConfigError(
                    f"{origin}: {here}: index out of range ({format_path(path[:i])} has "
                    f"{len(node)} items)"
                )
        elif isinstance(node, dict):
            part = str(part)
            old = node.get(part)
            if not last and old is None:
                node[part] = {}  # training.early_stopping.patience=3 with no such section yet
            elif not last and isinstance(old, str):
                node[part] = {"type": old}  # optimizer: adam + optimizer.lr=0.01
        else:
            raise ConfigError(
                f"{origin}: {format_path(path[:i])} is a value, not a section; cannot set {here}"
            )
        if last:
            if isinstance(node, dict):
                for alias in replaced_keys(path):
                    node.pop(alias, None)
            node[part] = value
        else:
            node = node[part]
