"""Runs the select phase on the score phase's kept candidates: phash dedup -> embedding dedup -> hierarchical
k-means -> balanced sampling, then `selection.parquet/`, `select/rejected.parquet/` and `select_stats.json`.
Metadata and embeddings only: no pixels are read.

Everything runs as Ray tasks on the session's cluster (local by default) and reads the run directory from the
workers: the candidate parts are indexed once into `select/rows/` (metadata + memory-mapped float16 embeddings per
part), and each step writes per-part files under `select/<step>/`, then `_done.json` with its fingerprint. The driver
holds per-part counts and the steps' summaries, never rows. A re-run resumes at the first missing or outdated step.
"""

import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import ray

from common.ray_bootstrap import ray_session
from common.reasons import RejectReason
from curation.layout import CANDIDATES_DIR, SELECT_DIR, SELECT_REJECTED, SELECT_STATS, SELECTION
from curation.select.alive_rows import AliveRows
from curation.select.artifacts import fingerprint
from curation.select.balanced_sampling import distribution_stats
from curation.select.cluster_steps import cluster_task, sample_task
from curation.select.config import SelectConfig
from curation.select.finish import finish_part
from curation.select.phash_partitioned import phash_dedup_partitioned
from curation.select.semdedup_partitioned import semdedup_partitioned
from curation.select.step_files import finish_step, read_done, removed_counts, start_step, step_dir
from curation.select.store import Store, build_store
from curation.select.tasks import run_tasks, select_task

log = logging.getLogger(__name__)

STEPS = ("phash_dedup", "semdedup", "clustering", "sampling")
_REASON = {
    "phash_dedup": RejectReason.DUP_PHASH,
    "semdedup": RejectReason.DUP_EMBEDDING,
    "sampling": RejectReason.BALANCE_DOWNSAMPLED,
}


@dataclass
class SelectRun:
    stats: dict
    steps_done_now: list[str]
    seconds: float


def run_select(output: str | Path, cfg: SelectConfig, *, seed: int) -> SelectRun:
    """On the Ray session already up, else on a local one started for this call."""
    if ray.is_initialized():
        return _run(Path(output), cfg, seed)
    with ray_session(None):
        return _run(Path(output), cfg, seed)


def _run(out: Path, cfg: SelectConfig, seed: int) -> SelectRun:
    start = time.perf_counter()
    nodes: set[str] = set()
    store = build_store(out, out / CANDIDATES_DIR)
    fp = fingerprint("candidates", store.digest, store.dim, seed)
    budget = int(cfg.memory_gib * 2**30)
    removals: list[tuple[Path, dict[int, int]]] = []
    done_steps, done_now = {}, []
    for name in STEPS:
        fp = fingerprint(fp, name, _settings(cfg, name))
        folder = step_dir(out, name)
        done = read_done(folder, fp)
        if done is None:
            rows = AliveRows.after(store, [f for f, _ in removals], [r for _, r in removals])
            rows.fit_budget_bytes = budget // 2  # the other half for faiss's own buffers and the per-row arrays
            rows.task_gpus = cfg.task_gpus
            log.info("select: %s on %d rows", name, len(rows))
            start_step(folder)
            step_nodes: set[str] = set()
            t0 = time.perf_counter()
            stats, removed = _run_step(name, cfg, seed, rows, folder, budget, step_nodes, done_steps)
            stats["seconds"] = round(time.perf_counter() - t0, 3)
            stats["nodes"] = sorted(step_nodes)
            done = finish_step(folder, fp, stats, removed)
            done_now.append(name)
        else:
            log.info("select: %s already done", name)
        nodes.update(done["stats"].get("nodes", []))
        done_steps[name] = done
        if name in _REASON:
            removals.append((folder, removed_counts(done)))
    stats = _finish(out, store, done_steps, seed, nodes)
    return SelectRun(stats, done_now, time.perf_counter() - start)


