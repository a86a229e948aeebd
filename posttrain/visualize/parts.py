"""Body-part label maps as colour images: a plain colouring, an overlay on the input image, a legend strip."""

import cv2
import numpy as np

from posttrain.segmentation_classes import BACKGROUND, CLASSES, PALETTE

_ROW = 20  # legend row height in pixels


def colorize_parts(labels: np.ndarray, palette: np.ndarray = PALETTE, ignore_index: int = 255) -> np.ndarray:
    """Label map [H, W] of class indices → [H, W, 3] uint8 with `palette[label]`; `ignore_index` pixels are black."""
    labels = np.asarray(labels)
    palette = np.asarray(palette, dtype=np.uint8)  # [C, 3]
    if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be an integer [H, W] map, got {labels.shape} {labels.dtype}")
    ignored = labels == ignore_index
    known = ignored | ((labels >= 0) & (labels < len(palette)))
    if not known.all():
        bad = np.unique(labels[~known])[:5].tolist()
        raise ValueError(
            f"labels {bad} have no palette colour: use class indices in [0, {len(palette)}) or "
            f"ignore_index ({ignore_index})"
        )
    rgb = palette[np.where(ignored, 0, labels)]  # [H, W, 3]
    rgb[ignored] = 0
    return rgb


def overlay_parts(
    image: np.ndarray,
    labels: np.ndarray,
    alpha: float = 0.5,
    palette: np.ndarray = PALETTE,
    ignore_index: int = 255,
    background: int = BACKGROUND,
) -> np.ndarray:
    """Blend part colours over `image` ([H, W, 3] uint8 RGB): `(1 - alpha) * image + alpha * colour`, rounded half
    up. Background and ignored pixels are left as the image, so only the person is tinted."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be [H, W, 3] uint8 RGB, got {image.shape} {image.dtype}")
    if np.shape(labels) != image.shape[:2]:
        raise ValueError(f"labels {np.shape(labels)} must match the image size {image.shape[:2]}; resize them first")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    colors = colorize_parts(labels, palette, ignore_index).astype(np.float64)  # [H, W, 3]
    blended = np.floor((1.0 - alpha) * image.astype(np.float64) + alpha * colors + 0.5).astype(np.uint8)
    keep = (np.asarray(labels) == background) | (np.asarray(labels) == ignore_index)  # [H, W]
    return np.where(keep[..., None], image, blended)


def legend_image(
    class_names: tuple[str, ...] = CLASSES,
    palette: np.ndarray = PALETTE,
    present: set[int] | None = None,
    width: int = 200,
) -> np.ndarray:
    """A [rows * 20, width, 3] uint8 strip, one row per class (only `present` ones when given, in index order): a
    colour swatch of 16×16 pixels at (2, 2) of the row, then the class name in white on black."""
    palette = np.asarray(palette, dtype=np.uint8)
    if len(class_names) != len(palette):
        raise ValueError(f"{len(class_names)} class names but {len(palette)} palette colours; pass one per class")
    shown = [i for i in range(len(class_names)) if present is None or i in present]
    strip = np.zeros((_ROW * len(shown), width, 3), dtype=np.uint8)
    for row, i in enumerate(shown):
        top = row * _ROW
        strip[top + 2 : top + _ROW - 2, 2 : _ROW - 2] = palette[i]
        cv2.putText(strip, class_names[i], (_ROW + 4, top + 15), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1)
    return strip
