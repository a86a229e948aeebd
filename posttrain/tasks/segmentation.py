"""Body-part segmentation: 29 classes, class-weighted cross-entropy + Dice, mIoU / aAcc."""

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from posttrain.config import DataConfig
from posttrain.data.affine import invert_affine, warp_labels
from posttrain.data.segmentation_folder import SegmentationFolder
from posttrain.heads.segmentation_head import SegmentationHead
from posttrain.losses.segmentation_ce_dice import SegmentationCEDiceLoss
from posttrain.metrics.segmentation import SegmentationMetric
from posttrain.segmentation_classes import CLASSES, FLIP_INDEX
from posttrain.tasks.base import Task
from posttrain.visualize import overlay_parts, save_image

IGNORE = 255


class SegmentationTask(Task):
    name = "seg"

    def build_head(self, dim: int) -> nn.Module:
        return SegmentationHead(dim, len(CLASSES), **self.cfg.head_kwargs)

    def build_loss(self) -> nn.Module:
        return SegmentationCEDiceLoss(len(CLASSES), ignore_index=IGNORE, **self.cfg.loss_kwargs)

    def dataset(self, data: DataConfig, *, train: bool) -> SegmentationFolder:
        self.require(data, "root")
        return SegmentationFolder(
            data.root,
            self.cfg.input_wh,
            FLIP_INDEX,
            augment=self.augment(train),
            seed=self.cfg.seed,
            ignore_index=IGNORE,
        )

    def losses(self, model, loss, batch, device) -> dict:
        labels = batch["mask"].to(device)  # [B, H, W]
        return loss(model(batch["image"].to(device), out_size=tuple(labels.shape[-2:])), labels)

    def new_metric(self, dataset) -> SegmentationMetric:
        return SegmentationMetric(len(CLASSES), ignore_index=IGNORE, class_names=CLASSES)

    def update_metric(self, metric: SegmentationMetric, model, batch, device) -> None:
        labels = batch["mask"]
        logits = model(batch["image"].to(device), out_size=tuple(labels.shape[-2:]))
        metric.update(logits.argmax(1).cpu(), labels)

    def predict(self, model, images) -> list[dict[str, np.ndarray]]:
        labels = model(images, out_size=tuple(images.shape[-2:])).argmax(1).to(torch.uint8).cpu().numpy()
        return [{"labels": item} for item in labels]  # [H, W]

    def write_prediction(self, raw, image, matrix, out_dir: Path, stem: str) -> list[Path]:
        h, w = image.shape[:2]
        labels = warp_labels(raw["labels"], invert_affine(matrix), (w, h), fill=IGNORE)  # [h, w] in the image
        raw_file, vis_file = out_dir / f"{stem}_seg.png", out_dir / f"{stem}_seg_overlay.png"
        Image.fromarray(labels.astype(np.uint8), mode="L").save(raw_file)  # class ids, 255 outside the crop
        save_image(vis_file, overlay_parts(image, labels.astype(np.int64), ignore_index=IGNORE))
        return [raw_file, vis_file]
