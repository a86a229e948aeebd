import math

import pytest
import torch

from pretrain.losses.mae_loss import mae_loss, patchify

PATCH = 4


def _batch():
    g = torch.Generator().manual_seed(0)
    images = torch.rand(2, 3, 8, 12, generator=g)  # 2 x 3 patches per image
    pred = torch.randn(2, 6, PATCH * PATCH * 3, generator=g)
    mask = torch.tensor([[True, False, True, True, False, False], [False, True, True, False, True, False]])
    return pred, images, mask


def _patch_pixels(image: torch.Tensor, i: int, j: int) -> list[float]:
    """Pixels of patch (i, j) of a [C, H, W] image, in (row in patch, column in patch, channel) order."""
    return [float(image[c, i * PATCH + y, j * PATCH + x]) for y in range(PATCH) for x in range(PATCH) for c in range(3)]


def _reference(pred, images, mask, norm_pix):
    total, count = 0.0, 0
    b, _, height, width = images.shape
    for s in range(b):
        for i in range(height // PATCH):
            for j in range(width // PATCH):
                n = i * (width // PATCH) + j
                if not mask[s, n]:
                    continue
                target = _patch_pixels(images[s], i, j)
                if norm_pix:
                    mean = sum(target) / len(target)
                    var = sum((t - mean) ** 2 for t in target) / len(target)
                    target = [(t - mean) / math.sqrt(var + 1e-6) for t in target]
                errors = [(float(p) - t) ** 2 for p, t in zip(pred[s, n], target, strict=True)]
                total += sum(errors) / len(errors)
                count += 1
    return total / count


def test_patchify_order_matches_explicit_loops():
    _, images, _ = _batch()
    patches = patchify(images, PATCH)
    assert patches.shape == (2, 6, PATCH * PATCH * 3)
    for s in range(2):
        for i in range(2):
            for j in range(3):
                assert patches[s, i * 3 + j].tolist() == pytest.approx(_patch_pixels(images[s], i, j), abs=0)


@pytest.mark.parametrize("norm_pix", [True, False])
def test_loss_equals_explicit_reference(norm_pix):
    pred, images, mask = _batch()
    loss = mae_loss(pred, images, mask, PATCH, norm_pix=norm_pix)
    assert loss.item() == pytest.approx(_reference(pred, images, mask, norm_pix), rel=1e-5)


def test_unmasked_patches_do_not_count():
    pred, images, mask = _batch()
    changed = pred.clone()
    changed[~mask] += 100.0
    assert torch.equal(mae_loss(pred, images, mask, PATCH), mae_loss(changed, images, mask, PATCH))


def test_shape_errors_say_what_is_wrong():
    pred, images, mask = _batch()
    with pytest.raises(ValueError, match="not a multiple of the patch size"):
        patchify(images, 5)
    with pytest.raises(ValueError, match="does not match"):
        mae_loss(pred[:, :5], images, mask, PATCH)
