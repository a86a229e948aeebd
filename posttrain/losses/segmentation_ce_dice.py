"""Body-part segmentation loss: class-weighted cross-entropy + soft Dice (the Sapiens recipe, mmseg CE + Dice).

For logits [B, C, H, W] and labels [B, H, W], V the pixels whose label is not `ignore_index`:

    ce   = Σ_{p∈V} -a[y_p] · log softmax(z_p)[y_p] / Σ_{p∈V} a[y_p]      (a = class weights; = F.cross_entropy)
    P_c  = Σ_{p∈V} softmax(z_p)[c],   G_c = |{p ∈ V : y_p = c}|,   I_c = Σ_{p∈V, y_p=c} softmax(z_p)[c]
    dice = mean over c = 1..C-1 of  1 - (2·I_c + s) / (P_c + G_c + s)   (background c = 0 excluded)
    loss = ce_weight · ce + dice_weight · dice

Sums run over the whole batch (one Dice per class, not per image), so small parts absent from one image do not
dominate. `s` (smooth) is added to both sides: a perfect prediction (P = G = I) gives exactly 0, a class absent from
labels and predictions gives 0. With every pixel ignored both terms are 0, never NaN.
"""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class SegmentationCEDiceLoss(nn.Module):
    def __init__(
        self,
        num_classes: int,
        class_weights: Sequence[float] | Tensor | None = None,
        ignore_index: int = 255,
        ce_weight: float = 1.0,
        dice_weight: float = 1.0,
        smooth: float = 1.0,
    ) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2 (background + at least one part), got {num_classes}")
        if smooth <= 0:
            raise ValueError(f"smooth must be > 0 (it keeps Dice finite for absent classes), got {smooth}")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.ce_weight = ce_weight
        self.dice_weight = dice_weight
        self.smooth = smooth
        weights = torch.ones(num_classes) if class_weights is None else torch.as_tensor(class_weights).float()
        if weights.shape != (num_classes,):
            raise ValueError(
                f"class_weights must hold one weight per class ({num_classes}), got {tuple(weights.shape)}"
            )
        self.register_buffer("class_weights", weights, persistent=False)

    def forward(self, logits: Tensor, labels: Tensor) -> dict[str, Tensor]:
        """Logits [B, C, H, W], integer labels [B, H, W] at the same resolution → {"loss", "ce", "dice"} scalars."""
        B, C, H, W = logits.shape
        if self.num_classes != C or labels.shape != (B, H, W):
            raise ValueError(
                f"expected logits [B, {self.num_classes}, H, W] and labels [B, H, W] of the same size, got "
                f"{tuple(logits.shape)} and {tuple(labels.shape)}; resize logits with SegmentationHead(out_size=...)"
            )
        logits = logits.float()
        labels = labels.long()
        valid = labels != self.ignore_index  # [B, H, W]
        safe = labels.masked_fill(~valid, 0)  # any real class: those pixels are masked out below
        bad = valid & ((labels < 0) | (labels >= C))
        if bool(bad.any()):
            raise ValueError(f"labels must lie in [0, {C}) or equal ignore_index ({self.ignore_index})")

        # CE as a weighted sum over valid pixels; the clamped denominator keeps an all-ignored batch at 0, not NaN.
        pixel_ce = F.cross_entropy(logits, safe, weight=self.class_weights, reduction="none")  # [B, H, W], a[y]·nll
        pixel_weight = self.class_weights[safe] * valid  # [B, H, W]
        ce = pixel_ce.masked_fill(~valid, 0).sum() / pixel_weight.sum().clamp_min(torch.finfo(logits.dtype).tiny)

        # Dice sums without a one-hot tensor (it would be [B, C, H, W] int64 at full label resolution).
        probs = logits.softmax(dim=1) * valid[:, None]  # [B, C, H, W], ignored pixels zeroed
        true_probs = probs.gather(1, safe[:, None])[:, 0][valid]  # [V] probability of each valid pixel's own label
        intersection = torch.zeros(C, device=logits.device).index_add_(0, safe[valid], true_probs)  # [C]
        pred_sum = probs.sum(dim=(0, 2, 3))  # [C]
        label_sum = torch.bincount(safe[valid], minlength=C)  # [C]
        dice_per_class = 1 - (2 * intersection + self.smooth) / (pred_sum + label_sum + self.smooth)  # [C]
        dice = dice_per_class[1:].mean()  # background excluded

        loss = self.ce_weight * ce + self.dice_weight * dice
        return {"loss": loss, "ce": ce.detach(), "dice": dice.detach()}
