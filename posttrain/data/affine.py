"""Affine warps between an image and a fixed-size model input: top-down crops, letterbox fits and flips.

Coordinates are pixel centres: pixel (i, j) of an image sits at x = i, y = j, so a W-pixel row spans x in [0, W - 1].
A region is a `center` and a `scale` (its width and height in those coordinates). With `unbiased=True` (UDP, Huang
et al. CVPR 2020, as mmpose's `get_udp_warp_matrix`) the region's extent [c - s/2, c + s/2] maps onto the output's
pixel-centre extent [0, out - 1], so a whole W x H image (center ((W-1)/2, (H-1)/2), scale (W-1, H-1)) warped to
W x H is the identity. Rotation turns the region about its centre: with y pointing down, a positive angle maps the
point right of the centre to a point below it, i.e. the output shows the content turned clockwise.

cv2.warpAffine samples dst(x, y) = src(M^-1 (x, y)) at integer pixel positions: the same convention, so points
mapped with `apply_affine_points` land on the pixels the image warp puts them on.
"""

import math
from collections.abc import Sequence

import cv2
import numpy as np


def box_to_center_scale(box: Sequence[float], aspect: float, padding: float = 1.25) -> tuple[np.ndarray, np.ndarray]:
    """Centre [2] and scale [2] (w, h) of an xywh box, grown to `aspect` (w / h) then by `padding`."""
    x, y, w, h = (float(v) for v in box)
    if not (w > 0 and h > 0 and aspect > 0):
        raise ValueError(f"need a box with positive width and height and aspect > 0, got box={box} aspect={aspect}")
    center = np.array([x + 0.5 * w, y + 0.5 * h], dtype=np.float64)
    # Grow the short side only: the person stays whole and is not squashed when warped to the input aspect.
    if w > aspect * h:
        h = w / aspect
    else:
        w = h * aspect
    return center, np.array([w, h], dtype=np.float64) * padding


def fit_center_scale(image_size: Sequence[int], output_size: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Centre and scale showing a whole (W, H) image in an output of (W, H) at its own aspect (letterbox).

    Pixel-centre extents are used on both sides, so an image the size of the output maps with the identity.
    """
    w, h = (float(v) for v in image_size)
    out_w, out_h = (float(v) for v in output_size)
    if min(w, h, out_w, out_h) < 2:
        raise ValueError(f"image {image_size} and output {output_size} need at least 2 pixels per side")
    extent_w, extent_h = w - 1.0, h - 1.0
    aspect = (out_w - 1.0) / (out_h - 1.0)
    if extent_w > aspect * extent_h:
        extent_h = extent_w / aspect
    else:
        extent_w = extent_h * aspect
    return np.array([(w - 1.0) / 2, (h - 1.0) / 2]), np.array([extent_w, extent_h])


def warp_matrix(
    center: Sequence[float],
    scale: Sequence[float],
    rotation_deg: float,
    output_size: Sequence[int],
    unbiased: bool = True,
) -> np.ndarray:
    """The 2x3 matrix taking image points to output points: the region (center, scale) fills `output_size` (W, H)."""
    out_w, out_h = (float(v) for v in output_size)
    sw, sh = (float(v) for v in scale)
    if not (sw > 0 and sh > 0):
        raise ValueError(f"scale must be positive, got {scale}")
    if unbiased:
        sx, sy = (out_w - 1.0) / sw, (out_h - 1.0) / sh
        target = np.array([(out_w - 1.0) / 2, (out_h - 1.0) / 2])
    else:
        sx, sy = out_w / sw, out_h / sh
        target = np.array([out_w / 2, out_h / 2])
    theta = math.radians(rotation_deg)
    cos, sin = math.cos(theta), math.sin(theta)
    linear = np.array([[sx * cos, -sx * sin], [sy * sin, sy * cos]])  # [2, 2]
    # x_out = linear @ (x - center) + target
    offset = target - linear @ np.asarray(center, dtype=np.float64)
    return np.concatenate([linear, offset[:, None]], axis=1)


def flip_matrix(width: int) -> np.ndarray:
    """Horizontal mirror of a `width`-pixel image: x' = (W - 1) - x."""
    return np.array([[-1.0, 0.0, width - 1.0], [0.0, 1.0, 0.0]])


def compose_affine(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """The 2x3 matrix applying `inner` first, then `outer`."""
    return outer[:, :2] @ inner + np.array([[0.0, 0.0, outer[0, 2]], [0.0, 0.0, outer[1, 2]]])


def apply_affine_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Map points [..., 2] through a 2x3 matrix."""
    points = np.asarray(points, dtype=np.float64)
    matrix = np.asarray(matrix, dtype=np.float64)
    return points @ matrix[:, :2].T + matrix[:, 2]


def invert_affine(matrix: np.ndarray) -> np.ndarray:
    """The 2x3 matrix undoing `matrix` (output points back to image points)."""
    matrix = np.asarray(matrix, dtype=np.float64)
    linear_inv = np.linalg.inv(matrix[:, :2])  # raises LinAlgError for a degenerate (zero-scale) warp
    return np.concatenate([linear_inv, -(linear_inv @ matrix[:, 2])[:, None]], axis=1)


def warp_image(image: np.ndarray, matrix: np.ndarray, output_size: Sequence[int], fill: float = 0.0) -> np.ndarray:
    """Bilinear warp of an image [H, W, C] (or [H, W]) to output_size (W, H); outside pixels get `fill`."""
    return cv2.warpAffine(
        image,
        np.asarray(matrix, dtype=np.float64),
        (int(output_size[0]), int(output_size[1])),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(fill, fill, fill, fill),  # a bare scalar would fill the first channel only
    )


def warp_labels(labels: np.ndarray, matrix: np.ndarray, output_size: Sequence[int], fill: float) -> np.ndarray:
    """Nearest-neighbour warp of a label or target map [H, W] / [H, W, C]: values are copied, never blended."""
    return cv2.warpAffine(
        labels,
        np.asarray(matrix, dtype=np.float64),
        (int(output_size[0]), int(output_size[1])),
        flags=cv2.INTER_NEAREST,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(fill, fill, fill, fill),  # a bare scalar would fill the first channel only
    )
