"""Image + class-id mask pairs from a folder: `<root>/images/<stem>.<jpg|png|...>` and `<root>/masks/<stem>.png`.

Masks are single-channel class ids (palette PNGs give their indices). The whole image is letterboxed into the input
size, with the augment's shift, scale and rotation in the same warp (bilinear for the image, nearest for the mask;
mask pixels from outside the image get `ignore_index`, image pixels 0); a flip then mirrors both and maps every
class to its mirror class with `class_flip_index`.
"""

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from posttrain.data.affine import compose_affine, fit_center_scale, flip_matrix, warp_image, warp_labels
from posttrain.data.augment import (
    NO_AUGMENT,
    AugmentConfig,
    augment_generator,
    augmented_region,
    check_flip_index,
    sample_augment,
)
from posttrain.data.image_io import image_to_tensor, list_images, missing_error, read_label_png, read_rgb

log = logging.getLogger(__name__)


class SegmentationFolder(Dataset):
    def __init__(
        self,
        root: str | Path,
        input_size: tuple[int, int],  # (W, H)
        class_flip_index: Sequence[int],  # its length is the number of classes
        augment: AugmentConfig | None = None,
        seed: int = 0,
        ignore_index: int = 255,
    ) -> None:
        self.root = Path(root)
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.num_classes = len(class_flip_index)
        self.class_flip_index = check_flip_index(class_flip_index, self.num_classes, "class_flip_index")
        if not (0 <= ignore_index <= np.iinfo(np.uint16).max) or ignore_index < self.num_classes:
            raise ValueError(
                f"ignore_index must be in [{self.num_classes}, 65535] (not a class id), got {ignore_index}"
            )
        self.ignore_index, self.augment, self.seed, self.epoch = ignore_index, augment, seed, 0
        # Flip remapping as a lookup table over every value a valid mask can hold.
        self._flip_lut = np.arange(ignore_index + 1, dtype=np.int64)
        self._flip_lut[: self.num_classes] = self.class_flip_index

        images = list_images(self.root / "images")
        masks_dir = self.root / "masks"
        missing = [stem for stem in images if not (masks_dir / f"{stem}.png").is_file()]
        if missing:
            raise missing_error("mask", f"{masks_dir}/<stem>.png", missing)
        self.samples = [(stem, path, masks_dir / f"{stem}.png") for stem, path in images.items()]
        log.info("%s: %d image/mask pairs, %d classes", self.root, len(self.samples), self.num_classes)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        stem, image_path, mask_path = self.samples[index]
        aug = NO_AUGMENT
        if self.augment is not None:
            aug = sample_augment(self.augment, augment_generator(self.seed, self.epoch, index))
        rgb = read_rgb(image_path)  # [h, w, 3]
        mask = self._read_mask(mask_path, rgb.shape[:2])  # [h, w]

        out_w = self.input_size[0]
        center, scale = fit_center_scale((rgb.shape[1], rgb.shape[0]), self.input_size)
        _, _, matrix = augmented_region(center, scale, aug, self.input_size)
        image = warp_image(rgb, matrix, self.input_size)  # [H, W, 3]
        # uint16: cv2 warps 16-bit maps; every value is a class id or ignore_index <= 65535 (checked above).
        mask = warp_labels(mask.astype(np.uint16), matrix, self.input_size, fill=self.ignore_index).astype(np.int64)
        if aug.flip:
            image = image[:, ::-1]
            mask = self._flip_lut[mask[:, ::-1]]
            matrix = compose_affine(flip_matrix(out_w), matrix)
        return {
            "image": image_to_tensor(image),  # [3, H, W]
            "mask": torch.from_numpy(np.ascontiguousarray(mask)),  # [H, W] int64
            "stem": stem,
            "matrix": matrix,  # [2, 3] image -> input pixels, flip included
            "flipped": aug.flip,
        }

    def _read_mask(self, path: Path, image_hw: tuple[int, int]) -> np.ndarray:
        mask = read_label_png(path)
        if mask.shape != tuple(image_hw):
            raise ValueError(f"{path}: mask is {mask.shape} (H, W) but its image is {tuple(image_hw)}; they must match")
        bad = ((mask >= self.num_classes) & (mask != self.ignore_index)) | (mask < 0)
        if bad.any():
            values = np.unique(mask[bad])[:10].tolist()
            raise ValueError(
                f"{path}: mask holds values {values}, neither one of the {self.num_classes} class ids "
                f"(0..{self.num_classes - 1}) nor ignore_index={self.ignore_index}; "
                "fix the mask or pass the matching class list"
            )
        return mask
