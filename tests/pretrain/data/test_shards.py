import json
import shutil

import pytest

from pretrain.data.shards import list_shards


def test_dir_of_tars_lists_complete_shards_only(shard_set, tmp_path):
    for name in ("00000.tar", "00000_stats.json", "00001.tar", "00001_stats.json"):
        shutil.copy(shard_set.dir / name, tmp_path / name)
    (tmp_path / "00002.tar").write_bytes(b"")  # still being written: no _stats.json marker
    assert list_shards(tmp_path) == [str(tmp_path / "00000.tar"), str(tmp_path / "00001.tar")]


def test_run_dir_prefers_the_manifest(shard_set, tmp_path):
    shutil.copytree(shard_set.dir, tmp_path / "shards")
    manifest = {
        "shards": [
            {"tar": "00003.tar", "samples": 3},
            {"tar": "00001.tar", "samples": 3},
            {"tar": "00004.tar", "samples": 0},
        ]
    }
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    assert list_shards(tmp_path) == [str(tmp_path / "shards" / n) for n in ("00003.tar", "00001.tar")]
    (tmp_path / "manifest.json").unlink()
    assert len(list_shards(tmp_path)) == 5  # falls back to the complete tars under shards/


def test_glob_single_tar_and_several_sources(shard_set):
    assert list_shards(f"{shard_set.dir}/0000[12].tar") == [str(shard_set.dir / f"0000{i}.tar") for i in (1, 2)]
    assert list_shards([shard_set.dir / "00004.tar", f"{shard_set.dir}/00000.tar"]) == [
        str(shard_set.dir / "00004.tar"),
        str(shard_set.dir / "00000.tar"),
    ]


def test_errors_name_the_path(shard_set, tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        list_shards(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="no complete shards"):
        list_shards(tmp_path)
    with pytest.raises(ValueError, match="twice"):
        list_shards([shard_set.dir, shard_set.dir / "00000.tar"])
