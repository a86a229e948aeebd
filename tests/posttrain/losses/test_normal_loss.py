import numpy as np
import pytest
import torch
import torch.nn.functional as F

from posttrain.losses.normal_loss import NormalLoss


def _normals(seed: int, shape=(2, 3, 6, 5)) -> torch.Tensor:
    return F.normalize(torch.randn(shape, generator=torch.Generator().manual_seed(seed)), dim=1)


def _valid(seed: int, shape=(2, 1, 6, 5)) -> torch.Tensor:
    valid = torch.rand(shape, generator=torch.Generator().manual_seed(seed)) > 0.3
    valid[0, 0, 0, 0] = True
    return valid


def test_perfect_prediction_gives_exactly_zero():
    target = _normals(0)
    out = NormalLoss()(target.clone(), target, _valid(1))
    assert all(v.item() == 0.0 for v in out.values())


def test_terms_equal_a_direct_numpy_computation():
    pred, target, valid = _normals(2), _normals(3), _valid(4)
    weights = {"cosine_weight": 0.5, "l1_weight": 2.0, "gradient_weight": 3.0}
    out = NormalLoss(**weights)(pred, target, valid)
    p, t, v = pred.numpy().astype(np.float64), target.numpy().astype(np.float64), valid.numpy()[:, 0]
    cosine = (1 - (p * t).sum(1))[v].mean()
    l1 = np.abs(p - t).transpose(0, 2, 3, 1)[v].mean()
    gx, gy = np.diff(p - t, axis=3), np.diff(p - t, axis=2)  # gradient of the difference = difference of gradients
    vx, vy = v[:, :, 1:] & v[:, :, :-1], v[:, 1:, :] & v[:, :-1, :]
    gradient = (np.abs(gx).transpose(0, 2, 3, 1)[vx].sum() + np.abs(gy).transpose(0, 2, 3, 1)[vy].sum()) / (
        3 * (vx.sum() + vy.sum())
    )
    assert out["cosine"].item() == pytest.approx(cosine, rel=1e-5)
    assert out["l1"].item() == pytest.approx(l1, rel=1e-5)
    assert out["gradient"].item() == pytest.approx(gradient, rel=1e-5)
    assert out["loss"].item() == pytest.approx(0.5 * cosine + 2.0 * l1 + 3.0 * gradient, rel=1e-5)


def test_opposite_normals_give_cosine_distance_two():
    target = _normals(5)
    valid = torch.ones(2, 1, 6, 5, dtype=torch.bool)
    out = NormalLoss()(-target, target, valid)
    assert out["cosine"].item() == pytest.approx(2.0)
    assert out["loss"].item() > 0


def test_invalid_pixels_do_not_change_the_loss_or_the_gradients():
    pred, target, valid = _normals(6), _normals(7), _valid(8)
    clean_pred = pred.clone().requires_grad_(True)
    clean = NormalLoss()(clean_pred, target, valid)
    clean["loss"].backward()
    bad_pred = torch.where(valid, pred, 1e6).requires_grad_(True)
    bad_target = torch.where(valid, target, float("nan"))
    garbage = NormalLoss()(bad_pred, bad_target, valid[:, 0])  # [B, H, W] mask form as well
    garbage["loss"].backward()
    for key in clean:
        assert garbage[key].item() == clean[key].item()
    torch.testing.assert_close(bad_pred.grad, clean_pred.grad)


def test_no_valid_pixel_gives_zero_and_finite_gradients():
    pred = _normals(9).requires_grad_(True)
    out = NormalLoss()(pred, torch.full_like(pred, float("nan")), torch.zeros(2, 1, 6, 5, dtype=torch.bool))
    out["loss"].backward()
    assert all(v.item() == 0.0 for v in out.values())
    assert torch.isfinite(pred.grad).all()
