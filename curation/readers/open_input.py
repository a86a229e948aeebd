"""Opening input files without leaving the input tree, following a loop, or blocking on a FIFO.

A local input tree is untrusted: a symlink can point at /etc/passwd, a FIFO blocks whoever opens it, a device can
act when opened. Every local file is opened relative to the realpath of its input root (the *containment root*),
one folder at a time with O_NOFOLLOW, so neither a symlink placed in the tree nor a folder swapped for one after
discovery leads outside; the entry is stat'ed first and fstat'ed after a non-blocking open, so nothing but a
regular file is ever read. Object stores have no such entries and are opened through pyarrow.
"""

import errno
import os
import stat
from typing import BinaryIO

import pyarrow as pa
import pyarrow.fs as pafs

from common.filesystem import resolve
from common.reasons import RejectReason

_FOLDER_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: opening a FIFO that replaced the file since its stat returns at once instead of waiting for a writer.
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
# What realpath(strict=True) raises for a symlink that leads nowhere: a missing target, a loop, a file as a folder.
_DANGLING_ERRNOS = (errno.ENOENT, errno.ELOOP, errno.ENOTDIR)


class Refused(Exception):
    """An entry that gets a row with `reason` and is never opened (or was closed unread)."""

    def __init__(self, reason: RejectReason, what: str) -> None:
        super().__init__(f"{what}: {reason}")
        self.reason = reason


def is_inside(path: str, root: str) -> bool:
    """Whether the real path `path` is `root` or below it (both absolute and resolved)."""
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def resolve_link(root: str, path: str) -> str:
    """The real file a symlink at `path` (relative to the containment root `root`) leads to, relative to `root`.

    Raises Refused: `dangling_symlink` when the chain leads nowhere or loops, `symlink_outside_input` when it
    leaves `root`. The target is only looked at, never opened.
    """
    full = os.path.join(root, path)
    try:
        real = os.path.realpath(full, strict=True)
    except OSError as e:
        if e.errno in _DANGLING_ERRNOS:
            raise Refused(RejectReason.DANGLING_SYMLINK, full) from e
        raise
    if not is_inside(real, root):
        raise Refused(RejectReason.SYMLINK_OUTSIDE_INPUT, f"{full} -> {real}")
    return os.path.relpath(real, root).replace(os.sep, "/")


def _open_folder(root: str, path: str) -> tuple[int, str]:
    """(descriptor of the folder holding `path`, its last name), every folder opened with O_NOFOLLOW from `root`."""
    *folders, name = path.split("/")
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for folder in folders:
            inner = os.open(folder, _FOLDER_FLAGS, dir_fd=fd)  # a symlink here fails (ENOTDIR or ELOOP)
            os.close(fd)
            fd = inner
    except OSError:
        os.close(fd)
        raise
    return fd, name


def _require_regular(mode: int, what: str) -> None:
    if not stat.S_ISREG(mode):
        raise Refused(RejectReason.NOT_A_REGULAR_FILE, what)


def open_in_tree(root: str, path: str) -> int:
    """A read-only descriptor of the regular file at `path` ('/'-separated) under the containment root `root`.

    A symlink is followed only to a target inside `root` (re-checked now: the tree may have changed since
    discovery). Raises Refused for what must not be opened, OSError for what cannot be.
    """
    folder, name = _open_folder(root, path)
    try:
        mode = os.stat(name, dir_fd=folder, follow_symlinks=False).st_mode
        if stat.S_ISLNK(mode):
            target = resolve_link(root, path)  # Refused when it leads outside `root` or nowhere
            os.close(folder)
            folder = -1  # closed: nothing to close if the next open fails
            folder, name = _open_folder(root, target)
            mode = os.stat(name, dir_fd=folder, follow_symlinks=False).st_mode
        _require_regular(mode, os.path.join(root, path))
        fd = os.open(name, _FILE_FLAGS, dir_fd=folder)
    finally:
        if folder != -1:
            os.close(folder)
    try:
        _require_regular(os.fstat(fd).st_mode, os.path.join(root, path))  # swapped between the stat and the open
    except Refused:
        os.close(fd)
        raise
    return fd


def open_regular(path: str) -> int:
    """A read-only descriptor of `path` if it is (or leads by symlinks to) a regular file; for reading back files
    already accepted by a read, whose input root is no longer known. Raises Refused or OSError."""
    _require_regular(os.stat(path).st_mode, path)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        _require_regular(os.fstat(fd).st_mode, path)
    except Refused:
        os.close(fd)
        raise
    return fd


class InputTree:
    """Opens the files of one input root: local ones through open_in_tree, object-store ones through pyarrow."""

    def __init__(self, root: str) -> None:
        self.fs, self.base = resolve(root)  # once per tree: an object-store filesystem is costly to build
        self.local = isinstance(self.fs, pafs.LocalFileSystem)
        self.real = os.path.realpath(self.base) if self.local else ""

    def open(self, path: str, *, seekable: bool = False) -> BinaryIO | pa.NativeFile:
        """`path` (relative, '/'-separated) opened for reading as stored (no decompression by its name).

        Raises Refused (local entries that must not be opened) or OSError.
        """
        if self.local:
            return os.fdopen(open_in_tree(self.real, path), "rb")
        full = f"{self.base.rstrip('/')}/{path}"
        return self.fs.open_input_file(full) if seekable else self.fs.open_input_stream(full, compression=None)


def open_source(source: str, *, seekable: bool = False) -> BinaryIO | pa.NativeFile:
    """A file named by its full source (local path or URI), for reading back; local ones through open_regular."""
    fs, inner = resolve(source)
    if isinstance(fs, pafs.LocalFileSystem):
        return os.fdopen(open_regular(inner), "rb")
    return fs.open_input_file(inner) if seekable else fs.open_input_stream(inner, compression=None)
