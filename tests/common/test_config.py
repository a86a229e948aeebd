from dataclasses import dataclass, field

import pytest
from omegaconf import OmegaConf

from common.config import (
    ConfigError,
    Range,
    bounded,
    check_ranges,
    config_hash,
    field_range,
    load_config,
    save_resolved_config,
    to_object,
)


@dataclass
class Decode:
    min_short_side: int = 384
    mode: str = "reject"


@dataclass
class Job:
    input: str = "???"
    seed: int = 0
    ratio: float = 0.5
    decode: Decode = field(default_factory=Decode)
    tags: list[str] = field(default_factory=list)


def test_defaults_yaml_and_overrides_layer_in_order(tmp_path):
    yaml = tmp_path / "job.yaml"
    yaml.write_text("input: /data/raw\nseed: 7\ndecode:\n  min_short_side: 256\n")
    cfg = load_config(Job, config_path=yaml, overrides=["seed=9", "decode.mode=audit", "tags=[a,b]"])
    job = to_object(cfg)
    assert isinstance(job, Job) and isinstance(job.decode, Decode)
    assert (job.input, job.seed, job.ratio, job.tags) == ("/data/raw", 9, 0.5, ["a", "b"])
    assert (job.decode.min_short_side, job.decode.mode) == (256, "audit")


@pytest.mark.parametrize(
    ("overrides", "yaml_text", "message"),
    [
        (["input=x", "sede=1"], None, "unknown config key 'sede' in command-line overrides"),
        (
            ["input=x", "decode.min_side=1"],
            None,
            "unknown config key 'decode.min_side'.*known keys: min_short_side, mode",
        ),
        (["input=x"], "decode:\n  colour: red\n", "unknown config key 'decode.colour' in config file"),
        (["input=x", "seed=many"], None, "bad value for config key 'seed'"),
        ([], None, r"required config values are not set: input \(pass e.g. input=...\)"),
        (["seed"], None, "key.sub=value"),
        (["input=x"], "- just\n- a list\n", "must be a mapping"),
    ],
)
def test_bad_configs_fail_naming_the_key(tmp_path, overrides, yaml_text, message):
    path = None
    if yaml_text is not None:
        path = tmp_path / "bad.yaml"
        path.write_text(yaml_text)
    with pytest.raises(ConfigError, match=message):
        load_config(Job, config_path=path, overrides=overrides)


def test_missing_config_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"nope\.yaml does not exist"):
        load_config(Job, config_path=tmp_path / "nope.yaml")


def test_loaded_config_stays_strict():
    cfg = load_config(Job, overrides=["input=x"])
    with pytest.raises(AttributeError):
        cfg.typo = 1  # struct mode: no new keys after loading either


def test_resolved_config_is_written_and_reloads(tmp_path):
    cfg = load_config(Job, overrides=["input=/in", "seed=3", "decode.mode=audit"])
    path = save_resolved_config(cfg, tmp_path / "out")
    assert path == tmp_path / "out" / "config.yaml"
    again = load_config(Job, config_path=path)
    assert OmegaConf.to_container(again) == OmegaConf.to_container(cfg)
    assert config_hash(again) == config_hash(cfg)
    assert config_hash(load_config(Job, overrides=["input=/in", "seed=4"])) != config_hash(cfg)


# --- ranges declared with the fields ------------------------------------------------------------------------------


@dataclass
class Resources:
    num_cpus: float = bounded(1.0, gt=0)
    batch_size: int = bounded(32, ge=1)


@dataclass
class Stage:
    min_conf: float = bounded(0.5, ge=0, le=1)
    resources: Resources = field(default_factory=Resources)


@dataclass
class Ranged:
    output: str = "???"
    workers: int | None = bounded(None, ge=1)  # None: let the runtime decide
    ratio: float = bounded(0.5, gt=0, lt=1)
    image_size: tuple[int, int] = bounded((64, 48), ge=1)
    levels: list[int] = bounded(default_factory=lambda: [4, 2], ge=1)
    stage: Stage = field(default_factory=Stage)
    stages: list[Stage] = field(default_factory=list)
    optional_stage: Stage | None = None
    seed: int = 0  # no declared range: anything goes


@dataclass(frozen=True)
class SelfChecked:
    fraction: float = bounded(1.0, gt=0, le=1)

    def __post_init__(self) -> None:
        check_ranges(self)


def load_ranged(*overrides: str):
    return load_config(Ranged, overrides=["output=x", *overrides])


