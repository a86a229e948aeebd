"""Discovery: which files are inputs, how they are cut into shards, and the names keys are hashed from."""

import io
import tarfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from common.keys import sample_key
from common.reasons import RejectReason
from curation.readers import InputShard, discover_input_shards, read_input_shard
from curation.readers.globs import glob_regex


def write(path: Path, data: bytes = b"\xff\xd8 not really a jpeg") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def write_tar(path: Path, names: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tar:
        for name in names:
            info = tarfile.TarInfo(name)
            info.size = len(name)
            tar.addfile(info, io.BytesIO(name.encode()))
    return path


@pytest.fixture
def tree(tmp_path) -> Path:
    root = tmp_path / "crawl"
    for name in ["b/2.jpg", "b/1.png", "a/UPPER.JPG", "a/page.jpg", "a/z.webp", "c/d/e.tiff"]:
        write(root / name, name.encode())
    for name in ["notes.txt", "noext", "a/.hidden_json", "x.jpg.json"]:
        write(root / name, b"{}")
    write_tar(root / "tars" / "00000.tar", ["k.jpg", "k.json"])
    pq.write_table(pa.table({"key": ["k"], "url": ["https://x.invalid/k"]}), root / "tars" / "00000.parquet")
    (root / "tables").mkdir()
    pq.write_table(pa.table({"image": [b"img"]}), root / "tables" / "t.parquet")
    return root


def test_a_walk_takes_images_by_extension_tars_and_image_parquets(tree):
    shards = discover_input_shards([str(tree)], files_per_shard=2)
    assert [(s.shard_id, s.kind, s.paths) for s in shards] == [
        (0, "folder", ("a/UPPER.JPG", "a/page.jpg")),
        (1, "folder", ("a/z.webp", "b/1.png")),
        (2, "folder", ("b/2.jpg", "c/d/e.tiff")),
        (3, "parquet", ("tables/t.parquet",)),
        (4, "tar", ("tars/00000.tar",)),  # its img2dataset parquet is its metadata, not an input
    ]
    assert shards[3].image_column == "image"
    assert [s.shard_name for s in shards] == [
        "a/UPPER.JPG..a/page.jpg",
        "a/z.webp..b/1.png",
        "b/2.jpg..c/d/e.tiff",
        "tables/t.parquet",
        "tars/00000.tar",
    ]
    assert shards[4].uri == str(tree / "tars" / "00000.tar") and shards[0].uri == str(tree)
    assert all(InputShard.from_json(s.to_json()) == s for s in shards)


def test_shard_ids_do_not_depend_on_the_order_of_inputs(tree):
    inputs = [str(tree / "b"), str(tree / "tars"), str(tree / "a" / "*"), str(tree / "c")]
    first = discover_input_shards(inputs, files_per_shard=1)
    assert discover_input_shards(inputs[::-1], files_per_shard=1) == first
    assert [s.key_source(s.paths[0]) for s in first] == sorted(s.key_source(s.paths[0]) for s in first)


def test_folder_rows_keys_and_caps(tree):
    (shard,) = discover_input_shards([str(tree / "a")])
    (tree / "a" / "z.webp").unlink()  # gone between discovery and reading
    write(tree / "a" / "page.jpg", b"x" * 101)
    rows = read_input_shard(shard, max_file_bytes=100).to_pylist()
    assert [(r["source"], r["member"], r["image"], r["reject_reason"]) for r in rows] == [
        (str(tree / "a" / "UPPER.JPG"), None, b"a/UPPER.JPG", None),
        (str(tree / "a" / "page.jpg"), None, None, RejectReason.FILE_TOO_LARGE),
        (str(tree / "a" / "z.webp"), None, None, RejectReason.READ_ERROR),
    ]
    assert [r["key"] for r in rows] == [sample_key(p) for p in ("UPPER.JPG", "page.jpg", "z.webp")]


def test_uris_key_by_the_whole_uri(tree):
    uri = f"file://{tree}"
    shards = discover_input_shards([f"{uri}/tars/*.tar", f"{uri}/a"])
    assert [(s.kind, s.root, s.paths) for s in shards] == [
        ("folder", f"{uri}/a", ("UPPER.JPG", "page.jpg", "z.webp")),
        ("tar", f"{uri}/tars", ("00000.tar",)),
    ]
    folder, tar = (read_input_shard(s) for s in shards)
    assert folder["source"][0].as_py() == f"{uri}/a/UPPER.JPG"
    assert folder["key"][0].as_py() == sample_key(f"{uri}/a/UPPER.JPG")
    assert tar.to_pylist()[0] | {"key": None} == {
        "key": None,
        "source": f"{uri}/tars/00000.tar",
        "member": "k.jpg",
        "member_offset": 512,  # the data follows the member's one header block
        "member_bytes": 5,
        "image": b"k.jpg",
        "shard_id": 1,
        "shard_rows": 1,
        "reject_reason": None,
    }
    assert tar["key"][0].as_py() == sample_key(f"{uri}/tars/00000.tar", "k.jpg")


def test_inputs_that_cannot_work_fail_at_once_and_say_why(tree, tmp_path):
    with pytest.raises(TypeError, match="list"):
        discover_input_shards(str(tree))
    with pytest.raises(ValueError, match="files_per_shard"):
        discover_input_shards([str(tree)], files_per_shard=0)
    with pytest.raises(FileNotFoundError, match="missing"):
        discover_input_shards([str(tree / "missing")])
    with pytest.raises(FileNotFoundError, match="holds no images"):
        discover_input_shards([str(tree / "*.gif")])
    with pytest.raises(ValueError, match="is not an image"):
        discover_input_shards([str(tree / "notes.txt")])
    with pytest.raises(ValueError, match="reached more than once"):
        discover_input_shards([str(tree / "a"), str(tree / "a" / "page.jpg")])
    # 00000.tar under two roots would give both tars the same keys; one glob over their parent keeps them apart.
    write_tar(tmp_path / "other" / "00000.tar", ["k.jpg"])
    with pytest.raises(ValueError, match="one glob over their parent"):
        discover_input_shards([str(tree / "tars"), str(tmp_path / "other")])
    apart = discover_input_shards([str(tmp_path / "**" / "*.tar")])
    assert [(s.root, s.paths) for s in apart] == [
        (str(tmp_path), ("crawl/tars/00000.tar",)),
        (str(tmp_path), ("other/00000.tar",)),
    ]


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("*.tar", "00000.tar", True),
        ("*.tar", "a/00000.tar", False),  # `*` stays in one folder
        ("**/*.tar", "00000.tar", True),
        ("**/*.tar", "a/b/00000.tar", True),
        ("a/**", "a/b/c.jpg", True),
        ("0000?.tar", "00001.tar", True),
        ("0000[0-2].tar", "00003.tar", False),
        ("0000[!0-2].tar", "00003.tar", True),
        ("x+y.jpg", "x+y.jpg", True),  # regex characters are literal
        ("x.jpg", "xxjpg", False),
    ],
)
def test_glob_patterns(pattern, path, matches):
    assert bool(glob_regex(pattern).match(path)) == matches
