"""`humans1b demo`: the end-to-end run on the sample corpus that `make demo` starts."""

import argparse

from common.config import add_config_arguments, config_from_args
from pipelines.commands.curate import summary_lines
from pipelines.commands.pretrain import loss_line
from pipelines.demo import DemoConfig, run_demo

NAME = "demo"
HELP = "build the sample corpus and run the whole curation on it, end to end, with the tiny models"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    result = run_demo(config_from_args(DemoConfig, args))
    c = result.curate
    print(f"demo: sample corpus of {result.corpus_files} files")
    for line in summary_lines(c.score, c.select, c.write):
        print(line)
    print(f"demo: shards in {result.curated_dir / 'shards'}; open the report: {c.report.html}")
    print(loss_line(result.pretrain))
    print(f"demo: checkpoints and metrics.jsonl in {result.pretrain_dir}")
    for task, files in result.predictions.items():
        print(f"demo: posttrain {task} predict (untrained head): {len(files)} files in {files[0].parent}")
    return 0
