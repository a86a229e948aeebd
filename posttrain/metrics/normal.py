"""Surface-normal metrics: angular error in degrees (mean, median, RMSE, share under thresholds) over valid pixels."""

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F


class NormalMetric:
    """Angular error between predicted and ground-truth normals [B, 3, H, W], accumulated over batches.

    Both fields are re-normalised to unit length (the prediction need not be unit; a zero vector has error 90°) and
    the cosine is clamped to [-1, 1] before `acos`. Angles are computed in float64.
    Mean, RMSE and the threshold shares come from exact running sums and counts. The median comes from a histogram
    with `bin_deg`-wide bins over [0°, 180°] (18,000 int64 bins at the default 0.01°): fixed memory whatever the
    dataset size, and summable across workers; the median is interpolated linearly inside its bin, so it is off by at
    most `bin_deg` from the exact median over all pixels.
    Output keys: `normal_mean_deg`, `normal_median_deg`, `normal_rmse_deg`, and `normal_within_<t>` for each threshold
    t in degrees: the share in [0, 1] of pixels with error strictly below t (×100 for the percent usually quoted).
    """

    def __init__(self, thresholds_deg: Sequence[float] = (11.25, 22.5, 30.0), bin_deg: float = 0.01) -> None:
        if bin_deg <= 0:
            raise ValueError(f"bin_deg must be > 0, got {bin_deg}")
        self.thresholds_deg = tuple(float(t) for t in thresholds_deg)
        self.bin_deg = bin_deg
        self.num_bins = int(np.ceil(180.0 / bin_deg))
        self.reset()

    def reset(self) -> None:
        self.histogram = torch.zeros(self.num_bins, dtype=torch.int64)
        self.count = 0
        self.sum_deg = 0.0
        self.sum_sq_deg = 0.0
        self.within = [0] * len(self.thresholds_deg)

    def update(
        self,
        pred: torch.Tensor | np.ndarray,
        target: torch.Tensor | np.ndarray,
        valid: torch.Tensor | np.ndarray | None = None,
    ) -> None:
        """pred, target [B, 3, H, W]; valid [B, H, W] or [B, 1, H, W] (all pixels when None)."""
        pred, target = torch.as_tensor(pred).double(), torch.as_tensor(target).double()
        if pred.shape != target.shape or pred.ndim != 4 or pred.shape[1] != 3:
            raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must both be [B, 3, H, W]")
        cos = (F.normalize(pred, dim=1) * F.normalize(target, dim=1)).sum(dim=1)  # [B, H, W]
        angle = torch.rad2deg(torch.acos(cos.clamp(-1.0, 1.0)))  # [B, H, W]
        if valid is not None:
            angle = angle[torch.as_tensor(valid, dtype=torch.bool).reshape(angle.shape)]
        angle = angle.flatten().cpu()  # [N]
        self.count += angle.numel()
        self.sum_deg += float(angle.sum())
        self.sum_sq_deg += float(angle.square().sum())
        for i, t in enumerate(self.thresholds_deg):
            self.within[i] += int((angle < t).sum())
        bins = (angle / self.bin_deg).long().clamp(max=self.num_bins - 1)  # [N]
        self.histogram += torch.bincount(bins, minlength=self.num_bins)

    def compute(self) -> dict[str, float]:
        if self.count == 0:
            raise RuntimeError("no valid pixels accumulated: call update() with at least one valid pixel")
        out = {
            "normal_mean_deg": self.sum_deg / self.count,
            "normal_median_deg": self._median(),
            "normal_rmse_deg": float(np.sqrt(self.sum_sq_deg / self.count)),
        }
        out.update(
            {f"normal_within_{t:g}": n / self.count for t, n in zip(self.thresholds_deg, self.within, strict=True)}
        )
        return out

    def _median(self) -> float:
        """The angle at which the histogram's cumulative count reaches half the pixels, linear inside the bin."""
        cdf = self.histogram.cumsum(0).double()  # [num_bins]
        half = self.count / 2
        b = int(torch.searchsorted(cdf, torch.tensor([half], dtype=torch.float64))[0])
        below = float(cdf[b - 1]) if b > 0 else 0.0
        fraction = (half - below) / float(self.histogram[b])
        return (b + fraction) * self.bin_deg
