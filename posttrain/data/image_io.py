"""Reading the files of annotated datasets (untrusted: size caps, EXIF orientation) and the network's pixel format."""

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from torch import Tensor

from common.image_decode import DecodeConfig, decode_image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Annotated data is kept whatever its size or aspect: only the decompression-bomb cap and EXIF orientation apply.
DATA_DECODE = DecodeConfig(min_short_side=1, max_aspect_ratio=float("inf"))
_LABEL_MODES = frozenset({"L", "P", "I;16", "I"})  # single-channel modes whose values are the labels themselves


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
