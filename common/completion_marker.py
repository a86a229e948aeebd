"""Completion markers and the resume check that decides whether one can still be trusted.

A marker is a small JSON file written after the files it vouches for are in place. Its `files` entry maps each of
those files (by name, in the marker's folder) to `{"bytes": N, "sha256": "<hex>"}` (`common.file_digest`).

Resume trusts a marker only while every file it names exists with the recorded size: one stat per file, cheap at
any scale, and what a cut-off copy or a disk that filled up leaves behind. The digest is checked by the phase that
reads the file's bytes anyway. A marker that cannot be trusted is removed together with the damaged file, with one
WARNING line saying why, and the caller redoes the shard.
"""

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from common.file_digest import FileRecord

log = logging.getLogger(__name__)

FILES = "files"


def load_marker(path: Path) -> dict[str, Any] | None:
    """The marker's content, or None when there is none. A marker that is not a JSON object (overwritten, cut off)
    vouches for nothing: it is removed with a WARNING line, and the caller redoes its shard as if it were missing."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        marker = json.loads(text)
    except ValueError as err:  # JSONDecodeError and UnicodeDecodeError are both ValueErrors
        marker, problem = None, f"is not JSON ({err})"
    else:
        problem = None if isinstance(marker, dict) else "is not a JSON object"
    if problem is not None:
        log.warning("%s %s: removed, its shard is redone", path, problem)
        path.unlink(missing_ok=True)
        return None
    return marker


def recorded_files(marker: Mapping[str, Any]) -> dict[str, FileRecord] | None:
    """The marker's `files` entry, or None when it has none in the expected form (a marker of an older version)."""
    files = marker.get(FILES)
    if not isinstance(files, dict) or not files:
        return None
    for record in files.values():
        if not isinstance(record, dict) or not isinstance(record.get("bytes"), int) or "sha256" not in record:
            return None
    return files


def discard(marker_path: Path, *damaged: Path) -> None:
    """Remove a marker, then the files it vouched for that are damaged; the marker first, so that a marker never
    outlives a file it names."""
    marker_path.unlink(missing_ok=True)
    for path in damaged:
        path.unlink(missing_ok=True)


def trust_marker(marker_path: Path, marker: Mapping[str, Any], *, shard: str) -> bool:
    """True when every file the marker vouches for exists with its recorded size. Otherwise one WARNING line names
    the file, the expected and the found size; the marker and that file are removed; returns False (redo `shard`)."""
    files = recorded_files(marker)
    if files is None:
        log.warning(
            "%s records no file sizes or digests (written by an older version): %s is unverified and is redone",
            marker_path,
            shard,
        )
        discard(marker_path)
        return False
    for name, record in sorted(files.items()):
        path = marker_path.parent / name
        try:
            found: int | None = path.stat().st_size
        except FileNotFoundError:
            found = None
        if found != record["bytes"]:
            found_text = "no such file" if found is None else f"found {found}"
            log.warning("%s: expected %d bytes, %s: %s is redone", path, record["bytes"], found_text, shard)
            discard(marker_path, path)
            return False
    return True
