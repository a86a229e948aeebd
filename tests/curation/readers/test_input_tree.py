"""Local input trees never lead a read outside their root, never block it, never loop it: symlinks, FIFOs, sockets,
devices and folder loops each give one row with a named reason, or are counted and give none."""

import logging
import os
import shutil
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from common.keys import sample_key
from common.reasons import RejectReason
from curation.readers import READER_REASONS, discover_input_shards, read_input_shard
from curation.readers.fetch import fetch_images
from curation.sample_corpus.sources import load_originals
from tests.curation.readers.conftest import SECRET_SIZE, HostileTree, link, make_device, put, tar_of

PHOTOS = {o.name: o for o in load_originals()}

# sys.addaudithook cannot be undone: one hook for the module, recording only inside `touched()`.
_RECORD: list[str] | None = None


def _audit(event: str, args: tuple) -> None:
    if _RECORD is not None and event in ("open", "os.scandir", "os.listdir"):
        path = args[0]
        _RECORD.append(os.fsdecode(path) if isinstance(path, str | bytes | os.PathLike) else repr(path))


sys.addaudithook(_audit)


@contextmanager
def touched() -> Iterator[list[str]]:
    """Every path this process opens or lists meanwhile (os.open with a dir_fd gives the bare name)."""
    global _RECORD
    _RECORD = []
    try:
        yield _RECORD
    finally:
        _RECORD = None


def without_blocking(read: Callable[[], object]) -> object:
    """read() in a thread: a read that blocked on a FIFO fails the test instead of hanging it."""
    out: dict[str, object] = {}

    def run() -> None:
        try:
            out["value"] = read()
        except BaseException as e:  # handed to the test thread, which raises it
            out["error"] = e

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(120)
    assert not thread.is_alive(), "the read blocked (a FIFO opened without O_NONBLOCK?)"
    if "error" in out:
        raise out["error"]
    return out["value"]


def read_rows(inputs: list[str], **kwargs) -> list[dict]:
    shards = discover_input_shards(inputs, **kwargs)
    return [row for shard in shards for row in read_input_shard(shard).to_pylist()]


def by_source(rows: list[dict], root: Path) -> dict[tuple[str, str | None], bytes | str]:
    """(source relative to root, member) -> image bytes or reason; fails on a source read twice."""
    out = {}
    for row in rows:
        where = (os.path.relpath(row["source"], root), row["member"])
        assert where not in out, f"{where} read twice"
        out[where] = row["image"] if row["reject_reason"] is None else row["reject_reason"]
    return out


def expected_rows(tree: HostileTree) -> dict[tuple[str, str | None], bytes | str]:
    return {
        **{where: photo.data for where, photo in tree.photos.items()},
        **{(path, None): str(reason) for path, reason in tree.refused.items()},
    }


def test_every_entry_of_a_hostile_tree_gives_one_row_and_nothing_outside_is_touched(hostile_tree, caplog):
    tree = hostile_tree
    with caplog.at_level(logging.INFO, logger="curation.readers.discover"), touched() as paths:
        shards = without_blocking(lambda: discover_input_shards([str(tree.root)], files_per_shard=4))
        rows = without_blocking(lambda: [r for s in shards for r in read_input_shard(s).to_pylist()])

    assert by_source(rows, tree.root) == expected_rows(tree)
    assert len(rows) == len(tree.photos) + len(tree.refused) == (18 if tree.has_device else 17)
    assert {r["reject_reason"] for r in rows} - {None} <= set(READER_REASONS)
    # The tar reached through the link farm is a tar shard; every other row sits in a folder chunk.
    assert [s.paths for s in shards if s.kind == "tar"] == [("farm/people.tar",)]
    assert sum(len(s.paths) for s in shards if s.kind == "folder") == len(rows) - 1

    (log,) = [r for r in caplog.records if r.name == "curation.readers.discover"]
    assert log.args[1:] == (
        {"folder": len(rows) - 1, "tar": 1},
        dict(Counter(str(reason) for reason in tree.refused.values())),
        tree.skipped,
    )
    # Neither the outside photo, nor the outside folder, nor /etc/passwd was opened or listed; the photos were.
    leaks = [p for p in paths if "secret" in p or "more.jpg" in p or "passwd" in p or str(tree.outside) in p]
    assert leaks == []
    assert {"bus.jpg", "astronaut.jpg", "coffee.jpg"} <= {os.path.basename(p) for p in paths}
    # Nothing special was opened either (a FIFO would block, a device could act).
    assert {"pipe", "a.jpg", "t.parquet", "socket", "null"}.isdisjoint(os.path.basename(p) for p in paths)
    assert SECRET_SIZE not in {(PHOTOS[n].width, PHOTOS[n].height) for n in PHOTOS}


