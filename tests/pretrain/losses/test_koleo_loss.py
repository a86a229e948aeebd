import math

import pytest
import torch

from pretrain.losses.koleo_loss import koleo_loss


def _brute_force(x: torch.Tensor, eps: float = 1e-8) -> float:
    unit = [row / row.norm() for row in x.double()]
    total = 0.0
    for i, a in enumerate(unit):
        nearest = min(float((a - b).norm()) for j, b in enumerate(unit) if j != i)
        total += -math.log(nearest + eps)
    return total / len(unit)


@pytest.mark.parametrize("shape", [(2, 3), (16, 8), (33, 64)])
def test_equals_brute_force_pairwise_computation(shape):
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(0)) * 3.0
    assert koleo_loss(x).item() == pytest.approx(_brute_force(x), rel=1e-5)


def test_scale_of_the_features_does_not_matter():
    x = torch.randn(8, 5, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(koleo_loss(x), koleo_loss(x * 50.0))


def test_duplicates_give_a_large_finite_loss_and_finite_gradients():
    x = torch.randn(6, 4, generator=torch.Generator().manual_seed(2))
    x[1] = x[0]
    x.requires_grad_(True)
    loss = koleo_loss(x)
    loss.backward()
    assert torch.isfinite(loss) and loss > koleo_loss(x.detach()[2:])
    assert torch.isfinite(x.grad).all()


def test_spreading_points_lowers_the_loss():
    close = torch.tensor([[1.0, 0.0], [0.99, 0.1], [0.98, 0.2]])
    spread = torch.tensor([[1.0, 0.0], [-0.5, 0.87], [-0.5, -0.87]])
    assert koleo_loss(spread) < koleo_loss(close)


def test_needs_two_samples():
    with pytest.raises(ValueError, match="B >= 2"):
        koleo_loss(torch.randn(1, 4))
