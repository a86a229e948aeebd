import numpy as np
import pytest
import torch

from posttrain.losses.albedo_loss import AlbedoLoss


def _albedo(seed: int, shape=(2, 3, 6, 5)) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed)) * 0.8


def _valid(seed: int, shape=(2, 1, 6, 5)) -> torch.Tensor:
    valid = torch.rand(shape, generator=torch.Generator().manual_seed(seed)) > 0.3
    valid[:, 0, 0, 0] = True
    return valid


def test_perfect_prediction_gives_exactly_zero():
    target = _albedo(0)
    out = AlbedoLoss()(target.clone(), target, _valid(1))
    assert all(v.item() == 0.0 for v in out.values())


def test_constant_offset_is_caught_by_l1_and_mean_colour_but_not_by_gradients():
    target, valid = _albedo(2), _valid(3)
    offset = torch.tensor([0.1, 0.2, 0.05])[None, :, None, None]
    out = AlbedoLoss()(target + offset, target, valid)
    assert out["l1"].item() == pytest.approx(0.35 / 3, rel=1e-5)
    assert out["mean_colour"].item() == pytest.approx(0.35 / 3, rel=1e-5)
    assert out["gradient"].item() == pytest.approx(0.0, abs=1e-6)
    assert out["loss"].item() > 0


def test_terms_equal_a_direct_numpy_computation():
    pred, target, valid = _albedo(4), _albedo(5), _valid(6)
    out = AlbedoLoss(l1_weight=2.0, gradient_weight=0.5, mean_colour_weight=3.0)(pred, target, valid)
    p, t, v = pred.numpy().astype(np.float64), target.numpy().astype(np.float64), valid.numpy()[:, 0]
    l1 = np.abs(p - t).transpose(0, 2, 3, 1)[v].mean()
    gx, gy = np.diff(p - t, axis=3), np.diff(p - t, axis=2)
    vx, vy = v[:, :, 1:] & v[:, :, :-1], v[:, 1:, :] & v[:, :-1, :]
    gradient = (np.abs(gx).transpose(0, 2, 3, 1)[vx].sum() + np.abs(gy).transpose(0, 2, 3, 1)[vy].sum()) / (
        3 * (vx.sum() + vy.sum())
    )
    colour = np.mean(
        [np.abs(p[b].transpose(1, 2, 0)[v[b]].mean(0) - t[b].transpose(1, 2, 0)[v[b]].mean(0)) for b in range(2)]
    )
    assert out["l1"].item() == pytest.approx(l1, rel=1e-5)
    assert out["gradient"].item() == pytest.approx(gradient, rel=1e-5)
    assert out["mean_colour"].item() == pytest.approx(colour, rel=1e-5)
    assert out["loss"].item() == pytest.approx(2.0 * l1 + 0.5 * gradient + 3.0 * colour, rel=1e-5)


def test_an_image_without_valid_pixels_does_not_dilute_the_mean_colour():
    target = _albedo(7)
    valid = torch.ones(2, 1, 6, 5, dtype=torch.bool)
    valid[1] = False
    out = AlbedoLoss()(target + 0.3, target, valid)
    assert out["mean_colour"].item() == pytest.approx(0.3, rel=1e-5)


def test_invalid_pixels_do_not_change_the_loss_or_the_gradients():
    pred, target, valid = _albedo(8), _albedo(9), _valid(10)
    clean_pred = pred.clone().requires_grad_(True)
    clean = AlbedoLoss()(clean_pred, target, valid)
    clean["loss"].backward()
    bad_pred = torch.where(valid, pred, -1e6).requires_grad_(True)
    bad_target = torch.where(valid, target, float("inf"))
    garbage = AlbedoLoss()(bad_pred, bad_target, valid[:, 0])
    garbage["loss"].backward()
    for key in clean:
        assert garbage[key].item() == clean[key].item()
    torch.testing.assert_close(bad_pred.grad, clean_pred.grad)


def test_no_valid_pixel_gives_zero_and_finite_gradients():
    pred = _albedo(11).requires_grad_(True)
    out = AlbedoLoss()(pred, torch.full_like(pred, float("nan")), torch.zeros(2, 1, 6, 5, dtype=torch.bool))
    out["loss"].backward()
    assert all(v.item() == 0.0 for v in out.values())
    assert torch.isfinite(pred.grad).all()
