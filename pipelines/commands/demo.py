"""`humans1b demo`: the end-to-end run on the sample corpus that `make demo` starts."""

import argparse

from common.config import add_config_arguments, config_from_args
from pipelines.commands.curate import summary_line
from pipelines.demo import DemoConfig, run_demo

NAME = "demo"
HELP = "build the sample corpus and run every curation phase that exists on it, end to end"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    result = run_demo(config_from_args(DemoConfig, args))
    print(f"demo: sample corpus of {result.corpus_files} files")
    s = result.score
    print(summary_line(s.stats, s.seconds, s.shards_done_now, s.shards_total))
    return 0
