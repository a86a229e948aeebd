"""`humans1b stats DIR`: the curation stats report of a run directory, from whichever phases have run."""

import argparse
import sys
from pathlib import Path

from common.errors import UsageError
from curation.report import ReportConfig, build_report

NAME = "stats"
HELP = "write DIR/report/: a self-contained index.html, stats.json and PNG plots of a curation run"


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = ReportConfig()
    parser.add_argument("dir", type=Path, metavar="DIR", help="run directory (stats.json, selection.parquet, ...)")
    counts = {
        "--top-clusters": (defaults.top_clusters, "largest top-level clusters shown as thumbnail grids"),
        "--thumbs-per-cluster": (defaults.thumbs_per_cluster, "thumbnails per cluster"),
        "--thumb-size": (defaults.thumb_size, "thumbnail side in px (>= 8)"),
        "--dup-examples": (defaults.dup_examples, "removed/kept pairs shown per dedup method"),
        "--seed": (defaults.seed, "which rows the thumbnails and pairs show"),
    }
    for flag, (default, text) in counts.items():
        parser.add_argument(flag, type=_count, default=default, metavar="N", help=f"{text} (default {default})")


def run(args: argparse.Namespace) -> int:
    try:
        config = ReportConfig(
            top_clusters=args.top_clusters,
            thumbs_per_cluster=args.thumbs_per_cluster,
            thumb_size=args.thumb_size,
            dup_examples=args.dup_examples,
            seed=args.seed,
        )
        result = build_report(args.dir, config=config)
    except UsageError as err:  # an out-of-range flag, or a directory without phase output: named in the message
        return _usage_error(str(err))
    print(f"report: {result.html}")
    return 0


def _usage_error(message: str) -> int:
    sys.stderr.write(f"humans1b stats: {message}\n")
    return 2
