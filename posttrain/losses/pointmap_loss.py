"""Pointmap loss: L1 on depth-normalised points + L1 on the scale + consistency of the normals derived from both
point maps.

Depth normaliser: the mean of |z| over an image's valid pixels (mean, not median: differentiable everywhere and cheap;
|z| so a prediction that starts behind the camera cannot flip the sign of the division). Prediction and target are
each divided by their own normaliser, which makes the L1 term blind to a global scale of the predicted points; the
target's normaliser is the scale the head's scale branch must predict, so that
`depth_normalise(points, valid)[0] * scale` reconstructs the target points (see `posttrain.heads.pointmap_head` for
the focal-length convention).
"""

import torch
from torch import Tensor, nn

from posttrain.losses.image_gradients import as_valid_mask, masked_mean, spatial_gradients
from posttrain.losses.normal_loss import cosine_distance


def depth_normalise(points: Tensor, valid: Tensor, eps: float = 1e-6) -> tuple[Tensor, Tensor]:
    """points [B, 3, H, W] (x, y, z), valid bool [B, 1, H, W] → (points / depth, depth [B]), depth the mean |z| over
    each image's valid pixels (0 for an image without any; the division then uses eps)."""
    valid = as_valid_mask(valid, points)
    z = torch.where(valid, points[:, 2:3].abs(), 0.0)  # [B, 1, H, W]
    depth = z.sum(dim=(1, 2, 3)) / valid.sum(dim=(1, 2, 3)).clamp_min(1)  # [B]
    return points / depth.clamp_min(eps)[:, None, None, None], depth


def normals_from_points(points: Tensor, valid: Tensor, eps: float = 1e-12) -> tuple[Tensor, Tensor]:
    """Unit normals of a point map [B, 3, H, W] (OpenCV camera axes) → (normals [B, 3, H, W], defined [B, 1, H, W]).

    n = normalise(∂y × ∂x) from forward differences, which faces the camera (n_z < 0 for a fronto-parallel plane).
    A normal is defined where both differences are valid and their cross product is not degenerate (|∂y × ∂x| > eps);
    elsewhere it is 0. The last row and column never have one."""
    valid = as_valid_mask(valid, points)
    dx, dy, valid_dx, valid_dy = spatial_gradients(points, valid)
    cross = torch.linalg.cross(dy, dx, dim=1)  # [B, 3, H, W]
    norm = torch.linalg.vector_norm(cross, dim=1, keepdim=True)  # [B, 1, H, W]
    defined = valid_dx & valid_dy & (norm > eps)
    normals = torch.where(defined, cross / norm.clamp_min(eps), 0.0)  # [B, 3, H, W]
    return normals, defined


class PointmapLoss(nn.Module):
    def __init__(
        self,
        points_weight: float = 1.0,
        scale_weight: float = 1.0,
        normal_weight: float = 1.0,
        eps: float = 1e-6,
    ) -> None:
        super().__init__()
        self.points_weight = points_weight
        self.scale_weight = scale_weight
        self.normal_weight = normal_weight
        self.eps = eps

    def forward(self, pred_points: Tensor, pred_scale: Tensor, target: Tensor, valid: Tensor) -> dict[str, Tensor]:
        """pred_points [B, 3, H, W], pred_scale [B] (the head's outputs), target points [B, 3, H, W] (focal-normalised
        camera points, z > 0), valid bool [B, 1, H, W] or [B, H, W].

        Returns {"loss": weighted sum, "points", "scale", "normal"}, all 0 when no pixel is valid:
        - points: mean |p̂ - t̂| over valid pixels and the 3 coordinates, both maps depth-normalised;
        - scale: mean |pred_scale - target depth| over the images with a valid pixel;
        - normal: mean (1 - cos) between the normals of both maps where the target's normal is defined."""
        valid = as_valid_mask(valid, target)
        if pred_scale.shape != (target.shape[0],):
            raise ValueError(f"pred_scale must be [B] = [{target.shape[0]}], got {tuple(pred_scale.shape)}")
        # Zero invalid pixels first: NaN there would otherwise leak into gradients through products.
        pred_points = torch.where(valid, pred_points, 0.0)
        target = torch.where(valid, target, 0.0)
        pred_n, _ = depth_normalise(pred_points, valid, self.eps)  # [B, 3, H, W]
        target_n, target_depth = depth_normalise(target, valid, self.eps)  # [B, 3, H, W], [B]

        points = masked_mean((pred_n - target_n).abs(), valid)
        has_valid = valid.flatten(1).any(dim=1)  # [B]
        scale_gap = (pred_scale - target_depth).abs()  # [B]
        scale = torch.where(has_valid, scale_gap, 0.0).sum() / has_valid.sum().clamp_min(1)

        target_normals, defined = normals_from_points(target_n, valid)
        pred_cross_normals, _ = normals_from_points(pred_n, valid)
        normal = masked_mean(cosine_distance(pred_cross_normals, target_normals), defined)

        loss = self.points_weight * points + self.scale_weight * scale + self.normal_weight * normal
        return {"loss": loss, "points": points, "scale": scale, "normal": normal}
