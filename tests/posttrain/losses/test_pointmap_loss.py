import numpy as np
import pytest
import torch

from posttrain.losses.pointmap_loss import PointmapLoss, depth_normalise, normals_from_points

H, W, FOCAL = 8, 6, 10.0


def _plane_points(normal: tuple[float, float, float], offset: float) -> torch.Tensor:
    """Focal-normalised camera points [1, 3, H, W] of the plane n·P = offset seen through a pinhole camera."""
    v, u = torch.meshgrid(torch.arange(H, dtype=torch.float64), torch.arange(W, dtype=torch.float64), indexing="ij")
    rays = torch.stack(((u - W / 2) / FOCAL, (v - H / 2) / FOCAL, torch.ones_like(u)))  # [3, H, W]
    n = torch.tensor(normal, dtype=torch.float64)
    depth = offset / torch.einsum("c,chw->hw", n, rays)  # [H, W]
    return (rays * depth / FOCAL)[None]  # [1, 3, H, W]


def _surface(seed: int) -> torch.Tensor:
    """A bumpy surface in front of the camera: [2, 3, H, W] with z in [2, 3]."""
    g = torch.Generator().manual_seed(seed)
    v, u = torch.meshgrid(torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32), indexing="ij")
    z = 2.0 + torch.rand(2, 1, H, W, generator=g)
    return torch.cat(((u - W / 2) / FOCAL * z, (v - H / 2) / FOCAL * z, z), dim=1)


def _valid(seed: int) -> torch.Tensor:
    valid = torch.rand(2, 1, H, W, generator=torch.Generator().manual_seed(seed)) > 0.25
    valid[:, :, :2, :2] = True
    return valid


@pytest.mark.parametrize("normal", [(0.0, 0.0, -1.0), (0.3, -0.2, -0.9), (-0.5, 0.4, -0.6)])
def test_normals_of_a_plane_equal_the_plane_normal(normal):
    n = torch.tensor(normal, dtype=torch.float64)
    n = n / n.norm()  # faces the camera: n_z < 0
    points = _plane_points(tuple(n.tolist()), offset=-2.0)  # n·P = -2 puts the plane in front (z > 0)
    assert (points[:, 2] > 0).all()
    normals, defined = normals_from_points(points, torch.ones(1, 1, H, W, dtype=torch.bool))
    assert defined[0, 0, :-1, :-1].all() and not defined[0, 0, -1].any() and not defined[0, 0, :, -1].any()
    want = n[None, :, None, None].expand(1, 3, H - 1, W - 1)
    torch.testing.assert_close(normals[:, :, :-1, :-1], want, atol=1e-12, rtol=0)


def test_normals_equal_a_numpy_cross_product_of_forward_differences():
    points, valid = _surface(0), _valid(1)
    normals, defined = normals_from_points(points, valid)
    p, v = points.numpy().astype(np.float64), valid.numpy()[:, 0]
    for b in range(2):
        for i in range(H - 1):
            for j in range(W - 1):
                ok = v[b, i, j] and v[b, i, j + 1] and v[b, i + 1, j]
                assert defined[b, 0, i, j].item() == ok
                if ok:
                    c = np.cross(p[b, :, i + 1, j] - p[b, :, i, j], p[b, :, i, j + 1] - p[b, :, i, j])
                    np.testing.assert_allclose(normals[b, :, i, j].numpy(), c / np.linalg.norm(c), atol=1e-5)
                else:
                    assert (normals[b, :, i, j] == 0).all()


def test_depth_normaliser_is_the_mean_abs_depth_over_valid_pixels_and_reconstructs_the_target():
    points, valid = _surface(2), _valid(3)
    normalised, depth = depth_normalise(points, valid)
    for b in range(2):
        assert depth[b].item() == pytest.approx(points[b, 2][valid[b, 0]].mean().item(), rel=1e-6)
    torch.testing.assert_close(normalised * depth[:, None, None, None], points)


def test_perfect_prediction_gives_exactly_zero():
    target, valid = _surface(4), _valid(5)
    _, depth = depth_normalise(target, valid)
    out = PointmapLoss()(target.clone(), depth.clone(), target, valid)
    assert all(v.item() == 0.0 for v in out.values())


