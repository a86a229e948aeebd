"""Dense per-pixel tasks on image + target folders: surface normals, albedo, and pointmaps (+ a scale)."""

from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from posttrain.config import DataConfig
from posttrain.data.affine import invert_affine, warp_labels
from posttrain.data.dense_folder import DenseFolder
from posttrain.heads.albedo_head import AlbedoHead
from posttrain.heads.normal_head import NormalHead
from posttrain.heads.pointmap_head import PointmapHead
from posttrain.losses.albedo_loss import AlbedoLoss
from posttrain.losses.normal_loss import NormalLoss
from posttrain.losses.pointmap_loss import PointmapLoss, depth_normalise
from posttrain.metrics.albedo import AlbedoMetric
from posttrain.metrics.normal import NormalMetric
from posttrain.metrics.pointmap import PointmapMetric
from posttrain.tasks.base import Task
from posttrain.visualize import albedo_to_rgb, depth_to_rgb, normals_to_rgb, points_to_depth, save_image


class DenseTask(Task):
    target: ClassVar[str]  # DenseFolder's target folder
    head_class: ClassVar[type[nn.Module]]
    loss_class: ClassVar[type[nn.Module]]

    def build_head(self, dim: int) -> nn.Module:
        return self.head_class(dim, **self.cfg.head_kwargs)

    def build_loss(self) -> nn.Module:
        return self.loss_class(**self.cfg.loss_kwargs)

    def dataset(self, data: DataConfig, *, train: bool) -> DenseFolder:
        self.require(data, "root")
        return DenseFolder(data.root, self.target, self.cfg.input_wh, augment=self.augment(train), seed=self.cfg.seed)

    def losses(self, model, loss, batch, device) -> dict:
        return loss(model(batch["image"].to(device)), batch["target"].to(device), batch["valid"].to(device))

    def update_metric(self, metric, model, batch, device) -> None:
        metric.update(self.output_map(model(batch["image"].to(device))).cpu(), batch["target"], batch["valid"])

    def output_map(self, out) -> torch.Tensor:
        """The head's output as the [B, 3, H, W] map the metric and the files take."""
        return out

    def predict(self, model, images) -> list[dict[str, np.ndarray]]:
        maps = self.output_map(model(images)).float().cpu().numpy()  # [B, 3, H, W]
        return [{self.target: m.transpose(1, 2, 0)} for m in maps]  # [H, W, 3] each

    def write_prediction(self, raw, image, matrix, out_dir: Path, stem: str) -> list[Path]:
        h, w = image.shape[:2]
        inverse = invert_affine(matrix)
        values = warp_labels(raw[self.target].astype(np.float32), inverse, (w, h), fill=np.nan)  # [h, w, 3]
        inside = warp_labels(np.ones(raw[self.target].shape[:2], np.uint8), inverse, (w, h), fill=0).astype(bool)
        raw_file, vis_file = out_dir / f"{stem}_{self.target}.npy", out_dir / f"{stem}_{self.target}.png"
        np.save(raw_file, values)  # NaN outside the network's view of the image
        save_image(vis_file, self.visualise(values, inside))
        return [raw_file, vis_file]

    def visualise(self, values: np.ndarray, valid: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class NormalTask(DenseTask):
    name, target, head_class, loss_class = "normal", "normal", NormalHead, NormalLoss

    def new_metric(self, dataset) -> NormalMetric:
        return NormalMetric()

    def visualise(self, values, valid):
        return normals_to_rgb(np.nan_to_num(values), valid)


class AlbedoTask(DenseTask):
    name, target, head_class, loss_class = "albedo", "albedo", AlbedoHead, AlbedoLoss

    def new_metric(self, dataset) -> AlbedoMetric:
        return AlbedoMetric()

    def visualise(self, values, valid):
        return albedo_to_rgb(np.nan_to_num(values), valid)


class PointmapTask(DenseTask):
    name, target, head_class, loss_class = "pointmap", "pointmap", PointmapHead, PointmapLoss
    with_cls = True

    def losses(self, model, loss, batch, device) -> dict:
        out = model(batch["image"].to(device))
        return loss(out["points"], out["scale"], batch["target"].to(device), batch["valid"].to(device))

    def output_map(self, out) -> torch.Tensor:
        # Points in the target's units: depth-normalised shape x predicted scale (the head's convention).
        valid = torch.ones_like(out["points"][:, :1], dtype=torch.bool)
        return depth_normalise(out["points"], valid)[0] * out["scale"][:, None, None, None]

    def new_metric(self, dataset) -> PointmapMetric:
        return PointmapMetric()

    def visualise(self, values, valid):
        return depth_to_rgb(points_to_depth(np.nan_to_num(values)), valid)
