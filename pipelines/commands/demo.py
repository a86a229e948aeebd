"""`humans1b demo`: the end-to-end run on the sample corpus that `make demo` starts."""

import argparse

from common.config import add_config_arguments, config_from_args
from pipelines.demo import DemoConfig, run_demo

NAME = "demo"
HELP = "build the sample corpus and run every curation step that exists on it, end to end"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    stats = run_demo(config_from_args(DemoConfig, args))
    rejected = ", ".join(f"{reason} {n}" for reason, n in stats["rejected"].items())
    print(f"demo: {stats['rows_in']} images in, {stats['kept']} kept in {stats['shards']} shards; rejected: {rejected}")
    return 0
