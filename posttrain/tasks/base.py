"""What a post-training task supplies to the shared train / eval / predict code: its head, loss, datasets, metric,
and how raw outputs become files. One subclass per task (pose.py, segmentation.py, dense.py)."""

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from posttrain.config import DataConfig, PosttrainConfig
from posttrain.data.augment import AugmentConfig
from posttrain.data.resumable_batches import collate_items


class Task(ABC):
    name: ClassVar[str]
    with_cls: ClassVar[bool] = False  # the head also takes the [CLS] token

    def __init__(self, cfg: PosttrainConfig) -> None:
        self.cfg = cfg

    @abstractmethod
    def build_head(self, dim: int) -> nn.Module: ...

    @abstractmethod
    def build_loss(self) -> nn.Module: ...

    @abstractmethod
    def dataset(self, data: DataConfig, *, train: bool) -> Dataset: ...

    @abstractmethod
    def losses(self, model: nn.Module, loss: nn.Module, batch: dict[str, Any], device: torch.device) -> dict: ...

    @abstractmethod
    def new_metric(self, dataset: Dataset) -> Any: ...

    @abstractmethod
    def update_metric(self, metric: Any, model: nn.Module, batch: dict[str, Any], device: torch.device) -> None: ...

    @abstractmethod
    def predict(self, model: nn.Module, images: torch.Tensor) -> list[dict[str, np.ndarray]]:
        """Network-resolution outputs per image of a batch [B, 3, H, W]."""

    @abstractmethod
    def write_prediction(
        self, raw: dict[str, np.ndarray], image: np.ndarray, matrix: np.ndarray, out_dir: Path, stem: str
    ) -> list[Path]:
        """Raw outputs mapped back to the original `image` [h, w, 3] (`matrix`: image → network input) and their
        visualisations, written under `out_dir`; returns the files."""

    def collate(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        return collate_items(items)

    def augment(self, train: bool) -> AugmentConfig | None:
        a = self.cfg.augment
        if not train or not a.enabled:
            return None
        return AugmentConfig(
            flip_p=a.flip_p,
            scale_range=tuple(a.scale_range),
            rotate_p=a.rotate_p,
            rotate_deg=a.rotate_deg,
            shift_p=a.shift_p,
            shift_frac=a.shift_frac,
        )

    def require(self, data: DataConfig, *fields: str) -> None:
        missing = [f for f in fields if getattr(data, f) is None]
        if missing:
            raise ValueError(
                f"the {self.name} task needs {', '.join(missing)} in its data section (train_data/val_data)"
            )
