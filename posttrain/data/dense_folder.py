"""Images with a dense 3-channel target (surface normals, pointmaps or albedo) from a folder.

Layout: `<root>/images/<stem>.<jpg|png|...>`, `<root>/<target>/<stem>.npy|.npz|.exr` ([H, W, 3] floats; in an npz the
key `arr_0` or the target's name) and optionally `<root>/masks/<stem>.png` (non-zero = valid). A pixel is valid when
its target is finite and, if a mask exists, the mask is non-zero. EXR targets need the OpenEXR package (the `exr`
extra) or an OpenCV built with OpenEXR and OPENCV_IO_ENABLE_OPENEXR=1 set before cv2 is imported; otherwise their
samples are skipped, counted and logged.

Augmentation. The image is letterboxed into the input size with the augment's shift, scale and rotation in one
warp (bilinear for the image, nearest for target and validity so values are never blended across depth edges),
then a flip mirrors everything. Targets are kept physically consistent, in camera axes with x right and y down
(`y_up=True` for y-up conventions): an image rotation about the optical axis rotates the (x, y) components of normals
and points by the same angle, a flip negates their x; scale and shift only change the intrinsics, so they leave
normals and points as they are; albedo is unchanged by all of them.
"""

import importlib.util
import logging
import os
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any, BinaryIO, Literal

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from posttrain.data.affine import compose_affine, fit_center_scale, flip_matrix, warp_image, warp_labels
from posttrain.data.augment import (
    NO_AUGMENT,
    AugmentConfig,
    augment_generator,
    augmented_region,
    rotate_vectors,
    sample_augment,
)
from posttrain.data.image_io import image_to_tensor, list_images, missing_error, read_label_png, read_rgb

log = logging.getLogger(__name__)

Target = Literal["normal", "pointmap", "albedo"]
TARGETS = ("normal", "pointmap", "albedo")
TARGET_SUFFIXES = (".npy", ".npz", ".exr")  # looked up in this order
_VECTOR_TARGETS = frozenset({"normal", "pointmap"})  # those whose components follow the camera axes


def exr_supported() -> bool:
    """Whether EXR targets can be read here: the OpenEXR package (pip install OpenEXR, the `exr` extra), or an
    OpenCV built with OpenEXR and enabled through the environment."""
    if importlib.util.find_spec("OpenEXR") is not None:
        return True
    built = any(
        line.strip().startswith("OpenEXR:") and "NO" not in line for line in cv2.getBuildInformation().splitlines()
    )
    return built and os.environ.get("OPENCV_IO_ENABLE_OPENEXR", "").lower() in ("1", "true", "on", "yes")


class DenseFolder(Dataset):
    def __init__(
        self,
        root: str | Path,
        target: Target,
        input_size: tuple[int, int],  # (W, H)
        augment: AugmentConfig | None = None,
        seed: int = 0,
        y_up: bool = False,
    ) -> None:
        if target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
        self.root, self.target = Path(root), target
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.augment, self.seed, self.y_up, self.epoch = augment, seed, y_up, 0
        self.skipped: Counter[str] = Counter()

        target_dir, masks_dir = self.root / target, self.root / "masks"
        can_read_exr = exr_supported()
        self.samples: list[tuple[str, Path, Path, Path | None]] = []
        missing = []
        for stem, image_path in list_images(self.root / "images").items():
            target_path = next((p for s in TARGET_SUFFIXES if (p := target_dir / f"{stem}{s}").is_file()), None)
            if target_path is None:
                missing.append(stem)
                continue
            if target_path.suffix == ".exr" and not can_read_exr:
                self.skipped["exr_unsupported"] += 1
                continue
            mask_path = masks_dir / f"{stem}.png"
            self.samples.append((stem, image_path, target_path, mask_path if mask_path.is_file() else None))
        if missing:
            raise missing_error(target, f"{target_dir}/<stem>.npy|.npz|.exr", missing)
        if self.skipped["exr_unsupported"]:
            log.warning(
                "%s: skipped %d samples with EXR targets: this OpenCV cannot read EXR (needs an OpenEXR build and "
                "OPENCV_IO_ENABLE_OPENEXR=1 before cv2 is imported); convert them to .npy to use them",
                target_dir,
                self.skipped["exr_unsupported"],
            )
        log.info("%s: %d samples with %s targets", self.root, len(self.samples), target)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        stem, image_path, target_path, mask_path = self.samples[index]
        aug = NO_AUGMENT
        if self.augment is not None:
            aug = sample_augment(self.augment, augment_generator(self.seed, self.epoch, index))
        rgb = read_rgb(image_path)  # [h, w, 3]
        hw = rgb.shape[:2]
        target = read_target(target_path, hw, self.target)  # [h, w, 3] float32
        valid = np.isfinite(target).all(axis=-1)  # [h, w]
        if mask_path is not None:
            mask = read_label_png(mask_path)
            if mask.shape != hw:
                raise ValueError(f"{mask_path}: mask is {mask.shape} (H, W) but its image is {hw}; they must match")
            valid &= mask != 0
        target[~valid] = 0.0  # NaN/inf never reach the warp

        out_w, _ = self.input_size
        center, scale = fit_center_scale((rgb.shape[1], rgb.shape[0]), self.input_size)
        _, _, matrix = augmented_region(center, scale, aug, self.input_size)
        image = warp_image(rgb, matrix, self.input_size)  # [H, W, 3]
        target = warp_labels(target, matrix, self.input_size, fill=0.0)  # [H, W, 3]
        valid = warp_labels(valid.astype(np.uint8), matrix, self.input_size, fill=0).astype(bool)  # [H, W]
        vectors = self.target in _VECTOR_TARGETS
        if vectors and aug.rotation:
            target = rotate_vectors(target, -aug.rotation if self.y_up else aug.rotation)
        if aug.flip:
            image, target, valid = image[:, ::-1], target[:, ::-1].copy(), valid[:, ::-1]
            matrix = compose_affine(flip_matrix(out_w), matrix)
            if vectors:
                target[..., 0] *= -1.0
        return {
            "image": image_to_tensor(image),  # [3, H, W]
            "target": torch.from_numpy(np.ascontiguousarray(target.transpose(2, 0, 1))),  # [3, H, W] float32
            "valid": torch.from_numpy(np.ascontiguousarray(valid)),  # [H, W] bool
            "stem": stem,
            "matrix": matrix,  # [2, 3] image -> input pixels, flip included
            "flipped": aug.flip,
        }


