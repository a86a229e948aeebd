"""Dense per-pixel predictions (normals, albedo, depth from pointmaps) as RGB images, and a PNG writer.

Conventions: camera coordinates follow OpenCV — x right, y down, z forward (away from the camera). Float → uint8
conversions round half up (`floor(v * 255 + 0.5)`), so 0.5 → 128. Pixels outside `valid` ([H, W] bool) are black.
"""

import os
from pathlib import Path

import numpy as np
from PIL import Image


def _to_hwc(array: np.ndarray, what: str) -> np.ndarray:
    """[3, H, W] or [H, W, 3] → [H, W, 3] float64. A [3, H, 3] array is read as [3, H, W], the head output layout."""
    array = np.asarray(array, dtype=np.float64)
    if array.ndim == 3 and array.shape[0] == 3:
        return array.transpose(1, 2, 0)
    if array.ndim == 3 and array.shape[2] == 3:
        return array
    raise ValueError(f"{what} must be [3, H, W] or [H, W, 3], got {array.shape}")


def _valid_mask(valid: np.ndarray | None, shape: tuple[int, int], finite: np.ndarray) -> np.ndarray:
    """The pixels to colour: `valid` (all when None) and finite. [H, W] bool."""
    if valid is None:
        return finite
    valid = np.asarray(valid)
    if valid.shape != shape or valid.dtype != np.bool_:
        raise ValueError(f"valid must be a bool [H, W] mask of shape {shape}, got {valid.shape} {valid.dtype}")
    return valid & finite


def _to_uint8(unit: np.ndarray) -> np.ndarray:
    """Values in [0, 1] → uint8, rounding half up."""
    return np.floor(np.clip(unit, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def normals_to_rgb(normals: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """Unit normals ([3, H, W] or [H, W, 3], OpenCV camera axes) → [H, W, 3] uint8 as `(n + 1) / 2 * 255`.

    Red grows with x (right), green with y (down), blue with z (forward). A surface facing the camera points back
    at it, n = (0, 0, -1), and is drawn (128, 128, 0). Invalid and non-finite pixels are black.
    """
    n = _to_hwc(normals, "normals")  # [H, W, 3]
    mask = _valid_mask(valid, n.shape[:2], np.isfinite(n).all(axis=-1))
    rgb = _to_uint8((np.nan_to_num(n) + 1.0) / 2.0)
    rgb[~mask] = 0
    return rgb


def albedo_to_rgb(albedo: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """Albedo in [0, 1] ([3, H, W] or [H, W, 3]) → [H, W, 3] uint8: clipped to [0, 1], ×255, rounded half up.
    Invalid and non-finite pixels are black."""
    a = _to_hwc(albedo, "albedo")  # [H, W, 3]
    mask = _valid_mask(valid, a.shape[:2], np.isfinite(a).all(axis=-1))
    rgb = _to_uint8(np.nan_to_num(a))
    rgb[~mask] = 0
    return rgb


def points_to_depth(points: np.ndarray) -> np.ndarray:
    """Pointmap ([3, H, W] or [H, W, 3], camera coordinates) → depth [H, W]: the z (forward) coordinate."""
    return _to_hwc(points, "points")[..., 2].copy()


def depth_to_rgb(depth: np.ndarray, valid: np.ndarray | None = None, cmap: str = "turbo") -> np.ndarray:
    """Depth [H, W] → [H, W, 3] uint8 through a matplotlib colormap; near is the colormap's high end (warm for
    "turbo"), far its low end.

    Depth is normalised between the 2nd and 98th percentile of the coloured pixels and clipped, so a few outliers
    do not wash out the person. Coloured pixels are `valid` (default: all) that are finite and > 0 (in front of the
    camera); the rest are black.
    """
    from matplotlib import colormaps  # lazy: importing matplotlib may write a cache into HOME

    d = np.asarray(depth, dtype=np.float64)
    if d.ndim != 2:
        raise ValueError(f"depth must be [H, W], got {d.shape}; use points_to_depth for a pointmap")
    mask = _valid_mask(valid, d.shape, np.isfinite(d) & (d > 0))
    rgb = np.zeros((*d.shape, 3), dtype=np.uint8)
    if not mask.any():
        return rgb
    lo, hi = np.percentile(d[mask], [2.0, 98.0])
    t = np.clip((d[mask] - lo) / max(hi - lo, np.finfo(np.float64).tiny), 0.0, 1.0)  # 0 near … 1 far
    rgb[mask] = colormaps[cmap](1.0 - t, bytes=True)[:, :3]
    return rgb


def save_image(path: str | os.PathLike, rgb: np.ndarray) -> None:
    """Write an [H, W, 3] uint8 RGB image as PNG (whatever the suffix), creating missing parent folders."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"save_image needs [H, W, 3] uint8 RGB, got {rgb.shape} {rgb.dtype}; convert it first")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path, format="PNG")
