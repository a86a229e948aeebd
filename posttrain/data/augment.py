"""Per-sample augmentation parameters (flip, scale, rotation, shift) and the pixel side shared by the datasets.

Randomness comes from a generator seeded from (seed, epoch, index), never from a global RNG, so an item is a pure
function of those three numbers and the files: replays after a resume and across worker counts are identical.
Every draw consumes the same number of uniforms, so one parameter's outcome never shifts the others.

Order of operations, for every dataset: the region (center, scale) is shifted, scaled and rotated by one affine warp
to the input size; a flip is then applied to the warped output (x' = (W - 1) - x) together with its label remapping.
"""

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from torch import Tensor

from common.image_decode import DecodeConfig, decode_image
from posttrain.data.affine import warp_matrix

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Annotated data is kept whatever its size or aspect: only the decompression-bomb cap and EXIF orientation apply.
DATA_DECODE = DecodeConfig(min_short_side=1, max_aspect_ratio=float("inf"))
_LABEL_MODES = frozenset({"L", "P", "I;16", "I"})  # single-channel modes whose values are the labels themselves


@dataclass(frozen=True)
class AugmentConfig:
    flip_p: float = 0.5
    # Multiplies the region's scale: > 1 zooms out (more context). mmpose/Sapiens top-down draw a scale factor too.
    scale_range: tuple[float, float] = (0.75, 1.25)
    rotate_p: float = 0.6  # mmpose RandomBBoxTransform's rotate_prob
    rotate_deg: float = 30.0  # uniform in [-rotate_deg, rotate_deg] when rotating
    shift_p: float = 0.3  # mmpose RandomBBoxTransform's shift_prob
    shift_frac: float = 0.16  # centre shift, uniform in +-shift_frac of the region's width / height (mmpose: 0.16)

    def __post_init__(self) -> None:
        for name in ("flip_p", "rotate_p", "shift_p"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"AugmentConfig.{name} must be a probability in [0, 1], got {getattr(self, name)}")
        low, high = self.scale_range
        if not 0.0 < low <= high:
            raise ValueError(f"AugmentConfig.scale_range must satisfy 0 < low <= high, got {self.scale_range}")
        if self.rotate_deg < 0 or self.shift_frac < 0:
            raise ValueError("AugmentConfig.rotate_deg and shift_frac must be >= 0")


@dataclass(frozen=True)
class Augment:
    flip: bool = False
    scale: float = 1.0
    rotation: float = 0.0  # degrees, warp_matrix's convention
    shift: tuple[float, float] = (0.0, 0.0)  # centre shift as a share of the region's (width, height)


NO_AUGMENT = Augment()


