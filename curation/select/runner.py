"""Runs the select phase on the score phase's kept candidates: phash dedup -> embedding dedup -> hierarchical
k-means -> balanced sampling, each step's result in its own file under select/, then `selection.parquet`,
`select/rejected.parquet` and `select_stats.json`. Metadata and embeddings only: no pixels are read."""

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from common.reasons import RejectReason
from curation.layout import SELECT_DIR, SELECT_REJECTED, SELECT_STATS, SELECTION
from curation.select.artifacts import fingerprint, read_artifact, write_artifact
from curation.select.balanced_sampling import distribution_stats
from curation.select.candidates import keys_digest, load_kept_candidates
from curation.select.config import SelectConfig
from curation.select.steps import cluster_id_matrix, cluster_step, phash_step, sampling_step, semdedup_step

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
    out = Path(output)
    start = time.perf_counter()
    meta, clip = load_kept_candidates(out)
    fp = fingerprint("candidates", keys_digest(meta["key"]), clip.shape[1], seed)
    alive = np.ones(meta.num_rows, dtype=bool)
    artifacts, done_now = {}, []
    for name in STEPS:
        fp = fingerprint(fp, name, _settings(cfg, name))
        path = out / SELECT_DIR / f"{name}.parquet"
        art = read_artifact(path, fp)
        if art is None:
            log.info("select: %s on %d rows", name, int(alive.sum()))
            t0 = time.perf_counter()
            table, stats = _run_step(name, cfg, seed, meta.filter(pa.array(alive)), clip[alive], artifacts)
            stats["seconds"] = round(time.perf_counter() - t0, 3)
            write_artifact(path, table, stats, fp)
            art = read_artifact(path, fp)  # as a resumed run sees it, so both give the same select_stats.json
            done_now.append(name)
        else:
            log.info("select: %s already done", name)
        artifacts[name] = art
        if name in _REASON:
            alive &= ~pc.is_in(meta["key"], value_set=art.table["key"]).to_numpy(zero_copy_only=False)
    stats = _finish(out, meta, alive, artifacts, seed)
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


def _run_step(name: str, cfg: SelectConfig, seed: int, meta: pa.Table, clip: np.ndarray, done: dict):
    if name == "phash_dedup":
        return phash_step(meta, clip, cfg.phash, seed)
    if name == "semdedup":
        return semdedup_step(meta, clip, cfg.semdedup, seed, list(cfg.phash.keep_by))
    if name == "clustering":
        return cluster_step(meta, clip, cfg.clusters, seed)
    return sampling_step(done["clustering"].table, cfg.sampling, seed)


def _finish(out: Path, meta: pa.Table, alive: np.ndarray, artifacts: dict, seed: int) -> dict:
    clusters = artifacts["clustering"].table
    selected = meta.filter(pa.array(alive))
    chosen = clusters.filter(pc.is_in(clusters["key"], value_set=selected["key"]))
    if chosen["key"].to_pylist() != selected["key"].to_pylist():
        raise RuntimeError("select artifacts are out of step with each other; delete select/ and re-run")
    selection = selected.append_column("cluster_ids", chosen["cluster_ids"]).append_column(
        "leaf_distance", chosen["leaf_distance"]
    )
    _write_parquet(out / SELECTION, selection)
    rejected = pa.concat_tables(
        [
            artifacts[name].table.add_column(
                1, "reject_reason", pa.array([str(reason)] * artifacts[name].table.num_rows, pa.string())
            )
            for name, reason in _REASON.items()
        ]
    )
    _write_parquet(out / SELECT_DIR / SELECT_REJECTED, rejected.sort_by("key"))
    stats = {
        "rows_in": meta.num_rows,
        "kept": selection.num_rows,
        "seed": seed,
        "steps": {name: artifacts[name].stats for name in STEPS},
        "clusters": _cluster_stats(cluster_id_matrix(clusters), cluster_id_matrix(chosen)),
    }
    (out / SELECT_STATS).write_text(json.dumps(stats, indent=2) + "\n")
    return stats


def _cluster_stats(before: np.ndarray, after: np.ndarray) -> dict:
    levels = before.shape[1]

    def per_level(ids: np.ndarray) -> list[dict]:
        rows = []
        for level in range(levels):
            k = int(before[:, level].max()) + 1 if len(before) else 0
            sizes = np.sort(np.bincount(ids[:, level], minlength=k))[::-1]
            rows.append({"level": level + 1, "sizes": sizes.tolist(), "stats": distribution_stats(sizes)})
        return rows

    return {"levels": levels, "before": per_level(before), "after": per_level(after)}


def _write_parquet(path: Path, table: pa.Table) -> None:
    tmp = path.with_name(path.name + ".partial")
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, tmp)
    tmp.replace(path)
