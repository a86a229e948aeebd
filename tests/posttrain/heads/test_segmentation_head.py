import pytest
import torch
import torch.nn.functional as F

from common.models.sizes import create_backbone
from posttrain.heads.segmentation_head import SegmentationHead
from posttrain.losses.segmentation_ce_dice import SegmentationCEDiceLoss


@pytest.fixture(scope="module", autouse=True)
def single_thread():
    """These tensors are tiny: on a shared CPU, extra intra-op threads cost far more than they bring."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def features() -> dict[tuple[int, int], torch.Tensor]:
    """Tiny-backbone features of one image at the default Sapiens input size and at a tiny size."""
    torch.manual_seed(0)
    backbone = create_backbone("tiny").eval()
    out = {}
    with torch.no_grad():
        for size in ((1024, 768), (64, 48)):
            x = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(1))
            out[size] = backbone.get_intermediate_layers(x, n=1, reshape=True)[0]
    return out


@pytest.mark.parametrize(("size", "grid"), [((1024, 768), (64, 48)), ((64, 48), (4, 3))])
def test_logits_at_a_quarter_of_the_input_and_at_out_size(features, size, grid):
    feats = features[size]
    assert feats.shape == (1, 64, *grid)
    head = SegmentationHead(64, deconv_channels=(16, 16), conv_channels=(16,)).eval()
    with torch.no_grad():
        assert head(feats).shape == (1, 29, 4 * grid[0], 4 * grid[1])
        assert head(feats, out_size=size).shape == (1, 29, *size)


def test_out_size_is_a_bilinear_resize_of_the_quarter_resolution_logits(features):
    head = SegmentationHead(64, num_classes=7, deconv_channels=(8, 8), conv_channels=()).eval()
    with torch.no_grad():
        low = head(features[(64, 48)])  # [1, 7, 16, 12]
        expected = F.interpolate(low, size=(64, 48), mode="bilinear", align_corners=False)
        torch.testing.assert_close(head(features[(64, 48)], out_size=(64, 48)), expected)
        assert torch.equal(head(features[(64, 48)], out_size=(16, 12)), low)


def test_four_deconv_stages_reach_the_input_resolution(features):
    head = SegmentationHead(64, deconv_channels=(8, 8, 8, 8), conv_channels=()).eval()
    with torch.no_grad():
        assert head(features[(64, 48)]).shape == (1, 29, 64, 48)


def test_initial_logits_are_small():
    torch.manual_seed(0)
    head = SegmentationHead(64, deconv_channels=(32, 32), conv_channels=(32,)).eval()
    with torch.no_grad():
        assert head(torch.randn(1, 64, 4, 3)).abs().max() < 5.0  # near-uniform class probabilities
    assert torch.count_nonzero(head.classifier.bias) == 0


def _seg_step(backbone: torch.nn.Module, head: SegmentationHead) -> None:
    x = torch.randn(2, 3, 64, 48, generator=torch.Generator().manual_seed(2))
    labels = torch.randint(0, 29, (2, 64, 48), generator=torch.Generator().manual_seed(3))
    logits = head(backbone.get_intermediate_layers(x)[0], out_size=(64, 48))
    SegmentationCEDiceLoss(29)(logits, labels)["loss"].backward()


def test_a_frozen_backbone_gets_no_gradients_and_the_head_does():
    torch.manual_seed(0)
    backbone = create_backbone("tiny").requires_grad_(False)
    head = SegmentationHead(64, deconv_channels=(16, 16), conv_channels=(16,))
    _seg_step(backbone, head)
    assert all(p.grad is None for p in backbone.parameters())
    for name, p in head.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_an_unfrozen_backbone_gets_gradients():
    torch.manual_seed(0)
    backbone, head = create_backbone("tiny"), SegmentationHead(64, deconv_channels=(16, 16), conv_channels=(16,))
    _seg_step(backbone, head)
    for name, p in backbone.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_backbone_and_head_overfit_two_samples():
    torch.manual_seed(0)
    backbone, head = create_backbone("tiny"), SegmentationHead(64, deconv_channels=(32, 32), conv_channels=(32,))
    x = torch.randn(2, 3, 64, 48)
    labels = torch.zeros(2, 64, 48, dtype=torch.long)  # a few body parts as bands and boxes
    labels[0, :, 10:20], labels[0, :, 20:30], labels[0, 20:40] = 5, 14, 22
    labels[1, 5:50, 15:35], labels[1, 50:] = 3, 13
    labels[1, :3] = 255  # an ignored strip
    loss_fn = SegmentationCEDiceLoss(29)
    optimizer = torch.optim.Adam([*backbone.parameters(), *head.parameters()], lr=1e-2)
    losses = []
    for _ in range(60):
        loss = loss_fn(head(backbone.get_intermediate_layers(x)[0], out_size=(64, 48)), labels)["loss"]
        losses.append(loss.item())
        if losses[-1] * 5 <= losses[0]:
            break
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert losses[-1] * 5 <= losses[0], f"loss went from {losses[0]:.4g} to {losses[-1]:.4g} in {len(losses)} steps"
