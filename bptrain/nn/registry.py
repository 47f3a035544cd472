"""Objects from their names: how activations, initializers, losses, optimizers, regularizers
and schedules are given as a name, a ``{"type": name, **kwargs}`` mapping or an instance."""

from __future__ import annotations


def build(spec, table: dict, kind: str, base: type, aliases: dict | None = None):
    """``spec`` itself if it is a ``base`` instance, else ``table[name](**kwargs)``.

    Raises ValueError naming the unknown ``kind`` and the known names.
    """
    if isinstance(spec, base):
        return spec
    kwargs = {}
    if isinstance(spec, dict):
        kwargs = {k: v for k, v in spec.items() if k != "type"}
        spec = spec.get("type")
    name = (aliases or {}).get(spec, spec)
    try:
        cls = table[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown {kind} {spec!r}; expected one of {', '.join(table)}") from None
    return cls(**kwargs)
