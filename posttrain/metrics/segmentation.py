"""Semantic segmentation metrics (mIoU, per-class IoU, aAcc, mAcc) from a confusion matrix accumulated over batches."""

from collections.abc import Sequence

import numpy as np
import torch


class SegmentationMetric:
    """Accumulates a [C, C] confusion matrix (rows = ground truth, columns = prediction) over the valid pixels.

    A pixel is valid when its target is not `ignore_index` and `valid` (if given) is true there.
    Conventions follow mmseg's `IoUMetric`:
      - IoU_c = TP_c / (TP_c + FP_c + FN_c); a class whose union is 0 (absent from both ground truth and prediction
        on every valid pixel) gets NaN and is left out of mIoU. A class that is only predicted counts with IoU 0.
      - Acc_c = TP_c / (TP_c + FN_c); NaN for classes absent from the ground truth, left out of mAcc.
      - aAcc = trace / total valid pixels.
    Output keys: `seg_mIoU`, `seg_mAcc`, `seg_aAcc`, and `seg_IoU_<class name>` per class (NaN when undefined).
    """

    def __init__(self, num_classes: int, ignore_index: int = 255, class_names: Sequence[str] | None = None) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"class_names has {len(class_names)} names for {num_classes} classes: pass one per class")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.class_names = tuple(class_names) if class_names is not None else tuple(str(c) for c in range(num_classes))
        self.confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    def update(
        self,
        pred: torch.Tensor | np.ndarray,
        target: torch.Tensor | np.ndarray,
        valid: torch.Tensor | np.ndarray | None = None,
    ) -> None:
        """pred: labels [B, H, W] or logits [B, C, H, W] (argmax over C); target labels [B, H, W]; valid [B, H, W]."""
        pred, target = torch.as_tensor(pred), torch.as_tensor(target)
        if pred.ndim == target.ndim + 1:
            pred = pred.argmax(dim=1)  # [B, H, W]
        if pred.shape != target.shape:
            raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must have the same shape")
        mask = target != self.ignore_index
        if valid is not None:
            mask &= torch.as_tensor(valid, dtype=torch.bool).reshape(target.shape)
        gt, pr = target[mask].long(), pred[mask].long()  # [N]
        C = self.num_classes
        for name, labels in (("target", gt), ("pred", pr)):
            if labels.numel() and (labels.min() < 0 or labels.max() >= C):
                raise ValueError(
                    f"{name} has labels outside [0, {C}) on valid pixels: check num_classes or set ignore_index"
                )
        # Flat index gt * C + pred counts each (gt, pred) pair in one pass.
        self.confusion += torch.bincount(gt * C + pr, minlength=C * C).reshape(C, C).cpu()

    def compute(self) -> dict[str, float]:
        total = int(self.confusion.sum())
        if total == 0:
            raise RuntimeError("no valid pixels accumulated: call update() with at least one non-ignored pixel")
        cm = self.confusion.double()
        tp = cm.diag()  # [C]
        gt_area, pred_area = cm.sum(dim=1), cm.sum(dim=0)  # [C], [C]
        union = gt_area + pred_area - tp
        iou = torch.where(union > 0, tp / union.clamp(min=1), torch.nan)
        acc = torch.where(gt_area > 0, tp / gt_area.clamp(min=1), torch.nan)
        out = {
            "seg_mIoU": float(iou.nanmean()),
            "seg_mAcc": float(acc.nanmean()),
            "seg_aAcc": float(tp.sum() / total),
        }
        out.update({f"seg_IoU_{name}": float(v) for name, v in zip(self.class_names, iou, strict=True)})
        return out

    def reset(self) -> None:
        self.confusion.zero_()
