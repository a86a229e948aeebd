"""Hierarchical k-means + cluster-balanced sampling at select-phase scale on this machine, printed as Markdown.

    .venv/bin/python bench/hkmeans_sampling.py [--n N] [--dim D] [--blobs B] [--fraction F] [--seed S]

Synthetic CLIP-like embeddings: --n L2-normalised float16 rows of --dim, a mixture of --blobs gaussian blobs with
Zipf-distributed sizes (blob i gets weight 1 / (i + 1)), generated in chunks so only the float16 array is held whole.
Then hierarchical_kmeans with the HierarchyConfig defaults and balanced_sample of --fraction ('r' strategy). Prints
seconds per step, peak RSS (ru_maxrss) after each step, and rows per leaf cluster and per planted blob (the
"concepts" the sampling should even out) before and after sampling.
Targets at n = 10^6, d = 768 on 2 CPUs: <= 10 min in all, peak RSS <= 8 GiB.
"""

import argparse
import datetime
import logging
import os
import platform
import resource
import sys
import time
from dataclasses import asdict

import faiss
import numpy as np

from curation.select.balanced_sampling import balanced_sample, distribution_stats
from curation.select.hierarchical_kmeans import HierarchyConfig, hierarchical_kmeans

log = logging.getLogger("bench.hkmeans_sampling")

CHUNK = 65_536  # rows generated at a time


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # Linux reports KiB


def synthetic_embeddings(n: int, dim: int, blobs: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """[n, dim] float16 unit rows and the blob of each. Blob spreads vary (cosine to the centre ~0.6-0.9), so some
    blobs are tight and some diffuse, as CLIP concepts are."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((blobs, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    weights = 1.0 / np.arange(1, blobs + 1)
    blob = rng.choice(blobs, n, p=weights / weights.sum()).astype(np.int32)
    spread = rng.uniform(0.5, 1.3, blobs).astype(np.float32) / np.sqrt(dim)  # noise norm 0.5-1.3 around a unit centre
    out = np.empty((n, dim), dtype=np.float16)
    for start in range(0, n, CHUNK):
        ids = blob[start : start + CHUNK]
        x = centres[ids] + spread[ids, None] * rng.standard_normal((len(ids), dim), dtype=np.float32)
        out[start : start + len(ids)] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out, blob


def stats_row(name: str, sizes: np.ndarray) -> str:
    s = distribution_stats(sizes)
    return (
        f"| {name} | {s['count']} | {s['total']:.0f} | {s['min']:.0f} | {s['median']:.0f} | {s['max']:.0f} "
        f"| {s['entropy']:.3f} | {s['gini']:.3f} |"
    )


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000, help="embeddings")
    parser.add_argument("--dim", type=int, default=768, help="embedding dimension (CLIP ViT-L/14: 768)")
    parser.add_argument("--blobs", type=int, default=5000, help="gaussian blobs (concepts), Zipf-sized")
    parser.add_argument("--fraction", type=float, default=0.25, help="share of the rows balanced_sample keeps")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if min(args.n, args.dim, args.blobs) < 1 or not 0 < args.fraction <= 1:
        parser.error("--n, --dim and --blobs must be >= 1 and --fraction in (0, 1]")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    config = HierarchyConfig()
    steps: list[tuple[str, float, float]] = []  # name, seconds, peak RSS after it

    def timed(name: str, fn, *fn_args, **kwargs):
        log.info("%s ...", name)
        start = time.perf_counter()
        result = fn(*fn_args, **kwargs)
        steps.append((name, time.perf_counter() - start, peak_rss_gib()))
        log.info("%s: %.1f s, peak RSS %.2f GiB", name, steps[-1][1], steps[-1][2])
        return result

    embeddings, blob = timed("generate embeddings", synthetic_embeddings, args.n, args.dim, args.blobs, args.seed)
    hierarchy = timed("hierarchical_kmeans", hierarchical_kmeans, embeddings, config, seed=args.seed)
    target = round(args.fraction * args.n)
    mask = timed(
        "balanced_sample",
        balanced_sample,
        hierarchy.level_ids,
        target,
        strategy="r",
        leaf_distance=hierarchy.leaf_distance,
        seed=args.seed,
    )
    leaf = hierarchy.level_ids[:, 0]
    leaves = len(hierarchy.centroids[0])

    command = " ".join([".venv/bin/python", "bench/hkmeans_sampling.py", *argv])
    lines = [
        "### Hierarchical k-means + balanced sampling",
        "",
        f"{datetime.date.today().isoformat()}; nproc {os.cpu_count()}, faiss {faiss.__version__} "
        f"({faiss.omp_get_max_threads()} OpenMP threads), numpy {np.__version__}, Python {platform.python_version()}",
        "",
        f"`{command}`: n = {args.n:,}, d = {args.dim}, {args.blobs} blobs; clusters per level {hierarchy.clusters}; "
        f"kept {int(mask.sum()):,} of {args.n:,}",
        "",
        f"HierarchyConfig: {asdict(config)}",
        "",
        "| step | seconds | peak RSS after (GiB) |",
        "|---|---:|---:|",
        *[f"| {name} | {seconds:.1f} | {rss:.2f} |" for name, seconds, rss in steps],
        f"| **clustering + sampling** | {sum(s for name, s, _ in steps if name != 'generate embeddings'):.1f} | |",
        "",
        "| rows per | groups | rows | min | median | max | entropy | Gini |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        stats_row("leaf cluster, before sampling", np.bincount(leaf, minlength=leaves)),
        stats_row("leaf cluster, after sampling", np.bincount(leaf[mask], minlength=leaves)),
        stats_row("planted blob, before sampling", np.bincount(blob, minlength=args.blobs)),
        stats_row("planted blob, after sampling", np.bincount(blob[mask], minlength=args.blobs)),
    ]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
