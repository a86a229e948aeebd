"""Turn the user's inputs (folders, files, globs; local or URIs) into the sorted list of input shards.

An input's *root* is the folder given, the folder of a file given, or the part of a glob before its first
wildcard; keys hash paths relative to it (InputShard.key_source), so they must be unique across all inputs.
"""

import logging
import os
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import replace
from typing import NamedTuple

import pyarrow.fs as pafs

from common.filesystem import resolve
from curation.readers.globs import match_glob, split_glob
from curation.readers.parquet import IMAGE_COLUMNS, image_column_of
from curation.readers.shard import (
    IMAGE_EXTENSIONS,
    PARQUET_SUFFIX,
    TAR_SUFFIXES,
    InputShard,
    ShardKind,
    has_image_extension,
    is_uri,
    join,
)

log = logging.getLogger(__name__)

FILES_PER_SHARD = 1000


class _Found(NamedTuple):
    kind: ShardKind
    root: str
    path: str
    image_column: str | None = None


def discover_input_shards(
    inputs: Sequence[str], *, files_per_shard: int = FILES_PER_SHARD, image_column: str | None = None
) -> list[InputShard]:
    """Every input shard, sorted by the key source of its first file; shard_id is the index in that order.

    Folders are walked recursively: images by extension (IMAGE_EXTENSIONS) in chunks of `files_per_shard`,
    `*.tar`/`*.tar.gz`/`*.tgz` one shard each, `*.parquet` one shard each when it has an image column (the
    given `image_column`, else auto-detected) and is not the img2dataset index of a tar next to it. Other files
    found by a walk or a glob are skipped and counted in the log; a file named directly must be one of these.
    """
    if isinstance(inputs, str):
        raise TypeError(f"inputs must be a list of paths, globs or URIs, got the string {inputs!r}")
    if files_per_shard < 1:
        raise ValueError(f"files_per_shard must be >= 1, got {files_per_shard}")
    found = [f for given in inputs for f in _expand(given, image_column)]
    _check_unique(found)

    shards: list[InputShard] = []
    folders: dict[str, list[str]] = defaultdict(list)
    for f in found:
        if f.kind == "folder":
            folders[f.root].append(f.path)
        else:
            shards.append(InputShard(-1, f.kind, f.root, (f.path,), f.image_column))
    for root, paths in folders.items():
        paths.sort()
        for start in range(0, len(paths), files_per_shard):
            shards.append(InputShard(-1, "folder", root, tuple(paths[start : start + files_per_shard])))
    shards.sort(key=lambda s: s.key_source(s.paths[0]))
    return [replace(shard, shard_id=i) for i, shard in enumerate(shards)]


def _expand(given: str, image_column: str | None) -> list[_Found]:
    root, pattern = split_glob(given)
    fs, base = resolve(root)
    info = fs.get_file_info(base)
    if pattern is None and info.type == pafs.FileType.File:
        parent, name = _split_file(root)
        return [_classify_named(fs, parent, name, base, given, image_column)]
    if info.type != pafs.FileType.Directory:
        raise FileNotFoundError(f"input {given!r}: {root} is not an existing file or folder")

    files, dirs = [], []
    prefix = base.rstrip("/") + "/"
    undecodable = 0
    for entry in fs.get_file_info(pafs.FileSelector(base, recursive=True)):
        try:
            relative = entry.path[len(prefix) :]
        except UnicodeDecodeError:  # a name that is not UTF-8: pyarrow cannot give it as a str
            undecodable += 1
            continue
        if entry.type == pafs.FileType.File:
            files.append(relative)
        elif entry.type == pafs.FileType.Directory:
            dirs.append(relative)
    if undecodable:
        files += _undecodable_files(fs, base, given)
    if pattern is not None:
        files = match_glob(pattern, files, dirs)
    found, skipped = _classify_walked(fs, root, base, sorted(files), image_column)
    if not found:
        raise FileNotFoundError(
            f"input {given!r} holds no images, tars or parquet files with an image column (skipped: {dict(skipped)})"
        )
    kinds = Counter(f.kind for f in found)
    log.info("input %s: %s; skipped %s", given, dict(kinds), dict(skipped) or "nothing")
    return found


