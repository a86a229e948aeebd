"""Turn the user's inputs (folders, files, globs; local or URIs) into the sorted list of input shards.

An input's *root* is the folder given, the folder of a file given, or the part of a glob before its first
wildcard; keys hash paths relative to it (InputShard.key_source), so they must be unique across all inputs.
Local roots are walked by local_walk (no symlink followed, the realpath of the root as the containment root);
object-store roots are listed by pyarrow.
"""

import logging
import os
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import replace
from typing import NamedTuple

import pyarrow.fs as pafs

from common.errors import InputNotFoundError
from common.reasons import RejectReason
from curation.readers.globs import match_glob, split_glob
from curation.readers.local_walk import LocalListing, list_named, list_tree, matching, sort_links
from curation.readers.open_input import InputTree
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
    real: str | None = None  # a local file's real path (one file reached twice through symlinks is one file)


def discover_input_shards(
    inputs: Sequence[str], *, files_per_shard: int = FILES_PER_SHARD, image_column: str | None = None
) -> list[InputShard]:
    """Every input shard, sorted by the key source of its first file; shard_id is the index in that order.

    Folders are walked recursively: images by extension (IMAGE_EXTENSIONS) in chunks of `files_per_shard`,
    `*.tar`/`*.tar.gz`/`*.tgz` one shard each, `*.parquet` one shard each when it has an image column (the
    given `image_column`, else auto-detected) and is not the img2dataset index of a tar next to it. Other files
    found by a walk or a glob are skipped and counted in the log; a file named directly must be one of these.
    Local symlinks out of the root, dangling symlinks, FIFOs, sockets and devices, whatever their names, are
    entries of folder chunks that the reader records with their reason and never opens.
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
    tree = InputTree(root)
    if pattern is None and not _is_folder(tree):
        return [_expand_named(given, root, image_column)]
    if not _is_folder(tree):
        raise InputNotFoundError(f"input {given!r}: {root} is not an existing file or folder")
    refused: Counter = Counter()
    if tree.local:
        listing = list_tree(tree.base)
        listing = listing if pattern is None else matching(listing, pattern)
        found, skipped, refused = _classify_local(tree, root, listing, image_column)
    else:
        files, folders = _list_uri(tree, given)
        files = files if pattern is None else match_glob(pattern, files, folders)
        found, skipped = _classify_walked(tree, root, sorted(files), image_column, _tar_stems(files))
    if not found:
        raise InputNotFoundError(
            f"input {given!r} holds no images, tars or parquet files with an image column (skipped: {dict(skipped)})"
        )
    kinds = Counter(f.kind for f in found)
    log.info(
        "input %s: %s; recorded with a reason, never opened: %s; skipped %s",
        given,
        dict(kinds),
        dict(refused) or "none",
        dict(skipped) or "nothing",
    )
    return found


def _is_folder(tree: InputTree) -> bool:
    """A local root given as a symlink to a folder is a folder: the containment root is its realpath."""
    if tree.local:
        return os.path.isdir(tree.base)
    return tree.fs.get_file_info(tree.base).type == pafs.FileType.Directory


def _list_uri(tree: InputTree, given: str) -> tuple[list[str], list[str]]:
    """(files, folders) under an object-store root, relative to it; object stores have no symlinks or FIFOs."""
    files, folders = [], []
    prefix = tree.base.rstrip("/") + "/"
    for entry in tree.fs.get_file_info(pafs.FileSelector(tree.base, recursive=True)):
        try:
            relative = entry.path[len(prefix) :]
        except UnicodeDecodeError:  # a name that is not UTF-8: pyarrow cannot give it as a str
            raise ValueError(
                f"input {given!r} lists names that are not valid UTF-8; rename them (e.g. with convmv)"
            ) from None
        if entry.type == pafs.FileType.File:
            files.append(relative)
        elif entry.type == pafs.FileType.Directory:
            folders.append(relative)
    return files, folders


def _classify_local(
    tree: InputTree, root: str, listing: LocalListing, image_column: str | None
) -> tuple[list[_Found], Counter, Counter]:
    """(inputs, skipped by why, rows not to be read by reason) of a local listing; see local_walk for the rules."""
    stems = _tar_stems(listing.files + listing.links)
    found, skipped = _classify_walked(tree, root, sorted(listing.files), image_column, stems)
    links = sort_links(
        tree.real, listing.links, {f.path for f in found} | set(listing.others), lambda p: _kind(p) is not None
    )
    linked, linked_skipped = _classify_walked(tree, root, list(links.accepted), image_column, stems)
    target = {path: path for path in listing.files} | links.accepted
    found = [f._replace(real=os.path.join(tree.real, target[f.path])) for f in found + linked]
    refused = [(path, RejectReason.NOT_A_REGULAR_FILE) for path in listing.others] + links.refused
    # A refused entry is a row of a folder chunk whatever its name: the folder reader opens nothing it refuses.
    found += [_Found("folder", root, path) for path, _ in refused]
    return found, skipped + linked_skipped + links.skipped, Counter(str(reason) for _, reason in refused)


def _expand_named(given: str, root: str, image_column: str | None) -> _Found:
    """A file given by name; its folder is its root. Locally a symlink out of that folder, a dangling one, a FIFO,
    socket or device is an input that gives one row with its reason."""
    parent, name = _split_file(root)
    tree = InputTree(parent)
    missing = InputNotFoundError(f"input {given!r}: {root} is not an existing file or folder")
    if not tree.local:
        if tree.fs.get_file_info(f"{tree.base.rstrip('/')}/{name}").type != pafs.FileType.File:
            raise missing
        return _classify_named(tree, parent, name, given, image_column)
    try:
        listing = list_named(tree.base, name)
    except FileNotFoundError:
        raise missing from None
    links = sort_links(tree.real, listing.links, set(), lambda _: True)
    refused = [(name, RejectReason.NOT_A_REGULAR_FILE)] if listing.others else links.refused
    if refused:
        log.warning("input %s is not read: %s", given, refused[0][1])
        return _Found("folder", parent, name)
    if listing.files or links.accepted:
        real = os.path.join(tree.real, links.accepted.get(name, name))
        return _classify_named(tree, parent, name, given, image_column)._replace(real=real)
    raise missing


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
    tree: InputTree, root: str, files: list[str], image_column: str | None, tar_stems: set[str]
) -> tuple[list[_Found], Counter]:
    """Inputs among `files` by the name rule, and the rest counted by why."""
    found, skipped = [], Counter()
    for path in files:
        kind = _kind(path)
        if kind is None:
            skipped["other_files"] += 1
        elif kind == "parquet" and path[: -len(PARQUET_SUFFIX)] in tar_stems:
            skipped["tar_index_parquet"] += 1  # img2dataset's metadata of the tar beside it, not an input
        elif kind == "parquet":
            column, readable = image_column_of(tree, path, image_column)
            if column is None and readable:
                skipped["parquet_without_image_column"] += 1
            else:
                found.append(_Found(kind, root, path, column))
        else:
            found.append(_Found(kind, root, path))
    return found, skipped


def _classify_named(tree: InputTree, root: str, name: str, given: str, image_column: str | None) -> _Found:
    kind = _kind(name)
    if kind is None:
        raise ValueError(
            f"input {given!r} is not an image ({', '.join(sorted(IMAGE_EXTENSIONS))}), "
            f"a tar ({', '.join(TAR_SUFFIXES)}) or a {PARQUET_SUFFIX} file"
        )
    column = None
    if kind == "parquet":
        column, readable = image_column_of(tree, name, image_column)
        if column is None and readable:
            what = (
                f"no binary column {image_column!r}"
                if image_column
                else f"no image column (none of {', '.join(IMAGE_COLUMNS)}, nor one struct {{bytes, path}})"
            )
            raise ValueError(f"input {given!r} has {what}; set image_column to the column holding the image bytes")
    return _Found(kind, root, name, column)


def _check_unique(found: list[_Found]) -> None:
    """The same file twice (by path, or locally by real path: a folder and a symlink to it), or two files with one
    key source (e.g. 00000.tar under two roots) would repeat rows or keys."""
    for what, names in (
        ("file", [join(f.root, f.path) for f in found]),
        ("real file", [f.real for f in found if f.real is not None]),
        ("key source", [InputShard(-1, f.kind, f.root, (f.path,)).key_source(f.path) for f in found]),
    ):
        repeated = sorted(name for name, n in Counter(names).items() if n > 1)
        if repeated:
            raise ValueError(
                f"inputs overlap: {len(repeated)} {what}s are reached more than once (e.g. {repeated[:3]}); "
                "give each file once (a folder and a symlink to it hold the same files), and give folders with the "
                "same file names as one glob over their parent (e.g. /data/*/*.tar) so their paths relative to the "
                "input root differ"
            )
