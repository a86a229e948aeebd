import numpy as np
import pytest

from posttrain.keypoints.spec import load_spec, parse_spec
from posttrain.visualize.skeleton import draw_skeleton

RED, GREEN, BLUE, YELLOW, CYAN = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255)
GREY = 50


def _spec():
    """Three keypoints a-b-c, links a-b (yellow) and b-c (cyan)."""
    return parse_spec(
        {
            "name": "three",
            "keypoints": [
                {"name": "a", "sigma": 0.1, "color": list(RED), "swap": ""},
                {"name": "b", "sigma": 0.1, "color": list(GREEN), "swap": ""},
                {"name": "c", "sigma": 0.1, "color": list(BLUE), "swap": ""},
            ],
            "skeleton": [["a", "b", list(YELLOW)], ["b", "c", list(CYAN)]],
        }
    )


def _image(h=80, w=100):
    return np.full((h, w, 3), GREY, dtype=np.uint8)


# a and b visible on row 20; c below the threshold.
KEYPOINTS = np.array([[10.0, 20.0], [50.0, 20.0], [50.0, 60.0]])
SCORES = np.array([0.9, 0.8, 0.1])


def test_link_between_visible_points_is_drawn_in_its_colour_and_points_on_top():
    out = draw_skeleton(_image(), KEYPOINTS, SCORES, _spec(), radius=3, thickness=3)
    assert tuple(out[20, 30]) == YELLOW  # midpoint of a-b
    assert tuple(out[20, 10]) == RED  # keypoint a drawn over the link
    assert tuple(out[20, 50]) == GREEN


def test_point_below_threshold_and_its_links_are_not_drawn():
    image = _image()
    out = draw_skeleton(image, KEYPOINTS, SCORES, _spec(), radius=3, thickness=3)
    assert (out[50:70, 40:60] == GREY).all()  # around c, and the lower half of the b-c link
    assert (out[25:40, 45:55] == GREY).all()  # upper half of the b-c link, clear of b's disc
    # Lowering the threshold brings c and the b-c link in.
    out = draw_skeleton(image, KEYPOINTS, SCORES, _spec(), threshold=0.05, radius=3, thickness=3)
    assert tuple(out[60, 50]) == BLUE
    assert tuple(out[40, 50]) == CYAN


def test_inputs_are_not_modified():
    image, keypoints, scores = _image(), KEYPOINTS.copy(), SCORES.copy()
    out = draw_skeleton(image, keypoints, scores, _spec())
    assert out is not image and not np.shares_memory(out, image)
    assert (image == GREY).all()
    assert np.array_equal(keypoints, KEYPOINTS) and np.array_equal(scores, SCORES)


def test_several_people():
    keypoints = np.stack([KEYPOINTS, KEYPOINTS + np.array([0.0, 50.0])])  # [2, 3, 2]; second person 50 px lower
    scores = np.stack([SCORES, [0.9, 0.9, 0.9]])  # second person's c (row 110) lies below the image
    out = draw_skeleton(_image(100, 100), keypoints, scores, _spec(), radius=2, thickness=3)
    assert tuple(out[20, 30]) == YELLOW and tuple(out[70, 30]) == YELLOW
    assert tuple(out[85, 50]) == CYAN  # second person's b-c link, clipped at the image edge
    assert tuple(out[99, 50]) == CYAN
    assert tuple(out[60, 50]) == (GREY,) * 3 and tuple(out[40, 50]) == (GREY,) * 3  # first person's c not drawn


def test_non_finite_keypoints_are_skipped():
    keypoints = KEYPOINTS.copy()
    keypoints[0] = np.nan
    out = draw_skeleton(_image(), keypoints, SCORES, _spec(), radius=3, thickness=3)
    assert tuple(out[20, 30]) == (GREY,) * 3 and tuple(out[20, 10]) == (GREY,) * 3
    assert tuple(out[20, 50]) == GREEN


def test_default_sizes_grow_with_the_image():
    # Default radius ≈ 0.6 % of the longer side: a pixel 5 px from the point is covered at 1000 px, not at 100 px.
    for size, covered in ((100, False), (1000, True)):
        out = draw_skeleton(_image(size, size), np.array([[50.0, 50.0]]), np.ones(1), _one_point_spec())
        assert tuple(out[50, 50]) == RED
        assert (tuple(out[50, 55]) == RED) is covered


def _one_point_spec():
    kp = {"name": "a", "sigma": 0.1, "color": list(RED), "swap": ""}
    return parse_spec({"name": "one", "keypoints": [kp], "skeleton": []})


def test_builtin_spec_draws_every_visible_keypoint_in_its_colour():
    spec = load_spec("coco17")
    rng = np.random.default_rng(0)
    keypoints = np.stack([np.arange(17) * 11 + 8, np.full(17, 40)], axis=1).astype(np.float64)  # a spread-out row
    keypoints[:, 1] += rng.integers(-5, 5, 17)
    out = draw_skeleton(np.zeros((80, 200, 3), np.uint8), keypoints, np.ones(17), spec, radius=3, thickness=1)
    for (x, y), color in zip(keypoints.astype(int), spec.colors, strict=True):
        assert tuple(out[y, x]) == color


@pytest.mark.parametrize(
    ("keypoints", "scores"),
    [(np.zeros((2, 2)), np.zeros(2)), (np.zeros((3, 2)), np.zeros(2)), (np.zeros((1, 3, 3)), np.zeros((1, 3)))],
)
def test_shapes_not_matching_the_spec_are_rejected(keypoints, scores):
    with pytest.raises(ValueError, match="3 keypoints"):
        draw_skeleton(_image(), keypoints, scores, _spec())


def test_image_must_be_uint8_rgb():
    with pytest.raises(ValueError, match="uint8 RGB"):
        draw_skeleton(np.zeros((10, 10), np.uint8), KEYPOINTS, SCORES, _spec())