def read_target(path: Path, image_hw: tuple[int, int], name: str) -> np.ndarray:
    """A [H, W, 3] float32 target; its shape and dtype are checked on the header, before the data is read."""
    expected = (*image_hw, 3)
    if path.suffix == ".exr" and importlib.util.find_spec("OpenEXR") is not None:
        array = _read_exr(path, expected)
    elif path.suffix == ".exr":
        bgr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if bgr is None or bgr.ndim != 3 or bgr.shape[2] < 3:
            raise ValueError(f"{path}: OpenCV could not read a 3-channel EXR; convert the target to .npy")
        array = bgr[..., 2::-1]  # channels stored as R, G, B hold x, y, z
    elif path.suffix == ".npz":
        with zipfile.ZipFile(path) as archive:
            names = {n.removesuffix(".npy") for n in archive.namelist()}
            key = "arr_0" if "arr_0" in names else name
            if key not in names:
                raise ValueError(f"{path}: npz needs an array named 'arr_0' or {name!r}; it holds {sorted(names)}")
            with archive.open(f"{key}.npy") as member:
                array = _load_npy(member, path, expected)
    else:
        with path.open("rb") as f:
            array = _load_npy(f, path, expected)
    if array.shape != expected:
        raise ValueError(f"{path}: target is {array.shape}, expected {expected} to match its image")
    return np.array(array, dtype=np.float32)


def _read_exr(path: Path, expected: tuple[int, ...]) -> np.ndarray:
    """R, G, B (x, y, z) of an EXR through the OpenEXR package; the size is checked on the header first."""
    import OpenEXR

    with OpenEXR.File(str(path), header_only=True) as f:
        low, high = f.header()["dataWindow"]
    if (int(high[1] - low[1] + 1), int(high[0] - low[0] + 1), 3) != expected:
        raise ValueError(f"{path}: EXR data window {low}..{high} does not match its image {expected[:2]} (H, W)")
    with OpenEXR.File(str(path)) as f:  # the channels are released when the file closes: copy them out inside
        channels = f.channels()
        if "RGB" in channels:
            return np.array(channels["RGB"].pixels)
        if not {"R", "G", "B"} <= channels.keys():
            raise ValueError(f"{path}: EXR needs R, G, B channels (x, y, z) or an RGB one; it has {sorted(channels)}")
        return np.stack([channels[c].pixels for c in "RGB"], axis=-1)


def _load_npy(stream: BinaryIO, path: Path, expected: tuple[int, ...]) -> np.ndarray:
    try:
        version = np.lib.format.read_magic(stream)
        header = np.lib.format.read_array_header_2_0 if version >= (2, 0) else np.lib.format.read_array_header_1_0
        shape, _, dtype = header(stream)
    except ValueError as e:
        raise ValueError(f"{path}: not a readable .npy array ({e}); save the target with np.save") from e
    if dtype.hasobject or dtype.kind not in "fiu":
        raise ValueError(
            f"{path}: target dtype {dtype} is not numeric; save a float array (pickled objects are refused)"
        )
    if tuple(shape) != expected:
        raise ValueError(f"{path}: target is {tuple(shape)}, expected {expected} to match its image")
    stream.seek(0)
    return np.load(stream, allow_pickle=False)
