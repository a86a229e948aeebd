import pytest
import torch

from common.models.sizes import create_backbone
from posttrain.heads.deconv_upsampler import deconv_upsampler
from posttrain.heads.pose_heatmap_head import PoseHeatmapHead
from posttrain.losses.keypoint_mse_ohkm import KeypointMSEOHKMLoss


@pytest.fixture(scope="module", autouse=True)
def single_thread():
    """These tensors are tiny: on a shared CPU, extra intra-op threads cost far more than they bring."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def backbone() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_backbone("tiny").eval()


@pytest.fixture(scope="module")
def features(backbone) -> dict[tuple[int, int], torch.Tensor]:
    """Tiny-backbone features of one image at the default Sapiens input size and at a tiny size."""
    out = {}
    with torch.no_grad():
        for size in ((1024, 768), (64, 48)):
            x = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(1))
            out[size] = backbone.get_intermediate_layers(x, n=1, reshape=True)[0]
    return out


@pytest.mark.parametrize("num_keypoints", [17, 308])
@pytest.mark.parametrize(
    ("size", "grid", "heatmap"), [((1024, 768), (64, 48), (256, 192)), ((64, 48), (4, 3), (16, 12))]
)
def test_heatmaps_are_at_a_quarter_of_the_input(features, num_keypoints, size, grid, heatmap):
    feats = features[size]
    assert feats.shape == (1, 64, *grid)
    head = PoseHeatmapHead(64, num_keypoints, deconv_channels=(16, 16)).eval()
    with torch.no_grad():
        assert head(feats).shape == (1, num_keypoints, *heatmap)


def test_initial_heatmaps_are_near_zero(features):
    head = PoseHeatmapHead(64, 17, deconv_channels=(32, 32)).eval()
    with torch.no_grad():
        assert head(features[(64, 48)]).abs().max() < 1e-3
    assert torch.count_nonzero(head.final.bias) == 0


@pytest.mark.parametrize("kernel", [2, 3, 4])
def test_every_deconv_kernel_doubles_each_stage(kernel):
    stack = deconv_upsampler(8, (4, 4, 4), kernel)
    assert stack(torch.randn(2, 8, 5, 3)).shape == (2, 4, 40, 24)


def test_bad_kernels_fail_with_the_allowed_values():
    with pytest.raises(ValueError, match=r"\[2, 3, 4\]"):
        PoseHeatmapHead(64, 17, kernel=5)
    with pytest.raises(ValueError, match="odd"):
        PoseHeatmapHead(64, 17, final_conv_kernel=2)


def test_final_conv_kernel_keeps_the_heatmap_size():
    head = PoseHeatmapHead(8, 5, deconv_channels=(4,), final_conv_kernel=3)
    assert head(torch.randn(1, 8, 4, 3)).shape == (1, 5, 8, 6)


def _pose_step(backbone: torch.nn.Module, head: PoseHeatmapHead) -> None:
    x = torch.randn(2, 3, 64, 48, generator=torch.Generator().manual_seed(2))
    target = torch.rand(2, head.num_keypoints, 16, 12, generator=torch.Generator().manual_seed(3))
    pred = head(backbone.get_intermediate_layers(x)[0])
    KeypointMSEOHKMLoss(topk=4)(pred, target, torch.ones(2, head.num_keypoints))["loss"].backward()


def test_a_frozen_backbone_gets_no_gradients_and_the_head_does():
    torch.manual_seed(0)
    backbone, head = create_backbone("tiny").requires_grad_(False), PoseHeatmapHead(64, 17, deconv_channels=(16, 16))
    _pose_step(backbone, head)
    assert all(p.grad is None for p in backbone.parameters())
    for name, p in head.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_an_unfrozen_backbone_gets_gradients():
    torch.manual_seed(0)
    backbone, head = create_backbone("tiny"), PoseHeatmapHead(64, 17, deconv_channels=(16, 16))
    _pose_step(backbone, head)
    for name, p in backbone.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_backbone_and_head_overfit_two_samples():
    torch.manual_seed(0)
    backbone, head = create_backbone("tiny"), PoseHeatmapHead(64, 17, deconv_channels=(64, 64))
    x = torch.randn(2, 3, 64, 48)
    ys, xs = torch.meshgrid(torch.arange(16.0), torch.arange(12.0), indexing="ij")  # [16, 12]
    cy, cx = torch.randint(0, 16, (2, 17, 1, 1)).float(), torch.randint(0, 12, (2, 17, 1, 1)).float()
    target = torch.exp(-((ys - cy) ** 2 + (xs - cx) ** 2) / (2 * 2.0**2))  # [2, 17, 16, 12] Gaussian heatmaps
    loss_fn = KeypointMSEOHKMLoss(topk=8)
    optimizer = torch.optim.Adam([*backbone.parameters(), *head.parameters()], lr=3e-3)
    losses = []
    for _ in range(60):
        loss = loss_fn(head(backbone.get_intermediate_layers(x)[0]), target, torch.ones(2, 17))["loss"]
        losses.append(loss.item())
        if losses[-1] * 5 <= losses[0]:
            break
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert losses[-1] * 5 <= losses[0], f"loss went from {losses[0]:.4g} to {losses[-1]:.4g} in {len(losses)} steps"
