"""`humans1b pretrain`: pretrain a Sapiens2 backbone (MAE + self-distillation) on curated shards.

One process; one per device with `torchrun --nproc-per-node N -m pipelines.cli pretrain ...`; or on a Ray cluster
with `--ray [--address host:port]` (ray_train.workers processes).
"""

import argparse
import os

from common.config import add_config_arguments, config_from_args
from common.training.distributed import cleanup
from pretrain.config import PretrainConfig
from pretrain.ray_train import run_pretrain_ray
from pretrain.run import run_pretrain
from pretrain.train import TrainRun

NAME = "pretrain"
HELP = "pretrain a Sapiens2 backbone on curated shards (MAE + self-distillation); --resume continues a run"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, default_config="configs/pretrain/tiny.yaml")
    parser.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in output")
    parser.add_argument("--ray", action="store_true", help="train under Ray Train (ray_train.workers processes)")
    parser.add_argument("--address", help="Ray cluster to train on (host:port or auto); implies --ray")


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(PretrainConfig, args)
    if args.ray or args.address:
        result = run_pretrain_ray(cfg, address=args.address, resume=args.resume)
    else:
        try:
            result = run_pretrain(cfg, resume=args.resume)
        finally:
            cleanup()
    if int(os.environ.get("RANK", 0)) == 0:  # under torchrun, rank 0 speaks for all
        print(loss_line(result))
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
