"""SegmentationMetric against a hand-worked example and a confusion matrix counted pixel by pixel."""

import math

import numpy as np
import pytest
import torch

from posttrain.metrics.segmentation import SegmentationMetric

IGNORE = 255


def test_hand_worked_example() -> None:
    target = torch.tensor([[[0, 0, 1], [1, 2, IGNORE]]])  # [1, 2, 3]
    pred = torch.tensor([[[0, 1, 1], [1, 0, 2]]])
    # Valid (gt, pred) pairs: (0,0) (0,1) (1,1) (1,1) (2,0).
    # IoU: class 0 = 1 / (2 + 2 - 1) = 1/3, class 1 = 2 / (2 + 3 - 2) = 2/3, class 2 = 0 / 1 = 0, class 3 absent.
    metric = SegmentationMetric(num_classes=4, class_names=["a", "b", "c", "d"])
    metric.update(pred, target)
    out = metric.compute()
    assert out["seg_IoU_a"] == pytest.approx(1 / 3)
    assert out["seg_IoU_b"] == pytest.approx(2 / 3)
    assert out["seg_IoU_c"] == 0.0
    assert math.isnan(out["seg_IoU_d"])
    assert out["seg_mIoU"] == pytest.approx((1 / 3 + 2 / 3 + 0) / 3)  # class 3 left out
    assert out["seg_aAcc"] == pytest.approx(3 / 5)
    assert out["seg_mAcc"] == pytest.approx((1 / 2 + 1 + 0) / 3)


def test_class_only_predicted_counts_with_iou_zero() -> None:
    target = torch.zeros(1, 2, 2, dtype=torch.long)
    pred = torch.tensor([[[0, 0], [0, 1]]])
    metric = SegmentationMetric(num_classes=3)
    metric.update(pred, target)
    out = metric.compute()
    assert out["seg_IoU_0"] == pytest.approx(3 / 4)
    assert out["seg_IoU_1"] == 0.0
    assert out["seg_mIoU"] == pytest.approx(3 / 8)  # classes 0 and 1; class 2 absent
    assert out["seg_mAcc"] == pytest.approx(3 / 4)  # accuracy is over ground-truth classes only


def _brute_force(pred: np.ndarray, target: np.ndarray, valid: np.ndarray, num_classes: int) -> np.ndarray:
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    for p, t, v in zip(pred.ravel(), target.ravel(), valid.ravel(), strict=True):
        if v and t != IGNORE:
            cm[t, p] += 1
    return cm


def test_random_labels_match_pixel_by_pixel_count() -> None:
    rng = np.random.default_rng(0)
    num_classes = 6  # labels drawn from 0..4: class 5 is absent everywhere
    target = rng.integers(0, 5, size=(2, 7, 9))
    target[rng.uniform(size=target.shape) < 0.15] = IGNORE
    pred = rng.integers(0, 5, size=(2, 7, 9))
    valid = rng.uniform(size=target.shape) < 0.8
    metric = SegmentationMetric(num_classes)
    metric.update(torch.from_numpy(pred), torch.from_numpy(target), torch.from_numpy(valid))
    cm = _brute_force(pred, target, valid, num_classes)
    np.testing.assert_array_equal(metric.confusion.numpy(), cm)

    out = metric.compute()
    ious = []
    for c in range(num_classes):
        keep = valid & (target != IGNORE)
        inter = ((pred == c) & (target == c) & keep).sum()
        union = (((pred == c) | (target == c)) & keep).sum()
        if union == 0:
            assert math.isnan(out[f"seg_IoU_{c}"])
            continue
        ious.append(inter / union)
        assert out[f"seg_IoU_{c}"] == pytest.approx(inter / union)
    assert len(ious) == 5
    assert out["seg_mIoU"] == pytest.approx(np.mean(ious))
    assert out["seg_aAcc"] == pytest.approx(np.trace(cm) / cm.sum())
    assert out["seg_mAcc"] == pytest.approx(np.mean([cm[c, c] / cm[c].sum() for c in range(5)]))


def test_logits_argmax_and_two_updates_equal_one() -> None:
    rng = np.random.default_rng(1)
    logits = torch.from_numpy(rng.normal(size=(4, 3, 5, 6)))  # [B, C, H, W]
    target = torch.from_numpy(rng.integers(0, 3, size=(4, 5, 6)))
    whole = SegmentationMetric(3)
    whole.update(logits.argmax(1), target)
    split = SegmentationMetric(3)
    split.update(logits[:1], target[:1])
    split.update(logits[1:].numpy(), target[1:].numpy())
    torch.testing.assert_close(split.confusion, whole.confusion)
    assert split.compute() == pytest.approx(whole.compute())


def test_out_of_range_label_raises() -> None:
    metric = SegmentationMetric(3)
    with pytest.raises(ValueError, match="outside"):
        metric.update(torch.tensor([[[3]]]), torch.tensor([[[0]]]))


def test_no_valid_pixel_raises() -> None:
    metric = SegmentationMetric(3)
    metric.update(torch.tensor([[[1]]]), torch.tensor([[[IGNORE]]]))
    with pytest.raises(RuntimeError, match="update"):
        metric.compute()
