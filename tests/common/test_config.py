from dataclasses import dataclass, field

import pytest
from omegaconf import OmegaConf

from common.config import ConfigError, config_hash, load_config, save_resolved_config, to_object


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
