import math

import pytest
import torch

from common.models.sizes import create_backbone
from posttrain.heads.albedo_head import AlbedoHead
from posttrain.heads.normal_head import NormalHead
from posttrain.heads.pixel_shuffle_upsampler import PixelShuffleUpsampler
from posttrain.heads.pointmap_head import PointmapHead
from posttrain.losses.albedo_loss import AlbedoLoss
from posttrain.losses.normal_loss import NormalLoss
from posttrain.losses.pointmap_loss import PointmapLoss

CHANNELS = (32, 16, 8, 8)  # small stages: the production default is (256, 128, 64, 32)
HEADS = ["pointmap", "normal", "albedo"]
OVERFIT_STEPS = {"pointmap": 25, "normal": 25, "albedo": 50}  # Adam steps to a 3× lower loss, with margin


def _head(task: str) -> torch.nn.Module:
    head = {"pointmap": PointmapHead, "normal": NormalHead, "albedo": AlbedoHead}[task]
    return head(64, channels=CHANNELS)


def _predict(task: str, head: torch.nn.Module, backbone: torch.nn.Module, images: torch.Tensor):
    ((features, cls_token),) = backbone.get_intermediate_layers(images, n=1, return_class_token=True)
    return head(features, cls_token) if task == "pointmap" else head(features)


