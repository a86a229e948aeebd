"""One parquet file per select step: its rows, plus the step's stats and fingerprint in the file's metadata.

A step is redone when its file is missing, cannot be read (cut off, overwritten) or its fingerprint (inputs +
settings of it and every step before it) differs, so a re-run resumes at the first missing, damaged or outdated
step and never reuses a stale result.
"""

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

log = logging.getLogger(__name__)

_META = b"humans1b.select"


@dataclass
class StepArtifact:
    table: pa.Table
    stats: dict[str, Any]
    fingerprint: str


def fingerprint(*parts: Any) -> str:
    """A stable digest of JSON-able parts (configs as dicts, earlier fingerprints, counts)."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def write_artifact(path: Path, table: pa.Table, stats: dict[str, Any], fp: str) -> None:
    meta = {**(table.schema.metadata or {}), _META: json.dumps({"stats": stats, "fingerprint": fp}).encode()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    pq.write_table(table.replace_schema_metadata(meta), tmp)
    os.replace(tmp, path)  # a killed write leaves only the .partial file, which the next run overwrites


def read_artifact(path: Path, fp: str) -> StepArtifact | None:
    """The step's saved result, or None when it is missing, unreadable or made from other inputs or settings."""
    if not path.exists():
        return None
    try:
        meta = pq.read_schema(path).metadata or {}
        if _META not in meta:
            return None
        saved = json.loads(meta[_META])
        if saved["fingerprint"] != fp:
            return None
        table = pq.read_table(path)
    except (ValueError, OSError) as err:  # cut off: ArrowInvalid (a ValueError); damaged pages: OSError; bad JSON
        log.warning("%s cannot be read (%s): treated as missing, the step is redone", path, err)
        return None
    return StepArtifact(table.replace_schema_metadata(None), saved["stats"], fp)
