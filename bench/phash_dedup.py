"""Phash dedup at scale on this machine, printed as a Markdown table for docs/BENCHMARKS.md.

    .venv/bin/python bench/phash_dedup.py [--sizes N [N ...]] [--distance T] [--seed S] [--recall-queries Q]

For each size n: n random 64-bit hashes, 1 % of them replaced by near copies of others (1-4 random bits flipped).
Two fresh Python processes per size, so each peak RSS (ru_maxrss) belongs to one measurement:
1. near_duplicate_pairs on the distinct values, timed; then recall: for --recall-queries planted copies, brute force
   (xor + popcount against all n hashes) lists every hash within the distance, and recall is the share of those
   pairs the index returned. Pairs it returned that brute force rejects are counted too (must be 0).
2. phash_dedup on a candidate table (key, phash, aesthetic, max_person_short_side), timed: grouping of exact values,
   the pair search, connected components and the keep rule.
"x per 10x" is the time growth per tenfold n against the previous size: 10 is linear, 100 quadratic.
"""

import argparse
import datetime
import json
import logging
import math
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curation.select.phash_dedup import PhashDedupConfig, phash_dedup
from curation.select.phash_index import MAX_DISTANCE, index_plan, near_duplicate_pairs

log = logging.getLogger("bench.phash_dedup")

PLANTED_SHARE = 0.01
MAX_PLANTED_BITS = 4
BRUTE_FORCE_ELEMENTS = 1 << 24  # hash comparisons per brute-force block: 128 MiB of uint64


