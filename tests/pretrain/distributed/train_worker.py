"""Run by the distributed tests (directly, or once per rank under torchrun): trains the tiny pretrainer on a fixed
global batch of 4 samples, of which each of the world_size ranks takes its contiguous share."""

import argparse
import os

import torch

from common.training.distributed import DistributedConfig
from pretrain.objective import ObjectiveConfig
from pretrain.train import FixedBatches, LoopConfig, OptimConfig, train

GLOBAL_BATCH = 4


def global_batches(n: int = 2) -> list[dict]:
    gen = torch.Generator().manual_seed(0)

    def views(count: int, h: int, w: int) -> torch.Tensor:
        low = torch.rand(count, GLOBAL_BATCH, 3, h // 8, w // 8, generator=gen)
        smooth = torch.nn.functional.interpolate(low.flatten(0, 1), size=(h, w), mode="bilinear")
        return smooth.unflatten(0, (count, GLOBAL_BATCH))

    return [{"global": views(2, 64, 48), "local": views(2, 32, 32)} for _ in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--strategy", default="ddp")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--stop-at", type=int)
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    share = GLOBAL_BATCH // world
    mine = [{k: v[:, rank * share : (rank + 1) * share] for k, v in b.items()} for b in global_batches()]
    cfg = LoopConfig(
        steps=args.steps,
        device="cpu",
        checkpoint_every=2,
        teacher_temp_warmup_steps=2,
        tensorboard=False,
        objective=ObjectiveConfig(
            backbone="tiny",
            decoder_dim=32,
            decoder_depth=1,
            decoder_heads=2,
            prototypes=64,
            head_hidden=64,
            head_bottleneck=16,
            drop_path_rate=0.0,
        ),
        optim=OptimConfig(lr=1e-3, warmup_steps=1),
        distributed=DistributedConfig(strategy=args.strategy, backend="gloo"),
    )
    train(cfg, FixedBatches(mine), args.out, resume=args.resume, stop_at=args.stop_at)


if __name__ == "__main__":
    main()
