"""A local input tree holding every entry that must not be read as it stands: symlinks out of the tree, dangling
ones and link loops, FIFOs, a socket, a device, folder loops, a folder alias and a link farm, around real photos.
Shared by the in-process tests and the test that runs it through the real CLI."""

import hashlib
import io
import os
import shutil
import socket
import stat
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from common.reasons import RejectReason
from curation.sample_corpus.sources import Original, load_originals

SECRET_SIZE = (777, 555)  # the outside photo's size: no photo inside the tree has it


@dataclass(frozen=True)
class HostileTree:
    root: Path  # the input root
    outside: Path  # a folder beside the root that no read may touch
    photos: dict[tuple[str, str | None], Original]  # (source relative to root, member): the photo it must give
    refused: dict[str, RejectReason]  # source relative to root: the reason of its row (never opened)
    skipped: dict[str, int]  # what discovery counts and gives no row, by why
    has_device: bool  # a character device could be made (needs CAP_MKNOD)


def make_socket(path: Path) -> None:
    """A bound unix socket; bound in a short folder and moved, as a socket path is limited to 108 bytes."""
    scratch = tempfile.mkdtemp(prefix="sock", dir="/tmp")
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.bind(os.path.join(scratch, "s"))
            os.rename(os.path.join(scratch, "s"), path)
    finally:
        shutil.rmtree(scratch)


def make_device(path: Path) -> bool:
    """A character device like /dev/null; False when this process may not create one."""
    try:
        os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:
        return False
    return True


def tar_of(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def secret_photo(original: Original) -> bytes:
    out = io.BytesIO()
    original.load().convert("RGB").crop((0, 0, *SECRET_SIZE)).save(out, format="JPEG", quality=90)
    return out.getvalue()


def link(path: Path, target: str | Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, path)


def put(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def build_hostile_tree(base: Path) -> HostileTree:
    photo = {o.name: o for o in load_originals()}
    root, outside = base / "root", base / "outside"
    put(outside / "secret.jpg", secret_photo(photo["zidane"]))
    put(outside / "album" / "more.jpg", secret_photo(photo["bus"]))
    for path in (outside / "secret.jpg", outside / "album" / "more.jpg"):
        path.chmod(0o444)

    photos = {
        ("photos/astronaut.jpg", None): photo["astronaut"],
        ("photos/bus.jpg", None): photo["bus"],
        ("loop/d/coffee.jpg", None): photo["coffee"],
        ("nested/a/b/grace_hopper.jpg", None): photo["grace_hopper"],
        ("farm/first.jpg", None): photo["camera"],
        ("farm/third.jpg", None): photo["zidane"],
        ("farm/people.tar", "000000000.jpg"): photo["motorcycle"],
    }
    for (path, member), original in photos.items():
        if member is None and not path.startswith("farm/"):
            put(root / path, original.data)
    link(root / "photos" / "again.jpg", "bus.jpg")  # a second name of an input
    link(root / "alias", "photos")  # a folder alias: its files are read once, under photos/
    link(root / "loop" / "d" / "self", "..")
    link(root / "nested" / "a" / "up", "..")
    link(root / "nested" / "a" / "b" / "top", "../..")

    # A link farm: names with extensions pointing into a folder of content-addressed blobs without any.
    blobs = {
        "camera": photo["camera"].data,
        "zidane": photo["zidane"].data,
        "tar": tar_of({"000000000.jpg": photo["motorcycle"].data}),
    }
    sha = {name: hashlib.sha256(data).hexdigest() for name, data in blobs.items()}
    for name, data in blobs.items():
        put(root / "blobs" / sha[name], data)
    link(root / "farm" / "first.jpg", f"../blobs/{sha['camera']}")
    link(root / "farm" / "second.jpg", f"../blobs/{sha['camera']}")  # the same blob again
    link(root / "farm" / "third.jpg", f"../blobs/{sha['zidane']}")
    link(root / "farm" / "people.tar", f"../blobs/{sha['tar']}")
    put(root / "notes.txt", b"not an input")

    refused = {
        "outside.jpg": RejectReason.SYMLINK_OUTSIDE_INPUT,
        "x.jpg": RejectReason.SYMLINK_OUTSIDE_INPUT,
        "outside_album": RejectReason.SYMLINK_OUTSIDE_INPUT,
        "dangling.jpg": RejectReason.DANGLING_SYMLINK,
        "loop_a.jpg": RejectReason.DANGLING_SYMLINK,
        "loop_b.jpg": RejectReason.DANGLING_SYMLINK,
        "special/a.jpg": RejectReason.NOT_A_REGULAR_FILE,
        "special/pipe": RejectReason.NOT_A_REGULAR_FILE,
        "special/t.parquet": RejectReason.NOT_A_REGULAR_FILE,  # discovery would read its schema: it must not
        "special/socket": RejectReason.NOT_A_REGULAR_FILE,
    }
    link(root / "outside.jpg", os.path.relpath(outside / "secret.jpg", root))
    link(root / "x.jpg", "/etc/passwd")
    link(root / "outside_album", outside / "album")
    link(root / "dangling.jpg", "missing.jpg")
    link(root / "loop_a.jpg", "loop_b.jpg")
    link(root / "loop_b.jpg", "loop_a.jpg")
    (root / "special").mkdir()
    for name in ("a.jpg", "pipe", "t.parquet"):
        os.mkfifo(root / "special" / name)
    make_socket(root / "special" / "socket")
    has_device = make_device(root / "special" / "null")
    if has_device:
        refused["special/null"] = RejectReason.NOT_A_REGULAR_FILE
    skipped = {"other_files": 4, "links_to_folders": 4, "links_to_inputs": 1, "more_links_to_one_file": 1}
    return HostileTree(root, outside, photos, refused, skipped, has_device)


@pytest.fixture
def hostile_tree(tmp_path) -> HostileTree:
    return build_hostile_tree(tmp_path)


@pytest.fixture
def make_hostile_tree() -> Callable[[Path], HostileTree]:
    return build_hostile_tree
