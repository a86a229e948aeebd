"""Hierarchical k-means + cluster-balanced sampling at select-phase scale on this machine, printed as Markdown.

    .venv/bin/python bench/hkmeans_sampling.py [--n N] [--dim D] [--blobs B] [--fraction F] [--seed S] [--leaf-size L]
    .venv/bin/python bench/hkmeans_sampling.py --planted [--fraction F] [--seeds S [S ...]]

Synthetic CLIP-like embeddings: --n L2-normalised float16 rows of --dim, a mixture of --blobs gaussian blobs with
Zipf-distributed sizes (blob i gets weight 1 / (i + 1)), generated in chunks so only the float16 array is held whole.
Then hierarchical_kmeans with the HierarchyConfig defaults and balanced_sample of --fraction ('r' strategy). Prints
seconds per step, peak RSS (ru_maxrss) after each step, and rows per leaf cluster and per planted blob (the
"concepts" the sampling should even out) before and after sampling.
Targets at n = 10^6, d = 768 on 2 CPUs: <= 10 min in all, peak RSS <= 8 GiB. The default leaf_size (20 rows per
leaf, as in the paper) makes k grow with n and the fit and assignment cost with n^2, hours at 10^6 here: pass
--leaf-size. 10^5 x 768 with --leaf-size 1000 (k 100 / 20 / 4, 10 resampling steps, greedy seeding) took 16 s,
against 2.0 s with the previous 3 steps and AFK-MC² seeding.

--planted measures balance, not scale: a long-tailed mixture of 50 gaussian components in 64-d whose sizes fall from
8,000 to 40 rows (a power law, 21,770 rows; tests/curation/select/test_balance_planted.py uses the same one),
balanced_sample of --fraction (0.2) after hierarchical_kmeans, against uniform random sampling. One row per method,
figures as min-max over --seeds: normalised entropy, Gini and the minimum of the rows kept per component, and the
leaf clusters held (by majority) by the largest component over its proportional share, k_1 * 8,000 / 21,770.
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

from curation.select.balanced_sampling import balanced_sample, distribution_stats, water_fill
from curation.select.hierarchical_kmeans import HierarchyConfig, hierarchical_kmeans

log = logging.getLogger("bench.hkmeans_sampling")

CHUNK = 65_536  # rows generated at a time
COMPONENTS, LARGEST, SMALLEST, PLANTED_DIM = 50, 8000, 40, 64
PLANTED_SPREAD = 0.6  # noise norm around a unit centre: cosine ~0.86 to the own centre, ~0 across components
PREVIOUS_DEFAULTS = {"leaf_size": 1000, "branching": 10, "resampling_steps": 3, "resample_share": 0.25}


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


def planted_sizes() -> np.ndarray:
    """Rows per component: LARGEST * i^-a for i = 1..COMPONENTS, a set so the last one has SMALLEST rows."""
    exponent = np.log(LARGEST / SMALLEST) / np.log(COMPONENTS)
    return np.round(LARGEST * np.arange(1, COMPONENTS + 1) ** -exponent).astype(np.int64)


def planted_mixture(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """[21770, 64] float16 unit rows and the component of each (component 0 the largest)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((COMPONENTS, PLANTED_DIM))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    component = np.repeat(np.arange(COMPONENTS), planted_sizes())
    noise = rng.standard_normal((len(component), PLANTED_DIM)) * PLANTED_SPREAD / np.sqrt(PLANTED_DIM)
    x = centres[component] + noise
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float16), component


def leaves_held(leaf: np.ndarray, component: np.ndarray) -> np.ndarray:
    """[COMPONENTS] number of leaf clusters in which each component has the most rows."""
    table = np.zeros((leaf.max() + 1, COMPONENTS), dtype=np.int64)
    np.add.at(table, (leaf, component), 1)
    return np.bincount(table.argmax(1)[table.sum(1) > 0], minlength=COMPONENTS)


def span(values: list[float], fmt: str) -> str:
    low, high = format(min(values), fmt), format(max(values), fmt)
    return low if low == high else f"{low}-{high}"


