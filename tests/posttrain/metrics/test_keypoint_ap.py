"""KeypointAP against answers derived by hand from COCOeval's rules (greedy OKS matching, 101-point AP)."""

import numpy as np
import pytest

from posttrain.metrics.keypoint_ap import KeypointAP

COCO17_SIGMAS = (
    np.array([0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87, 0.87, 0.89, 0.89])
    / 10.0
)
OKS_THRESHOLDS = np.linspace(0.5, 0.95, 10)


def _person(rng: np.random.Generator, k: int, origin: float) -> np.ndarray:
    """[K, 3] keypoints, all visible, inside a 100 x 100 box at (origin, origin)."""
    xy = origin + rng.uniform(0, 100, size=(k, 2))
    return np.concatenate([xy, np.full((k, 1), 2.0)], axis=1)


def _ground_truth(metric: KeypointAP, image_ids: list[int], keypoints: np.ndarray, area: float) -> None:
    boxes = np.stack([np.r_[kp[:, :2].min(0), kp[:, :2].max(0) - kp[:, :2].min(0)] for kp in keypoints])
    metric.add_ground_truth(image_ids, keypoints, boxes, np.full(len(image_ids), area))


def test_perfect_predictions_give_ap_1_and_silence_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(0)
    gt = np.stack([_person(rng, 17, 0), _person(rng, 17, 300), _person(rng, 17, 0)])  # [3, 17, 3]
    metric = KeypointAP(COCO17_SIGMAS)
    _ground_truth(metric, [1, 1, 2], gt, area=5000.0)  # medium persons (32² < area < 96²)
    metric.add_predictions([1, 1, 2], gt[..., :2], scores=[0.9, 0.8, 0.7])
    out = metric.compute()
    assert capsys.readouterr().out == ""
    for key in ("kpt_AP", "kpt_AP50", "kpt_AP75", "kpt_AP_M", "kpt_AR", "kpt_AR50", "kpt_AR75", "kpt_AR_M"):
        assert out[key] == pytest.approx(1.0), key
    # No large person in the ground truth: pycocotools' -1 ("undefined") comes back as NaN.
    assert np.isnan(out["kpt_AP_L"]) and np.isnan(out["kpt_AR_L"])


@pytest.mark.parametrize(
    ("scores", "expected_ap"),
    [
        # Ranked [TP, FP]: recall [0.5, 0.5], precision [1, 0.5]. The 101 recall thresholds 0.00..0.50 (51 of them)
        # read precision 1, the 50 above 0.5 are unreachable and read 0: AP = 51 / 101.
        ((0.9, 0.3), 51 / 101),
        # Ranked [FP, TP]: recall [0, 0.5], precision [0, 0.5], made monotone to [0.5, 0.5]. Thresholds 0.00..0.50
        # read 0.5, the rest 0: AP = 51 * 0.5 / 101.
        ((0.3, 0.9), 51 * 0.5 / 101),
    ],
)
def test_one_correct_one_far_off_matches_101_point_interpolation(
    scores: tuple[float, float], expected_ap: float
) -> None:
    rng = np.random.default_rng(1)
    gt = np.stack([_person(rng, 17, 0), _person(rng, 17, 0)])  # [2, 17, 3], one person in each of two images
    pred = gt[..., :2].copy()
    pred[1] += 1000.0  # OKS ≈ 0 with the second person and far from the first: a false positive at every threshold
    metric = KeypointAP(COCO17_SIGMAS)
    _ground_truth(metric, [1, 2], gt, area=5000.0)
    metric.add_predictions([1, 2], pred, scores=scores)
    out = metric.compute()
    # The same at every OKS threshold, so AP = AP50 = AP75; one of two persons found: AR = 0.5.
    for key in ("kpt_AP", "kpt_AP50", "kpt_AP75"):
        assert out[key] == pytest.approx(expected_ap, abs=1e-12), key
    assert out["kpt_AR"] == pytest.approx(0.5)


def _oks(pred: np.ndarray, gt: np.ndarray, sigmas: np.ndarray, area: float) -> float:
    """COCO's OKS written out: mean over labelled keypoints of exp(-d² / (2 · area · (2σ)²))."""
    labelled = gt[:, 2] > 0
    d2 = ((pred - gt[:, :2]) ** 2).sum(1)
    return float(np.exp(-d2 / (2 * area * (2 * sigmas) ** 2))[labelled].mean())


