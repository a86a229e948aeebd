"""NormalMetric on normals at known angles and against numpy on random fields."""

import math

import numpy as np
import pytest
import torch

from posttrain.metrics.normal import NormalMetric


def _tilted(angles_deg: list[float], length: float = 1.0) -> torch.Tensor:
    """[1, 3, 1, N] vectors at the given angles from +z, in the x-z plane."""
    a = torch.deg2rad(torch.tensor(angles_deg, dtype=torch.float64))
    return (length * torch.stack([a.sin(), torch.zeros_like(a), a.cos()]))[None, :, None, :]


def test_known_angles_with_an_invalid_pixel() -> None:
    angles = [0.0, 90.0, 45.0, 10.0, 25.0, 170.0]
    pred = _tilted(angles, length=3.0)  # not unit length: re-normalised
    target = _tilted([0.0] * 6)
    valid = torch.tensor([[[True] * 5 + [False]]])  # [1, 1, 6]: the 170° pixel is ignored
    metric = NormalMetric()
    metric.update(pred, target, valid)
    out = metric.compute()
    assert out["normal_mean_deg"] == pytest.approx(34.0)  # (0 + 90 + 45 + 10 + 25) / 5
    assert out["normal_median_deg"] == pytest.approx(25.0, abs=metric.bin_deg)
    assert out["normal_rmse_deg"] == pytest.approx(math.sqrt((0 + 8100 + 2025 + 100 + 625) / 5))
    assert out["normal_within_11.25"] == pytest.approx(2 / 5)  # 0°, 10°
    assert out["normal_within_22.5"] == pytest.approx(2 / 5)
    assert out["normal_within_30"] == pytest.approx(3 / 5)  # + 25°


def test_opposite_normals_are_180_degrees() -> None:
    metric = NormalMetric()
    metric.update(-_tilted([30.0]), _tilted([30.0]))
    out = metric.compute()
    assert out["normal_mean_deg"] == pytest.approx(180.0)
    assert out["normal_median_deg"] == pytest.approx(180.0, abs=metric.bin_deg)


def test_random_fields_match_numpy_and_batches_accumulate() -> None:
    rng = np.random.default_rng(0)
    pred = rng.normal(size=(3, 3, 8, 10))
    target = rng.normal(size=(3, 3, 8, 10))
    valid = rng.uniform(size=(3, 1, 8, 10)) < 0.7
    p = pred / np.linalg.norm(pred, axis=1, keepdims=True)
    t = target / np.linalg.norm(target, axis=1, keepdims=True)
    angles = np.degrees(np.arccos(np.clip((p * t).sum(1), -1, 1)))[valid[:, 0]]

    whole = NormalMetric()
    whole.update(torch.from_numpy(pred), torch.from_numpy(target), torch.from_numpy(valid))
    out = whole.compute()
    assert out["normal_mean_deg"] == pytest.approx(angles.mean())
    assert out["normal_median_deg"] == pytest.approx(np.median(angles), abs=whole.bin_deg)
    assert out["normal_rmse_deg"] == pytest.approx(np.sqrt((angles**2).mean()))
    assert out["normal_within_30"] == pytest.approx((angles < 30).mean())

    split = NormalMetric()
    split.update(pred[:1], target[:1], valid[:1])
    split.update(pred[1:], target[1:], valid[1:])
    torch.testing.assert_close(split.histogram, whole.histogram)
    assert split.compute() == pytest.approx(out)


def test_nothing_accumulated_raises() -> None:
    metric = NormalMetric()
    metric.update(_tilted([10.0]), _tilted([0.0]), torch.zeros(1, 1, 1, dtype=torch.bool))
    with pytest.raises(RuntimeError, match="update"):
        metric.compute()
