"""Checking YAML values against Python type hints, and reading constructor signatures.

This is what lets a new layer, optimizer or dataset be validated with no extra work: its
``__init__`` signature (or dataclass fields) and type hints are the schema.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import inspect
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal

_NO_DEFAULT = inspect.Parameter.empty


@dataclass(frozen=True)
class Param:
    """One keyword a config entry may hold: its type hint (Any when unannotated) and default
    (``inspect.Parameter.empty`` when required)."""

    name: str
    hint: Any
    default: Any

    @property
    def required(self) -> bool:
        return self.default is _NO_DEFAULT


def constructor_params(cls: type, exclude: tuple = ()) -> dict[str, Param]:
    """The keyword arguments ``cls(...)`` accepts, following ``**kwargs`` up the class tree.

    A name's default comes from the most derived class that declares it, its hint from the most
    derived class that annotates it. They are listed base class first (``units`` before what a
    subclass adds), each class's in its signature's order.
    """
    params: dict[str, Param] = {}
    chain: list[list[str]] = []  # each class's names, most derived first
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        try:
            hints = typing.get_type_hints(init)
        except Exception:  # an annotation we cannot resolve: treat as unannotated
            hints = {}
        sig = inspect.signature(init)
        more = False
        chain.append([])
        for p in list(sig.parameters.values())[1:]:
            if p.kind is p.VAR_KEYWORD:
                more = True
            elif p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in exclude:
                chain[-1].append(p.name)
                old = params.get(p.name)
                hint = hints.get(p.name, Any)
                if old is None:
                    params[p.name] = Param(p.name, hint, p.default)
                elif old.hint is Any and hint is not Any:
                    params[p.name] = Param(p.name, hint, old.default)
        if not more:
            break
    return {name: params[name] for names in reversed(chain) for name in names}


def dataclass_params(cls: type) -> dict[str, Param]:
    """The fields of an options dataclass as Params."""
    hints = typing.get_type_hints(cls)
    out = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = _NO_DEFAULT
        out[f.name] = Param(f.name, hints.get(f.name, Any), default)
    return out


def check(value, hint) -> tuple[bool, Any]:
    """Whether YAML ``value`` fits ``hint``; ints are widened to float where a float is wanted.

    Returns (ok, value to use). Lists stand in for tuples (YAML has no tuples).
    """
    if hint is Any or hint is object or hint is inspect.Parameter.empty:
        return True, value
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Literal:
        return value in args and type(value) in {type(a) for a in args}, value
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            ok, converted = check(value, arg)
            if ok:
                return True, converted
        return False, value
    if origin in (list, tuple, collections.abc.Sequence, collections.abc.Iterable):
        if not isinstance(value, list):
            return False, value
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                return False, value
            items = list(zip(value, args, strict=True))
        else:
            item_hint = args[0] if args else Any
            items = [(v, item_hint) for v in value]
        out = []
        for v, h in items:
            ok, converted = check(v, h)
            if not ok:
                return False, value
            out.append(converted)
        return True, out
    if origin in (dict, collections.abc.Mapping) or hint in (dict, collections.abc.Mapping):
        return isinstance(value, dict), value
    if hint is type(None) or hint is None:
        return value is None, value
    if hint is bool:
        return isinstance(value, bool), value
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if hint is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return ok, float(value) if ok else value
    if hint is str:
        return isinstance(value, str), value
    if isinstance(hint, type):
        return isinstance(value, hint), value
    return True, value  # a hint we do not model (a callable, a NumPy dtype): let it through


def first_bad_item(value, hint) -> tuple[int, Any] | None:
    """(index, item hint) of the first item of the list ``value`` that does not fit ``hint``
    (``list[str]``, or a union with one such list), for a message naming that item; None when
    ``value`` is no list or ``hint`` takes no list of one item type."""
    if not isinstance(value, list):
        return None
    options = (
        typing.get_args(hint)
        if typing.get_origin(hint) in (typing.Union, types.UnionType)
        else (hint,)
    )
    lists = [h for h in options if typing.get_origin(h) in (list, collections.abc.Sequence)]
    if len(lists) != 1 or len(typing.get_args(lists[0])) != 1:
        return None
    (item_hint,) = typing.get_args(lists[0])
    return next(((i, item_hint) for i, v in enumerate(value) if not check(v, item_hint)[0]), None)


def describe(hint) -> str:
    """Human words for a type hint: ``int | None`` -> "an integer or null"."""
    if hint is Any:
        return "anything"
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe(a) for a in args)
    if origin is tuple and args and args[-1] is not Ellipsis:
        return f"a list of {len(args)} ({', '.join(describe(a) for a in args)})"
    if origin in (list, tuple, collections.abc.Sequence, collections.abc.Iterable):
        return f"a list of {_plural(args[0])}" if args else "a list"
    if origin in (dict, collections.abc.Mapping) or hint in (dict, collections.abc.Mapping):
        return "a mapping"
    if hint is type(None) or hint is None:
        return "null"
    words = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    return words.get(hint, getattr(hint, "__name__", str(hint)))


def _plural(hint) -> str:
    words = {bool: "booleans", int: "integers", float: "numbers", str: "strings"}
    return words.get(hint, describe(hint))


def yaml_type(value) -> str:
    """How a YAML value reads to a user: "the string 'abc'", "the integer 3", "a list"."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"the integer {value}"
    if isinstance(value, float):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"{type(value).__name__} {value!r}"