@pytest.mark.parametrize(
    ("unlabelled_first", "expected_oks_range", "expected_ap"),
    [
        # All 5 labelled: OKS = mean(exp(-[1.953, 0.488, 0.217, 0.122, 0.078])) = 0.674 → passes 0.50..0.65: 4 / 10.
        (False, (0.67, 0.68), 0.4),
        # Keypoint 0 unlabelled (and predicted 1000 px off): it leaves the mean, OKS = 0.807 → 0.50..0.80: 7 / 10.
        (True, (0.80, 0.81), 0.7),
    ],
)
def test_custom_sigmas_with_five_keypoints(
    unlabelled_first: bool, expected_oks_range: tuple[float, float], expected_ap: float
) -> None:
    sigmas = np.array([0.02, 0.04, 0.06, 0.08, 0.10])
    area = 4000.0
    gt = np.array([[10, 10, 2], [40, 20, 2], [70, 30, 1], [30, 60, 2], [60, 80, 2]], dtype=np.float64)  # [5, 3]
    pred = gt[:, :2] + [5.0, 0.0]  # every keypoint 5 px off
    if unlabelled_first:
        gt[0, 2] = 0
        pred[0] += 1000.0
    oks = _oks(pred, gt, sigmas, area)
    assert expected_oks_range[0] < oks < expected_oks_range[1]
    assert expected_ap == pytest.approx((oks >= OKS_THRESHOLDS).mean())

    metric = KeypointAP(sigmas)
    metric.add_ground_truth([7], gt[None], [[10, 10, 60, 70]], [area])
    metric.add_predictions([7], pred[None], scores=[0.5], keypoint_scores=np.full((1, 5), 0.9))
    out = metric.compute()
    assert out["kpt_AP"] == pytest.approx(expected_ap)
    assert out["kpt_AP50"] == pytest.approx(1.0)
    assert out["kpt_AP75"] == pytest.approx(1.0 if oks >= 0.75 else 0.0)


def test_empty_predictions_give_zero() -> None:
    rng = np.random.default_rng(2)
    metric = KeypointAP(COCO17_SIGMAS)
    _ground_truth(metric, [1, 2], np.stack([_person(rng, 17, 0), _person(rng, 17, 0)]), area=5000.0)
    out = metric.compute()
    assert out["kpt_AP"] == 0.0 and out["kpt_AP50"] == 0.0 and out["kpt_AR"] == 0.0


def test_no_ground_truth_raises() -> None:
    metric = KeypointAP(COCO17_SIGMAS)
    metric.add_predictions([1], np.zeros((1, 17, 2)), scores=[0.9])
    with pytest.raises(RuntimeError, match="add_ground_truth"):
        metric.compute()


def test_wrong_keypoint_count_raises() -> None:
    metric = KeypointAP(np.full(5, 0.05))
    with pytest.raises(ValueError, match=r"expected \[\*, 5, 2\]"):
        metric.add_predictions([1], np.zeros((1, 17, 2)), scores=[0.9])


def test_batched_updates_equal_one_update() -> None:
    rng = np.random.default_rng(3)
    n = 6
    gt = np.stack([_person(rng, 17, 0) for _ in range(n)])  # [6, 17, 3]
    boxes = np.tile([0.0, 0.0, 100.0, 100.0], (n, 1))
    image_ids = np.arange(n)
    pred = gt[..., :2] + rng.normal(0, 4, size=(n, 17, 2))  # a spread of OKS values
    scores = rng.uniform(size=n)
    target = {"image_id": image_ids, "keypoints": gt, "bbox": boxes, "area": np.full(n, 5000.0)}
    prediction = {"image_id": image_ids, "keypoints": pred, "score": scores}

    whole = KeypointAP(COCO17_SIGMAS)
    whole.update(prediction, target)
    split = KeypointAP(COCO17_SIGMAS)
    for part in (slice(0, 2), slice(2, n)):
        split.update({k: v[part] for k, v in prediction.items()}, {k: v[part] for k, v in target.items()})
    expected = whole.compute()
    assert 0.0 < expected["kpt_AP"] < 1.0
    assert split.compute() == pytest.approx(expected, nan_ok=True)
    assert whole.compute() == pytest.approx(expected, nan_ok=True)  # compute() leaves the stored dicts untouched
