"""Structured configs: dataclass schema <- YAML file <- dotted command-line overrides, in struct mode.

An unknown key anywhere is an error that names it; the resolved config is saved next to every output.
Numeric ranges are declared with the fields (`bounded`) and checked once the layers are merged, so an out-of-range
value fails at load, naming its dotted key, before anything starts.
"""

import argparse
import dataclasses
import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException, ValidationError

from common.errors import UsageError, naming_path

RESOLVED_CONFIG_NAME = "config.yaml"
_RANGE = "humans1b.range"  # the field-metadata key `bounded` stores its Range under


class ConfigError(UsageError, ValueError):
    """A config that cannot be used: unknown key, wrong type, out-of-range value, or a required value left unset."""


@dataclasses.dataclass(frozen=True)
class Range:
    """Bounds of a numeric config value; None = unbounded on that side."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def __post_init__(self) -> None:
        if (self.ge is not None and self.gt is not None) or (self.le is not None and self.lt is not None):
            raise TypeError("give at most one lower bound (ge or gt) and one upper bound (le or lt)")

    def contains(self, value: float) -> bool:
        return (
            (self.ge is None or value >= self.ge)
            and (self.gt is None or value > self.gt)
            and (self.le is None or value <= self.le)
            and (self.lt is None or value < self.lt)
        )

    def __str__(self) -> str:
        """'in [0, 1]', 'in (0, 1]', '>= 1', '> 0', ...: the text after 'must be'."""
        low = ("[", self.ge) if self.ge is not None else ("(", self.gt) if self.gt is not None else None
        high = ("]", self.le) if self.le is not None else (")", self.lt) if self.lt is not None else None
        if low and high:
            return f"in {low[0]}{_number(low[1])}, {_number(high[1])}{high[0]}"
        if low:
            return f"{'>=' if low[0] == '[' else '>'} {_number(low[1])}"
        if high:
            return f"{'<=' if high[0] == ']' else '<'} {_number(high[1])}"
        return "any number"


def bounded(
    default: Any = dataclasses.MISSING,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    default_factory: Callable[[], Any] | Any = dataclasses.MISSING,
) -> Any:
    """A dataclass field whose value (each element, for a list or tuple) must lie within the bounds; None passes
    (for `X | None` fields). Checked by check_ranges: at load_config, and on construction where __post_init__ calls
    it."""
    metadata = {_RANGE: Range(ge=ge, gt=gt, le=le, lt=lt)}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def field_range(schema: type, name: str) -> Range | None:
    """The Range declared for `schema.name`, if any."""
    found = {f.name: f for f in dataclasses.fields(schema)}[name]
    return found.metadata.get(_RANGE)


def check_ranges(config: Any, prefix: str = "") -> None:
    """Raise ConfigError naming every value outside its declared range, by dotted key, in `config` (a structured
    DictConfig or a config dataclass instance) and every config nested in it, lists of them included."""
    problems = range_problems(config, prefix)
    if problems:
        raise ConfigError("; ".join(problems))


def range_problems(config: Any, prefix: str = "") -> list[str]:
    """'key=value is out of range: must be ...' for each value outside its declared range; [] when all fit."""
    schema = _dataclass_of(config)
    if schema is None:
        return []
    problems = []
    for f in dataclasses.fields(schema):
        if isinstance(config, DictConfig) and OmegaConf.is_missing(config, f.name):
            continue  # required and unset: load_config names those on their own
        value, key = getattr(config, f.name), f"{prefix}{f.name}"
        bounds = f.metadata.get(_RANGE)
        items = list(enumerate(value)) if isinstance(value, Sequence) and not isinstance(value, str) else None
        if items is None:
            problems += _value_problems(value, key, bounds)
            continue
        for i, item in items:
            problems += _value_problems(item, f"{key}[{i}]", bounds)
    return problems


def _value_problems(value: Any, key: str, bounds: Range | None) -> list[str]:
    if _dataclass_of(value) is not None:
        return range_problems(value, f"{key}.")
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    if bounds is None or not numeric or bounds.contains(value):
        return []
    return [f"{key}={_number(value)} is out of range: must be {bounds}"]


def _dataclass_of(config: Any) -> type | None:
    kind = OmegaConf.get_type(config) if isinstance(config, DictConfig) else type(config)
    return kind if isinstance(kind, type) and dataclasses.is_dataclass(kind) else None


def _number(value: float) -> str:
    """5.0 -> '5', 0.25 -> '0.25', 1e-06 -> '1e-06': as a user would type it."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def load_config(
    schema: type | object, *, config_path: str | os.PathLike | None = None, overrides: Sequence[str] = ()
) -> DictConfig:
    """Merge dataclass defaults (a class or an instance), an optional YAML file and `key.sub=value` overrides."""
    cfg = OmegaConf.structured(schema)
    if config_path is not None:
        path = Path(config_path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        layer = _load_layer(lambda: OmegaConf.load(path), f"config file {path}", text=_text(path))
        cfg = _merge(cfg, layer, f"config file {path}")
    if overrides:
        bad = [o for o in overrides if "=" not in o or o.startswith("=")]
        if bad:
            raise ConfigError(f"overrides must look like key.sub=value, got {bad}")
        for override in overrides:  # one by one first, so an unparsable value is named
            _load_layer(lambda o=override: OmegaConf.from_dotlist([o]), f"override {override!r}")
        layer = _load_layer(lambda: OmegaConf.from_dotlist(list(overrides)), "command-line overrides")
        cfg = _merge(cfg, layer, "command-line overrides")
    OmegaConf.set_struct(cfg, True)
    try:
        missing = sorted(OmegaConf.missing_keys(cfg))
        if missing:
            raise ConfigError(f"required config values are not set: {', '.join(missing)} (pass e.g. {missing[0]}=...)")
        check_ranges(cfg)
    except OmegaConfBaseException as err:  # an ${interpolation} that does not resolve
        raise ConfigError(f"cannot resolve config key '{err.full_key}': {str(err.msg).splitlines()[0]}") from err
    return cfg


def _load_layer(load, what: str, *, text: str | None = None) -> DictConfig:
    """`load()` as a config layer; `text`: the file's content, for where a YAML error is (None: a one-line value)."""
    try:
        layer = load()
    except yaml.YAMLError as err:
        raise ConfigError(f"{what} is not valid YAML: {_yaml_problem(err, text)}") from err
    except (OmegaConfBaseException, ValueError) as err:
        raise ConfigError(f"cannot parse {what}: {err}") from err
    if not isinstance(layer, DictConfig):
        raise ConfigError(f"{what} must be a mapping of keys to values")
    return layer


def _yaml_problem(err: yaml.YAMLError, text: str | None) -> str:
    """'line 3, column 1: found character that cannot start any token (a tab: ...)', on one line; without `text`
    (a command-line value) the problem only."""
    if not isinstance(err, yaml.MarkedYAMLError) or err.problem_mark is None:
        return " ".join(str(err).split())
    if text is None:
        return str(err.problem)
    mark, lines = err.problem_mark, text.splitlines()
    problem = f"line {mark.line + 1}, column {mark.column + 1}: {err.problem}"
    if mark.line < len(lines) and lines[mark.line][mark.column : mark.column + 1] == "\t":
        problem += " (a tab: YAML indents with spaces only)"
    if err.context and err.context_mark is not None and err.context_mark.line != mark.line:
        problem += f" ({err.context} from line {err.context_mark.line + 1}, column {err.context_mark.column + 1})"
    return problem


def _text(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return None  # the load itself reports why it cannot be read


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
    with naming_path(path):
        path.write_text(resolved_yaml(cfg))
    return path


def add_config_arguments(parser: argparse.ArgumentParser, default_config: str | None = None) -> None:
    """`--config FILE` plus trailing `key.sub=value` overrides, the same for every subcommand."""
    parser.add_argument("--config", default=default_config, help=f"YAML config file (default: {default_config})")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted config overrides, e.g. seed=3")


def config_from_args(schema: type, args: argparse.Namespace) -> DictConfig:
    return load_config(schema, config_path=args.config, overrides=args.overrides)
