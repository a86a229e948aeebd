"""Pointmap metrics: per-pixel L2 distance between predicted and ground-truth 3-D points, raw and scale-aligned."""

from collections.abc import Sequence

import numpy as np
import torch


def _median(x: torch.Tensor) -> torch.Tensor:
    """Median of a 1-D tensor, the mean of the two middle values for an even count (torch.median takes the lower)."""
    s = x.sort().values
    n = s.numel()
    return (s[(n - 1) // 2] + s[n // 2]) / 2


class PointmapMetric:
    """L2 error of camera-frame pointmaps [B, 3, H, W] (x, y, z in the target's units), accumulated over batches.

    Raw: d = ||pred - target||_2 per valid pixel; `pointmap_l2` is the mean of d and `pointmap_within_<t>` the share
    in [0, 1] of pixels with d < t.
    Scale-aligned (`scale_aligned=True`): each image's prediction is first multiplied by
    s = median(target z) / median(pred z) over that image's valid pixels, which removes the global scale ambiguity of
    monocular prediction; keys `pointmap_aligned_l2` and `pointmap_aligned_within_<t>`. An image whose predicted
    median depth is not positive has no meaningful ratio: it is left out of the aligned statistics only and counted in
    `pointmap_aligned_skipped_images`.
    All statistics are exact running sums and counts.
    """

    def __init__(self, thresholds: Sequence[float] = (0.05, 0.1, 0.2), scale_aligned: bool = True) -> None:
        self.thresholds = tuple(float(t) for t in thresholds)
        self.scale_aligned = scale_aligned
        self.reset()

    def reset(self) -> None:
        # Index 0: raw, index 1: scale-aligned.
        self.count = [0, 0]
        self.sum_l2 = [0.0, 0.0]
        self.within = [[0] * len(self.thresholds) for _ in range(2)]
        self.skipped_images = 0

    def update(
        self,
        pred: torch.Tensor | np.ndarray,
        target: torch.Tensor | np.ndarray,
        valid: torch.Tensor | np.ndarray | None = None,
    ) -> None:
        """pred, target [B, 3, H, W]; valid [B, H, W] or [B, 1, H, W] (all pixels when None)."""
        pred, target = torch.as_tensor(pred).double().cpu(), torch.as_tensor(target).double().cpu()
        if pred.shape != target.shape or pred.ndim != 4 or pred.shape[1] != 3:
            raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must both be [B, 3, H, W]")
        B, _, H, W = pred.shape
        if valid is None:
            mask = torch.ones(B, H, W, dtype=torch.bool)
        else:
            mask = torch.as_tensor(valid, dtype=torch.bool).cpu().reshape(B, H, W)
        for b in range(B):
            p, t = pred[b][:, mask[b]], target[b][:, mask[b]]  # [3, N], [3, N]
            if p.shape[1] == 0:
                continue
            self._add(0, (p - t).norm(dim=0))
            if self.scale_aligned:
                pred_depth = _median(p[2])
                if pred_depth <= 0:
                    self.skipped_images += 1
                    continue
                self._add(1, (p * (_median(t[2]) / pred_depth) - t).norm(dim=0))

    def _add(self, kind: int, dist: torch.Tensor) -> None:
        """dist [N] per-pixel L2 distances."""
        self.count[kind] += dist.numel()
        self.sum_l2[kind] += float(dist.sum())
        for i, t in enumerate(self.thresholds):
            self.within[kind][i] += int((dist < t).sum())

    def compute(self) -> dict[str, float]:
        if self.count[0] == 0:
            raise RuntimeError("no valid pixels accumulated: call update() with at least one valid pixel")
        out = {}
        prefixes = ["pointmap", "pointmap_aligned"] if self.scale_aligned else ["pointmap"]
        for kind, prefix in enumerate(prefixes):
            n = self.count[kind]
            out[f"{prefix}_l2"] = self.sum_l2[kind] / n if n else float("nan")
            for t, k in zip(self.thresholds, self.within[kind], strict=True):
                out[f"{prefix}_within_{t:g}"] = k / n if n else float("nan")
        if self.scale_aligned:
            out["pointmap_aligned_skipped_images"] = float(self.skipped_images)
        return out
