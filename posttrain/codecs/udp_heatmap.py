"""UDP Gaussian heatmap codec (Unbiased Data Processing, Huang et al., CVPR 2020).

Pixel centres sit at integer coordinates in both the input image and the heatmap, so the corner pixels of the two
line up and the input -> heatmap scale is (input_size - 1) / (heatmap_size - 1), not input_size / heatmap_size.
Targets are Gaussians centred at the exact sub-pixel location (no rounding), and decoding refines the argmax with
the second-order Taylor expansion of the log-heatmap (DARK, Zhang et al., CVPR 2020), after a Gaussian blur that
makes a network's output closer to the Gaussian it was trained on. For a noiseless target the blurred map is still
a Gaussian, its log is exactly quadratic, and decoding recovers the keypoint up to float rounding.
"""

import numpy as np
import torch
from scipy.ndimage import gaussian_filter

Size = tuple[int, int]  # (width, height)


def udp_scale(input_size: Size, heatmap_size: Size) -> np.ndarray:
    """Input pixels per heatmap pixel along (x, y): [2]."""
    (in_w, in_h), (hm_w, hm_h) = input_size, heatmap_size
    if min(in_w, in_h, hm_w, hm_h) < 2:
        raise ValueError(f"input_size {input_size} and heatmap_size {heatmap_size} must be at least 2 x 2 (W, H)")
    return np.array([(in_w - 1) / (hm_w - 1), (in_h - 1) / (hm_h - 1)], dtype=np.float64)


