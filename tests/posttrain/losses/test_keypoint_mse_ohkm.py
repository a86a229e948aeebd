import pytest
import torch

from posttrain.losses.keypoint_mse_ohkm import KeypointMSEOHKMLoss


def _heatmaps(seed: int, shape=(3, 10, 6, 5)) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g), torch.rand(shape, generator=g)


def _brute_force(pred, target, weight, topk: int) -> float:
    """Per sample: per-keypoint weighted MSE in Python, sorted, mean of the top k; then the mean over samples."""
    B, K = pred.shape[:2]
    total = 0.0
    for b in range(B):
        per_kpt = []
        for k in range(K):
            diffs = (pred[b, k].double() - target[b, k].double()).flatten().tolist()
            per_kpt.append(float(weight[b, k]) * sum(d * d for d in diffs) / len(diffs))
        hardest = sorted(per_kpt, reverse=True)[:topk] if topk else per_kpt
        total += sum(hardest) / len(hardest)
    return total / B


@pytest.mark.parametrize("topk", [1, 4, 8, 10])
def test_ohkm_equals_a_brute_force_top_k_mean(topk):
    pred, target = _heatmaps(0)
    weight = torch.rand(3, 10, generator=torch.Generator().manual_seed(1))
    out = KeypointMSEOHKMLoss(topk=topk)(pred, target, weight)
    assert out["loss"].item() == pytest.approx(_brute_force(pred, target, weight, topk), rel=1e-5)
    assert out["keypoint_mse"].item() == pytest.approx(out["loss"].item())


@pytest.mark.parametrize("topk", [0, None])
def test_without_ohkm_it_is_the_plain_mean_over_keypoints(topk):
    pred, target = _heatmaps(2)
    out = KeypointMSEOHKMLoss(use_target_weight=False, topk=topk)(pred, target)
    torch.testing.assert_close(out["loss"], torch.nn.functional.mse_loss(pred, target))


def test_perfect_prediction_gives_exactly_zero_and_any_error_a_positive_loss():
    _, target = _heatmaps(3)
    weight = torch.ones(3, 10)
    for topk in (8, 0):
        loss_fn = KeypointMSEOHKMLoss(topk=topk)
        assert loss_fn(target.clone(), target, weight)["loss"].item() == 0.0
        off = target.clone()
        off[1, 7, 2, 3] += 0.1
        assert loss_fn(off, target, weight)["loss"].item() == pytest.approx(0.01 / 30 / (8 if topk else 10) / 3)


def test_a_zero_target_weight_removes_the_keypoint_exactly():
    pred, target = _heatmaps(4)
    weight = torch.ones(3, 10)
    weight[0, 2] = weight[2, 9] = 0.0
    loss_fn = KeypointMSEOHKMLoss(topk=4)
    reference = loss_fn(pred, target, weight)["loss"]
    changed = pred.clone()
    changed[0, 2] += 100.0  # a huge error on keypoints nobody labelled
    changed[2, 9] -= 100.0
    assert torch.equal(loss_fn(changed, target, weight)["loss"], reference)
    per_kpt = loss_fn.per_keypoint(changed, target, weight)
    assert per_kpt[0, 2].item() == 0.0 and per_kpt[2, 9].item() == 0.0


def test_only_the_hardest_keypoints_get_gradients():
    pred, target = _heatmaps(5, shape=(1, 6, 4, 4))
    pred[0, [1, 4]] += 5.0  # the two hard keypoints
    pred.requires_grad_(True)
    KeypointMSEOHKMLoss(topk=2)(pred, target, torch.ones(1, 6))["loss"].backward()
    has_grad = pred.grad.abs().sum(dim=(2, 3))[0] > 0  # [K]
    assert has_grad.tolist() == [False, True, False, False, True, False]


def test_loss_weight_scales_the_loss_but_not_the_logged_term():
    pred, target = _heatmaps(6)
    weight = torch.ones(3, 10)
    plain = KeypointMSEOHKMLoss()(pred, target, weight)
    scaled = KeypointMSEOHKMLoss(loss_weight=3.0)(pred, target, weight)
    torch.testing.assert_close(scaled["loss"], 3.0 * plain["loss"])
    torch.testing.assert_close(scaled["keypoint_mse"], plain["keypoint_mse"])


def test_misuse_fails_with_what_to_change():
    pred, target = _heatmaps(7)
    with pytest.raises(ValueError, match="lower topk"):
        KeypointMSEOHKMLoss(topk=11)(pred, target, torch.ones(3, 10))
    with pytest.raises(ValueError, match="use_target_weight=False"):
        KeypointMSEOHKMLoss()(pred, target)
    with pytest.raises(ValueError, match=r"\[B, K, H, W\]"):
        KeypointMSEOHKMLoss()(pred, target[:, :5], torch.ones(3, 10))
    with pytest.raises(ValueError, match="topk must be >= 0"):
        KeypointMSEOHKMLoss(topk=-1)