def _loss(task: str, pred, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    if task == "pointmap":
        return PointmapLoss()(pred["points"], pred["scale"], target, valid)["loss"]
    return {"normal": NormalLoss(), "albedo": AlbedoLoss()}[task](pred, target, valid)["loss"]


def _sphere_targets(height: int, width: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Two spheres seen by a pinhole camera: focal-normalised points [2, 3, H, W], analytic unit normals facing the
    camera [2, 3, H, W] and the pixels whose ray hits the sphere [2, 1, H, W]."""
    focal = 0.8 * width
    v, u = torch.meshgrid(torch.arange(height) + 0.5, torch.arange(width) + 0.5, indexing="ij")
    rays = torch.stack(((u - width / 2) / focal, (v - height / 2) / focal, torch.ones_like(u)))  # [3, H, W]
    points, normals, valid = [], [], []
    for centre, radius in (((0.0, 0.1, 3.0), 1.2), ((0.3, -0.2, 4.0), 1.6)):
        c = torch.tensor(centre)[:, None, None]
        # |t·r - c|² = R²  →  t² |r|² - 2 t r·c + |c|² - R² = 0; the nearer root is the visible surface.
        a, b, k = rays.square().sum(0), (rays * c).sum(0), c.square().sum() - radius**2
        disc = b.square() - a * k
        t = (b - disc.clamp_min(0).sqrt()) / a
        P = rays * t  # [3, H, W]
        points.append(P / focal)
        normals.append((P - c) / radius)
        valid.append(disc > 0)
    return torch.stack(points), torch.stack(normals), torch.stack(valid)[:, None]


def _targets(task: str, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    points, normals, valid = _sphere_targets(height, width)
    if task == "pointmap":
        return points, valid
    if task == "normal":
        return normals, valid
    v, u = torch.meshgrid(torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij")
    albedo = torch.stack(
        [torch.stack((0.6 + 0.3 * u * phase, 0.4 + 0.2 * v, 0.5 - 0.3 * u * v)) for phase in (1.0, -1.0)]
    )  # [2, 3, H, W], a smooth colour field per image
    return albedo, torch.ones(2, 1, height, width, dtype=torch.bool)


@pytest.fixture(scope="module")
def backbone() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_backbone("tiny").eval()


@pytest.fixture(scope="module")
def full_size_features(backbone) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        ((features, cls_token),) = backbone.get_intermediate_layers(
            torch.randn(1, 3, 1024, 768, generator=torch.Generator().manual_seed(0)), n=1, return_class_token=True
        )
    return features, cls_token


def _check_output(task: str, out, batch: int, height: int, width: int) -> None:
    if task == "pointmap":
        assert out["points"].shape == (batch, 3, height, width)
        assert out["scale"].shape == (batch,) and (out["scale"] > 0).all()
        return
    assert out.shape == (batch, 3, height, width)
    if task == "normal":
        torch.testing.assert_close(out.norm(dim=1), torch.ones(batch, height, width))
    else:
        assert out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize("task", HEADS)
def test_full_resolution_output_at_the_default_input_size(task, full_size_features):
    features, cls_token = full_size_features
    assert features.shape == (1, 64, 64, 48)
    torch.manual_seed(1)
    with torch.no_grad():
        head = _head(task)
        out = head(features, cls_token) if task == "pointmap" else head(features)
    _check_output(task, out, 1, 1024, 768)


@pytest.mark.parametrize("task", HEADS)
def test_full_resolution_output_at_a_tiny_size(task, backbone):
    torch.manual_seed(2)
    with torch.no_grad():
        out = _predict(task, _head(task), backbone, torch.randn(2, 3, 64, 48))
    _check_output(task, out, 2, 64, 48)


def test_upsampler_doubles_the_resolution_per_stage_and_checks_its_input():
    features = torch.randn(2, 16, 3, 5)
    assert PixelShuffleUpsampler(16, channels=(8, 4), out_channels=7)(features).shape == (2, 7, 12, 20)
    up = PixelShuffleUpsampler(16, channels=CHANNELS, out_channels=3)
    assert up.upscale == 16 and up(features).shape == (2, 3, 48, 80)
    with pytest.raises(ValueError, match=r"feature map \[B, 16, h, w\]"):
        up(torch.randn(2, 8, 3, 5))
    with pytest.raises(ValueError, match="one positive channel count"):
        PixelShuffleUpsampler(16, channels=())


def test_pointmap_head_starts_from_a_fronto_parallel_plane_at_unit_depth():
    head = PointmapHead(16, channels=(8,))
    torch.testing.assert_close(head.upsampler.out.bias, torch.tensor([0.0, 0.0, 1.0]))
    with pytest.raises(ValueError, match="cls_token must be"):
        head(torch.randn(2, 16, 3, 5), torch.randn(2, 8))


def test_normal_head_maps_a_zero_vector_to_zero_not_nan():
    head = NormalHead(16, channels=(8,))
    torch.nn.init.zeros_(head.upsampler.out.weight)
    torch.nn.init.zeros_(head.upsampler.out.bias)
    out = head(torch.randn(1, 16, 2, 2))
    assert (out == 0).all()


@pytest.mark.parametrize("task", HEADS)
@pytest.mark.parametrize("frozen", [True, False])
def test_gradients_reach_the_backbone_only_when_it_is_trained(task, frozen):
    torch.manual_seed(3)
    backbone = create_backbone("tiny")
    backbone.requires_grad_(not frozen)
    head = _head(task)
    target, valid = _targets(task, 64, 48)
    _loss(task, _predict(task, head, backbone, torch.randn(2, 3, 64, 48)), target, valid).backward()
    for name, p in head.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
    grads = [p.grad for p in backbone.parameters()]
    if frozen:
        assert all(g is None for g in grads)
    else:
        assert all(g is not None and torch.isfinite(g).all() for g in grads)
        assert backbone.patch_embed.proj.weight.grad.abs().sum() > 0
        assert sum(int(g.abs().sum() > 0) for g in grads) > len(grads) // 2


@pytest.mark.parametrize("task", HEADS)
def test_head_overfits_two_synthetic_samples(task, backbone):
    # Frozen backbone, features computed once: keeps each run within a few seconds on two CPU cores.
    torch.manual_seed(4)
    head = _head(task)
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        ((features, cls_token),) = backbone.get_intermediate_layers(images, n=1, return_class_token=True)
    target, valid = _targets(task, 32, 32)
    optimizer = torch.optim.Adam(head.parameters(), lr=1e-2)
    losses = []
    for _ in range(OVERFIT_STEPS[task]):
        pred = head(features, cls_token) if task == "pointmap" else head(features)
        loss = _loss(task, pred, target, valid)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(math.isfinite(x) for x in losses)
    assert min(losses[-5:]) < losses[0] / 3, losses[::10]