def test_points_term_ignores_a_global_scale_while_the_scale_term_catches_it():
    target, valid = _surface(6), _valid(7)
    _, depth = depth_normalise(target, valid)
    scaled = PointmapLoss()(3.7 * target, depth, target, valid)
    assert scaled["points"].item() == pytest.approx(0.0, abs=1e-6)
    assert scaled["normal"].item() == pytest.approx(0.0, abs=1e-6)
    assert scaled["scale"].item() == 0.0
    wrong_scale = PointmapLoss()(target, depth * torch.tensor([2.0, 0.5]), target, valid)
    assert wrong_scale["points"].item() == 0.0
    assert wrong_scale["scale"].item() == pytest.approx(((depth[0] + 0.5 * depth[1]) / 2).item(), rel=1e-6)


def test_terms_equal_a_direct_computation_and_are_weighted():
    target, valid = _surface(8), _valid(9)
    pred = _surface(10)
    pred_scale = torch.tensor([1.0, 4.0])
    out = PointmapLoss(points_weight=2.0, scale_weight=0.5, normal_weight=3.0)(pred, pred_scale, target, valid)
    p, t, v = pred.numpy().astype(np.float64), target.numpy().astype(np.float64), valid.numpy()[:, 0]
    p_depth = np.array([p[b, 2][v[b]].mean() for b in range(2)])
    t_depth = np.array([t[b, 2][v[b]].mean() for b in range(2)])
    pn, tn = p / p_depth[:, None, None, None], t / t_depth[:, None, None, None]
    points = np.abs(pn - tn).transpose(0, 2, 3, 1)[v].mean()
    scale = np.abs(pred_scale.numpy() - t_depth).mean()
    pred_normals, _ = normals_from_points(torch.from_numpy(pn), valid)
    target_normals, defined = normals_from_points(torch.from_numpy(tn), valid)
    cos = (pred_normals * target_normals).sum(1)[defined[:, 0]]
    normal = (1 - cos).mean().item()
    assert out["points"].item() == pytest.approx(points, rel=1e-5)
    assert out["scale"].item() == pytest.approx(scale, rel=1e-5)
    assert out["normal"].item() == pytest.approx(normal, rel=1e-4)
    assert out["normal"].item() > 0
    assert out["loss"].item() == pytest.approx(2.0 * points + 0.5 * scale + 3.0 * normal, rel=1e-4)


def test_invalid_pixels_do_not_change_the_loss_or_the_gradients():
    target, valid, pred = _surface(11), _valid(12), _surface(13)
    scale = torch.tensor([2.0, 3.0])
    clean_pred = pred.clone().requires_grad_(True)
    clean = PointmapLoss()(clean_pred, scale, target, valid)
    clean["loss"].backward()
    bad_pred = torch.where(valid, pred, 1e6).requires_grad_(True)
    bad_target = torch.where(valid, target, float("nan"))
    garbage = PointmapLoss()(bad_pred, scale, bad_target, valid[:, 0])
    garbage["loss"].backward()
    for key in clean:
        assert garbage[key].item() == clean[key].item()
    torch.testing.assert_close(bad_pred.grad, clean_pred.grad)


def test_no_valid_pixel_gives_zero_and_finite_gradients():
    pred = _surface(14).requires_grad_(True)
    scale = torch.tensor([1.0, 2.0], requires_grad=True)
    nan_target = torch.full_like(pred, float("nan"))
    out = PointmapLoss()(pred, scale, nan_target, torch.zeros(2, 1, H, W, dtype=torch.bool))
    out["loss"].backward()
    assert all(v.item() == 0.0 for v in out.values())
    assert torch.isfinite(pred.grad).all() and torch.isfinite(scale.grad).all()


def test_scale_must_be_one_value_per_image():
    target = _surface(15)
    with pytest.raises(ValueError, match=r"pred_scale must be \[B\]"):
        PointmapLoss()(target, torch.ones(2, 1), target, torch.ones(2, 1, H, W, dtype=torch.bool))