def planted(args: argparse.Namespace, argv: list[str]) -> list[str]:
    """Markdown lines: balance of uniform random sampling and of hierarchical k-means variants on the mixture."""
    methods = {
        "uniform random": None,
        "hierarchical k-means, defaults": HierarchyConfig(),
        "defaults with AFK-MC² seeding": HierarchyConfig(seeding="afk-mc2"),
        "previous defaults (AFK-MC², leaf_size 1000, branching 10, 3 steps, share 0.25)": HierarchyConfig(
            seeding="afk-mc2", **PREVIOUS_DEFAULTS
        ),
    }
    rows = {name: [] for name in methods}
    for seed in args.seeds:
        x, component = planted_mixture(seed)
        target = round(args.fraction * len(x))
        for name, config in methods.items():
            start = time.perf_counter()
            if config is None:
                mask = np.zeros(len(x), dtype=bool)
                mask[np.random.default_rng(seed).choice(len(x), target, replace=False)] = True
                clusters, held = "-", None
            else:
                hierarchy = hierarchical_kmeans(x, config, seed=seed, progress=False)
                mask = balanced_sample(hierarchy.level_ids, target, strategy="r", seed=seed)
                leaf = hierarchy.level_ids[:, 0]
                share = hierarchy.clusters[0] * LARGEST / len(x)
                clusters, held = str(hierarchy.clusters), leaves_held(leaf, component)[0] / share
            kept = np.bincount(component[mask], minlength=COMPONENTS)
            stats = distribution_stats(kept)
            rows[name].append(
                (clusters, held, stats["entropy"], stats["gini"], kept.min(), time.perf_counter() - start)
            )
            log.info("seed %d, %s: %s", seed, name, rows[name][-1])
    command = " ".join([".venv/bin/python", "bench/hkmeans_sampling.py", *argv])
    sizes = planted_sizes()
    best = water_fill(sizes, round(args.fraction * sizes.sum()), np.random.default_rng(0))  # balanced by component
    lines = [
        "### Balance on a planted long-tailed mixture",
        "",
        f"{datetime.date.today().isoformat()}; nproc {os.cpu_count()}, faiss {faiss.__version__} "
        f"({faiss.omp_get_max_threads()} OpenMP threads), numpy {np.__version__}, Python {platform.python_version()}",
        "",
        f"`{command}`: {COMPONENTS} components, {int(sizes.sum()):,} rows in {PLANTED_DIM}-d ({LARGEST:,} down to "
        f"{SMALLEST}), {args.fraction:.0%} kept, seeds {args.seeds}; entropy over components "
        f"{distribution_stats(sizes)['entropy']:.3f} before sampling, at most "
        f"{distribution_stats(best)['entropy']:.3f} after",
        "",
        "| selection | clusters per level | largest component's leaves / share | entropy | Gini | min kept | seconds |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name, results in rows.items():
        clusters, held, entropy, gini, kept_min, seconds = zip(*results, strict=True)
        held_text = "-" if held[0] is None else span(list(held), ".2f")
        lines.append(
            f"| {name} | {' / '.join(sorted(set(clusters)))} | {held_text} | {span(list(entropy), '.3f')} "
            f"| {span(list(gini), '.3f')} | {span([int(k) for k in kept_min], 'd')} | {span(list(seconds), '.1f')} |"
        )
    return lines


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
    parser.add_argument("--fraction", type=float, help="share of the rows balanced_sample keeps (0.25; --planted 0.2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--leaf-size", type=int, help="HierarchyConfig.leaf_size (default: the config's)")
    parser.add_argument("--planted", action="store_true", help="balance on the planted mixture instead (see above)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="--planted: seeds to run")
    args = parser.parse_args(argv)
    if args.fraction is None:
        args.fraction = 0.2 if args.planted else 0.25
    if min(args.n, args.dim, args.blobs) < 1 or not 0 < args.fraction <= 1:
        parser.error("--n, --dim and --blobs must be >= 1 and --fraction in (0, 1]")
    if args.leaf_size is not None and args.leaf_size < 1:
        parser.error("--leaf-size must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.planted:
        print("\n".join(planted(args, argv)))
        return 0
    config = HierarchyConfig() if args.leaf_size is None else HierarchyConfig(leaf_size=args.leaf_size)
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