@pytest.mark.parametrize(
    ("links", "files", "rows"),
    [
        # One `d/self -> ..` turned 1 file into 41 rows.
        ({"d/self": ".."}, ["d/one.jpg"], 1),
        # Two nested loops made discovery run for minutes, growing exponentially.
        ({"a/up": "..", "a/b/top": "../.."}, ["top.jpg", "a/mid.jpg", "a/b/low.jpg"], 3),
    ],
    ids=["self_loop", "two_nested_loops"],
)
def test_folder_loops_give_each_real_file_once(tmp_path, links, files, rows):
    root = tmp_path / "root"
    photo_of = dict(zip(files, ("astronaut", "bus", "coffee"), strict=False))
    for name, photo in photo_of.items():
        put(root / name, PHOTOS[photo].data)
    for name, target in links.items():
        link(root / name, target)
    got = by_source(read_rows([str(root)]), root)
    assert got == {(name, None): PHOTOS[photo].data for name, photo in photo_of.items()}
    assert len(got) == rows


@pytest.mark.parametrize("blob_suffix", ["", ".jpg"], ids=["blobs_not_inputs", "blobs_are_inputs"])
def test_a_link_farm_reads_each_real_file_once(tmp_path, blob_suffix):
    root = tmp_path / "root"
    put(root / "blobs" / f"b1{blob_suffix}", PHOTOS["camera"].data)
    put(root / "blobs" / f"b2{blob_suffix}", PHOTOS["zidane"].data)
    for name, blob in [("x.jpg", "b1"), ("y.jpg", "b1"), ("z.jpg", "b2"), ("readme", "b2")]:
        link(root / "links" / name, f"../blobs/{blob}{blob_suffix}")
    link(root / "alias", "links")  # a folder link: not descended
    got = by_source(read_rows([str(root)]), root)
    if blob_suffix:  # the blobs are inputs themselves: every link to them is skipped
        assert got == {("blobs/b1.jpg", None): PHOTOS["camera"].data, ("blobs/b2.jpg", None): PHOTOS["zidane"].data}
    else:  # the first link (sorted) to each blob is read, under its own name
        assert got == {("links/x.jpg", None): PHOTOS["camera"].data, ("links/z.jpg", None): PHOTOS["zidane"].data}


def test_globs_and_named_files_follow_the_same_rules(hostile_tree):
    root = hostile_tree.root
    # A glob selects entries by name; a selected FIFO or link gives its row whatever its name.
    assert by_source(read_rows([str(root / "special" / "*")]), root / "special") == {
        (os.path.relpath(path, "special"), None): str(reason)
        for path, reason in hostile_tree.refused.items()
        if path.startswith("special/")
    }
    assert by_source(read_rows([str(root / "*.jpg")]), root) == {  # `*` stays in one folder: not special/a.jpg
        (path, None): str(reason)
        for path, reason in hostile_tree.refused.items()
        if path.endswith(".jpg") and "/" not in path
    }
    # A file given by name is contained in its folder.
    for name, expected in [
        ("x.jpg", RejectReason.SYMLINK_OUTSIDE_INPUT),
        ("special/pipe", RejectReason.NOT_A_REGULAR_FILE),
        ("special/t.parquet", RejectReason.NOT_A_REGULAR_FILE),
        ("loop_a.jpg", RejectReason.DANGLING_SYMLINK),
        ("farm/first.jpg", RejectReason.SYMLINK_OUTSIDE_INPUT),  # its blob is outside farm/
    ]:
        (row,) = without_blocking(lambda name=name: read_rows([str(root / name)]))
        assert (row["reject_reason"], row["image"]) == (expected, None), name
    (row,) = read_rows([str(root / "photos" / "again.jpg")])  # a link to a file of its own folder
    assert (row["reject_reason"], row["image"]) == (None, PHOTOS["bus"].data)