def _settings(cfg: SelectConfig, name: str) -> dict:
    sections = {
        "phash_dedup": cfg.phash,
        "semdedup": cfg.semdedup,
        "clustering": cfg.clusters,
        "sampling": cfg.sampling,
    }
    settings = asdict(sections[name])
    if name == "semdedup":
        settings["keep_by"] = list(cfg.phash.keep_by)  # both dedup steps keep the same preferred row
    return settings


def _run_step(
    name: str, cfg: SelectConfig, seed: int, rows: AliveRows, folder: Path, budget: int, nodes: set, done: dict
) -> tuple[dict, dict[int, int]]:
    if name == "phash_dedup":
        return phash_dedup_partitioned(rows.store, cfg.phash, folder, budget_bytes=budget, nodes=nodes)
    if name == "semdedup":
        keep_by = list(cfg.phash.keep_by)
        return semdedup_partitioned(
            rows, cfg.semdedup, folder, seed=seed, keep_by=keep_by, budget_bytes=budget, nodes=nodes
        )
    if name == "clustering":
        result = run_tasks(
            [select_task(cluster_task).remote(rows, cfg.clusters, seed, str(folder))],
            desc="select: hierarchical k-means",
            nodes=nodes,
        )[0]
        nodes.update(result["nodes"])
        return result["stats"], {}
    clustering = step_dir(rows.store.folder.parent.parent, "clustering")
    result = run_tasks(
        [select_task(sample_task).remote(rows.store, str(clustering), cfg.sampling, seed, str(folder))],
        desc="select: balanced sampling",
        nodes=nodes,
    )[0]
    return result["stats"], result["removed_per_part"]


def _finish(out: Path, store: Store, done: dict, seed: int, nodes: set[str]) -> dict:
    ks = done["clustering"]["stats"]["clusters_per_level"]
    selection, rejected = out / SELECTION, out / SELECT_DIR / SELECT_REJECTED
    staged = {path: path.with_name(path.name + ".partial") for path in (selection, rejected)}
    for path in staged.values():
        _remove(path)
        path.mkdir(parents=True)
    removals = [(str(step_dir(out, name)), str(reason)) for name, reason in _REASON.items()]
    clustering = str(step_dir(out, "clustering"))
    task = select_task(finish_part)
    totals = {
        "rows": 0,
        "kept": 0,
        "before": [np.zeros(k, np.int64) for k in ks],
        "after": [np.zeros(k, np.int64) for k in ks],
    }

    def fold(result: dict) -> None:
        totals["rows"] += result["rows"]
        totals["kept"] += result["kept"]
        for key in ("before", "after"):
            for level, sizes in enumerate(result[key]):
                totals[key][level] += sizes

    run_tasks(
        [
            task.remote(
                str(store.folder),
                int(s),
                int(c),
                removals,
                clustering,
                ks,
                str(staged[selection]),
                str(staged[rejected]),
            )
            for s, c in zip(store.shard_ids, store.counts, strict=True)
        ],
        desc="select: write selection",
        nodes=nodes,
        fold=fold,
    )
    for path, tmp in staged.items():  # the finished folders replace the old outputs only once complete
        _remove(path)
        tmp.rename(path)
    stats = {
        "rows_in": totals["rows"],
        "kept": totals["kept"],
        "seed": seed,
        "steps": {name: done[name]["stats"] for name in STEPS},
        "clusters": {
            "levels": len(ks),
            "before": _per_level(totals["before"]),
            "after": _per_level(totals["after"]),
        },
        "nodes": sorted(nodes),
    }
    tmp = out / (SELECT_STATS + ".partial")
    tmp.write_text(json.dumps(stats, indent=2) + "\n")
    tmp.replace(out / SELECT_STATS)
    return stats


def _per_level(sizes_per_level: list[np.ndarray]) -> list[dict]:
    rows = []
    for level, sizes in enumerate(sizes_per_level):
        ranked = np.sort(sizes)[::-1]
        rows.append({"level": level + 1, "sizes": ranked.tolist(), "stats": distribution_stats(ranked)})
    return rows


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()
