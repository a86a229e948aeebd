"""The stats report (`build_report`, what `humans1b stats` runs) on a synthetic run of N rows: time and peak memory.

    .venv/bin/python bench/report_scale.py --rows 1000000 [--dim 16] [--layout parts|file] [--data DIR] [--seed S]

Builds (or reuses, when DIR holds one of the same rows / dim / seed / layout) a synthetic scored run
(bench/synthetic_candidates.py, 10,000 rows per part), then, part by part, what the select phase would add:
`selection.parquet` and `select/rejected.parquet` (--layout parts: directories of one part file per candidate part;
file: single files written a row group at a time), 3 % phash and 1 % embedding duplicates of an earlier row, 10 %
downsampled, cluster ids on three levels (64 / 8 / 2 clusters, long-tailed) and `select_stats.json`. A small --dim
keeps the embeddings, which the report never reads, from dominating the files.

The report then runs in a fresh process (`--measure`); it prints the seconds of build_report, the resident memory
after the imports and the peak (ru_maxrss), and, as its last line, `rows=N seconds=S peak_rss_mib=M`.
Thumbnails point at files that do not exist: they become placeholders, so no image is decoded.
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.synthetic_candidates import write_synthetic_run
from common.schemas import candidate_schema
from curation.select.balanced_sampling import distribution_stats

HYGIENE = {"YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "0", "HF_HUB_OFFLINE": "1", "RAY_USAGE_STATS_ENABLED": "0"}
LEAVES, LEVELS = 64, 3  # leaf l belongs to l // 8 on level 2 and l // 32 on level 3
SHARES = {"dup_phash": 0.03, "dup_embedding": 0.01, "balance_downsampled": 0.10}
STEPS = {"dup_phash": "phash_dedup", "dup_embedding": "semdedup", "balance_downsampled": "sampling"}


def selection_schema() -> pa.Schema:
    fields = [f for f in candidate_schema(1) if f.name in ("key", "source", "member", "head_pose")]
    return pa.schema([*fields, ("cluster_ids", pa.list_(pa.int32(), LEVELS)), ("leaf_distance", pa.float32())])


REJECTED_SCHEMA = pa.schema([("key", pa.string()), ("reject_reason", pa.string()), ("dup_of", pa.string())])


def _select_part(kept: pa.Table, rng: np.random.Generator) -> tuple[pa.Table, pa.Table, np.ndarray, np.ndarray]:
    """(selection rows, rejected rows, leaf of the rows clustered, whether each of those was selected)."""
    n = kept.num_rows
    edges = np.cumsum(list(SHARES.values()))
    fate = np.searchsorted(edges, rng.random(n))  # 0 phash dup, 1 embedding dup, 2 downsampled, 3 selected
    fate[:1] = 3  # a duplicate copies an earlier row: the first has none
    keys = kept["key"].to_numpy(zero_copy_only=False)
    weights = 1.0 / np.arange(1, LEAVES + 1)
    leaf = rng.choice(LEAVES, n, p=weights / weights.sum()).astype(np.int32)
    dup = fate < 2
    dup_of = np.full(n, None, dtype=object)
    dup_of[dup] = keys[(rng.random(int(dup.sum())) * np.flatnonzero(dup)).astype(np.int64)]
    reasons = np.array(list(SHARES), dtype=object)
    out = fate < 3
    rejected = pa.table(
        {"key": keys[out], "reject_reason": reasons[fate[out]], "dup_of": dup_of[out]}, schema=REJECTED_SCHEMA
    )
    chosen = fate == 3
    ids = np.stack([leaf, leaf // 8, leaf // 32], axis=1)[chosen]
    selection = kept.filter(pa.array(chosen)).select(["key", "source", "member", "head_pose"])
    selection = selection.append_column("cluster_ids", pa.FixedSizeListArray.from_arrays(pa.array(ids.ravel()), LEVELS))
    selection = selection.append_column("leaf_distance", pa.array(rng.random(int(chosen.sum())).astype(np.float32)))
    clustered = fate >= 2
    return selection.cast(selection_schema()), rejected, leaf[clustered], chosen[clustered]


def _level_sizes(leaf_counts: np.ndarray) -> list[dict]:
    out = []
    for level, size in enumerate((1, 8, 32), start=1):
        sizes = np.sort(leaf_counts.reshape(-1, size).sum(axis=1))[::-1]
        out.append({"level": level, "sizes": sizes.tolist(), "stats": distribution_stats(sizes)})
    return out


def write_select_outputs(run: Path, layout: str, seed: int) -> dict:
    """What the select phase leaves, part by part: memory is one part whatever the rows."""
    (run / "select").mkdir(exist_ok=True)
    selection_path, rejected_path = run / "selection.parquet", run / "select" / "rejected.parquet"
    writers = {}
    if layout == "parts":
        selection_path.mkdir()
        rejected_path.mkdir()
    else:
        writers = {"selection": pq.ParquetWriter(selection_path, selection_schema())}
        writers["rejected"] = pq.ParquetWriter(rejected_path, REJECTED_SCHEMA)
    rows_in, reasons = 0, dict.fromkeys(SHARES, 0)
    before, after = np.zeros(LEAVES, np.int64), np.zeros(LEAVES, np.int64)
    for i, part in enumerate(sorted((run / "candidates").glob("part-*.parquet"))):
        table = pq.read_table(part, columns=["key", "source", "member", "head_pose", "reject_reason"])
        kept = table.filter(pc.is_null(table["reject_reason"]))
        selection, rejected, leaf, chosen = _select_part(kept, np.random.default_rng([seed, i]))
        rows_in += kept.num_rows
        for entry in pc.value_counts(rejected["reject_reason"]).to_pylist():
            reasons[entry["values"]] += entry["counts"]
        before += np.bincount(leaf, minlength=LEAVES)
        after += np.bincount(leaf[chosen], minlength=LEAVES)
        if writers:
            writers["selection"].write_table(selection)
            writers["rejected"].write_table(rejected)
        else:
            pq.write_table(selection, selection_path / f"part-{i:05d}.parquet")
            pq.write_table(rejected, rejected_path / f"part-{i:05d}.parquet")
    for writer in writers.values():
        writer.close()
    steps, alive = {}, rows_in
    for reason, step in STEPS.items():
        steps[step] = {"in": alive, "kept": alive - reasons[reason], "rejected": {reason: reasons[reason]}}
        alive -= reasons[reason]
        if step == "semdedup":
            steps["clustering"] = {"in": alive, "kept": alive, "rejected": {}, "clusters_per_level": [64, 8, 2]}
    stats = {"rows_in": rows_in, "kept": alive, "seed": seed, "steps": steps}
    stats["clusters"] = {"levels": LEVELS, "before": _level_sizes(before), "after": _level_sizes(after)}
    (run / "select_stats.json").write_text(json.dumps(stats, indent=2) + "\n")
    return stats


def prepare(run: Path, rows: int, dim: int, layout: str, seed: int) -> None:
    shape_file = run / "report_scale.json"
    wanted = {"rows": rows, "dim": dim, "layout": layout, "seed": seed}
    if shape_file.exists() and json.loads(shape_file.read_text()) == wanted:
        shutil.rmtree(run / "report", ignore_errors=True)
        return
    if run.exists():
        shutil.rmtree(run)
    t0 = time.perf_counter()
    write_synthetic_run(run, rows, dim, seed=seed, progress=sys.stderr.isatty())
    write_select_outputs(run, layout, seed)
    print(f"synthetic run: {rows} rows x {dim}, {layout}, in {time.perf_counter() - t0:.0f} s", flush=True)
    shape_file.write_text(json.dumps(wanted))


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) / 1024


def measure(run: Path) -> None:
    """The child: the report of `run`, then one JSON line of its figures."""
    from curation.report.build import build_report  # matplotlib and all: imported before the clock starts

    baseline = rss_mib()
    t0 = time.perf_counter()
    result = build_report(run)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
    stats = json.loads(result.stats.read_text())
    rows = (stats.get("resolution") or {}).get("count")
    print(json.dumps({"seconds": seconds, "baseline_rss_mib": baseline, "peak_rss_mib": peak, "rows_read": rows}))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=16)
    parser.add_argument("--layout", choices=("parts", "file"), default="parts", help="selection / rejected layout")
    parser.add_argument("--data", type=Path, help="run directory to build or reuse (default: a temp dir)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args(argv)
    if args.measure:
        measure(args.measure)
        return 0
    scratch = Path(tempfile.mkdtemp(prefix="report-scale-"))
    try:
        run = args.data or scratch / "run"
        prepare(run, args.rows, args.dim, args.layout, args.seed)
        for name in ("home", "mpl"):
            (scratch / name).mkdir()
        env = {**os.environ, **HYGIENE, "HOME": str(scratch / "home"), "MPLCONFIGDIR": str(scratch / "mpl")}
        command = [sys.executable, str(Path(__file__).resolve()), "--measure", str(run)]
        out = subprocess.run(command, env=env, stdout=subprocess.PIPE, text=True, check=True).stdout
        figures = json.loads(out.strip().splitlines()[-1])
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"rows read by the report: {figures['rows_read']}; RSS after imports {figures['baseline_rss_mib']:.0f} MiB")
    print(f"rows={args.rows} seconds={figures['seconds']:.1f} peak_rss_mib={figures['peak_rss_mib']:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