def test_a_root_given_as_a_symlink_keeps_its_keys_and_a_folder_twice_is_refused(hostile_tree, tmp_path):
    root = hostile_tree.root
    link(tmp_path / "current", root)
    direct, through_link = (read_rows([str(path)]) for path in (root, tmp_path / "current"))
    assert [(r["key"], r["reject_reason"]) for r in through_link] == [(r["key"], r["reject_reason"]) for r in direct]
    assert {r["key"] for r in direct} >= {sample_key("photos/bus.jpg"), sample_key("x.jpg")}
    # The same real files through a folder and a symlink to it would be read twice.
    with pytest.raises(ValueError, match="real files are reached more than once"):
        discover_input_shards([str(root / "photos"), str(root / "alias")])


def swap_for_fifo(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


def swap_for_outside_link(path: Path) -> None:
    path.unlink()
    os.symlink("/etc/passwd", path)


def swap_folder_for_link(path: Path) -> None:
    """The file's folder becomes a symlink to an outside copy of it."""
    outside = path.parent.parent.parent / "elsewhere"
    shutil.copytree(path.parent, outside)
    shutil.rmtree(path.parent)
    os.symlink(outside, path.parent)


@pytest.mark.parametrize("kind", ["folder", "tar", "parquet"])
@pytest.mark.parametrize(
    ("swap", "reason"),
    [
        (swap_for_fifo, RejectReason.NOT_A_REGULAR_FILE),
        (swap_for_outside_link, RejectReason.SYMLINK_OUTSIDE_INPUT),
        (swap_folder_for_link, RejectReason.READ_ERROR),  # the folder is opened with O_NOFOLLOW: ENOTDIR
    ],
    ids=["file_to_fifo", "file_to_outside_link", "folder_to_link"],
)
def test_the_tree_changing_after_discovery_gives_a_row_and_never_blocks(tmp_path, kind, swap, reason):
    path = tmp_path / "root" / "in" / {"folder": "a.jpg", "tar": "a.tar", "parquet": "a.parquet"}[kind]
    data = PHOTOS["bus"].data
    if kind == "folder":
        put(path, data)
    elif kind == "tar":
        put(path, tar_of({"0.jpg": data}))
    else:
        path.parent.mkdir(parents=True)
        pq.write_table(pa.table({"jpg": pa.array([data], pa.binary())}), path)
    (shard,) = discover_input_shards([str(tmp_path / "root")])
    assert shard.kind == kind
    swap(path)
    with touched() as paths:
        rows = without_blocking(lambda: read_input_shard(shard).to_pylist())
    assert [(r["member"], r["image"], r["reject_reason"]) for r in rows] == [(None, None, reason)]
    assert not [p for p in paths if "passwd" in p or "elsewhere" in p]


def test_a_device_is_a_row_and_never_opened(tmp_path):
    root = tmp_path / "root"
    put(root / "ok.jpg", PHOTOS["astronaut"].data)
    if not make_device(root / "cam.jpg"):
        pytest.skip("creating a character device needs CAP_MKNOD, which this process lacks")
    with touched() as paths:
        rows = read_rows([str(root)]) + read_rows([str(root / "cam.jpg")])
    assert [(os.path.basename(r["source"]), r["reject_reason"]) for r in rows] == [
        ("cam.jpg", RejectReason.NOT_A_REGULAR_FILE),
        ("ok.jpg", None),
        ("cam.jpg", RejectReason.NOT_A_REGULAR_FILE),
    ]
    assert "cam.jpg" not in {os.path.basename(p) for p in paths}


def test_reading_back_a_file_swapped_for_a_fifo_returns_at_once_without_it(tmp_path):
    """The write phase reads kept rows back by source: a FIFO there now is left out, not waited on."""
    put(tmp_path / "a.jpg", PHOTOS["bus"].data)
    put(tmp_path / "b.jpg", PHOTOS["zidane"].data)
    tar = tmp_path / "t.tar"
    put(tar, tar_of({"0.jpg": PHOTOS["coffee"].data}))
    swap_for_fifo(tmp_path / "b.jpg")
    swap_for_fifo(tar)
    wanted = [(str(tmp_path / "a.jpg"), None), (str(tmp_path / "b.jpg"), None), (str(tar), "0.jpg")]
    assert without_blocking(lambda: fetch_images(wanted)) == {(str(tmp_path / "a.jpg"), None): PHOTOS["bus"].data}
