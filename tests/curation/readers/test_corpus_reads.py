"""The readers on the sample corpus: the folder and the tars give the same images under stable, movable keys."""

import hashlib
import shutil
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curation.readers import READ_SCHEMA, InputShard, discover_input_shards, read_dataset, read_input_shard
from curation.sample_corpus import SampleCorpus, SampleCorpusConfig, build_sample_corpus

FILES_PER_SHARD = 10  # 47 files: four full folder chunks and a short last one


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> SampleCorpus:
    return build_sample_corpus(tmp_path_factory.mktemp("corpus"), SampleCorpusConfig(samples_per_shard=16))


def read_all(shards: list[InputShard]) -> pa.Table:
    return pa.concat_tables([read_input_shard(s) for s in shards])


def folder_shards(root: Path) -> list[InputShard]:
    return discover_input_shards([str(root / "images")], files_per_shard=FILES_PER_SHARD)


def tar_shards(root: Path) -> list[InputShard]:
    return discover_input_shards([str(root / "tars")])


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_folder_and_tars_give_every_corpus_file_with_its_bytes(corpus):
    manifest = pq.read_table(corpus.manifest_path).to_pylist()
    folder = read_all(folder_shards(corpus.root)).to_pylist()
    tars = read_all(tar_shards(corpus.root)).to_pylist()
    assert len(folder) == len(tars) == len(manifest) == 47
    assert all(r["reject_reason"] is None and r["member"] is None for r in folder)
    assert all(r["reject_reason"] is None for r in tars)

    images_dir = str(corpus.images_dir) + "/"
    by_path = {r["source"].removeprefix(images_dir): r["image"] for r in folder}
    by_member = {(Path(r["source"]).stem, r["member"].split(".")[0]): r["image"] for r in tars}
    for entry in manifest:
        from_folder, from_tar = by_path[entry["path"]], by_member[(entry["shard"], entry["key"])]
        assert from_folder == from_tar
        assert sha(from_folder) == entry["sha256"] and len(from_folder) == entry["num_bytes"]


def test_rows_follow_the_schema_and_count_their_shard(corpus):
    for shards in (folder_shards(corpus.root), tar_shards(corpus.root)):
        assert [s.shard_id for s in shards] == list(range(len(shards)))
        for shard in shards:
            table = read_input_shard(shard)
            assert table.schema.equals(READ_SCHEMA)
            assert set(table["shard_id"].to_pylist()) == {shard.shard_id}
            assert set(table["shard_rows"].to_pylist()) == {table.num_rows}
    sizes = [len(s.paths) for s in folder_shards(corpus.root)]
    assert sizes == [10, 10, 10, 10, 7]
    assert [read_input_shard(s).num_rows for s in tar_shards(corpus.root)] == [16, 16, 15]


def test_keys_are_unique_stable_and_survive_moving_the_corpus(corpus, tmp_path, monkeypatch):
    keys = {
        "folder": read_all(folder_shards(corpus.root))["key"].to_pylist(),
        "tars": read_all(tar_shards(corpus.root))["key"].to_pylist(),
    }
    all_keys = keys["folder"] + keys["tars"]
    assert len(set(all_keys)) == len(all_keys)
    assert read_all(folder_shards(corpus.root))["key"].to_pylist() == keys["folder"]

    moved = tmp_path / "elsewhere" / "copy"
    shutil.copytree(corpus.root, moved)
    assert read_all(folder_shards(moved))["key"].to_pylist() == keys["folder"]
    assert read_all(tar_shards(moved))["key"].to_pylist() == keys["tars"]
    assert [s.shard_name for s in folder_shards(moved)] == [s.shard_name for s in folder_shards(corpus.root)]
    # A relative path names the same root, so it gives the same keys.
    monkeypatch.chdir(moved)
    relative = discover_input_shards(["images"], files_per_shard=FILES_PER_SHARD)
    assert read_all(relative)["key"].to_pylist() == keys["folder"]
    assert read_all(relative)["source"][0].as_py().startswith(str(moved))


def test_globs_and_lists_of_paths(corpus):
    root = corpus.root
    tars = sorted(str(p) for p in corpus.tars_dir.glob("*.tar"))
    expected = read_all(tar_shards(root))
    for inputs in ([str(root / "tars" / "*.tar")], [str(root / "tars" / "0000[0-2].tar")], tars, tars[::-1]):
        assert read_all(discover_input_shards(inputs)).equals(expected), inputs

    jpgs = discover_input_shards([str(root / "images" / "**" / "*.jpg")], files_per_shard=100)
    paths = [p for s in jpgs for p in s.paths]
    assert paths == sorted(paths) and len(paths) == 40 and all(p.endswith(".jpg") for p in paths)
    # `*` stays inside one folder; a glob matching folders takes the files under them.
    pngs = sorted(str(p.relative_to(corpus.images_dir)) for p in corpus.images_dir.glob("*/*.png"))
    assert [s.paths for s in discover_input_shards([str(root / "images" / "*" / "*.png")])] == [tuple(pngs)]
    assert len(pngs) == 5
    by_folder = discover_input_shards([str(root / "images" / "orig*")], files_per_shard=100)
    originals = sorted(f"originals/{p.name}" for p in (root / "images" / "originals").iterdir())
    assert [p for s in by_folder for p in s.paths] == originals

    both = discover_input_shards([str(root / "tars"), str(root / "images")], files_per_shard=FILES_PER_SHARD)
    assert Counter(s.kind for s in both) == {"folder": 5, "tar": 3}
    assert [s.shard_id for s in both] == list(range(8))


def test_read_dataset_gives_exactly_the_direct_rows(corpus, ray_local):
    shards = discover_input_shards([str(corpus.images_dir), str(corpus.tars_dir)], files_per_shard=FILES_PER_SHARD)
    direct = read_all(shards).sort_by("key")
    batches = list(read_dataset(shards).iter_batches(batch_format="pyarrow", batch_size=None))
    through_ray = pa.concat_tables(batches).select(READ_SCHEMA.names).sort_by("key")
    assert through_ray.num_rows == direct.num_rows == 94
    for name in READ_SCHEMA.names:
        assert through_ray[name].type == READ_SCHEMA.field(name).type
        assert through_ray[name].to_pylist() == direct[name].to_pylist(), name
