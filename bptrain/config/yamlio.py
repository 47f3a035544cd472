"""Safe YAML reading that remembers the line of every key, and YAML writing of configs.

Only the safe loader is used, so tags such as ``!!python/object`` are refused. ``1e-3`` reads as
a float (plain YAML 1.1 would make it a string), and a key written twice is an error rather than
a silent overwrite.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import yaml

from bptrain.config.locations import Locations, format_path
from bptrain.errors import ConfigError


class Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-3`` and ``1E+5`` as floats."""


Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def load_file(path: str | os.PathLike) -> tuple[dict, Locations]:
    """Read a YAML mapping from ``path``; returns it and the line of every key in it."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{name}: no such config file") from None
    except IsADirectoryError:
        raise ConfigError(f"{name}: is a directory, not a config file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{name}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"{name}: cannot be read ({exc.strerror})") from None
    data, where = load_text(text, name)
    if data is None:
        raise ConfigError(f"{name}: the file is empty; see configs/ for examples")
    if not isinstance(data, dict):
        raise ConfigError(f"{name}:1: the config must be a mapping of sections (name, data, ...)")
    return data, where


def load_text(text: str, source: str, lines: bool = True) -> tuple[object, Locations]:
    """Parse one YAML document; ``source`` names it in error messages (with the line number
    unless ``lines`` is false, as for a one-line override)."""
    where = Locations(source)
    loader = Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, where
        data = loader.construct_document(node)
        _record(loader, node, data, (), where, source)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark is not None and lines else ""
        problem = " ".join(str(exc.problem or exc.context or "invalid YAML").split())
        if "could not determine a constructor" in problem:
            problem = f"{problem}; only plain YAML is allowed (no Python tags)"
        raise ConfigError(f"{source}{line}: invalid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: invalid YAML: {' '.join(str(exc).split())}") from None
    finally:
        loader.dispose()
    return data, where


def _record(loader, node, data, path: tuple, where: Locations, source: str) -> None:
    """Walk the node tree beside the constructed data, noting the line of each key."""
    where.set(path, f"{source}:{node.start_mark.line + 1}")
    if isinstance(node, yaml.MappingNode) and isinstance(data, dict):
        seen: dict = {}  # key -> (line, came from a << merge)
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if not isinstance(key, str):
                raise ConfigError(
                    f"{source}:{line}: {format_path(path)}: keys must be strings, got {key!r}"
                )
            merged = not node.start_mark.index <= key_node.start_mark.index < node.end_mark.index
            if key in seen and not merged and not seen[key][1]:
                raise ConfigError(
                    f"{source}:{line}: {format_path((*path, key))}: duplicate key "
                    f"(first given on line {seen[key][0]})"
                )
            seen[key] = (line, merged)
            _record(loader, value_node, data[key], (*path, key), where, source)
            where.set((*path, key), f"{source}:{line}")
    elif isinstance(node, yaml.SequenceNode) and isinstance(data, list):
        for i, (item_node, item) in enumerate(zip(node.value, data, strict=False)):
            _record(loader, item_node, item, (*path, i), where, source)


def dump(config: dict) -> str:
    """YAML text of a config, keys in their given order."""
    return yaml.dump(config, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=100)


class _Dumper(yaml.SafeDumper):
    """Block style for sections, flow style for short lists of scalars ([28, 28])."""


def _represent_list(dumper, data):
    flow = all(not isinstance(v, dict | list) for v in data) and len(data) <= 8
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_Dumper.add_representer(list, _represent_list)