def test_values_on_a_bound_pass_exactly_when_it_is_inclusive():
    cfg = load_ranged("stage.min_conf=0", "stage.resources.batch_size=1", "ratio=0.999", "workers=1")
    assert (cfg.stage.min_conf, cfg.stage.resources.batch_size, cfg.workers) == (0.0, 1, 1)
    assert load_ranged("stage.min_conf=1").stage.min_conf == 1.0
    for override, message in [
        ("ratio=0", "ratio=0 is out of range: must be in (0, 1)"),
        ("ratio=1", "ratio=1 is out of range: must be in (0, 1)"),
        ("stage.resources.num_cpus=0", "stage.resources.num_cpus=0 is out of range: must be > 0"),
        ("stage.min_conf=1.5", "stage.min_conf=1.5 is out of range: must be in [0, 1]"),
        ("stage.min_conf=-0.25", "stage.min_conf=-0.25 is out of range: must be in [0, 1]"),
        ("workers=0", "workers=0 is out of range: must be >= 1"),
        ("ratio=.nan", "ratio=nan is out of range: must be in (0, 1)"),
    ]:
        with pytest.raises(ConfigError) as err:
            load_ranged(override)
        assert str(err.value) == message


def test_nested_lists_and_none_are_walked_with_dotted_keys():
    assert load_ranged().workers is None  # None is the "unset" of an optional field, never out of range
    assert load_ranged("seed=-5").seed == -5  # a field without a declared range
    with pytest.raises(ConfigError) as err:
        load_ranged("levels=[3,0,2]", "image_size=[0,48]", "stages=[{min_conf: 0.5}, {resources: {batch_size: 0}}]")
    assert str(err.value) == (
        "image_size[0]=0 is out of range: must be >= 1; levels[1]=0 is out of range: must be >= 1; "
        "stages[1].resources.batch_size=0 is out of range: must be >= 1"
    )
    with pytest.raises(ConfigError, match=r"^optional_stage\.min_conf=2 is out of range: must be in \[0, 1\]$"):
        load_ranged("optional_stage={min_conf: 2}")


def test_a_yaml_file_is_checked_like_an_override(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text("stage:\n  resources: {num_cpus: -1}\n")
    with pytest.raises(ConfigError, match=r"^stage\.resources\.num_cpus=-1 is out of range: must be > 0$"):
        load_config(Ranged, config_path=path, overrides=["output=x"])
    # the override wins over the file: the value checked is the merged one
    assert load_config(Ranged, config_path=path, overrides=["output=x", "stage.resources.num_cpus=2"])


def test_instances_and_construction_use_the_same_declarations():
    check_ranges(Ranged())
    with pytest.raises(ConfigError) as err:
        check_ranges(Ranged(stage=Stage(min_conf=3.0)), "job.")
    assert str(err.value) == "job.stage.min_conf=3 is out of range: must be in [0, 1]"
    with pytest.raises(ValueError, match=r"^fraction=0 is out of range: must be in \(0, 1\]$"):
        SelfChecked(fraction=0.0)
    assert to_object(load_config(SelfChecked, overrides=["fraction=0.5"])) == SelfChecked(0.5)
    assert field_range(Ranged, "ratio") == Range(gt=0, lt=1) and field_range(Ranged, "seed") is None
    assert Stage.min_conf == 0.5  # the class attribute is still the default, for code that reads it


def test_range_text():
    assert [str(Range(ge=0, le=10)), str(Range(gt=0, le=1)), str(Range(ge=1)), str(Range(lt=0.5))] == [
        "in [0, 10]",
        "in (0, 1]",
        ">= 1",
        "< 0.5",
    ]
    with pytest.raises(TypeError, match="at most one lower bound"):
        Range(ge=0, gt=0)


# --- malformed YAML -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "seed: 1\ntags: [1, 2\n",
            r"config file .*bad\.yaml is not valid YAML: line 3, column 1: did not find expected ',' or '\]' "
            r"\(while parsing a flow sequence from line 2, column 7\)$",
        ),
        (
            "decode:\n\tmode: audit\n",
            r"config file .*bad\.yaml is not valid YAML: line 2, column 1: found character that cannot start any "
            r"token \(a tab: YAML indents with spaces only\)$",
        ),
        ("seed: 1\nseed: 2: 3\n", r"line 2, column 8: mapping values are not allowed in this context$"),
    ],
    ids=["unclosed-list", "tab-indent", "nested-colon"],
)
def test_malformed_yaml_names_the_file_and_line(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as err:
        load_config(Job, config_path=path, overrides=["input=x"])
    assert "\n" not in str(err.value)


def test_an_unparsable_override_is_named():
    with pytest.raises(ConfigError) as err:
        load_config(Job, overrides=["input=x", "tags=[a,b"])
    assert str(err.value) == "override 'tags=[a,b' is not valid YAML: did not find expected ',' or ']'"


def test_an_interpolation_that_does_not_resolve_is_named():
    with pytest.raises(ConfigError, match=r"^cannot resolve config key 'input'"):
        load_config(Job, overrides=["input=${nowhere}"])
