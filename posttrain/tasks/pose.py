"""Top-down pose: person crops → K heatmaps at 1/4 resolution (UDP targets), keypoint MSE + OHKM, OKS AP."""

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from posttrain.codecs.udp_heatmap import decode, encode
from posttrain.config import DataConfig
from posttrain.data.affine import apply_affine_points, invert_affine
from posttrain.data.coco_keypoints import CocoKeypointDataset, crop_to_image
from posttrain.data.resumable_batches import collate_items
from posttrain.heads.pose_heatmap_head import PoseHeatmapHead
from posttrain.keypoints import flip_heatmaps, load_spec
from posttrain.losses.keypoint_mse_ohkm import KeypointMSEOHKMLoss
from posttrain.metrics.keypoint_ap import KeypointAP
from posttrain.tasks.base import Task
from posttrain.visualize import draw_skeleton, save_image

HEATMAP_STRIDE = 4  # the head's heatmaps are at 1/4 of the input


class PoseTask(Task):
    name = "pose"

    def __init__(self, cfg) -> None:
        super().__init__(cfg)
        self.spec = load_spec(cfg.pose.keypoints)
        w, h = cfg.input_wh
        self.heatmap_wh = (w // HEATMAP_STRIDE, h // HEATMAP_STRIDE)

    def build_head(self, dim: int) -> nn.Module:
        return PoseHeatmapHead(dim, self.spec.num_keypoints, **self.cfg.head_kwargs)

    def build_loss(self) -> nn.Module:
        return KeypointMSEOHKMLoss(**self.cfg.loss_kwargs)

    def dataset(self, data: DataConfig, *, train: bool) -> CocoKeypointDataset:
        self.require(data, "annotations", "root")
        return CocoKeypointDataset(
            data.annotations,
            data.root,
            self.spec.num_keypoints,
            self.spec.flip_index,
            self.cfg.input_wh,
            augment=self.augment(train),
            seed=self.cfg.seed,
        )

    def collate(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        """Heatmap targets are encoded here, in the DataLoader workers."""
        targets = [
            encode(
                i["keypoints"].numpy(), i["visible"].numpy(), self.cfg.input_wh, self.heatmap_wh, self.cfg.pose.sigma
            )
            for i in items
        ]
        batch = collate_items(items)
        batch["heatmaps"] = torch.from_numpy(np.stack([t[0] for t in targets]))  # [B, K, h, w]
        batch["target_weight"] = torch.from_numpy(np.stack([t[1] for t in targets]))  # [B, K]
        return batch

    def losses(self, model, loss, batch, device) -> dict:
        pred = model(batch["image"].to(device))  # [B, K, h, w]
        return loss(pred, batch["heatmaps"].to(device), batch["target_weight"].to(device))

    def heatmaps(self, model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        out = model(images)  # [B, K, h, w]
        if self.cfg.pose.flip_test:  # mirror the image, mirror the heatmaps back and swap left/right channels
            out = (out + flip_heatmaps(model(images.flip(-1)), self.spec.flip_index)) / 2
        return out

    def new_metric(self, dataset: CocoKeypointDataset) -> KeypointAP:
        if self.spec.sigmas is None:
            raise ValueError(
                f"keypoint spec {self.spec.name} has no OKS sigmas: give every keypoint a sigma to score AP"
            )
        metric = KeypointAP(self.spec.sigmas)
        coco = json.loads(Path(dataset.annotation_json).read_text())
        people = [a for a in coco.get("annotations", []) if a.get("image_id") in {i["image_id"] for i in dataset.items}]
        if people:
            metric.add_ground_truth(
                [a["image_id"] for a in people],
                np.asarray([a["keypoints"] for a in people], dtype=np.float64).reshape(len(people), -1, 3),
                np.asarray([a["bbox"] for a in people], dtype=np.float64),
                [a.get("area", a["bbox"][2] * a["bbox"][3]) for a in people],
                [a.get("iscrowd", 0) for a in people],
            )
        return metric

    def update_metric(self, metric: KeypointAP, model, batch, device) -> None:
        keypoints, scores = decode(self.heatmaps(model, batch["image"].to(device)).float().cpu(), self.cfg.input_wh)
        in_image = np.stack([crop_to_image(k, meta) for k, meta in zip(keypoints, batch["meta"], strict=True)])
        metric.add_predictions(
            [meta["image_id"] for meta in batch["meta"]], in_image, scores.mean(axis=1), keypoint_scores=scores
        )

    def predict(self, model, images) -> list[dict[str, np.ndarray]]:
        keypoints, scores = decode(self.heatmaps(model, images).float().cpu(), self.cfg.input_wh)
        return [{"keypoints": k, "scores": s} for k, s in zip(keypoints, scores, strict=True)]

    def write_prediction(self, raw, image, matrix, out_dir: Path, stem: str) -> list[Path]:
        keypoints = apply_affine_points(raw["keypoints"], invert_affine(matrix))  # [K, 2] image pixels
        record = {
            "keypoint_spec": self.spec.name,
            "names": list(self.spec.names),
            "keypoints": [[float(x), float(y), float(s)] for (x, y), s in zip(keypoints, raw["scores"], strict=True)],
        }
        raw_file, vis_file = out_dir / f"{stem}_pose.json", out_dir / f"{stem}_pose.png"
        raw_file.write_text(json.dumps(record) + "\n")
        save_image(vis_file, draw_skeleton(image, keypoints, raw["scores"], self.spec))
        return [raw_file, vis_file]