def encode(
    keypoints: np.ndarray, visible: np.ndarray, input_size: Size, heatmap_size: Size, sigma: float = 2.0
) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints [K, 2] in input pixels and visibility [K] -> heatmaps [K, h, w] float32 and target weights [K].

    A keypoint gets weight 0 (and an all-zero map) when it is not visible (visible <= 0) or when its Gaussian
    lies entirely outside the heatmap (centre more than 3 sigma beyond the border).
    """
    keypoints = np.asarray(keypoints, dtype=np.float64)
    visible = np.asarray(visible)
    if keypoints.ndim != 2 or keypoints.shape[1] != 2 or visible.shape != keypoints.shape[:1]:
        raise ValueError(
            f"encode takes one instance: keypoints [K, 2] and visible [K], got {keypoints.shape} and {visible.shape}"
        )
    if sigma <= 0:
        raise ValueError(f"sigma must be positive (heatmap pixels), got {sigma}")
    hm_w, hm_h = heatmap_size
    centres = keypoints / udp_scale(input_size, heatmap_size)  # [K, 2] in heatmap pixels

    reach = 3.0 * sigma
    inside = (
        (centres[:, 0] > -reach)
        & (centres[:, 0] < hm_w - 1 + reach)
        & (centres[:, 1] > -reach)
        & (centres[:, 1] < hm_h - 1 + reach)
    )
    weights = ((visible > 0) & inside & np.isfinite(centres).all(axis=1)).astype(np.float32)  # [K]

    # The 2-D Gaussian is separable: outer product of a row and a column profile per keypoint.
    xs, ys = np.arange(hm_w, dtype=np.float64), np.arange(hm_h, dtype=np.float64)
    safe = np.where(weights[:, None] > 0, centres, 0.0)  # keep NaN/inf of dropped keypoints out of the maths
    gx = np.exp(-((xs[None, :] - safe[:, :1]) ** 2) / (2 * sigma**2))  # [K, w]
    gy = np.exp(-((ys[None, :] - safe[:, 1:]) ** 2) / (2 * sigma**2))  # [K, h]
    heatmaps = gy[:, :, None] * gx[:, None, :] * weights[:, None, None]  # [K, h, w]
    return heatmaps.astype(np.float32), weights


def decode(
    heatmaps: np.ndarray | torch.Tensor, input_size: Size, blur_kernel_size: int = 11
) -> tuple[np.ndarray, np.ndarray]:
    """Heatmaps [B, K, h, w] -> keypoints [B, K, 2] in input pixels (float32) and scores [B, K] (peak values).

    `blur_kernel_size` is the odd size of the smoothing kernel before refinement (11 suits sigma-2 targets at
    64 x 48; scale it with sigma); 0 or 1 skips the blur.
    """
    if isinstance(heatmaps, torch.Tensor):
        heatmaps = heatmaps.detach().to("cpu", torch.float32).numpy()
    heatmaps = np.asarray(heatmaps, dtype=np.float64)
    if heatmaps.ndim != 4:
        raise ValueError(f"decode takes heatmaps [B, K, h, w], got shape {heatmaps.shape}; add a batch axis")
    batch, num_kpts, hm_h, hm_w = heatmaps.shape
    scale = udp_scale(input_size, (hm_w, hm_h))

    flat = heatmaps.reshape(batch, num_kpts, -1)
    peak = flat.argmax(axis=-1)  # [B, K]
    scores = np.take_along_axis(flat, peak[..., None], axis=-1)[..., 0]  # [B, K]
    px, py = peak % hm_w, peak // hm_w  # [B, K] integer peak location

    offset = _taylor_offset(_smooth_log(heatmaps, blur_kernel_size), px, py)  # [B, K, 2]
    coords = np.stack([px, py], axis=-1) + offset  # [B, K, 2] heatmap pixels
    return (coords * scale).astype(np.float32), scores.astype(np.float32)


def _smooth_log(heatmaps: np.ndarray, blur_kernel_size: int) -> np.ndarray:
    """Log of each map after a Gaussian blur (OpenCV's sigma for that kernel size): [B, K, h, w].

    The border is padded by extending each row and column's log-profile quadratically rather than by reflection:
    a Gaussian cut by the border stays a Gaussian, where a reflected copy would pull the peak towards the edge.
    """
    # The floor keeps log finite on empty maps; derivatives are only read next to the peak.
    log_maps = np.log(np.maximum(heatmaps, 1e-10))
    if blur_kernel_size <= 1:
        return log_maps
    if blur_kernel_size % 2 == 0:
        raise ValueError(f"blur_kernel_size must be odd, got {blur_kernel_size}")
    radius = (blur_kernel_size - 1) // 2
    blur_sigma = 0.3 * (radius - 1) + 0.8
    ceiling = log_maps.max(axis=(-2, -1), keepdims=True)  # extrapolation must not invent a higher peak
    padded = np.exp(np.minimum(_pad_quadratic(log_maps, radius), ceiling))  # [B, K, h + 2r, w + 2r]
    blurred = gaussian_filter(
        padded, sigma=(0, 0, blur_sigma, blur_sigma), mode="nearest", truncate=radius / blur_sigma
    )
    return np.log(np.maximum(blurred[..., radius:-radius, radius:-radius], 1e-10))


def _pad_quadratic(maps: np.ndarray, pad: int) -> np.ndarray:
    """Extend [..., h, w] by `pad` on every side with the parabola through the three outermost rows/columns."""
    if min(maps.shape[-2:]) < 3:
        raise ValueError(f"heatmaps must be at least 3 x 3 for sub-pixel refinement, got {maps.shape[-2:]}")
    steps = np.arange(1, pad + 1, dtype=maps.dtype)  # distance beyond the border
    for axis in (-1, -2):
        m = np.moveaxis(maps, axis, -1)
        sides = []
        for a0, a1, a2 in ((m[..., 0], m[..., 1], m[..., 2]), (m[..., -1], m[..., -2], m[..., -3])):
            # p(t) through p(0)=a0, p(-1)=a1, p(-2)=a2, evaluated at t = 1 .. pad outward.
            slope, curve = (3 * a0 - 4 * a1 + a2) / 2, (a0 - 2 * a1 + a2) / 2
            sides.append(a0[..., None] + slope[..., None] * steps + curve[..., None] * steps**2)
        maps = np.moveaxis(np.concatenate([sides[0][..., ::-1], m, sides[1]], axis=-1), -1, axis)
    return maps


def _taylor_offset(log_maps: np.ndarray, px: np.ndarray, py: np.ndarray) -> np.ndarray:
    """Newton step -H^-1 g of the log-map at each integer peak, from central differences: [B, K, 2]."""
    batch, num_kpts = px.shape
    padded = _pad_quadratic(log_maps, 1)  # [B, K, h + 2, w + 2]; exact beyond the border for a Gaussian
    bi, ki = np.meshgrid(np.arange(batch), np.arange(num_kpts), indexing="ij")
    cx, cy = px + 1, py + 1

    def at(dx: int, dy: int) -> np.ndarray:
        return padded[bi, ki, cy + dy, cx + dx]  # [B, K]

    centre = at(0, 0)
    gx = 0.5 * (at(1, 0) - at(-1, 0))
    gy = 0.5 * (at(0, 1) - at(0, -1))
    hxx = at(1, 0) - 2 * centre + at(-1, 0)
    hyy = at(0, 1) - 2 * centre + at(0, -1)
    hxy = 0.25 * (at(1, 1) - at(-1, 1) - at(1, -1) + at(-1, -1))

    det = hxx * hyy - hxy**2
    # Only a strict local maximum (negative-definite Hessian) gives a meaningful step; flat or saddle maps stay put.
    valid = (det > 1e-12) & (hxx < 0)
    safe_det = np.where(valid, det, 1.0)
    ox = -(hyy * gx - hxy * gy) / safe_det
    oy = -(hxx * gy - hxy * gx) / safe_det
    offset = np.where(valid[..., None], np.stack([ox, oy], axis=-1), 0.0)
    # The argmax is within half a pixel of the true maximum; a longer step means the quadratic model broke down.
    return np.clip(offset, -1.0, 1.0)
