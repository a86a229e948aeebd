import numpy as np
import pytest
import torch

from posttrain.codecs import encode
from posttrain.keypoints import flip_heatmaps, flip_keypoints, parse_spec

SPEC = parse_spec(
    {
        "name": "three",
        "keypoints": [
            {"name": "nose", "sigma": 0.026, "color": [0, 0, 0], "swap": ""},
            {"name": "left_eye", "sigma": 0.025, "color": [0, 0, 0], "swap": "right_eye"},
            {"name": "right_eye", "sigma": 0.025, "color": [0, 0, 0], "swap": "left_eye"},
        ],
        "skeleton": [],
    }
)


def test_flip_keypoints_values_and_involution() -> None:
    xy = np.array([[[10.0, 5.0], [3.25, 7.0], [40.5, 1.0]]])  # [1, 3, 2]
    vis = np.array([[1.0, 0.0, 2.0]])
    fxy, fvis = flip_keypoints(xy, vis, width=48, flip_index=SPEC.flip_index)
    # x' = 47 - x, then the two eyes trade places (and visibilities).
    np.testing.assert_array_equal(fxy, [[[37.0, 5.0], [6.5, 1.0], [43.75, 7.0]]])
    np.testing.assert_array_equal(fvis, [[1.0, 2.0, 0.0]])
    back, back_vis = flip_keypoints(fxy, fvis, 48, SPEC.flip_index)
    np.testing.assert_array_equal(back, xy)
    np.testing.assert_array_equal(back_vis, vis)
    assert xy[0, 1, 0] == 3.25  # the input is not modified


def test_flip_heatmaps_twice_is_identity_numpy_and_torch() -> None:
    rng = np.random.default_rng(0)
    maps = rng.random((2, 3, 5, 7)).astype(np.float32)
    once = flip_heatmaps(maps, SPEC.flip_index)
    np.testing.assert_array_equal(once[:, 1], maps[:, 2, :, ::-1])
    np.testing.assert_array_equal(flip_heatmaps(once, SPEC.flip_index), maps)
    t = torch.from_numpy(maps)
    np.testing.assert_array_equal(flip_heatmaps(t, SPEC.flip_index).numpy(), once)
    assert torch.equal(flip_heatmaps(flip_heatmaps(t, SPEC.flip_index), SPEC.flip_index), t)


def test_image_flip_and_heatmap_flip_agree() -> None:
    """Flip the image and encode == encode then flip_heatmaps: the pixel and heatmap conventions match."""
    width, height, hm_size = 192, 256, (48, 64)
    xy = np.array([[100.0, 40.0], [37.0, 200.0], [150.0, 121.0]])  # integer pixels, so they can be drawn
    image = np.zeros((3, height, width), dtype=np.float32)  # one channel per keypoint
    for k, (x, y) in enumerate(xy.astype(int)):
        image[k, y, x] = 1.0
    mirrored = image[:, :, ::-1]
    fxy, fvis = flip_keypoints(xy, np.ones(3), width, SPEC.flip_index)
    for k in range(3):  # each mirrored keypoint is where the mirrored image has its mirror partner's dot
        y, x = np.unravel_index(mirrored[SPEC.flip_index[k]].argmax(), (height, width))
        assert (x, y) == tuple(fxy[k])

    heat, _ = encode(xy, np.ones(3), (width, height), hm_size, sigma=2.0)
    heat_of_flipped, _ = encode(fxy, fvis, (width, height), hm_size, sigma=2.0)
    np.testing.assert_allclose(flip_heatmaps(heat, SPEC.flip_index), heat_of_flipped, atol=1e-6)


def test_wrong_flip_index_length_is_rejected() -> None:
    with pytest.raises(ValueError, match="flip_index has 3 entries"):
        flip_heatmaps(np.zeros((1, 4, 2, 2)), SPEC.flip_index)
    with pytest.raises(ValueError, match="flip_index has 3 entries"):
        flip_keypoints(np.zeros((4, 2)), np.zeros(4), 10, SPEC.flip_index)
