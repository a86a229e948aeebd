"""`humans1b pretrain --ray`: the same loop as under torchrun, one Ray Train worker per device.

Ray Train's `TorchTrainer` starts `ray_train.workers` actors and joins them in a torch process group (NCCL on GPUs,
gloo on CPUs); each calls `run_pretrain` with its rank, so sharding, checkpoints and resume are those of torchrun.
The output directory must be on storage every worker sees (a shared filesystem on a multi-node cluster).
"""

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from common.config import bounded, to_object
from common.ray_bootstrap import ray_session
from common.training.checkpoint import STATE, latest_checkpoint
from common.training.distributed import DistInfo
from common.training.metrics_log import read_metrics
from pretrain.train import TrainRun

log = logging.getLogger(__name__)


@dataclass
class RayTrainConfig:
    workers: int = bounded(2, ge=1)  # training processes (one per GPU on a GPU cluster)
    cpus_per_worker: float = bounded(1.0, gt=0)  # also feeds the worker's DataLoader processes
    use_gpu: bool = False


def run_pretrain_ray(
    cfg_node: DictConfig, *, address: str | None, resume: bool = False, stop_at: int | None = None
) -> TrainRun:
    """Run the pretraining loop on the Ray cluster at `address` (a local head on 127.0.0.1 when None)."""
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    cfg = to_object(cfg_node)
    out = Path(cfg.output).absolute()
    before = _checkpoint_step(out) if resume else 0
    settings: RayTrainConfig = cfg.ray_train
    loop_config = {"cfg": OmegaConf.to_container(cfg_node, resolve=True), "resume": resume, "stop_at": stop_at}
    with ray_session(address):
        trainer = TorchTrainer(
            _worker_loop,
            train_loop_config=loop_config,
            scaling_config=ScalingConfig(
                num_workers=settings.workers,
                use_gpu=settings.use_gpu,
                resources_per_worker={"CPU": settings.cpus_per_worker},
            ),
            run_config=RunConfig(name="pretrain", storage_path=str(out / "ray_train")),
        )
        trainer.fit()
    state = json.loads((latest_checkpoint(out) / STATE).read_text())
    metrics = [row for row in read_metrics(out) if row["step"] > before]
    return TrainRun(state["step"], metrics, state.get("skipped_nonfinite", 0))


def _worker_loop(config: dict[str, Any]) -> None:
    import ray.train

    from pretrain.config import PretrainConfig  # in the worker process
    from pretrain.run import run_pretrain

    context = ray.train.get_context()
    info = DistInfo(context.get_world_rank(), context.get_world_size(), context.get_local_rank())
    cfg = OmegaConf.merge(OmegaConf.structured(PretrainConfig), config["cfg"])
    run_pretrain(cfg, resume=config["resume"], stop_at=config["stop_at"], info=info)


def _checkpoint_step(out: Path) -> int:
    latest = latest_checkpoint(out)
    return json.loads((latest / STATE).read_text())["step"] if latest is not None else 0
