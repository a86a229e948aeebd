import math

import pytest
import torch
import torch.nn.functional as F

from posttrain.losses.segmentation_ce_dice import SegmentationCEDiceLoss

C = 6


def _batch(seed: int, ignored: float = 0.2) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, C, 5, 7, generator=g) * 2
    labels = torch.randint(0, C, (2, 5, 7), generator=g)
    labels[torch.rand(2, 5, 7, generator=g) < ignored] = 255
    return logits, labels


def _confident(labels: torch.Tensor, margin: float = 1e4) -> torch.Tensor:
    """Logits that put the whole probability mass on the label (any class on ignored pixels)."""
    return F.one_hot(labels.clamp_max(C - 1), C).permute(0, 3, 1, 2).float() * margin  # [B, C, H, W]


def _direct_dice(logits: torch.Tensor, labels: torch.Tensor, smooth: float) -> float:
    """Per class c ≥ 1, with plain masks over the valid pixels: 1 - (2I + s) / (P + G + s); mean over classes."""
    probs = logits.double().softmax(dim=1)
    valid = labels != 255
    terms = []
    for c in range(1, C):
        p = probs[:, c][valid]
        g = (labels[valid] == c).double()
        terms.append(1 - (2 * float((p * g).sum()) + smooth) / (float(p.sum()) + float(g.sum()) + smooth))
    return sum(terms) / len(terms)


def test_ce_term_equals_torch_cross_entropy_with_weights_and_ignore_index():
    logits, labels = _batch(0)
    weights = torch.tensor([0.5, 1.0, 2.0, 1.5, 3.0, 0.25])
    out = SegmentationCEDiceLoss(C, class_weights=weights)(logits, labels)
    torch.testing.assert_close(out["ce"], F.cross_entropy(logits, labels, weight=weights, ignore_index=255))


@pytest.mark.parametrize("smooth", [1.0, 0.1])
def test_dice_term_equals_a_direct_per_class_computation(smooth):
    logits, labels = _batch(1)
    out = SegmentationCEDiceLoss(C, smooth=smooth)(logits, labels)
    assert out["dice"].item() == pytest.approx(_direct_dice(logits, labels, smooth), rel=1e-5)


def test_loss_is_the_weighted_sum_of_the_terms():
    logits, labels = _batch(2)
    out = SegmentationCEDiceLoss(C, ce_weight=0.3, dice_weight=2.0)(logits, labels)
    torch.testing.assert_close(out["loss"], 0.3 * out["ce"] + 2.0 * out["dice"])


def test_background_is_left_out_of_dice():
    # All background, uniform prediction: each part c has I = G = 0 and P = 16/6, so its term is 1 - 1/(16/6 + 1) =
    # 8/11; a background term (1 - 38/118) would pull the mean away from that.
    labels = torch.zeros(1, 4, 4, dtype=torch.long)
    out = SegmentationCEDiceLoss(C)(torch.zeros(1, C, 4, 4), labels)
    assert out["dice"].item() == pytest.approx(8 / 11, rel=1e-6)


def test_perfect_prediction_is_zero_and_anything_else_positive():
    _, labels = _batch(3)
    labels[0, 0, 0] = 2
    loss_fn = SegmentationCEDiceLoss(C, class_weights=[1.0, 2.0, 1.0, 1.0, 0.5, 1.0])
    perfect = loss_fn(_confident(labels), labels)
    assert perfect["loss"].item() < 1e-6
    assert perfect["dice"].item() == 0.0  # exact: P = G = I
    one_pixel_wrong = _confident(labels)
    one_pixel_wrong[0, :, 0, 0] = _confident(torch.tensor([[[3]]]))[0, :, 0, 0]  # class 3 where the label is 2
    for logits in (one_pixel_wrong, _batch(3)[0]):
        out = loss_fn(logits, labels)
        assert out["ce"] > 0 and out["dice"] > 0


def test_ignored_pixels_do_not_count():
    logits, labels = _batch(4)
    loss_fn = SegmentationCEDiceLoss(C)
    reference = loss_fn(logits, labels)
    changed = logits.clone()
    changed[labels[:, None].expand_as(logits) == 255] = 50.0  # nonsense where nobody labelled
    out = loss_fn(changed, labels)
    torch.testing.assert_close(out["ce"], reference["ce"])
    torch.testing.assert_close(out["dice"], reference["dice"])


def test_all_ignored_pixels_give_zero_without_nan():
    logits = torch.randn(2, C, 3, 3, requires_grad=True)
    labels = torch.full((2, 3, 3), 255)
    out = SegmentationCEDiceLoss(C, class_weights=torch.rand(C) + 0.5)(logits, labels)
    assert out["loss"].item() == 0.0 and out["ce"].item() == 0.0 and out["dice"].item() == 0.0
    out["loss"].backward()
    assert torch.isfinite(logits.grad).all()


def test_uniform_prediction_gives_log_c_cross_entropy():
    _, labels = _batch(5, ignored=0.0)
    out = SegmentationCEDiceLoss(C)(torch.zeros(2, C, 5, 7), labels)
    assert out["ce"].item() == pytest.approx(math.log(C), rel=1e-6)


def test_misuse_fails_with_what_to_change():
    logits, labels = _batch(6)
    with pytest.raises(ValueError, match="out_size"):
        SegmentationCEDiceLoss(C)(logits, labels[:, :4])
    with pytest.raises(ValueError, match="one weight per class"):
        SegmentationCEDiceLoss(C, class_weights=[1.0, 2.0])
    bad = labels.clone()
    bad[0, 0, 0] = C
    with pytest.raises(ValueError, match="ignore_index"):
        SegmentationCEDiceLoss(C)(logits, bad)
