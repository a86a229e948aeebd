"""WebDataset shard writer in the img2dataset layout: `00000.tar` + `00000.parquet` + `00000_stats.json`.

Tars get a fixed mtime, owner and mode, so identical input gives byte-identical shards. All three files are
written under temporary names and renamed when the shard is complete; `_stats.json` is renamed last and is
the shard's completion marker. Its `files` entry holds the size and SHA-256 of the tar and the parquet, hashed
while they are written (`common.completion_marker` checks the sizes on resume).
"""

import hashlib
import json
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import pyarrow as pa
import webdataset as wds

from common.completion_marker import FILES
from common.errors import naming_path
from common.file_digest import HashingWriter, write_parquet
from common.schemas import SHARD_BASE_FIELDS

log = logging.getLogger(__name__)

TAR_MTIME = 946684800.0  # 2000-01-01: any fixed value makes tars reproducible; webdataset stamps time.time()
_KEY_RE = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_/-]*$")  # no dots: webdataset splits key and extension there
_EXT_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
PARTIAL_SUFFIX = ".partial"


def shard_name(shard_id: int) -> str:
    return f"{shard_id:05d}"


def shard_paths(out_dir: Path, shard_id: int) -> dict[str, Path]:
    name = shard_name(shard_id)
    return {
        "tar": out_dir / f"{name}.tar",
        "parquet": out_dir / f"{name}.parquet",
        "stats": out_dir / f"{name}_stats.json",
    }


def shard_is_complete(out_dir: Path, shard_id: int) -> bool:
    """True once the completion marker exists; it is renamed into place after the tar and the parquet. Resume code
    also checks the files against it (common.completion_marker.trust_marker)."""
    return shard_paths(Path(out_dir), shard_id)["stats"].exists()


def encode_json(value: Any) -> bytes:
    """Deterministic JSON bytes, so the same metadata always gives the same tar."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class ShardWriter:
    """Writes one shard. Use as a context manager; on an exception nothing is renamed into place."""

    def __init__(
        self,
        *,
        out_dir: str | os.PathLike,
        shard_id: int,
        index_schema: pa.Schema,
        image_ext: str | None = None,
    ) -> None:
        if not isinstance(shard_id, int) or isinstance(shard_id, bool) or not 0 <= shard_id < 100_000:
            raise ValueError(f"shard_id must be an int in [0, 99999], got {shard_id!r}")
        base = pa.schema(SHARD_BASE_FIELDS)
        if len(index_schema) < len(base) or not pa.schema(list(index_schema)[: len(base)]).equals(base):
            raise ValueError(
                f"index_schema must start with the shard base fields {base.names}, got {index_schema.names}"
            )
        self.out_dir = Path(out_dir)
        self.shard_id = shard_id
        self.index_schema = index_schema
        self.image_ext = image_ext  # extension whose bytes get a sha256 in the index, when the schema has one
        self.paths = shard_paths(self.out_dir, shard_id)
        self._tmp = {k: p.with_name(p.name + PARTIAL_SUFFIX) for k, p in self.paths.items()}
        self._rows: list[dict[str, Any]] = []
        self._keys: set[str] = set()
        self._ext_counts: dict[str, int] = {}
        self.notes: dict[str, Any] = {}  # extra JSON-able entries for `_stats.json` (e.g. what could not be written)
        self._file: HashingWriter | None = None
        self._tar: wds.TarWriter | None = None

    def __enter__(self) -> Self:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._file = HashingWriter(open(self._tmp["tar"], "wb"))  # closed in __exit__; hashes the tar as it streams
        self._tar = wds.TarWriter(self._file, user="", group="", mode=0o644, encoder=False, mtime=TAR_MTIME)
        return self

    def write(
        self, *, key: str, files: Mapping[str, bytes | Mapping[str, Any]], index: Mapping[str, Any] | None = None
    ) -> None:
        """Add one sample: `files` maps extension -> bytes (dicts are JSON-encoded); `index` fills the extra columns."""
        if self._tar is None:
            raise RuntimeError("ShardWriter.write called outside its `with` block")
        if not isinstance(key, str) or not _KEY_RE.match(key) or ".." in key.split("/"):
            raise ValueError(f"invalid sample key {key!r}: use letters, digits, '_', '-', '/' and no dots")
        if key in self._keys:
            raise ValueError(f"duplicate sample key {key!r} in shard {shard_name(self.shard_id)}")
        if not files:
            raise ValueError(f"sample {key!r} has no files")
        sample: dict[str, bytes | str] = {"__key__": key}
        for ext, value in files.items():
            if not _EXT_RE.match(ext):
                raise ValueError(f"invalid extension {ext!r} for sample {key!r}")
            sample[ext] = encode_json(value) if isinstance(value, Mapping) else bytes(value)
        row = self._index_row(key, index or {}, sample)
        start = self._tar.tarstream.offset
        with naming_path(self._tmp["tar"]):  # a full disk's OSError names no file; the one-line report should
            self._tar.write(sample)
        row["tar_offset"], row["tar_bytes"] = start, self._tar.tarstream.offset - start
        self._keys.add(key)
        self._rows.append(row)
        for ext in files:
            self._ext_counts[ext] = self._ext_counts.get(ext, 0) + 1

    def _index_row(self, key: str, index: Mapping[str, Any], sample: Mapping[str, Any]) -> dict[str, Any]:
        extra = [f.name for f in self.index_schema][len(SHARD_BASE_FIELDS) :]
        unknown = set(index) - set(extra)
        if unknown:
            raise ValueError(f"index fields {sorted(unknown)} are not in the index schema {extra}")
        row = {"key": key, **{name: index.get(name) for name in extra}}
        if "sha256" in extra and row["sha256"] is None and self.image_ext in sample:
            row["sha256"] = hashlib.sha256(sample[self.image_ext]).hexdigest()
        return row

    @property
    def count(self) -> int:
        return len(self._rows)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._tar is not None and self._file is not None
        with naming_path(self._tmp["tar"]):
            self._tar.close()
            self._file.close()
        tar_record = self._file.record()
        self._tar = self._file = None
        if exc_type is not None:
            for tmp in self._tmp.values():
                tmp.unlink(missing_ok=True)
            log.warning(
                "shard %s abandoned after %s; nothing renamed into place", shard_name(self.shard_id), exc_type.__name__
            )
            return
        self._finish(tar_record)

    def _finish(self, tar_record: dict) -> None:
        table = pa.Table.from_pylist(self._rows, schema=self.index_schema)
        with naming_path(self._tmp["parquet"]):
            parquet_record = write_parquet(table, self._tmp["parquet"])
        stats = {
            "shard": shard_name(self.shard_id),
            "count": len(self._rows),
            "tar_bytes": tar_record["bytes"],
            "files_per_extension": dict(sorted(self._ext_counts.items())),
            FILES: {self.paths["tar"].name: tar_record, self.paths["parquet"].name: parquet_record},
            **self.notes,
        }
        with naming_path(self._tmp["stats"]):
            self._tmp["stats"].write_bytes(encode_json(stats))
        for kind in ("tar", "parquet", "stats"):  # the stats file last: it marks the shard complete
            os.replace(self._tmp[kind], self.paths[kind])
        log.debug("wrote shard %s with %d samples", self.paths["tar"], len(self._rows))