def _undecodable_files(fs: pafs.FileSystem, base: str, given: str) -> list[str]:
    """Files under `base` whose path is not valid UTF-8, as str with surrogate escapes (os.fsdecode).

    They stay inputs so the reader records them (`bad_file_name`) instead of the walk dropping them unseen.
    """
    if not isinstance(fs, pafs.LocalFileSystem):
        raise ValueError(f"input {given!r} lists names that are not valid UTF-8; rename them (e.g. with convmv)")
    found = []
    root = os.fsencode(base)
    for folder, _, names in os.walk(root):
        for name in names:
            relative = os.path.relpath(os.path.join(folder, name), root)
            try:
                relative.decode("utf-8")
            except UnicodeDecodeError:
                found.append(os.fsdecode(relative).replace(os.sep, "/"))
    log.warning("input %s: %d file names are not valid UTF-8 (first: %r)", given, len(found), found[:1])
    return found


def _split_file(path: str) -> tuple[str, str]:
    """(folder, name) of a file input; a URI keeps its ?query options on the folder."""
    if not is_uri(path):
        return os.path.split(path)
    location, question, query = path.partition("?")
    parent, _, name = location.rpartition("/")
    return parent + question + query, name


def _kind(name: str) -> ShardKind | None:
    lower = name.lower()
    if lower.endswith(TAR_SUFFIXES):
        return "tar"
    if lower.endswith(PARQUET_SUFFIX):
        return "parquet"
    if has_image_extension(lower):
        return "folder"
    return None


def _tar_stems(files: list[str]) -> set[str]:
    stems = set()
    for path in files:
        lower = path.lower()
        for suffix in TAR_SUFFIXES:
            if lower.endswith(suffix):
                stems.add(path[: -len(suffix)])
    return stems


def _classify_walked(
    fs: pafs.FileSystem, root: str, base: str, files: list[str], image_column: str | None
) -> tuple[list[_Found], Counter]:
    found, skipped = [], Counter()
    tar_stems = _tar_stems(files)
    for path in files:
        kind = _kind(path)
        if kind is None:
            skipped["other_files"] += 1
        elif kind == "parquet" and path[: -len(PARQUET_SUFFIX)] in tar_stems:
            skipped["tar_index_parquet"] += 1  # img2dataset's metadata of the tar beside it, not an input
        elif kind == "parquet":
            column, readable = image_column_of(fs, f"{base.rstrip('/')}/{path}", image_column)
            if column is None and readable:
                skipped["parquet_without_image_column"] += 1
            else:
                found.append(_Found(kind, root, path, column))
        else:
            found.append(_Found(kind, root, path))
    return found, skipped


def _classify_named(
    fs: pafs.FileSystem, root: str, name: str, inner: str, given: str, image_column: str | None
) -> _Found:
    kind = _kind(name)
    if kind is None:
        raise ValueError(
            f"input {given!r} is not an image ({', '.join(sorted(IMAGE_EXTENSIONS))}), "
            f"a tar ({', '.join(TAR_SUFFIXES)}) or a {PARQUET_SUFFIX} file"
        )
    column = None
    if kind == "parquet":
        column, readable = image_column_of(fs, inner, image_column)
        if column is None and readable:
            what = (
                f"no binary column {image_column!r}"
                if image_column
                else f"no image column (none of {', '.join(IMAGE_COLUMNS)}, nor one struct {{bytes, path}})"
            )
            raise ValueError(f"input {given!r} has {what}; set image_column to the column holding the image bytes")
    return _Found(kind, root, name, column)


def _check_unique(found: list[_Found]) -> None:
    """The same file twice, or two files with one key source (e.g. 00000.tar under two roots), would repeat keys."""
    for what, names in (
        ("file", [join(f.root, f.path) for f in found]),
        ("key source", [InputShard(-1, f.kind, f.root, (f.path,)).key_source(f.path) for f in found]),
    ):
        repeated = sorted(name for name, n in Counter(names).items() if n > 1)
        if repeated:
            raise ValueError(
                f"inputs overlap: {len(repeated)} {what}s are reached more than once (e.g. {repeated[:3]}); "
                "give each file once, and give folders with the same file names as one glob over their parent "
                "(e.g. /data/*/*.tar) so their paths relative to the input root differ"
            )
