"""Runs the download phase: read the URL lists, plan output shards, skip those whose `_stats.json` exists and whose
tar and parquet still have the sizes it records, download the rest as Ray tasks (one per shard), then sum every
shard's stats."""

import logging
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import ray
from omegaconf import DictConfig
from tqdm import tqdm

from common.completion_marker import load_marker, trust_marker
from common.config import ConfigError, save_resolved_config, to_object
from common.ray_bootstrap import ray_session
from common.shard_writer import shard_paths
from curation.download.config import DownloadConfig
from curation.download.shard_download import download_shard, urls_fingerprint
from curation.download.url_table import URL, read_url_table, sample_keys

log = logging.getLogger(__name__)

CONFIG_NAME = "download_config.yaml"


@dataclass
class DownloadRun:
    stats: dict  # count, successes, failed_to_download, error_kinds: summed over every shard
    shards_done_now: int
    shards_total: int
    seconds: float


def _read_stats(out: Path, shard_id: int) -> dict | None:
    return load_marker(shard_paths(out, shard_id)["stats"])


@ray.remote
def _download_task(cfg: DownloadConfig, shard_id: int, table: pa.Table, start: int, shard_count: int, out: str) -> dict:
    shard = table.slice(start, cfg.number_sample_per_shard)
    keys = sample_keys(shard_id, shard.num_rows, cfg.number_sample_per_shard, shard_count)
    return download_shard(cfg, shard_id, shard, keys, out)


def _check_resume_matches(out: Path, table: pa.Table, n: int, shard_count: int) -> list[int]:
    """The shard ids still to download: no `_stats.json`, or a tar or parquet that no longer has the size it records
    (one stat per file; trust_marker logs and removes what it cannot trust). A finished shard of a different URL list
    is an error, not a skip."""
    todo = []
    for shard_id in range(shard_count):
        stats = _read_stats(out, shard_id)
        if stats is None:
            todo.append(shard_id)
        elif stats.get("urls_sha256") != urls_fingerprint(table[URL].slice(shard_id * n, n).to_pylist()):
            raise RuntimeError(
                f"{shard_paths(out, shard_id)['stats']} was written for other URLs than the input now gives that "
                "shard: the URL list or number_sample_per_shard changed since that run; write to a new output folder"
            )
        elif not trust_marker(shard_paths(out, shard_id)["stats"], stats, shard=f"shard {shard_id:05d}"):
            todo.append(shard_id)
    return todo


def run_download(cfg_node: DictConfig) -> DownloadRun:
    cfg: DownloadConfig = to_object(cfg_node)
    if not cfg.input:
        raise ConfigError("no input given: set input=[urls.parquet, urls.csv, urls.jsonl or a folder of them]")
    out = Path(cfg.output)
    table = read_url_table(cfg)
    n = cfg.number_sample_per_shard
    shard_count = -(-table.num_rows // n)
    todo = _check_resume_matches(out, table, n, shard_count)
    save_resolved_config(cfg_node, out, name=CONFIG_NAME)
    start = time.perf_counter()
    if todo:
        log.info("%d of %d output shards to download (%d URLs in all)", len(todo), shard_count, table.num_rows)
        with ray_session(cfg.address, num_cpus=cfg.num_cpus, host=cfg.host):
            table_ref = ray.put(table)  # once, not once per task
            task = _download_task.options(num_cpus=cfg.task_num_cpus)
            pending = [task.remote(cfg, sid, table_ref, sid * n, shard_count, str(out)) for sid in todo]
            with tqdm(total=len(pending), desc="download shards", unit="shard") as bar:
                while pending:
                    done, pending = ray.wait(pending, num_returns=1)
                    ray.get(done)  # re-raises a task's error here
                    bar.update(len(done))
    else:
        log.info("all %d output shards already downloaded; nothing to do", shard_count)
    return DownloadRun(_sum_stats(out, shard_count), len(todo), shard_count, time.perf_counter() - start)


def _sum_stats(out: Path, shard_count: int) -> dict:
    totals: Counter = Counter()
    kinds: Counter = Counter()
    for shard_id in range(shard_count):
        stats = _read_stats(out, shard_id)
        totals.update({k: stats[k] for k in ("count", "successes", "failed_to_download")})
        kinds.update(stats["error_kinds"])
    return {
        **{k: totals[k] for k in ("count", "successes", "failed_to_download")},
        "error_kinds": dict(sorted(kinds.items())),
    }


def summary_line(run: DownloadRun) -> str:
    s = run.stats
    errors = ", ".join(f"{kind} {n}" for kind, n in s["error_kinds"].items()) or "none"
    return (
        f"download: {s['count']} URLs, {s['successes']} downloaded, {s['failed_to_download']} failed ({errors}); "
        f"{run.shards_done_now}/{run.shards_total} shards downloaded now"
    )
