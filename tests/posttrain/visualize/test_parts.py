import numpy as np
import pytest

from posttrain.segmentation_classes import CLASSES, PALETTE
from posttrain.visualize.parts import colorize_parts, legend_image, overlay_parts

LABELS = np.array([[0, 1, 22], [28, 255, 5]])  # background, Apparel, Torso / Tongue, ignored, Left_Foot


def test_labels_get_their_palette_colour_and_ignored_pixels_are_black():
    rgb = colorize_parts(LABELS)
    assert rgb.dtype == np.uint8 and rgb.shape == (2, 3, 3)
    assert rgb[0].tolist() == [[0, 0, 0], [255, 128, 0], [0, 255, 0]]
    assert rgb[1].tolist() == [[255, 160, 64], [0, 0, 0], [0, 0, 255]]


def test_custom_palette_and_ignore_index():
    palette = np.array([[10, 20, 30], [40, 50, 60]], dtype=np.uint8)
    rgb = colorize_parts(np.array([[0, 1, -1]]), palette=palette, ignore_index=-1)
    assert rgb.tolist() == [[[10, 20, 30], [40, 50, 60], [0, 0, 0]]]


@pytest.mark.parametrize("bad", [29, -3, 254])
def test_labels_without_a_colour_are_rejected(bad):
    with pytest.raises(ValueError, match=r"\[0, 29\)"):
        colorize_parts(np.array([[0, bad]]))


def test_overlay_blends_parts_and_leaves_background_and_ignored_as_the_image():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (2, 3, 3), dtype=np.uint8)
    before = image.copy()
    out = overlay_parts(image, LABELS, alpha=0.3)
    expected = np.floor(
        0.7 * image.astype(np.float64) + 0.3 * PALETTE[np.where(LABELS == 255, 0, LABELS)].astype(np.float64) + 0.5
    )
    person = np.array([[False, True, True], [True, False, True]])
    assert np.array_equal(out[person], expected.astype(np.uint8)[person])
    assert np.array_equal(out[~person], image[~person])
    assert np.array_equal(image, before)


def test_overlay_rounds_half_up_and_alpha_extremes():
    image = np.full((1, 1, 3), 101, dtype=np.uint8)
    labels = np.array([[22]])  # Torso (0, 255, 0)
    assert overlay_parts(image, labels, alpha=0.5)[0, 0].tolist() == [51, 178, 51]  # 50.5 → 51, 178 exact
    assert overlay_parts(image, labels, alpha=0.0)[0, 0].tolist() == [101, 101, 101]
    assert overlay_parts(image, labels, alpha=1.0)[0, 0].tolist() == [0, 255, 0]


def test_overlay_checks_sizes_and_alpha():
    image = np.zeros((2, 3, 3), np.uint8)
    with pytest.raises(ValueError, match="resize"):
        overlay_parts(image, LABELS[:, :2])
    with pytest.raises(ValueError, match="alpha"):
        overlay_parts(image, LABELS, alpha=1.5)


def test_legend_has_one_swatch_row_per_present_class():
    strip = legend_image(present={22, 1})
    assert strip.shape == (40, 200, 3)
    assert strip[10, 10].tolist() == PALETTE[1].tolist()  # rows follow class index order
    assert strip[30, 10].tolist() == PALETTE[22].tolist()
    assert strip[:, 24:].any()  # the names are written
    assert legend_image().shape[0] == 20 * len(CLASSES)
