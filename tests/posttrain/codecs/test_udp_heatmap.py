import numpy as np
import pytest
import torch

from posttrain.codecs import decode, encode
from posttrain.codecs.udp_heatmap import udp_scale


def random_keypoints(rng: np.random.Generator, k: int, size: tuple[int, int]) -> np.ndarray:
    return np.stack([rng.uniform(0, size[0] - 1, k), rng.uniform(0, size[1] - 1, k)], axis=1)  # [K, 2]


@pytest.mark.parametrize(("input_size", "heatmap_size"), [((192, 256), (48, 64)), ((768, 1024), (192, 256))])
def test_round_trip_recovers_sub_pixel_keypoints(input_size, heatmap_size) -> None:
    rng = np.random.default_rng(0)
    kps = np.stack([random_keypoints(rng, 17, input_size) for _ in range(2)])  # [2, 17, 2], borders included
    heat = np.stack([encode(k, np.ones(17), input_size, heatmap_size, sigma=2.0)[0] for k in kps])
    decoded, scores = decode(torch.from_numpy(heat), input_size)
    assert decoded.shape == (2, 17, 2) and scores.shape == (2, 17)
    # Measured maximum error: ~2e-3 px (at the very border), ~2e-4 px inside.
    assert np.abs(decoded - kps).max() < 0.05
    assert (scores > 0.5).all() and (scores <= 1.0).all()


def test_encode_is_an_unrounded_gaussian_at_the_udp_location() -> None:
    heat, weight = encode(np.array([[10.0, 6.0]]), np.ones(1), (193, 257), (49, 65), sigma=2.0)
    assert udp_scale((193, 257), (49, 65)).tolist() == [4.0, 4.0]
    assert heat.shape == (1, 65, 49) and heat.dtype == np.float32 and weight.tolist() == [1.0]
    ys, xs = np.mgrid[0:65, 0:49]
    np.testing.assert_allclose(heat[0], np.exp(-((xs - 2.5) ** 2 + (ys - 1.5) ** 2) / 8.0), rtol=1e-6, atol=1e-7)


def test_invisible_and_far_outside_keypoints_get_zero_weight() -> None:
    kps = np.array([[50.0, 60.0], [50.0, 60.0], [-40.0, 60.0], [-20.0, 60.0], [np.nan, np.nan]])
    heat, weight = encode(kps, np.array([1, 0, 1, 1, 1]), (192, 256), (48, 64), sigma=2.0)
    # -40 px is 10 heatmap px left of the map (> 3 sigma): dropped; -20 px is 5 px out: its tail is kept.
    assert weight.tolist() == [1.0, 0.0, 0.0, 1.0, 0.0]
    assert heat[[1, 2, 4]].max() == 0.0 and heat[3].max() > 0.0
    assert np.isfinite(heat).all()


@pytest.mark.parametrize("blur_kernel_size", [11, 0])
def test_keypoints_on_and_near_the_border(blur_kernel_size: int) -> None:
    size = (192, 256)
    kps = np.array([[0.0, 0.0], [191.0, 255.0], [0.0, 100.3], [2.1, 254.2], [190.4, 3.7], [95.5, 0.5]])
    heat, weight = encode(kps, np.ones(6), size, (48, 64), sigma=2.0)
    assert weight.tolist() == [1.0] * 6
    decoded, _ = decode(heat[None], size, blur_kernel_size=blur_kernel_size)
    np.testing.assert_allclose(decoded[0], kps, atol=0.01)


def test_peak_exactly_on_a_pixel_decodes_to_that_pixel() -> None:
    heat = np.zeros((1, 2, 64, 48), dtype=np.float32)
    heat[0, 0, 20, 30] = 1.0  # a single hot pixel
    ys, xs = np.mgrid[0:64, 0:48]
    heat[0, 1] = 0.7 * np.exp(-((xs - 7) ** 2 + (ys - 50) ** 2) / 8.0)  # a Gaussian centred on (7, 50)
    decoded, scores = decode(heat, (192, 256))
    sx, sy = 191 / 47, 255 / 63
    np.testing.assert_allclose(decoded[0], [[30 * sx, 20 * sy], [7 * sx, 50 * sy]], atol=1e-4)
    np.testing.assert_allclose(scores[0], [1.0, 0.7], rtol=1e-6)


def test_decode_is_vectorised_consistently_over_batch_and_keypoints() -> None:
    rng = np.random.default_rng(1)
    kps = random_keypoints(rng, 5, (192, 256))
    heat, _ = encode(kps, np.ones(5), (192, 256), (48, 64), sigma=2.0)
    together, _ = decode(heat[None], (192, 256))
    alone = np.concatenate([decode(heat[None, k : k + 1], (192, 256))[0] for k in range(5)], axis=1)
    np.testing.assert_array_equal(together, alone)


def test_empty_map_does_not_move_and_scores_zero() -> None:
    decoded, scores = decode(np.zeros((1, 1, 64, 48)), (192, 256))
    assert decoded.tolist() == [[[0.0, 0.0]]] and scores.tolist() == [[0.0]]
