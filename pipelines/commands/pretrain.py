"""`humans1b pretrain`: pretrain a Sapiens2 backbone (MAE + self-distillation) on curated shards."""

import argparse

from common.config import add_config_arguments, config_from_args
from pretrain.config import PretrainConfig
from pretrain.run import run_pretrain
from pretrain.train import TrainRun

NAME = "pretrain"
HELP = "pretrain a Sapiens2 backbone on curated shards (MAE + self-distillation); --resume continues a run"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, default_config="configs/pretrain/tiny.yaml")
    parser.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in output")


def run(args: argparse.Namespace) -> int:
    print(loss_line(run_pretrain(config_from_args(PretrainConfig, args), resume=args.resume)))
    return 0


def loss_line(result: TrainRun) -> str:
    """The mean loss over the first and the last fifth of the steps this run made."""
    losses = [m["loss"] for m in result.metrics]
    if not losses:
        return f"pretrain: already at step {result.step}; nothing to do"
    n = max(1, len(losses) // 5)
    first, last = sum(losses[:n]) / n, sum(losses[-n:]) / n
    return (
        f"pretrain: step {result.step}; loss {first:.4f} (mean of the first {n} steps) -> {last:.4f} (last {n}); "
        f"non-finite steps skipped: {result.skipped_nonfinite}"
    )
