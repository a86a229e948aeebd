import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from common.config import load_config
from curation.score.config import load_score_config
from pipelines.cli import COMMANDS
from pipelines.demo import DemoConfig

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


@pytest.mark.parametrize(("path", "schema"), [("configs/demo.yaml", DemoConfig)])
def test_shipped_configs_load(path, schema):
    load_config(schema, config_path=REPO / path)


@pytest.mark.parametrize("path", sorted((REPO / "configs" / "curation").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_score_configs_load(path):
    cfg = load_score_config(path, ["input=[x]", "output=y"])
    assert cfg.profile in ("tiny", "production")
    if cfg.profile == "tiny":  # the profile sets the model defaults; the file still wins
        assert cfg.models.detector.weights == "yolo11n.yaml"
