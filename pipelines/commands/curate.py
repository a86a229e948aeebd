"""`humans1b curate <phase>`: the curation phases, each runnable on local Ray or on a cluster (--address)."""

import argparse

from common.config import add_config_arguments
from curation.score.config import load_score_config
from curation.score.runner import run_score

NAME = "curate"
HELP = "run a curation phase (score) on local Ray or a cluster"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    phases = parser.add_subparsers(dest="phase", metavar="PHASE", required=True)
    score = phases.add_parser(
        "score",
        help="decode, validate, hash and score every input image into candidates/*.parquet",
        description="Stream raw images through the score stages; every input row ends in candidates/ with its reason.",
    )
    add_config_arguments(score)
    score.add_argument("--address", help="Ray cluster to run on (host:port, ray://host:port or auto)")
    score.set_defaults(phase_run=run_score_command)


def run_score_command(args: argparse.Namespace) -> int:
    overrides = list(args.overrides) + ([f"address={args.address}"] if args.address else [])
    result = run_score(load_score_config(args.config, overrides))
    print(summary_line(result.stats, result.seconds, result.shards_done_now, result.shards_total))
    return 0


def summary_line(stats: dict, seconds: float, done_now: int, total: int) -> str:
    rejected = ", ".join(f"{reason} {n}" for reason, n in stats["rejected"].items()) or "none"
    scored_rows = stats["rows_in"] if done_now == total else None
    rate = f"{scored_rows / seconds:.1f} images/s" if scored_rows and seconds > 0 else f"{done_now}/{total} shards"
    return f"score: {stats['rows_in']} rows in, {stats['kept']} kept; rejected: {rejected}; {rate}"


def run(args: argparse.Namespace) -> int:
    return args.phase_run(args)
