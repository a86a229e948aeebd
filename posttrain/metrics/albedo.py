"""Albedo metrics: mean absolute error and PSNR over valid pixels, accumulated over a dataset."""

import math

import numpy as np
import torch


class AlbedoMetric:
    """MAE and PSNR of predicted albedo [B, C, H, W] (values in [0, max_value]) against the target.

    Both come from exact running sums over every valid pixel and channel of the dataset:
      - `albedo_mae` = sum |pred - target| / (valid pixels × C);
      - `albedo_psnr` = 10 · log10(max_value² / MSE) with the MSE pooled over the whole dataset (global PSNR, not a
        mean of per-image PSNRs: it weights every pixel equally and stays finite when a single image is reproduced
        exactly). It is +inf when the MSE is 0.
    The prediction is not clamped to [0, max_value]: clamp before update() if the model's output is meant that way.
    """

    def __init__(self, max_value: float = 1.0) -> None:
        if max_value <= 0:
            raise ValueError(f"max_value must be > 0, got {max_value}")
        self.max_value = max_value
        self.reset()

    def reset(self) -> None:
        self.count = 0  # valid pixels × channels
        self.sum_abs = 0.0
        self.sum_sq = 0.0

    def update(
        self,
        pred: torch.Tensor | np.ndarray,
        target: torch.Tensor | np.ndarray,
        valid: torch.Tensor | np.ndarray | None = None,
    ) -> None:
        """pred, target [B, C, H, W]; valid [B, H, W] or [B, 1, H, W] (all pixels when None)."""
        pred, target = torch.as_tensor(pred).double(), torch.as_tensor(target).double()
        if pred.shape != target.shape or pred.ndim != 4:
            raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must both be [B, C, H, W]")
        diff = pred - target  # [B, C, H, W]
        if valid is not None:
            B, _, H, W = diff.shape
            mask = torch.as_tensor(valid, dtype=torch.bool).reshape(B, H, W)
            diff = diff.permute(0, 2, 3, 1)[mask]  # [N, C]
        self.count += diff.numel()
        self.sum_abs += float(diff.abs().sum())
        self.sum_sq += float(diff.square().sum())

    def compute(self) -> dict[str, float]:
        if self.count == 0:
            raise RuntimeError("no valid pixels accumulated: call update() with at least one valid pixel")
        mse = self.sum_sq / self.count
        psnr = 10 * math.log10(self.max_value**2 / mse) if mse > 0 else math.inf
        return {"albedo_mae": self.sum_abs / self.count, "albedo_psnr": psnr}
