"""From trials to runs: each trial (parameter set) runs once per seed and fold.

Runs are numbered trial by trial, then seed, then fold, so a trial's runs sit together.
A run's directory is named by its number, trial, fold, seed and the trial's values of the
keys that vary between trials: ``07-t03-f1-s0-lr=0.00316-units=64`` (the fold part only with
cross-validation).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bptrain.config.overrides import parse_path
from bptrain.sweep.space import Params, format_value, short_value

MAX_NAME = 120
_UNSET = "<unset>"


@dataclass(frozen=True)
class Run:
    number: int
    trial: int
    seed: int
    fold: int | None
    name: str


def plan_runs(trials: list[Params], seeds: list[int], folds: int | None) -> list[Run]:
    """Every (trial, seed, fold) in order, named."""
    keys = [k for k in dict.fromkeys(k for params in trials for k in params) if varies(k, trials)]
    labels = key_labels(keys)
    n_runs = len(trials) * len(seeds) * (folds or 1)
    run_width, trial_width = len(str(n_runs - 1)), len(str(len(trials) - 1))
    runs = []
    for t, params in enumerate(trials):
        values = "".join(f"-{labels[k]}={short_value(params[k])}" for k in keys if k in params)
        for seed in seeds:
            for fold in range(folds) if folds else [None]:
                number = len(runs)
                name = f"{number:0{run_width}d}-t{t:0{trial_width}d}"
                name += (f"-f{fold}" if fold is not None else "") + f"-s{seed}"
                runs.append(Run(number, t, seed, fold, _safe(name + values)))
    return runs


def varies(key: str, trials: list[Params]) -> bool:
    """Whether trials differ in ``key`` (a key with one grid value is fixed, not searched)."""
    return len({format_value(t.get(key, _UNSET)) for t in trials}) > 1


def key_labels(keys: list[str]) -> dict[str, str]:
    """Shortest unambiguous label of each key path: its last name, or more of its tail when
    two keys end alike (model.layers.1.units and model.layers.2.units keep "layers.1.units")."""
    paths = {k: [str(p) for p in parse_path(k)] for k in keys}
    labels = {}
    for key, parts in paths.items():
        for n in range(1, len(parts) + 1):
            tail = parts[-n:]
            clash = any(o != key and other[-n:] == tail for o, other in paths.items())
            if not clash and not tail[0].isdigit():
                break
        labels[key] = ".".join(tail)
    return labels


def _safe(name: str) -> str:
    """Only characters that are safe in a file name everywhere; cut to MAX_NAME."""
    return re.sub(r"[^A-Za-z0-9._=+-]", "_", name)[:MAX_NAME]
