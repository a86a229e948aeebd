"""AlbedoMetric on constant errors with known MAE and PSNR."""

import math

import numpy as np
import pytest
import torch

from posttrain.metrics.albedo import AlbedoMetric


@pytest.mark.parametrize(("max_value", "error"), [(1.0, 0.1), (255.0, 5.0)])
def test_constant_error(max_value: float, error: float) -> None:
    target = torch.full((2, 3, 4, 5), max_value / 2, dtype=torch.float64)
    metric = AlbedoMetric(max_value)
    metric.update(target + error, target)
    out = metric.compute()
    assert out["albedo_mae"] == pytest.approx(error)
    assert out["albedo_psnr"] == pytest.approx(10 * math.log10(max_value**2 / error**2))


def test_invalid_pixels_are_ignored() -> None:
    target = torch.zeros(1, 3, 2, 2)
    pred = torch.full((1, 3, 2, 2), 0.1)
    pred[0, :, 1, 1] = 1.0  # invalid pixel with a large error
    valid = torch.tensor([[[True, True], [True, False]]])
    metric = AlbedoMetric()
    metric.update(pred, target, valid)
    out = metric.compute()
    assert out["albedo_mae"] == pytest.approx(0.1)
    assert out["albedo_psnr"] == pytest.approx(20.0)


def test_psnr_is_pooled_over_the_dataset_not_averaged_per_image() -> None:
    target = torch.zeros(2, 3, 4, 4, dtype=torch.float64)
    pred = target.clone()
    pred[0] += 0.1
    pred[1] += 0.3
    metric = AlbedoMetric()
    metric.update(pred, target)
    out = metric.compute()
    assert out["albedo_mae"] == pytest.approx(0.2)
    assert out["albedo_psnr"] == pytest.approx(10 * math.log10(1 / ((0.01 + 0.09) / 2)))  # 13.01 dB
    assert out["albedo_psnr"] != pytest.approx((20.0 + 10 * math.log10(1 / 0.09)) / 2)  # per-image mean: 15.23 dB


def test_exact_prediction_gives_infinite_psnr() -> None:
    target = torch.rand(1, 3, 2, 2)
    metric = AlbedoMetric()
    metric.update(target, target)
    assert metric.compute() == {"albedo_mae": 0.0, "albedo_psnr": math.inf}


def test_two_updates_equal_one() -> None:
    rng = np.random.default_rng(0)
    pred, target = rng.uniform(size=(2, 4, 3, 6, 6))
    valid = rng.uniform(size=(4, 1, 6, 6)) < 0.7
    whole = AlbedoMetric()
    whole.update(pred, target, valid)
    split = AlbedoMetric()
    split.update(pred[:1], target[:1], valid[:1])
    split.update(pred[1:], target[1:], valid[1:])
    expected = whole.compute()
    mask = np.broadcast_to(valid, pred.shape)
    assert expected["albedo_mae"] == pytest.approx(np.abs(pred - target)[mask].mean())
    assert split.compute() == pytest.approx(expected)