def planted_hashes(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n hashes, the last 1 % near copies of random earlier ones; returns the hashes and the copies' positions."""
    rng = np.random.default_rng(seed)
    hashes = rng.integers(0, 2**64, size=n, dtype=np.uint64)
    copies = np.arange(n - int(n * PLANTED_SHARE), n)
    bases = rng.integers(0, copies[0], size=len(copies))
    bits = np.argsort(rng.random((len(copies), 64)), axis=1)[:, :MAX_PLANTED_BITS].astype(np.uint64)
    flipped = np.arange(MAX_PLANTED_BITS) < rng.integers(1, MAX_PLANTED_BITS + 1, size=len(copies))[:, None]
    masks = np.bitwise_or.reduce(np.where(flipped, np.uint64(1) << bits, np.uint64(0)), axis=1)
    hashes[copies] = hashes[bases] ^ masks
    return hashes, copies


def rss_mib(peak: bool) -> float:
    if peak:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def recall(distinct: np.ndarray, left: np.ndarray, right: np.ndarray, queries: np.ndarray, t: int) -> tuple[float, int]:
    """Share of the brute-force pairs of `queries` (indices into distinct) that (left, right) holds; wrong pairs."""
    n = len(distinct)
    found = np.concatenate([left * n + right, right * n + left])  # both directions, query first
    found = found[np.isin(found // n, queries)]
    truth = []
    block = max(1, BRUTE_FORCE_ELEMENTS // n)
    for start in range(0, len(queries), block):
        q = queries[start : start + block]
        rows, cols = np.nonzero(np.bitwise_count(distinct[q][:, None] ^ distinct[None, :]) <= t)
        keep = cols != q[rows]
        truth.append(q[rows[keep]] * n + cols[keep])
    truth = np.concatenate(truth)
    hit = np.isin(truth, found).sum()
    return float(hit / len(truth)), len(np.setdiff1d(found, truth))


def child_pairs(n: int, t: int, seed: int, queries: int) -> dict:
    hashes, copies = planted_hashes(n, seed)
    distinct = np.unique(hashes)
    before = rss_mib(peak=False)
    start = time.perf_counter()
    left, right = near_duplicate_pairs(distinct, t)
    seconds = time.perf_counter() - start
    peak = rss_mib(peak=True)
    sample = np.random.default_rng(seed + 1).choice(copies, size=min(queries, len(copies)), replace=False)
    share, wrong = recall(distinct, left, right, np.searchsorted(distinct, hashes[sample]), t)
    return {"distinct": len(distinct), "pairs": len(left), "seconds": seconds, "peak": peak, "before": before,
            "recall": share, "wrong": wrong, "queries": len(sample)}  # fmt: skip


def child_dedup(n: int, t: int, seed: int) -> dict:
    hashes, _ = planted_hashes(n, seed)
    rng = np.random.default_rng(seed + 2)
    table = pa.table(
        {
            "key": pc.cast(pa.array(np.arange(n)), pa.string()),
            "phash": pa.array(hashes),
            "aesthetic": pa.array(rng.uniform(1, 10, n).astype(np.float32)),
            "max_person_short_side": pa.array(rng.uniform(0, 2000, n).astype(np.float32)),
        }
    )
    before = rss_mib(peak=False)
    start = time.perf_counter()
    result = phash_dedup(table, PhashDedupConfig(max_distance=t))
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "peak": rss_mib(peak=True), "before": before, "removed": result.removed}


def run_child(mode: str, args: argparse.Namespace, n: int) -> dict:
    command = [sys.executable, __file__, "--child", mode, "--sizes", str(n), "--distance", str(args.distance)]
    command += ["--seed", str(args.seed), "--recall-queries", str(args.recall_queries)]
    log.info("%s, n = %d", mode, n)
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True)  # progress bars go to stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def per_tenfold(seconds: float, previous: tuple[int, float] | None, n: int) -> str:
    if previous is None:
        return "-"
    return f"{(seconds / previous[1]) ** (1 / math.log10(n / previous[0])):.1f}x"


def machine() -> str:
    lines = Path("/proc/cpuinfo").read_text().splitlines()
    models = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    return (
        f"nproc {os.cpu_count()} ({models[0] if models else platform.processor()}), {memory:.0f} GiB; "
        f"numpy {np.__version__}, pyarrow {pa.__version__}, Python {platform.python_version()}"
    )


def table(args: argparse.Namespace, rows: list[tuple[int, dict, dict]]) -> list[str]:
    lines = [
        "| n | distinct | plan | pairs | near_duplicate_pairs (s) | x per 10x | peak RSS (MiB) | before (MiB) "
        "| recall | wrong pairs | phash_dedup (s) | x per 10x | peak RSS (MiB) | before (MiB) | removed |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    previous_pairs = previous_dedup = None
    for n, p, d in rows:
        plan = index_plan(args.distance, p["distinct"])
        layout = f"{len(plan.combos)} tables, >= {plan.key_bits}-bit keys"
        lines.append(
            f"| {n:,} | {p['distinct']:,} | {layout} | {p['pairs']:,} | {p['seconds']:.2f} "
            f"| {per_tenfold(p['seconds'], previous_pairs, n)} | {p['peak']:.0f} | {p['before']:.0f} "
            f"| {p['recall']:.4f} ({p['queries']} queries) | {p['wrong']} | {d['seconds']:.2f} "
            f"| {per_tenfold(d['seconds'], previous_dedup, n)} | {d['peak']:.0f} | {d['before']:.0f} "
            f"| {d['removed']:,} |"
        )
        previous_pairs, previous_dedup = (n, p["seconds"]), (n, d["seconds"])
    return lines


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000, 10_000_000])
    parser.add_argument("--distance", type=int, default=4, help="Hamming radius (DESIGN.md default: 4)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--recall-queries", type=int, default=2000, help="planted copies checked by brute force")
    parser.add_argument("--child", choices=["pairs", "dedup"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if min(args.sizes) < 100 or args.recall_queries < 1:
        parser.error("--sizes must be >= 100 (1 % are planted copies) and --recall-queries >= 1")
    if not 1 <= args.distance <= MAX_DISTANCE:
        parser.error(f"--distance must be in [1, {MAX_DISTANCE}]")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.child:
        n = args.sizes[0]
        if args.child == "pairs":
            print(json.dumps(child_pairs(n, args.distance, args.seed, args.recall_queries)))
        else:
            print(json.dumps(child_dedup(n, args.distance, args.seed)))
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    rows = [(n, run_child("pairs", args, n), run_child("dedup", args, n)) for n in args.sizes]
    command = " ".join([".venv/bin/python", "bench/phash_dedup.py", *argv])
    lines = ["### Phash dedup", "", f"{datetime.date.today().isoformat()}; {machine()}", "", f"`{command}`", ""]
    print("\n".join(lines + table(args, rows)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
