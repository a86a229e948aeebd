"""Structured configs: dataclass schema <- YAML file <- dotted command-line overrides, in struct mode.

An unknown key anywhere is an error that names it; the resolved config is saved next to every output.
"""

import argparse
import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException, ValidationError

from common.errors import UsageError

RESOLVED_CONFIG_NAME = "config.yaml"


class ConfigError(UsageError, ValueError):
    """A config that cannot be used: unknown key, wrong type, or a required value left unset."""


def load_config(
    schema: type | object, *, config_path: str | os.PathLike | None = None, overrides: Sequence[str] = ()
) -> DictConfig:
    """Merge dataclass defaults (a class or an instance), an optional YAML file and `key.sub=value` overrides."""
    cfg = OmegaConf.structured(schema)
    if config_path is not None:
        path = Path(config_path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        cfg = _merge(cfg, _load_layer(lambda: OmegaConf.load(path), f"config file {path}"), f"config file {path}")
    if overrides:
        bad = [o for o in overrides if "=" not in o or o.startswith("=")]
        if bad:
            raise ConfigError(f"overrides must look like key.sub=value, got {bad}")
        layer = _load_layer(lambda: OmegaConf.from_dotlist(list(overrides)), "command-line overrides")
        cfg = _merge(cfg, layer, "command-line overrides")
    OmegaConf.set_struct(cfg, True)
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise ConfigError(f"required config values are not set: {', '.join(missing)} (pass e.g. {missing[0]}=...)")
    return cfg


def _load_layer(load, what: str) -> DictConfig:
    try:
        layer = load()
    except (OmegaConfBaseException, ValueError) as err:
        raise ConfigError(f"cannot parse {what}: {err}") from err
    if not isinstance(layer, DictConfig):
        raise ConfigError(f"{what} must be a mapping of keys to values")
    return layer


def _merge(cfg: DictConfig, layer: DictConfig, source: str) -> DictConfig:
    try:
        return OmegaConf.merge(cfg, layer)
    except (ConfigKeyError, ConfigAttributeError) as err:
        raise ConfigError(
            f"unknown config key '{err.full_key}' in {source}; known keys: {_known(cfg, err.full_key)}"
        ) from err
    except ValidationError as err:
        raise ConfigError(
            f"bad value for config key '{err.full_key}' in {source}: {str(err.msg).splitlines()[0]}"
        ) from err


def _known(cfg: DictConfig, full_key: str) -> str:
    parent = cfg
    for part in full_key.split(".")[:-1]:
        if not isinstance(parent, DictConfig) or part not in parent:
            break
        parent = parent[part]
    return ", ".join(sorted(str(k) for k in parent)) if isinstance(parent, DictConfig) else "?"


def to_object(cfg: DictConfig) -> Any:
    """The typed dataclass instance behind a loaded config; a value its dataclass refuses is a ConfigError."""
    try:
        return OmegaConf.to_object(cfg)
    except ValueError as err:  # a dataclass __post_init__ check; OmegaConf may wrap it in its own error type
        raise ConfigError(f"invalid config: {err}") from err


def resolved_yaml(cfg: DictConfig) -> str:
    return OmegaConf.to_yaml(cfg, resolve=True, sort_keys=True)


def config_hash(cfg: DictConfig) -> str:
    """Short, stable fingerprint of the resolved config, for manifests."""
    return hashlib.sha256(resolved_yaml(cfg).encode()).hexdigest()[:16]


def save_resolved_config(cfg: DictConfig, out_dir: str | os.PathLike, name: str = RESOLVED_CONFIG_NAME) -> Path:
    path = Path(out_dir) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(resolved_yaml(cfg))
    return path


def add_config_arguments(parser: argparse.ArgumentParser, default_config: str | None = None) -> None:
    """`--config FILE` plus trailing `key.sub=value` overrides, the same for every subcommand."""
    parser.add_argument("--config", default=default_config, help=f"YAML config file (default: {default_config})")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted config overrides, e.g. seed=3")


def config_from_args(schema: type, args: argparse.Namespace) -> DictConfig:
    return load_config(schema, config_path=args.config, overrides=args.overrides)
