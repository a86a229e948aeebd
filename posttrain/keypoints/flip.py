"""Horizontal flip of keypoints and heatmaps, for flip augmentation and flip test at inference.

Coordinate convention (UDP, shared with `posttrain.codecs.udp_heatmap`): a keypoint's x is in pixels with pixel
centres at integers, so an image of width W spans pixel centres 0 .. W - 1 and mirroring maps x to (W - 1) - x.
Because heatmap pixel j sits at input x = j * (W - 1) / (w - 1), mirroring a heatmap along its width is the same
mirror as in the input image, with no half-pixel shift. After mirroring, channel/row i holds what was the mirror
partner `flip_index[i]` (left and right swap names).
"""

from collections.abc import Sequence
from typing import TypeVar

import numpy as np
import torch

Array = TypeVar("Array", np.ndarray, torch.Tensor)


def flip_keypoints(xy: Array, visible: Array, width: int, flip_index: Sequence[int]) -> tuple[Array, Array]:
    """Mirror keypoints [..., K, 2] (and their visibility [..., K]) in an image `width` pixels wide."""
    if xy.shape[-2] != len(flip_index) or visible.shape[-1] != len(flip_index):
        raise ValueError(
            f"flip_index has {len(flip_index)} entries but keypoints have shape {tuple(xy.shape)} and "
            f"visibility {tuple(visible.shape)}; use the flip_index of the spec these keypoints follow"
        )
    order = list(flip_index)
    flipped = xy[..., order, :]  # fancy indexing copies, so the caller's array is untouched
    flipped[..., 0] = (width - 1) - flipped[..., 0]
    return flipped, visible[..., order]


def flip_heatmaps(heatmaps: Array, flip_index: Sequence[int]) -> Array:
    """Mirror heatmaps [..., K, H, W] along W and move each channel to its mirror partner's slot."""
    if heatmaps.shape[-3] != len(flip_index):
        raise ValueError(
            f"flip_index has {len(flip_index)} entries but heatmaps have {heatmaps.shape[-3]} channels "
            f"(shape {tuple(heatmaps.shape)}); heatmaps must be [..., K, H, W]"
        )
    order = list(flip_index)
    if isinstance(heatmaps, torch.Tensor):
        return heatmaps.flip(-1)[..., order, :, :]
    return np.ascontiguousarray(heatmaps[..., ::-1][..., order, :, :])
