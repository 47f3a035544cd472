"""Search spaces: the grid (every combination) and seeded random sampling.

A grid maps key paths to lists of values; its trials are the Cartesian product, first key
slowest (like nested for-loops in the order written). A random space maps key paths to
distributions, written in YAML as one-key mappings:

    {loguniform: [1.0e-4, 1.0e-1]}   float, log-uniform in [low, high); low > 0
    {uniform: [0.0, 0.5]}            float, uniform in [low, high)
    {int: [16, 256]}                 integer, uniform in [low, high], both ends included
    {choice: [32, 64, 128]}          one of the listed values, equally likely

``randint`` is another name for ``int``. Samples come from one generator seeded by the
sweep's ``random.seed``, drawn trial by trial and key by key in the order written, so the
same sweep file always gives the same trials and a smaller ``--max-trials`` a prefix of them.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
from dataclasses import dataclass

import numpy as np

from bptrain.errors import ConfigError, closest

Params = dict[str, object]  # key path as written ("optimizer.lr") -> value

KINDS = ("loguniform", "uniform", "int", "choice")
ALIASES = {"randint": "int"}


@dataclass(frozen=True)
class Distribution:
    """One random-space entry: ``kind`` (one of KINDS) and its arguments (see module doc)."""

    kind: str
    args: tuple

    def sample(self, rng: np.random.Generator):
        """One value as a plain Python object (float, int, or a copy of a listed value)."""
        if self.kind == "loguniform":
            low, high = self.args
            return float(math.exp(rng.uniform(math.log(low), math.log(high))))
        if self.kind == "uniform":
            return float(rng.uniform(*self.args))
        if self.kind == "int":
            low, high = self.args
            return int(rng.integers(low, high + 1))
        return copy.deepcopy(self.args[int(rng.integers(len(self.args)))])

    @property
    def log_scale(self) -> bool:
        return self.kind == "loguniform"


def parse_distribution(value, where: str) -> Distribution:
    """``{loguniform: [1e-4, 1e-1]}`` -> Distribution; ``where`` prefixes error messages
    (e.g. ``"sweep.yaml:9: random.space.optimizer.lr"``)."""
    if not isinstance(value, dict) or len(value) != 1:
        raise ConfigError(
            f"{where}: expected a distribution like {{loguniform: [1.0e-4, 1.0e-1]}} "
            f"(one of {', '.join(KINDS)}), got {json.dumps(value, default=str)}"
        )
    ((name, args),) = value.items()
    kind = ALIASES.get(name, name)
    if kind not in KINDS:
        close = closest(name, [*KINDS, *ALIASES])
        hint = f"did you mean {close!r}?" if close else f"expected one of {', '.join(KINDS)}"
        raise ConfigError(f"{where}: unknown distribution {name!r}; {hint}")
    if kind == "choice":
        if not isinstance(args, list) or not args:
            raise ConfigError(f"{where}: choice needs a non-empty list of values")
        return Distribution(kind, tuple(args))
    if not (isinstance(args, list) and len(args) == 2 and all(is_number(a) for a in args)):
        raise ConfigError(f"{where}: {name} needs [low, high], two numbers; got {args!r}")
    low, high = args
    if kind == "int" and not all(isinstance(a, int) for a in args):
        raise ConfigError(f"{where}: {name} needs integer bounds, got {args!r}")
    if not low < high:
        raise ConfigError(f"{where}: {name} needs low < high, got [{low}, {high}]")
    if kind == "loguniform" and low <= 0:
        raise ConfigError(f"{where}: loguniform needs low > 0, got {low}")
    return Distribution(kind, (low, high) if kind == "int" else (float(low), float(high)))


def grid_trials(grid: dict[str, list]) -> list[Params]:
    """Every combination of the grid's values, first key slowest; [] for an empty grid."""
    if not grid:
        return []
    keys = list(grid)
    return [
        dict(zip(keys, copy.deepcopy(values), strict=True))
        for values in itertools.product(*grid.values())
    ]


def random_trials(space: dict[str, Distribution], trials: int, seed: int) -> list[Params]:
    """``trials`` parameter sets drawn from ``space``, reproducible from ``seed``."""
    rng = np.random.default_rng([seed, 0x5EE9])  # a stream of its own, apart from data seeds
    return [{key: dist.sample(rng) for key, dist in space.items()} for _ in range(trials)]


def format_value(value) -> str:
    """A value as override text that reads back as the same value (YAML flow; floats in
    their shortest exact form): 0.001 -> "0.001", [64, 32] -> "[64, 32]", None -> "null"."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if not math.isfinite(value):
            return ".nan" if math.isnan(value) else (".inf" if value > 0 else "-.inf")
        return repr(value)  # "0.001", "1e-05": both read back as this float
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and _plain_string(value):
        return value
    return json.dumps(value)  # strings that need quotes, lists, mappings: JSON is YAML flow


def short_value(value) -> str:
    """A compact rendering for directory names and tables: 0.0031622776 -> "0.00316"."""
    if isinstance(value, float):
        return f"{value:.3g}"
    return format_value(value)


def is_log_spaced(values: list, distribution: Distribution | None = None) -> bool:
    """Whether a parameter reads best on a log axis: sampled log-uniformly, or positive
    numbers spanning at least a factor of 10 that are closer to evenly spaced in log than
    in linear terms (0.1, 0.01, 0.001 yes; 1, 2, ..., 20 no)."""
    if distribution is not None:
        return distribution.log_scale
    if not all(is_number(v) for v in values):
        return False
    nums = sorted({float(v) for v in values})
    if len(nums) < 2 or nums[0] <= 0:
        return False
    if nums[-1] / nums[0] < 10:
        return False
    if len(nums) == 2:
        return True
    lin, log = np.diff(nums), np.diff(np.log(nums))
    return float(np.std(log) / np.mean(log)) < float(np.std(lin) / np.mean(lin))


def is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _plain_string(text: str) -> bool:
    """A string that YAML reads back as the same string without quotes."""
    from bptrain.config import parse_override

    try:
        return parse_override(f"k={text}")[1] == text and text.strip() == text and text != ""
    except ConfigError:
        return False
