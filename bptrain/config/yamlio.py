"""Safe YAML reading that remembers the line of every key, and YAML writing of configs.

Only the safe loader is used, so tags such as ``!!python/object`` are refused. ``1e-3`` reads as
a float (plain YAML 1.1 would make it a string), and a key written twice is an error rather than
a silent overwrite. Documents nested deeper than ``MAX_DEPTH`` or expanding through their
aliases to more than ``MAX_VALUES`` values ("billion laughs") are refused before they are built.
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


def _construct_int(loader, node):
    """An int, or a located error for one too long to convert (Python's limit: 4300 digits)."""
    try:
        return yaml.SafeLoader.construct_yaml_int(loader, node)
    except ValueError:
        digits = sum(c.isdigit() for c in str(node.value))
        raise yaml.constructor.ConstructorError(
            None, None, f"an integer of {digits} digits is too large", node.start_mark
        ) from None


Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)

# A config is a few levels deep and holds at most a few thousand values; anything far beyond is
# a mistake or an attack (PyYAML recurses per level, and aliases can expand exponentially).
MAX_DEPTH = 32
MAX_VALUES = 100_000


def load_file(path: str | os.PathLike) -> tuple[dict, Locations]:
    """Read a YAML mapping from ``path``; returns it and the line of every key in it."""
    name = str(path)
    try:
        raw = Path(path).read_bytes()
        text = raw.decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{name}: no such config file") from None
    except IsADirectoryError:
        raise ConfigError(f"{name}: is a directory, not a config file") from None
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{name}:{line}: not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from None
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
        _check_size(text, source, lines)
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


def _check_size(text: str, source: str, lines: bool) -> None:
    """Refuse a document nested deeper than MAX_DEPTH or expanding to more than MAX_VALUES
    values, from its event stream (read without recursion, aliases not expanded)."""
    anchors: dict[str, int] = {}  # anchor -> values in the node it names
    opened: list[tuple[str | None, int]] = []  # open collections: (anchor, count at start)
    count, top_items, section = 0, 0, None  # section: the top-level key being read
    for event in yaml.parse(text, Loader=Loader):
        if isinstance(event, yaml.CollectionEndEvent):
            anchor, start = opened.pop()
            if anchor is not None:
                anchors[anchor] = count - start
            continue
        if not isinstance(event, yaml.ScalarEvent | yaml.AliasEvent | yaml.CollectionStartEvent):
            continue
        if len(opened) == 1:  # directly in the root: keys and values alternate
            top_items += 1
            if top_items % 2 == 1:
                section = event.value if isinstance(event, yaml.ScalarEvent) else None
        at = f"{source}:{event.start_mark.line + 1}" if lines else source
        key = f" {section}:" if section is not None and len(opened) >= 1 else ""
        if isinstance(event, yaml.AliasEvent):
            count += anchors.get(event.anchor, 1)
        else:
            count += 1
        if count > MAX_VALUES:
            raise ConfigError(
                f"{at}:{key} the document expands to more than {MAX_VALUES:,} values through "
                "its aliases (*name); a config needs far fewer"
            )
        if isinstance(event, yaml.CollectionStartEvent):
            opened.append((event.anchor, count - 1))
            if len(opened) > MAX_DEPTH:
                raise ConfigError(f"{at}:{key} nested more than {MAX_DEPTH} levels deep")
        elif isinstance(event, yaml.ScalarEvent) and event.anchor is not None:
            anchors[event.anchor] = 1


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
