"""Top-down person crops and their keypoints from a COCO-format keypoint file (any keypoint count K).

One item per person annotation that is not crowd, has at least one labelled keypoint and a positive-size bbox;
the rest are skipped and counted in `skipped`. Items hold keypoints in crop pixels, not heatmaps: a codec encodes
them. Order of operations: bbox -> center/scale at the input aspect (x `padding`) -> augment shift, scale and
rotation in one warp -> flip of the warped crop (x' = (W - 1) - x) with keypoints re-indexed by `flip_index`.
`meta["matrix"]` is the whole image->crop map, flip included; `crop_to_image` inverts it.
"""

import json
import logging
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from posttrain.data.affine import (
    apply_affine_points,
    box_to_center_scale,
    compose_affine,
    flip_matrix,
    invert_affine,
    warp_image,
)
from posttrain.data.augment import (
    NO_AUGMENT,
    AugmentConfig,
    augment_generator,
    augmented_region,
    check_flip_index,
    sample_augment,
)
from posttrain.data.image_io import image_to_tensor, read_rgb

log = logging.getLogger(__name__)


class CocoKeypointDataset(Dataset):
    def __init__(
        self,
        annotation_json: str | Path,
        image_root: str | Path,
        num_keypoints: int,
        flip_index: Sequence[int],
        input_size: tuple[int, int],  # (W, H)
        augment: AugmentConfig | None = None,
        seed: int = 0,
        padding: float = 1.25,
    ) -> None:
        self.annotation_json = Path(annotation_json)
        self.image_root = Path(image_root)
        self.num_keypoints = num_keypoints
        self.flip_index = check_flip_index(flip_index, num_keypoints, "flip_index")
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.augment, self.seed, self.padding, self.epoch = augment, seed, padding, 0
        self.skipped: Counter[str] = Counter()
        self.items = self._load()
        log.info("%s: %d person annotations, skipped %s", self.annotation_json, len(self.items), dict(self.skipped))

    def _load(self) -> list[dict[str, Any]]:
        with self.annotation_json.open() as f:
            coco = json.load(f)
        files = {image["id"]: image["file_name"] for image in coco.get("images", [])}
        items = []
        for ann in coco.get("annotations", []):
            keypoints = np.asarray(ann.get("keypoints", []), dtype=np.float64)
            if keypoints.size != 3 * self.num_keypoints:
                raise ValueError(
                    f"{self.annotation_json}: annotation {ann.get('id')} has {keypoints.size} keypoint values, "
                    f"expected 3 x num_keypoints = {3 * self.num_keypoints}; pass the keypoint spec of this file"
                )
            keypoints = keypoints.reshape(self.num_keypoints, 3)  # [K, (x, y, v)]
            bbox = np.asarray(ann.get("bbox", []), dtype=np.float64)
            if ann.get("iscrowd", 0):
                self.skipped["crowd"] += 1
            elif ann.get("num_keypoints", int((keypoints[:, 2] > 0).sum())) <= 0:
                self.skipped["no_keypoints"] += 1
            elif bbox.shape != (4,) or not np.isfinite(bbox).all() or bbox[2] <= 0 or bbox[3] <= 0:
                self.skipped["invalid_bbox"] += 1
            elif ann.get("image_id") not in files:
                self.skipped["unknown_image"] += 1
            else:
                items.append(
                    {
                        "image_id": ann["image_id"],
                        "file_name": files[ann["image_id"]],
                        "id": ann.get("id", -1),
                        "bbox": bbox,
                        "keypoints": keypoints,
                    }
                )
        return items

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = self.items[index]
        aug = NO_AUGMENT
        if self.augment is not None:
            aug = sample_augment(self.augment, augment_generator(self.seed, self.epoch, index))
        image_file = self.image_root / item["file_name"]
        rgb = read_rgb(image_file)  # [h, w, 3]

        out_w, out_h = self.input_size
        center, scale = box_to_center_scale(item["bbox"], out_w / out_h, self.padding)
        center, scale, matrix = augmented_region(center, scale, aug, self.input_size)
        crop = warp_image(rgb, matrix, self.input_size)  # [H, W, 3]
        keypoints = apply_affine_points(item["keypoints"][:, :2], matrix)  # [K, 2]
        labelled = item["keypoints"][:, 2] > 0
        if aug.flip:
            crop = crop[:, ::-1]
            matrix = compose_affine(flip_matrix(out_w), matrix)
            keypoints = keypoints[self.flip_index]
            keypoints[:, 0] = (out_w - 1) - keypoints[:, 0]
            labelled = labelled[self.flip_index]
        inside = (keypoints >= 0).all(axis=1) & (keypoints[:, 0] <= out_w - 1) & (keypoints[:, 1] <= out_h - 1)
        return {
            "image": image_to_tensor(crop),  # [3, H, W]
            "keypoints": torch.from_numpy(keypoints).float(),  # [K, 2] crop pixels
            "visible": torch.from_numpy(labelled & inside).float(),  # [K]
            "meta": {
                "image_id": item["image_id"],
                "annotation_id": item["id"],
                "image_file": str(image_file),
                "center": center,
                "scale": scale,
                "bbox": item["bbox"],
                "matrix": matrix,  # [2, 3] image -> crop, flip included
                "flipped": aug.flip,
            },
        }


def crop_to_image(points: np.ndarray | torch.Tensor, meta: dict[str, Any]) -> np.ndarray:
    """Crop-pixel points [K, 2] of one item back to original image pixels.

    Positions only: in a flipped crop, keypoint i is the original's keypoint flip_index[i].
    """
    points = points.detach().cpu().numpy() if isinstance(points, torch.Tensor) else np.asarray(points)
    matrix = meta["matrix"]
    matrix = matrix.detach().cpu().numpy() if isinstance(matrix, torch.Tensor) else np.asarray(matrix)
    return apply_affine_points(points, invert_affine(matrix))
