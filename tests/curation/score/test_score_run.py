import json
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from common.config import ConfigError
from curation.config import load_curate_config
from curation.models.registry import LAION_NSFW_NAME
from curation.sample_corpus import SampleCorpusConfig, build_sample_corpus
from curation.score import runner
from curation.score.runner import run_score
from curation.score.sink import marker_path, part_path

DEMO_CONFIG = Path(__file__).resolve().parents[3] / "configs" / "curation" / "demo.yaml"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return build_sample_corpus(tmp_path_factory.mktemp("corpus"), SampleCorpusConfig(samples_per_shard=16))


def score(inputs, out, *extra):
    listed = ",".join(f'"{p}"' for p in inputs)
    overrides = [f"input=[{listed}]", f"output={out}", *extra]
    return run_score(load_curate_config(DEMO_CONFIG, overrides))


def candidates(out):
    parts = sorted((out / "candidates").glob("part-*.parquet"))
    return [row for p in parts for row in pq.read_table(p).to_pylist()]


def test_folder_run_accounts_for_every_file_and_resumes(ray_local, corpus, tmp_path):
    out = tmp_path / "run"
    run = score([corpus.images_dir], out, "files_per_shard=5")
    entries = corpus.entries
    expected = Counter(e.expected_reason for e in entries if e.expected_reason)
    stats = json.loads((out / "stats.json").read_text())
    assert stats == run.stats
    assert (stats["rows_in"], stats["kept"]) == (len(entries), len(entries) - sum(expected.values()))
    assert stats["rejected"] == dict(expected)
    assert stats["stages"]["decode"]["rejected"] == dict(expected)
    assert stats["shards"] == run.shards_total == run.shards_done_now == -(-len(entries) // 5)
    rows = candidates(out)
    assert len(rows) == len({r["key"] for r in rows}) == len(entries)
    kept = [r for r in rows if r["reject_reason"] is None]
    assert all(r["phash"] is not None and r["width"] >= 384 for r in kept)
    stages = list(stats["stages"])
    assert stages.index("nsfw") == stages.index("aesthetic") + 1  # scored on the CLIP embedding, after aesthetic
    # demo.yaml audits nsfw: every kept row has P(nsfw), recorded as would-reject exactly when it is over 0.5.
    assert all(0 <= r["nsfw"] <= 1 and ("nsfw" in (r["would_reject"] or [])) == (r["nsfw"] > 0.5) for r in kept)
    assert (out / "config.yaml").exists()

    # A finished job re-run does nothing.
    again = score([corpus.images_dir], out, "files_per_shard=5")
    assert again.shards_done_now == 0 and again.stats["rows_in"] == len(entries)

    # A job killed at different points: shard 1 between its part and its marker, shard 4 before either, and a
    # temporary file left behind. The re-run redoes exactly those shards and ends with the same rows.
    before = {p.name: p.read_bytes() for p in (out / "candidates").glob("part-*.parquet")}
    marker_path(out / "candidates", 1).unlink()
    marker_path(out / "candidates", 4).unlink()
    part_path(out / "candidates", 4).unlink()
    (out / "candidates" / "part-00004.parquet.partial").write_bytes(b"half a file")
    resumed = score([corpus.images_dir], out, "files_per_shard=5")
    assert resumed.shards_done_now == 2
    assert {p.name: p.read_bytes() for p in (out / "candidates").glob("part-*.parquet")} == before
    assert resumed.stats["stages"] == stats["stages"]


def test_tar_and_folder_inputs_give_the_same_images(ray_local, corpus, tmp_path):
    folder = candidates(score([corpus.images_dir], tmp_path / "folder") and tmp_path / "folder")
    tars = candidates(score([corpus.tars_dir], tmp_path / "tars") and tmp_path / "tars")
    assert len(folder) == len(tars) == len(corpus.entries)
    assert Counter(r["phash"] for r in folder) == Counter(r["phash"] for r in tars)
    assert Counter(r["reject_reason"] for r in folder) == Counter(r["reject_reason"] for r in tars)


def test_changed_inputs_are_refused_on_resume(ray_local, corpus, tmp_path):
    out = tmp_path / "run"
    score([corpus.images_dir], out, "files_per_shard=10")
    with pytest.raises(RuntimeError, match="input set changed"):
        score([corpus.images_dir], out, "files_per_shard=7")


def test_missing_weights_fail_before_ray_starts(corpus, tmp_path, monkeypatch):
    monkeypatch.setenv("YOLO_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("YOLO_CONFIG_DIR", str(tmp_path / "yolo"))  # a weights_dir with nothing in it
    monkeypatch.chdir(tmp_path)
    overrides = [
        f"input=[{corpus.images_dir}]",
        f"output={tmp_path / 'out'}",
        f"models.aesthetic.weights={tmp_path}/a.pth",
    ]
    cfg = load_curate_config(DEMO_CONFIG.parent / "production.yaml", overrides)
    monkeypatch.setattr(runner, "ray_session", lambda *a, **k: pytest.fail("Ray started before the weights check"))
    with pytest.raises(ConfigError) as err:
        run_score(cfg)
    message = str(err.value)
    keys = ["models.detector.weights", "models.pose.weights", "models.clip.pretrained", "models.aesthetic.weights"]
    for key in [*keys, "models.nsfw.weights"]:
        assert key in message
    assert "yolo11m.pt" in message and "yolo11m-pose.pt" in message and f"{tmp_path}/a.pth" in message
    assert str(tmp_path / "weights" / LAION_NSFW_NAME) in message  # the production default, resolved from cwd
    assert not (tmp_path / "out" / "candidates").exists()
