import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from pretrain.dino_head import DINOHead


def _head(**kwargs) -> DINOHead:
    torch.manual_seed(0)
    return DINOHead(32, num_prototypes=50, hidden_dim=64, bottleneck_dim=16, **kwargs)


def test_scores_are_cosines_against_k_prototypes():
    head = _head()
    scores = head(torch.randn(7, 32))
    assert scores.shape == (7, 50)
    assert scores.abs().max() <= 1.0 + 1e-6


def test_last_layer_equals_weight_norm_with_unit_gain():
    head = _head()
    x = torch.randn(5, 32)
    reference = weight_norm(nn.Linear(16, 50, bias=False))
    with torch.no_grad():
        reference.parametrizations.weight.original0.fill_(1.0)  # g
        reference.parametrizations.weight.original1.copy_(head.prototypes)  # v
    z = F.normalize(head.mlp(x), dim=-1)
    torch.testing.assert_close(head(x), reference(z))


def test_prototype_scale_does_not_matter():
    head = _head()
    x = torch.randn(5, 32)
    before = head(x)
    with torch.no_grad():
        head.prototypes.mul_(torch.rand(50, 1) * 10 + 0.1)
    torch.testing.assert_close(head(x), before)


@pytest.mark.parametrize(("num_layers", "widths"), [(1, [16]), (2, [64, 16]), (3, [64, 64, 16])])
def test_mlp_depth(num_layers, widths):
    head = _head(num_layers=num_layers)
    linears = [m for m in head.mlp if isinstance(m, nn.Linear)]
    assert [m.out_features for m in linears] == widths
    assert sum(isinstance(m, nn.GELU) for m in head.mlp) == num_layers - 1


def test_defaults_match_dinov2():
    head = DINOHead(8)
    assert head.prototypes.shape == (65536, 256)
    assert [m.out_features for m in head.mlp if isinstance(m, nn.Linear)] == [2048, 2048, 256]
