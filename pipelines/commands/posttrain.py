"""`humans1b posttrain train | eval | predict --task pose|seg|pointmap|normal|albedo`: task heads on a Sapiens2
backbone. train runs on one process, or one per device under `torchrun --nproc-per-node N -m pipelines.cli posttrain
train ...`; eval scores a run on val_data; predict writes outputs and visualisations for image files or folders."""

import argparse
import os

from common.config import add_config_arguments, load_config
from common.errors import UsageError
from common.training.distributed import cleanup
from posttrain.config import TASKS, PosttrainConfig
from posttrain.run import run_eval, run_predict, run_train

NAME = "posttrain"
HELP = "train, evaluate or run a task head (pose, seg, pointmap, normal, albedo) on a Sapiens2 backbone"
ACTIONS = ("train", "eval", "predict")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=ACTIONS)
    parser.add_argument("--task", choices=TASKS, help="the task (else the config's `task`)")
    add_config_arguments(parser, default_config="configs/posttrain/tiny.yaml")
    parser.add_argument("--resume", action="store_true", help="train: continue from the latest checkpoint in output")
    parser.add_argument("--checkpoint", help="eval / predict: a post-training run dir or its model.safetensors")
    parser.add_argument("--inputs", nargs="+", default=[], help="predict: image files or folders")


def run(args: argparse.Namespace) -> int:
    overrides = [*args.overrides, *([f"task={args.task}"] if args.task else [])]
    cfg = load_config(PosttrainConfig, config_path=args.config, overrides=overrides)
    if args.action == "train":
        try:
            result = run_train(cfg, resume=args.resume)
        finally:
            cleanup()
        if int(os.environ.get("RANK", 0)) == 0:
            print(f"posttrain {cfg.task}: step {result.step}; {loss_change(result.metrics)}")
    elif args.action == "eval":
        results = run_eval(cfg, args.checkpoint)
        print(f"eval {cfg.task}: " + ", ".join(f"{k} {v:.4g}" for k, v in results.items()))
    else:
        if not args.inputs:
            raise UsageError("predict needs --inputs: image files or folders")
        files = run_predict(cfg, args.inputs, args.checkpoint)
        print(f"predict {cfg.task}: {len(files)} files in {files[0].parent if files else cfg.output}")
    return 0


def loss_change(metrics: list[dict]) -> str:
    losses = [m["loss"] for m in metrics if not m.get("skipped")]
    if not losses:
        return "nothing to do"
    n = max(1, len(losses) // 5)
    return f"loss {sum(losses[:n]) / n:.4f} (first {n} steps) -> {sum(losses[-n:]) / n:.4f} (last {n})"
