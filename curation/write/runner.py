"""Runs the write phase: selection.parquet (sorted by key) cut into shards of `shard_size` rows, one Ray task per
shard not yet complete, then manifest.json. A shard's `_stats.json` marks it complete and records its plan (a digest
of its keys and the write settings) and the size and SHA-256 of its tar and parquet, so a re-run skips finished
shards, rewrites one whose files no longer have their recorded sizes, and refuses ones from another selection."""

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import ray
from tqdm import tqdm

from common.completion_marker import load_marker, trust_marker
from common.image_decode import DecodeConfig
from common.shard_writer import shard_name, shard_paths
from curation.layout import MANIFEST, SCORE_STATS, SELECTION, SHARDS_DIR, PhaseNotRunError
from curation.write.config import WriteConfig
from curation.write.shard_task import write_shard

log = logging.getLogger(__name__)


@dataclass
class WriteRun:
    manifest: dict
    shards_done_now: int
    seconds: float


def plan_shards(selection: pa.Table, shard_size: int) -> list[pa.Table]:
    """Rows in key order (keys are hashes: a shuffle that never changes), `shard_size` per shard."""
    rows = selection.sort_by("key")
    return [rows.slice(start, shard_size) for start in range(0, rows.num_rows, shard_size)]


def plan_digest(rows: pa.Table, cfg: WriteConfig, decode: DecodeConfig) -> str:
    settings = json.dumps([asdict(cfg), asdict(decode)], sort_keys=True, default=str)
    text = settings + "\n" + "\n".join(rows["key"].to_pylist())
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _shard_stats(out: Path, shard_id: int) -> dict:
    return json.loads(shard_paths(out, shard_id)["stats"].read_text())


def run_write(output: str | Path, cfg: WriteConfig, decode: DecodeConfig, *, config_hash: str) -> WriteRun:
    """Needs a connected Ray (the caller's ray_session)."""
    out = Path(output)
    start = time.perf_counter()
    shards_dir = out / SHARDS_DIR
    plans = plan_shards(read_selection(out), cfg.shard_size)
    digests = [plan_digest(rows, cfg, decode) for rows in plans]
    todo = shards_to_write(shards_dir, digests)
    _refuse_extra_shards(shards_dir, len(plans))
    if todo:
        log.info("write: %d of %d shards to write", len(todo), len(plans))
        task = ray.remote(num_cpus=cfg.num_cpus)(write_shard)
        pending = [task.remote(str(shards_dir), i, plans[i], cfg, decode, digests[i]) for i in todo]
        nodes = set()
        with tqdm(total=len(pending), desc="write shards", unit="shard", disable=None) as bar:
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                nodes.update(result["node"] for result in ray.get(ready))
                bar.update(len(ready))
        record_nodes(out, "write", nodes)
    else:
        log.info("write: all %d shards already written", len(plans))
    manifest = _write_manifest(out, shards_dir, len(plans), config_hash)
    return WriteRun(manifest, len(todo), time.perf_counter() - start)


def record_nodes(out: Path, phase: str, nodes: set[str]) -> None:
    """Adds the Ray nodes that ran `phase` in this run to the run's stats.json (next to the score stages')."""
    path = out / SCORE_STATS
    if not path.exists():
        return
    stats = json.loads(path.read_text())
    stats.setdefault("nodes", {})[phase] = sorted(nodes)
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(json.dumps(stats, indent=2) + "\n")
    tmp.replace(path)


def read_selection(out: Path) -> pa.Table:
    """selection.parquet; one that cannot be read (cut off, overwritten) counts as missing: select makes it again."""
    path = out / SELECTION
    if not path.exists():
        raise PhaseNotRunError(f"{path} is missing: run `humans1b curate select` (or `humans1b curate`) first")
    try:
        return pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as err:
        log.warning("%s cannot be read (%s): treated as missing", path, err)
        raise PhaseNotRunError(
            f"{path} cannot be read ({err}): run `humans1b curate select` (or `humans1b curate`) again to redo it"
        ) from err


def shards_to_write(shards_dir: Path, digests: list[str]) -> list[int]:
    """Shards without a marker, or whose tar or parquet no longer has the size its marker records (one stat per
    file; trust_marker logs and removes what it cannot trust). A marker of another plan is refused."""
    todo = []
    for shard_id, digest in enumerate(digests):
        path = shard_paths(shards_dir, shard_id)["stats"]
        stats = load_marker(path)
        if stats is None:
            todo.append(shard_id)
        elif stats.get("plan") != digest:
            raise RuntimeError(
                f"{shard_paths(shards_dir, shard_id)['tar']} was written from another selection or other write "
                f"settings; write to a new output directory or delete {shards_dir}"
            )
        elif not trust_marker(path, stats, shard=f"shard {shard_name(shard_id)}"):
            todo.append(shard_id)
    return todo


def _refuse_extra_shards(shards_dir: Path, planned: int) -> None:
    extra = sorted(p.name for p in shards_dir.glob("*_stats.json") if int(p.name.split("_")[0]) >= planned)
    if extra:
        raise RuntimeError(
            f"{shards_dir} holds shards beyond the {planned} planned ({extra[0]}, ...): "
            "it was written from another selection; use a new output directory"
        )


def _write_manifest(out: Path, shards_dir: Path, n_shards: int, config_hash: str) -> dict:
    shards, failed = [], []
    for shard_id in range(n_shards):
        stats = _shard_stats(shards_dir, shard_id)
        name = shard_name(shard_id)
        shards.append({"tar": f"{name}.tar", "index": f"{name}.parquet", "samples": stats["count"]})
        failed.extend(stats.get("failed", []))
    manifest = {
        "shards": shards,
        "samples": sum(s["samples"] for s in shards),
        "config_hash": config_hash,
        "failed": failed,
    }
    tmp = out / (MANIFEST + ".partial")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    tmp.replace(out / MANIFEST)
    return manifest
