import importlib
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from common.config import load_config, to_object
from common.models import SIZES
from curation.config import load_curate_config
from curation.download.config import DownloadConfig
from pipelines.cli import COMMANDS
from pipelines.demo import DemoConfig
from posttrain.config import TASKS, PosttrainConfig
from posttrain.tasks import build_task
from pretrain.config import PretrainConfig

REPO = Path(__file__).resolve().parents[2]
NAMES = [importlib.import_module(f"pipelines.commands.{module}").NAME for module in COMMANDS]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipelines.cli", *args], capture_output=True, text=True, check=False)


def test_help_lists_every_subcommand():
    proc = run_cli("--help")
    assert proc.returncode == 0
    for name in NAMES:
        assert name in proc.stdout


@pytest.mark.parametrize("name", NAMES)
def test_every_subcommand_has_help(name):
    proc = run_cli(name, "--help")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"usage: humans1b {name}")


def test_unknown_override_fails_naming_the_key():
    proc = run_cli("demo", "--config", str(REPO / "configs/demo.yaml"), "corpus.sed=3")
    assert proc.returncode != 0
    assert "unknown config key 'corpus.sed'" in proc.stderr


@pytest.mark.parametrize(
    ("path", "schema"),
    [("configs/demo.yaml", DemoConfig)]
    + [(str(p), PretrainConfig) for p in sorted(REPO.glob("configs/pretrain/*.yaml"))]
    + [("configs/curation/download.yaml", DownloadConfig)],
)
def test_shipped_configs_load(path, schema):
    to_object(load_config(schema, config_path=REPO / path, overrides=["output=x"]))


CURATE_CONFIGS = [p for p in sorted((REPO / "configs" / "curation").glob("*.yaml")) if p.name != "download.yaml"]


@pytest.mark.parametrize("path", CURATE_CONFIGS, ids=lambda p: p.name)
def test_shipped_score_configs_load(path):
    cfg = load_curate_config(path, ["input=[x]", "output=y"])
    assert cfg.profile in ("tiny", "production")
    if cfg.profile == "tiny":  # the profile sets the model defaults; the file still wins
        assert cfg.models.detector.weights == "yolo11n.yaml"


def test_curate_rejects_a_word_that_is_neither_phase_nor_override(tmp_path):
    proc = run_cli("curate", "scroe", f"output={tmp_path}")
    assert proc.returncode == 2
    assert "'scroe' is neither a phase (score, select, write, report)" in proc.stderr


def test_curate_select_before_score_says_what_to_run(tmp_path):
    proc = run_cli("curate", "select", "--config", str(REPO / "configs/curation/demo.yaml"), f"output={tmp_path}")
    assert proc.returncode != 0
    assert "run `humans1b curate score`" in proc.stderr


def test_a_value_its_config_refuses_is_a_usage_error(tmp_path):
    config = str(REPO / "configs/curation/demo.yaml")
    proc = run_cli("curate", "select", "--config", config, f"output={tmp_path}", "select.sampling.fraction=2")
    assert proc.returncode == 2
    assert "select.sampling.fraction=2 is out of range: must be in (0, 1]" in proc.stderr


@pytest.mark.parametrize("path", sorted(REPO.glob("configs/posttrain/*.yaml")), ids=lambda p: p.name)
@pytest.mark.parametrize("task", TASKS)
def test_shipped_posttrain_configs_build_every_task_head(path, task):
    cfg = to_object(load_config(PosttrainConfig, config_path=path, overrides=[f"task={task}", "output=x"]))
    with torch.device("meta"):  # the 0.4b heads at full width, without allocating them
        head = build_task(cfg).build_head(SIZES[cfg.backbone.name].dim)
    assert sum(p.numel() for p in head.parameters()) > 0
