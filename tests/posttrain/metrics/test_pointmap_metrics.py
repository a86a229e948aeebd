"""PointmapMetric on hand-computed offsets, scale alignment and batch accumulation."""

import numpy as np
import pytest
import torch

from posttrain.metrics.pointmap import PointmapMetric


def _points(xyz: list[list[float]]) -> torch.Tensor:
    """[N, 3] points → [1, 3, 1, N]."""
    return torch.tensor(xyz, dtype=torch.float64).T[None, :, None, :]


def test_known_offsets_with_an_invalid_pixel() -> None:
    target = _points([[0, 0, 2], [1, 0, 3], [0, 1, 4], [1, 1, 5], [0, 0, 6]])
    # Distances 0.03, 0.08, 0.15, 0.5 (a 0.3-0.4-0.5 triangle) and 9 on the pixel marked invalid.
    offsets = _points([[0, 0, 0.03], [0, 0.08, 0], [0.15, 0, 0], [0.3, 0.4, 0], [9, 0, 0]])
    valid = torch.tensor([[[True, True, True, True, False]]])  # [1, 1, 5]
    metric = PointmapMetric(scale_aligned=False)
    metric.update(target + offsets, target, valid)
    out = metric.compute()
    assert out["pointmap_l2"] == pytest.approx((0.03 + 0.08 + 0.15 + 0.5) / 4)
    assert out["pointmap_within_0.05"] == pytest.approx(1 / 4)
    assert out["pointmap_within_0.1"] == pytest.approx(2 / 4)
    assert out["pointmap_within_0.2"] == pytest.approx(3 / 4)
    assert "pointmap_aligned_l2" not in out


def test_scale_alignment_uses_each_images_median_depth_ratio() -> None:
    target = _points([[0, 0, 1], [0, 0, 2], [0, 0, 3]])
    pred = _points([[0, 0, 1], [0, 0, 4], [0, 0, 4]])
    # Median depths: target 2, pred 4 → s = 0.5 → aligned z [0.5, 2, 2]: errors [0.5, 0, 1]. Raw errors [0, 2, 1].
    # Second image: a prediction at 3× the target's scale aligns exactly.
    other = _points([[0.5, 1, 2], [1, 0, 3], [0, 0, 7]])
    metric = PointmapMetric(thresholds=(0.1,))
    metric.update(torch.cat([pred, 3 * other]), torch.cat([target, other]))
    out = metric.compute()
    raw_other = 2 * torch.linalg.norm(other[0, :, 0], dim=0)  # [3] |3x - x| = 2|x|
    assert out["pointmap_l2"] == pytest.approx((0 + 2 + 1 + float(raw_other.sum())) / 6)
    assert out["pointmap_aligned_l2"] == pytest.approx((0.5 + 0 + 1 + 0 + 0 + 0) / 6)
    assert out["pointmap_aligned_within_0.1"] == pytest.approx(4 / 6)
    assert out["pointmap_aligned_skipped_images"] == 0.0


def test_non_positive_predicted_depth_is_skipped_and_counted() -> None:
    target = _points([[0, 0, 1], [0, 0, 2], [0, 0, 3]])
    metric = PointmapMetric()
    metric.update(torch.cat([-target, target / 2]), torch.cat([target, target]))
    out = metric.compute()
    assert out["pointmap_aligned_skipped_images"] == 1.0
    assert out["pointmap_aligned_l2"] == 0.0  # only the second image, aligned exactly
    assert out["pointmap_l2"] == pytest.approx((2 * 6 + 0.5 * 6) / 6)  # raw statistics keep both images


def test_two_updates_equal_one() -> None:
    rng = np.random.default_rng(0)
    target = rng.uniform(0.5, 3.0, size=(4, 3, 6, 5))
    pred = target * rng.uniform(0.8, 1.2) + rng.normal(0, 0.1, size=target.shape)
    valid = rng.uniform(size=(4, 6, 5)) < 0.8
    whole = PointmapMetric()
    whole.update(pred, target, valid)
    split = PointmapMetric()
    split.update(pred[:3], target[:3], valid[:3])
    split.update(pred[3:], target[3:], valid[3:])
    expected = whole.compute()
    assert 0.0 < expected["pointmap_within_0.2"] < 1.0
    assert split.compute() == pytest.approx(expected)
