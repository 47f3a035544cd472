"""Experiment files: YAML in, validated and fully resolved config out, and objects built from it.

    config = load_config("configs/mnist_mlp.yaml", ["optimizer.learning_rate=0.01"])
    config.training.batch_size, config.optimizer["learning_rate"]   # a typed, frozen Config
    model = build_model(config, input_shape=(1, 28, 28), num_outputs=10)

No training logic lives here; ``bptrain.train`` does the training.
"""

from __future__ import annotations

import os
from pathlib import Path

from bptrain.config.build import build_model
from bptrain.config.locations import Locations, format_path, locate_error
from bptrain.config.overrides import apply_overrides, parse_override
from bptrain.config.schema import SECTIONS, resolve
from bptrain.config.sections import Config
from bptrain.config.yamlio import dump, load_file

__all__ = [
    "SECTIONS",
    "Config",
    "Locations",
    "apply_overrides",
    "build_model",
    "default_name",
    "dump",
    "format_path",
    "load_config",
    "load_file",
    "locate_error",
    "parse_override",
    "read_config",
    "resolve",
    "resolve_with_overrides",
]


def load_config(path: str | os.PathLike, overrides=()) -> Config:
    """Read, override and resolve an experiment file; errors name the file and line."""
    return read_config(path, overrides)[0]


def read_config(path: str | os.PathLike, overrides=()) -> tuple[Config, Locations]:
    """``load_config``, with the file's key locations (for errors raised later, see
    ``locate_error``)."""
    raw, where = load_file(path)
    raw = apply_overrides(raw, overrides, where)
    return resolve(raw, where, default_name=default_name(path)), where


def resolve_with_overrides(
    config: dict | Config, overrides=(), source: str | None = None
) -> Config:
    """Resolve an in-memory config (a base config of a sweep, say, or a resolved Config) with
    ``key.path=value`` overrides; an override naming a key the schema does not know is a
    ConfigError naming it."""
    if isinstance(config, Config):
        if not overrides:
            return config
        config = config.to_dict()
    where = Locations(source)
    return resolve(apply_overrides(config, overrides, where), where, config.get("name", "run"))


def default_name(path) -> str:
    """A run name from a config file's name (``configs/spirals.yaml`` -> ``spirals``)."""
    stem = Path(path).stem
    return stem if stem and stem[0].isalnum() else "run"
