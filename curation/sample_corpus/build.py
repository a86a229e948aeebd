"""Build the sample corpus as a folder of images and as img2dataset-style tars, with a manifest of every file."""

import functools
import hashlib
import os
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from common.config import bounded, check_ranges
from common.shard_writer import ShardWriter, shard_name
from curation.sample_corpus.files import ORIGINAL, CorpusFile, expected_size_reason, photo_file, rng_for
from curation.sample_corpus.malformed import malformed_files
from curation.sample_corpus.near_duplicates import near_duplicates
from curation.sample_corpus.odd_formats import odd_format_files
from curation.sample_corpus.schemas import MANIFEST_SCHEMA, RAW_INDEX_SCHEMA
from curation.sample_corpus.sources import load_originals

IMAGES_DIR = "images"
TARS_DIR = "tars"
MANIFEST_NAME = "corpus.parquet"
URL_PREFIX = "https://sample-corpus.invalid/"  # the .invalid TLD never resolves (RFC 2606)
_STAGING_NAME = ".sample_corpus.partial"


@dataclass
class SampleCorpusConfig:
    # drives which originals get near-duplicates, the edits, the truncation point, crop positions
    seed: int = bounded(0, ge=0)
    samples_per_shard: int = bounded(16, ge=1)
    near_duplicate_origins: int = bounded(4, ge=0)  # how many of the valid originals get near-duplicates


@dataclass(frozen=True)
class CorpusEntry:
    """One row of the manifest (MANIFEST_SCHEMA)."""

    name: str
    path: str
    key: str
    shard: str
    kind: str
    origin: str | None
    expected_reason: str | None
    width: int | None
    height: int | None
    num_bytes: int
    sha256: str


@dataclass(frozen=True)
class SampleCorpus:
    root: Path
    shards: tuple[str, ...]  # shard names: tars/<name>.tar + <name>.parquet + <name>_stats.json
    entries: tuple[CorpusEntry, ...] = field(repr=False)

    @property
    def images_dir(self) -> Path:
        return self.root / IMAGES_DIR

    @property
    def tars_dir(self) -> Path:
        return self.root / TARS_DIR

    @property
    def manifest_path(self) -> Path:
        return self.root / MANIFEST_NAME

    def entry(self, name: str) -> CorpusEntry:
        for entry in self.entries:
            if entry.name == name:
                return entry
        raise KeyError(f"no file named {name!r} in the sample corpus at {self.root}")

    def __str__(self) -> str:
        reasons = Counter(e.expected_reason for e in self.entries if e.expected_reason is not None)
        rejected = ", ".join(f"{reason} {n}" for reason, n in sorted(reasons.items()))
        valid = len(self.entries) - reasons.total()
        return f"{len(self.entries)} files ({valid} valid; {rejected}) in {len(self.shards)} shards at {self.root}"


def corpus_files(config: SampleCorpusConfig) -> list[CorpusFile]:
    """Every file of the corpus, in key order: originals, near-duplicates, odd formats, malformed files."""
    rng = functools.partial(rng_for, config.seed)
    originals = {o.name: o for o in load_originals()}
    files = [
        photo_file(f"originals/{o.name}.jpg", ORIGINAL, o.data, o.name, (o.width, o.height)) for o in originals.values()
    ]
    eligible = sorted(o.name for o in originals.values() if expected_size_reason(o.width, o.height) is None)
    if not 0 <= config.near_duplicate_origins <= len(eligible):
        raise ValueError(f"near_duplicate_origins must be in [0, {len(eligible)}], got {config.near_duplicate_origins}")
    chosen = rng("near_duplicate_origins").choice(eligible, size=config.near_duplicate_origins, replace=False)
    for name in sorted(chosen):
        files += near_duplicates(originals[name], rng(f"near_duplicates/{name}"))
    files += odd_format_files(originals, rng)
    files += malformed_files(originals, rng)
    return files


def build_sample_corpus(out_dir: Path, config: SampleCorpusConfig) -> SampleCorpus:
    """Write the corpus under `out_dir` (images/, tars/, corpus.parquet), replacing a corpus built there before.

    The same config gives byte-identical files. Everything is built in a staging folder and moved into place at the
    end, so an interrupted build leaves the previous corpus as it was.
    """
    check_ranges(config)
    root = Path(out_dir)
    _check_replaceable(root)
    files = corpus_files(config)
    entries = tuple(_entry(i, f, config.samples_per_shard) for i, f in enumerate(files))

    staging = root / _STAGING_NAME
    if staging.exists():
        shutil.rmtree(staging)
    _write_images(staging / IMAGES_DIR, files)
    shards = _write_tars(staging / TARS_DIR, files, entries, config.samples_per_shard)
    pq.write_table(pa.Table.from_pylist([vars(e) for e in entries], schema=MANIFEST_SCHEMA), staging / MANIFEST_NAME)

    for name in (IMAGES_DIR, TARS_DIR, MANIFEST_NAME):  # the manifest marks a corpus complete: it goes last, comes last
        old = root / name
        if old.is_dir():
            shutil.rmtree(old)
        elif old.exists():
            old.unlink()
    for name in (IMAGES_DIR, TARS_DIR, MANIFEST_NAME):
        os.replace(staging / name, root / name)
    staging.rmdir()
    return SampleCorpus(root=root, shards=shards, entries=entries)


def _check_replaceable(root: Path) -> None:
    # Only a previous corpus (it has a manifest) is replaced: an images/ or tars/ folder of something else stays.
    foreign = [root / name for name in (IMAGES_DIR, TARS_DIR) if (root / name).exists()]
    if foreign and not (root / MANIFEST_NAME).exists():
        raise FileExistsError(
            f"{root} already holds {', '.join(map(str, foreign))} without a {MANIFEST_NAME}, so it is not a sample "
            "corpus: choose an empty or new directory"
        )


def _entry(index: int, file: CorpusFile, samples_per_shard: int) -> CorpusEntry:
    return CorpusEntry(
        name=file.name,
        path=file.path,
        key=f"{index:09d}",
        shard=shard_name(index // samples_per_shard),
        kind=file.kind,
        origin=file.origin,
        expected_reason=file.expected_reason,
        width=file.width,
        height=file.height,
        num_bytes=len(file.data),
        sha256=hashlib.sha256(file.data).hexdigest(),
    )


def _write_images(images_dir: Path, files: list[CorpusFile]) -> None:
    for file in files:
        path = images_dir / file.path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(file.data)


def _write_tars(
    tars_dir: Path, files: list[CorpusFile], entries: tuple[CorpusEntry, ...], samples_per_shard: int
) -> tuple[str, ...]:
    shards = []
    for shard_id, start in enumerate(range(0, len(files), samples_per_shard)):
        end = start + samples_per_shard
        with ShardWriter(out_dir=tars_dir, shard_id=shard_id, index_schema=RAW_INDEX_SCHEMA) as writer:
            for file, entry in zip(files[start:end], entries[start:end], strict=True):
                index = {
                    "url": URL_PREFIX + file.path,
                    "status": "success",  # every file downloaded; what is wrong is in the bytes
                    "error_message": None,
                    "width": file.width,
                    "height": file.height,
                }
                writer.write(
                    key=entry.key, files={file.ext: file.data, "json": {"key": entry.key, **index}}, index=index
                )
        shards.append(shard_name(shard_id))
    return tuple(shards)
