"""Streaming tar reading that refuses what an untrusted archive could use against us."""

import posixpath
import tarfile
from collections.abc import Iterator
from typing import BinaryIO, NamedTuple

MAX_MEMBER_BYTES = 256 * 1024 * 1024  # no single image or metadata file in a web shard comes near this


class UnsafeTarError(ValueError):
    """A tar member that must not be read: absolute path, `..`, link, device, or over the size cap."""


class TarMember(NamedTuple):
    name: str
    data: bytes


def check_member_name(name: str) -> str:
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise UnsafeTarError(f"tar member {name!r} has an absolute path")
    normalised = posixpath.normpath(name)
    if ".." in name.split("/") or normalised.startswith(".."):
        raise UnsafeTarError(f"tar member {name!r} escapes the archive with '..'")
    return normalised


def iter_tar_members(fileobj: BinaryIO, *, max_member_bytes: int = MAX_MEMBER_BYTES) -> Iterator[TarMember]:
    """Regular files in archive order, read in stream mode (works on non-seekable object-store streams).

    Directories are skipped; links, devices, unsafe names and oversized members raise UnsafeTarError.
    """
    with tarfile.open(fileobj=fileobj, mode="r|*") as tar:
        for info in tar:
            name = check_member_name(info.name)
            if info.isdir():
                continue
            if not info.isfile():
                raise UnsafeTarError(f"tar member {info.name!r} is not a regular file (type {info.type!r})")
            if info.size > max_member_bytes:
                raise UnsafeTarError(f"tar member {info.name!r} is {info.size} bytes, over the {max_member_bytes} cap")
            extracted = tar.extractfile(info)
            assert extracted is not None  # regular file
            yield TarMember(name, extracted.read())
