"""Memory sizes: what the machine has available, sizes written as text, byte counts for people.

The budget of a command that loads data and builds a model is ``training.max_memory`` when set,
else the memory available when it starts: ``MemAvailable`` of /proc/meminfo (or the physical
memory where that is unknown), capped by the limit of the process's cgroup (a container's).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kb": 1000,
    "kib": 1024,
    "m": 1024**2,
    "mb": 1000**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gb": 1000**3,
    "gib": 1024**3,
    "t": 1024**4,
    "tb": 1000**4,
    "tib": 1024**4,
}
_SIZE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-z]*)\s*", re.IGNORECASE)


def parse_size(value: int | str) -> int:
    """Bytes from an integer or text: ``"8GiB"``, ``"500MB"``, ``"2g"``, ``"1.5 GiB"``.

    KiB, MiB, GiB, TiB and the bare K, M, G, T are powers of 1024; kB, MB, GB, TB of 1000.
    Raises ValueError for anything else, or for less than one byte.
    """
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError("expected a size such as 8GiB, 500MB or a number of bytes")
    if isinstance(value, int):
        size = value
    else:
        match = _SIZE.fullmatch(value)
        unit = match.group(2).lower() if match else None
        if unit not in _UNITS:
            raise ValueError(f"expected a size such as 8GiB, 500MB or 2G, got {value!r}")
        size = int(float(match.group(1)) * _UNITS[unit])
    if size < 1:
        raise ValueError(f"a memory limit must be at least 1 byte, got {value!r}")
    return size


def format_bytes(n: int | float) -> str:
    """1536 -> "1.5 KiB", 800e9 -> "745 GiB" (powers of 1024, 3 significant digits)."""
    if n < 1024:
        return f"{int(n):,} bytes"
    value, unit = float(n), "bytes"
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB"):  # noqa: B007 (the unit reached is kept)
        value /= 1024
        if value < 1024:
            break
    return f"{value:.3g} {unit}"


def available() -> int | None:
    """Bytes this process can still allocate without swapping, or None where unknown."""
    sizes = [_meminfo_available(), _cgroup_room()]
    sizes = [s for s in sizes if s is not None]
    return min(sizes) if sizes else None


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


def _cgroup_room() -> int | None:
    """Limit minus usage of this process's memory cgroup (v2 or v1), or None without a limit."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    root = Path("/sys/fs/cgroup")
    for line in lines:
        _, controllers, group = line.split(":", 2)
        if controllers == "":  # v2: one unified hierarchy
            found = _room(root / group.lstrip("/"), "memory.max", "memory.current")
        elif "memory" in controllers.split(","):  # v1 (its path may not resolve in a container)
            for base in (root / "memory" / group.lstrip("/"), root / "memory"):
                found = _room(base, "memory.limit_in_bytes", "memory.usage_in_bytes")
                if found is not None:
                    break
        else:
            continue
        if found is not None:
            return found
    return None


def _room(group: Path, limit_file: str, usage_file: str) -> int | None:
    try:
        limit = (group / limit_file).read_text().strip()
        if limit == "max" or int(limit) >= 1 << 60:  # v1 writes "no limit" as a huge number
            return None
        return max(int(limit) - int((group / usage_file).read_text()), 0)
    except (OSError, ValueError):
        return None
