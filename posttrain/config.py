"""Typed config of a post-training run (configs/posttrain/*.yaml fill it; any key is overridable as key.sub=value)."""

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING

from common.config import bounded, check_ranges
from common.training.distributed import DistributedConfig
from posttrain.data.augment import AugmentConfig

TASKS = ("pose", "seg", "pointmap", "normal", "albedo")


@dataclass
class BackboneConfig:
    name: str = "0.4b"  # a size of common.models.sizes.SIZES
    # A pretraining run dir (its latest checkpoint), a pretraining model.safetensors, a backbone .safetensors
    # (common.models.save_backbone), or an official sapiens2_*_pretrain.safetensors. None: random init.
    checkpoint: str | None = None
    branch: str = "teacher"  # which backbone of a pretraining checkpoint: teacher (EMA, as DINOv2 uses) or student
    freeze: bool = False  # True: train the head only
    layer_decay: float = bounded(0.85, gt=0, le=1)  # lr · decay^(depth + 1 - layer); 1.0 turns it off
    drop_path_rate: float = bounded(0.0, ge=0, lt=1)


@dataclass
class DataConfig:
    root: str | None = None  # seg / dense: the dataset folder; pose: the image folder
    annotations: str | None = None  # pose: a COCO-format keypoint file


@dataclass(frozen=True)
class AugmentSettings(AugmentConfig):  # AugmentConfig's fields and ranges (see there), and a switch
    enabled: bool = True


@dataclass
class PoseSettings:
    keypoints: str = "sapiens308"  # a builtin spec (coco17, coco_wholebody133, sapiens308) or a spec JSON file
    sigma: float = bounded(2.0, gt=0)  # heatmap Gaussian, heatmap pixels
    flip_test: bool = True  # average with the mirrored image's heatmaps at eval / predict


@dataclass
class PerTask:
    """Keyword arguments per task, for its head (channels, ...) or its loss (term weights, ...)."""

    pose: dict[str, Any] = field(default_factory=dict)
    seg: dict[str, Any] = field(default_factory=dict)
    pointmap: dict[str, Any] = field(default_factory=dict)
    normal: dict[str, Any] = field(default_factory=dict)
    albedo: dict[str, Any] = field(default_factory=dict)


@dataclass
class PosttrainConfig:
    task: str = MISSING  # pose | seg | pointmap | normal | albedo
    output: str = MISSING  # checkpoints/, metrics.jsonl, predictions go here
    image_size: tuple[int, int] = bounded((1024, 768), ge=1)  # (H, W) network input; Sapiens2 trains at 1024 x 768
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    heads: PerTask = field(default_factory=PerTask)  # keyword arguments of each task's head
    losses: PerTask = field(default_factory=PerTask)  # keyword arguments of each task's loss
    pose: PoseSettings = field(default_factory=PoseSettings)
    train_data: DataConfig = field(default_factory=DataConfig)
    val_data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentSettings = field(default_factory=AugmentSettings)
    steps: int = bounded(1000, ge=1)
    batch_size: int = bounded(8, ge=1)  # per process
    num_workers: int = bounded(2, ge=0)
    lr: float = bounded(5e-4, gt=0)  # ViTPose / Sapiens fine-tuning scale for AdamW
    min_lr: float = bounded(0.0, ge=0)
    weight_decay: float = bounded(0.1, ge=0)
    warmup_steps: int = bounded(50, ge=0)  # capped at steps, so a short run of a long config still decays
    grad_clip: float = bounded(1.0, gt=0)
    checkpoint_every: int = bounded(500, ge=1)
    eval_every: int = bounded(0, ge=0)  # steps between evaluations on val_data (0: only `humans1b posttrain eval`)
    log_every: int = bounded(1, ge=1)
    seed: int = bounded(0, ge=0)
    device: str = "auto"  # auto: cuda when present, else cpu
    tensorboard: bool = True
    distributed: DistributedConfig = field(default_factory=DistributedConfig)

    def __post_init__(self) -> None:
        check_ranges(self)
        if self.task != MISSING and self.task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)}, got {self.task!r}")
        if self.backbone.branch not in ("teacher", "student"):
            raise ValueError(f"backbone.branch must be teacher or student, got {self.backbone.branch!r}")

    @property
    def head_kwargs(self) -> dict[str, Any]:
        return dict(getattr(self.heads, self.task))

    @property
    def loss_kwargs(self) -> dict[str, Any]:
        return dict(getattr(self.losses, self.task))

    @property
    def input_wh(self) -> tuple[int, int]:
        """(W, H), the order the datasets and the pose codec use."""
        return int(self.image_size[1]), int(self.image_size[0])
