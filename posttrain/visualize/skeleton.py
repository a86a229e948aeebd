"""Keypoints drawn as a skeleton over an RGB image: the picture `humans1b posttrain predict` writes for pose."""

import cv2
import numpy as np

from posttrain.keypoints.spec import KeypointSpec


def draw_skeleton(
    image: np.ndarray,
    keypoints: np.ndarray,
    scores: np.ndarray,
    spec: KeypointSpec,
    *,
    threshold: float = 0.3,
    radius: int | None = None,
    thickness: int | None = None,
) -> np.ndarray:
    """Draw one person ([K, 2] keypoints, [K] scores) or several ([N, K, 2], [N, K]) onto a copy of `image`.

    `image` is [H, W, 3] uint8 RGB and is not modified; keypoints are (x, y) in its pixels. A link of
    `spec.skeleton` is drawn in its `spec.skeleton_colors` entry when both ends score >= `threshold`; then every
    keypoint scoring >= `threshold` is drawn as a filled disc in its `spec.colors` entry, so points sit on top of
    links. `radius` and `thickness` default to sizes that grow with the image.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be [H, W, 3] uint8 RGB, got {image.shape} {image.dtype}")
    points = np.asarray(keypoints, dtype=np.float64)
    conf = np.asarray(scores, dtype=np.float64)
    if points.ndim == 2:  # one person → a batch of one
        points, conf = points[None], conf[None]
    k = spec.num_keypoints
    if points.ndim != 3 or points.shape[1:] != (k, 2) or conf.shape != points.shape[:2]:
        raise ValueError(
            f"spec {spec.name!r} has {k} keypoints: pass keypoints [{k}, 2] with scores [{k}], or [N, {k}, 2] with "
            f"[N, {k}]; got {np.shape(keypoints)} and {np.shape(scores)}"
        )
    height, width = image.shape[:2]
    if radius is None:
        radius = max(2, round(0.006 * max(height, width)))  # ≈ 6 px on a 1024 px image
    if thickness is None:
        thickness = max(1, round(radius / 2))

    canvas = np.ascontiguousarray(image.copy())  # cv2 draws in place and needs a contiguous buffer
    # Low-scoring and non-finite points are never drawn; rounding to whole pixels is what cv2 draws anyway.
    visible = (conf >= threshold) & np.isfinite(points).all(axis=-1)  # [N, K]
    pixels = np.rint(np.where(np.isfinite(points), points, 0)).astype(np.int64)  # [N, K, 2]
    for person, person_visible in zip(pixels, visible, strict=True):
        for (a, b), color in zip(spec.skeleton, spec.skeleton_colors, strict=True):
            if person_visible[a] and person_visible[b]:
                start, end = tuple(map(int, person[a])), tuple(map(int, person[b]))
                cv2.line(canvas, start, end, color, thickness, lineType=cv2.LINE_AA)
        for i in np.flatnonzero(person_visible):
            center = tuple(map(int, person[i]))
            cv2.circle(canvas, center, radius, spec.colors[i], thickness=-1, lineType=cv2.LINE_AA)
    return canvas