def augment_generator(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator for one sample of one epoch."""
    if min(seed, epoch, index) < 0:
        raise ValueError(f"seed, epoch and index must be >= 0, got {(seed, epoch, index)}")
    return np.random.default_rng(np.random.SeedSequence([seed, epoch, index]))


def sample_augment(cfg: AugmentConfig, generator: np.random.Generator | torch.Generator) -> Augment:
    """Draw one sample's parameters from a numpy or torch generator (7 uniforms, whatever the outcome)."""
    if isinstance(generator, torch.Generator):
        u = torch.rand(7, generator=generator, dtype=torch.float64).tolist()
    else:
        u = generator.random(7).tolist()
    low, high = cfg.scale_range
    rotation = (2.0 * u[3] - 1.0) * cfg.rotate_deg if u[2] < cfg.rotate_p else 0.0
    shift = ((2.0 * u[5] - 1.0) * cfg.shift_frac, (2.0 * u[6] - 1.0) * cfg.shift_frac) if u[4] < cfg.shift_p else None
    return Augment(
        flip=u[0] < cfg.flip_p,
        scale=low + (high - low) * u[1],
        rotation=rotation,
        shift=shift or (0.0, 0.0),
    )


def augmented_region(
    center: np.ndarray, scale: np.ndarray, augment: Augment, output_size: Sequence[int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(center, scale, 2x3 warp) of a region after the augment's shift, scale and rotation (not its flip)."""
    center = np.asarray(center, dtype=np.float64) + np.asarray(augment.shift) * scale
    scale = np.asarray(scale, dtype=np.float64) * augment.scale
    return center, scale, warp_matrix(center, scale, augment.rotation, output_size)


def check_flip_index(flip_index: Sequence[int], size: int, name: str) -> np.ndarray:
    """`flip_index` as an array [size], after checking it is a permutation of range(size) that is its own inverse."""
    index = np.asarray(flip_index, dtype=np.int64)
    if index.shape != (size,) or sorted(index.tolist()) != list(range(size)) or (index[index] != np.arange(size)).any():
        raise ValueError(
            f"{name} needs {size} entries, entry i the index of i's mirror (a permutation that is its own inverse, "
            f"e.g. [0, 2, 1] for centre, left, right); got {list(flip_index)}"
        )
    return index


def rotate_vectors(vectors: np.ndarray, rotation_deg: float) -> np.ndarray:
    """Rotate the (x, y) components of vectors [..., 3] as warp_matrix turns image points (y pointing down)."""
    theta = math.radians(rotation_deg)
    cos, sin = math.cos(theta), math.sin(theta)
    out = vectors.copy()
    out[..., 0] = cos * vectors[..., 0] - sin * vectors[..., 1]
    out[..., 1] = sin * vectors[..., 0] + cos * vectors[..., 1]
    return out


def read_rgb(path: Path) -> np.ndarray:
    """An upright RGB image [H, W, 3] uint8 from an untrusted file; raises naming the file and the reason."""
    decoded = decode_image(path.read_bytes(), DATA_DECODE)
    if decoded.image is None:
        raise ValueError(f"{path}: image rejected ({decoded.reason}); remove it from the dataset or re-encode it")
    return np.asarray(decoded.image, dtype=np.uint8)


def read_label_png(path: Path, config: DecodeConfig = DATA_DECODE) -> np.ndarray:
    """Single-channel labels [H, W] int64 from a PNG: palette images give their indices, not their colours."""
    with Image.open(io.BytesIO(path.read_bytes())) as im:
        width, height = im.size
        if width * height > config.max_pixels:  # checked on the header, before any pixel is decoded
            raise ValueError(f"{path}: {width}x{height} label map is over the {config.max_pixels}-pixel cap")
        if im.mode not in _LABEL_MODES:
            raise ValueError(
                f"{path}: label map has mode {im.mode}; save it as a single-channel (L, I;16) or palette (P) PNG "
                "holding class ids"
            )
        # The same EXIF orientation as decode_image applies to the photo keeps both in one frame.
        return np.asarray(ImageOps.exif_transpose(im)).astype(np.int64)


def image_to_tensor(rgb: np.ndarray) -> Tensor:
    """ImageNet-normalised float tensor [3, H, W] from an RGB array [H, W, 3] uint8."""
    image = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float() / 255.0  # [3, H, W]
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (image - mean) / std


IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".heic", ".heif"})


def list_images(images_dir: Path) -> dict[str, Path]:
    """Stem -> image file under `images_dir`, sorted by stem; a stem with two images is an error."""
    if not images_dir.is_dir():
        raise FileNotFoundError(f"{images_dir} is missing: expected <root>/images/<stem>.<jpg|png|...>")
    found: dict[str, Path] = {}
    for path in sorted(images_dir.iterdir()):
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        if path.stem in found:
            raise ValueError(f"{found[path.stem]} and {path} share a stem: keep one image per stem")
        found[path.stem] = path
    if not found:
        raise FileNotFoundError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {images_dir}")
    return found


def missing_error(kind: str, expected: str, stems: Sequence[str]) -> FileNotFoundError:
    """The error for images without a partner file, listing the first few stems."""
    shown = ", ".join(stems[:5]) + (", ..." if len(stems) > 5 else "")
    return FileNotFoundError(f"{len(stems)} images have no {kind} (expected {expected}): {shown}")
