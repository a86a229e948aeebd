"""`humans1b curate download` end to end, on the shipped example config."""

import json
from pathlib import Path

import pyarrow.parquet as pq

from pipelines.cli import main
from tests.curation.download.conftest import ImageServer

CONFIG = Path(__file__).parents[3] / "configs" / "curation" / "download.yaml"


def run_cli(tmp_path: Path, server: ImageServer, *extra: str) -> tuple[int, Path]:
    urls = tmp_path / "urls.csv"
    urls.write_text(
        "url,caption\n"
        f"{server.url('/good.jpg')},a man\n"
        f"{server.url('/404.jpg')},gone\n"
        f"{server.url('/redirect-metadata')},sneaky\n"
    )
    out = tmp_path / "raw"
    code = main(["curate", "download", "--config", str(CONFIG), f"input=[{urls}]", f"output={out}", *extra])
    return code, out


def test_download_command(tmp_path: Path, image_server: ImageServer, ray_local, capsys) -> None:
    code, out = run_cli(tmp_path, image_server, "allow_loopback=true", "retries=0")
    assert code == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line == (
        "download: 3 URLs, 1 downloaded, 2 failed (forbidden_address 1, http_404 1); 1/1 shards downloaded now"
    )
    assert sorted(p.name for p in out.iterdir()) == [
        "00000.parquet", "00000.tar", "00000_stats.json", "download_config.yaml",
    ]  # fmt: skip
    rows = pq.read_table(out / "00000.parquet").to_pylist()
    assert [(r["caption"], r["status"]) for r in rows] == [
        ("a man", "success"), ("gone", "failed_to_download"), ("sneaky", "failed_to_download"),
    ]  # fmt: skip
    assert image_server.user_agents[0].startswith("humans1b-downloader/")


def test_loopback_refused_by_default(tmp_path: Path, image_server: ImageServer, ray_local, capsys) -> None:
    code, out = run_cli(tmp_path, image_server)
    assert code == 0
    stats = json.loads((out / "00000_stats.json").read_text())
    assert stats["error_kinds"] == {"forbidden_address": 3}
    assert sum(image_server.hits.values()) == 0  # the server was never contacted


def test_bad_key_is_a_usage_error(tmp_path: Path, image_server: ImageServer, capsys) -> None:
    code, _ = run_cli(tmp_path, image_server, "max_redirect=3")
    assert code == 2
    assert "unknown config key 'max_redirect'" in capsys.readouterr().err
