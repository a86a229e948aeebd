"""The shard list of a pretraining run: curation output dirs, shard dirs or tar globs, local or behind a URI.

A curation run dir lists its shards in `manifest.json` (written once every shard is complete), so it is the first
choice. Without it, `*.tar` files count only when their `_stats.json` completion marker exists: a tar without one is
still being written (or was abandoned) and is skipped with a warning.
"""

import fnmatch
import json
import logging
import os
import posixpath
from collections import Counter

import pyarrow.fs as pafs

from common.errors import InputNotFoundError
from common.filesystem import resolve

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"  # same names as curation.layout; pretrain may import common only
SHARDS_DIR = "shards"
STATS_SUFFIX = "_stats.json"


def _join(base: str, *parts: str) -> str:
    # URIs join with "/"; local paths with the OS separator.
    return posixpath.join(base, *parts) if "://" in base else os.path.join(base, *parts)


def _exists(path: str) -> bool:
    fs, inner = resolve(path)
    return fs.get_file_info(inner).type == pafs.FileType.File


def _is_dir(path: str) -> bool:
    fs, inner = resolve(path)
    return fs.get_file_info(inner).type == pafs.FileType.Directory


def _from_manifest(run_dir: str) -> list[str]:
    fs, inner = resolve(_join(run_dir, MANIFEST))
    with fs.open_input_stream(inner) as f:
        manifest = json.loads(f.read().decode("utf-8"))
    return [_join(run_dir, SHARDS_DIR, entry["tar"]) for entry in manifest["shards"] if entry["samples"] > 0]


def _complete_tars(directory: str, pattern: str = "*.tar") -> list[str]:
    fs, inner = resolve(directory)
    names = {
        posixpath.basename(info.path)
        for info in fs.get_file_info(pafs.FileSelector(inner, recursive=False))
        if info.type == pafs.FileType.File
    }
    tars, incomplete = [], []
    for name in sorted(n for n in names if fnmatch.fnmatchcase(n, pattern) and n.endswith(".tar")):
        (tars if name[: -len(".tar")] + STATS_SUFFIX in names else incomplete).append(_join(directory, name))
    if incomplete:
        log.warning(
            "skipping %d incomplete shards (no %s marker) in %s, e.g. %s",
            len(incomplete),
            STATS_SUFFIX,
            directory,
            incomplete[0],
        )
    return tars


def list_shards(sources: str | os.PathLike | list[str | os.PathLike]) -> list[str]:
    """Tar paths/URIs, sorted per source, in the order sources are given; duplicates are an error.

    A source is a curation run dir (with `manifest.json`, or `shards/` holding complete tars), a dir of tars, a glob
    on tar names (`dir/0000*.tar`) or one tar.
    """
    items = [sources] if isinstance(sources, str | os.PathLike) else list(sources)
    shards: list[str] = []
    for item in map(os.fspath, items):
        if _is_dir(item):
            if _exists(_join(item, MANIFEST)):
                found = _from_manifest(item)
            elif _is_dir(_join(item, SHARDS_DIR)):
                found = _complete_tars(_join(item, SHARDS_DIR))
            else:
                found = _complete_tars(item)
        elif any(ch in posixpath.basename(item) for ch in "*?["):
            directory, pattern = item.rsplit("/", 1) if "/" in item else (".", item)
            found = _complete_tars(directory, pattern)
        elif item.endswith(".tar") and _exists(item):
            found = [item]
        else:
            raise InputNotFoundError(
                f"shards: {item} is not a curation run dir, a shard dir, a tar glob or a tar; run `humans1b curate` "
                "first or check the path"
            )
        if not found:
            raise InputNotFoundError(
                f"shards: {item}: no complete shards found (a shard is complete once its _stats.json exists)"
            )
        shards.extend(found)
    duplicates = sorted(s for s, n in Counter(shards).items() if n > 1)
    if duplicates:
        raise ValueError(f"shards listed twice: {duplicates[:3]}; pass each source once")
    return shards
