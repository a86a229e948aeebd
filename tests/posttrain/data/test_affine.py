import math

import numpy as np
import pytest
from skimage import data

from posttrain.data.affine import (
    apply_affine_points,
    box_to_center_scale,
    compose_affine,
    fit_center_scale,
    flip_matrix,
    invert_affine,
    warp_image,
    warp_labels,
    warp_matrix,
)


def test_box_to_center_scale_grows_the_short_side_then_pads():
    center, scale = box_to_center_scale((10, 20, 30, 40), aspect=1.0, padding=1.25)
    np.testing.assert_allclose(center, [25.0, 40.0])
    np.testing.assert_allclose(scale, [50.0, 50.0])  # 40 x 40 then x 1.25
    center, scale = box_to_center_scale((10, 20, 30, 40), aspect=2.0, padding=1.0)
    np.testing.assert_allclose(center, [25.0, 40.0])
    np.testing.assert_allclose(scale, [80.0, 40.0])
    with pytest.raises(ValueError, match="positive width"):
        box_to_center_scale((0, 0, 0, 10), aspect=1.0)


@pytest.mark.parametrize(
    ("unbiased", "out_center", "far_corner"),
    [(True, (23.5, 31.5), (47.0, 63.0)), (False, (24.0, 32.0), (48.0, 64.0))],
)
def test_warp_matrix_maps_centre_and_corners(unbiased, out_center, far_corner):
    center, scale, size = (100.0, 80.0), (60.0, 80.0), (48, 64)
    matrix = warp_matrix(center, scale, 0.0, size, unbiased=unbiased)
    corners = np.array([center, (70.0, 40.0), (130.0, 120.0), (70.0, 120.0)])
    expected = [out_center, (0.0, 0.0), far_corner, (0.0, far_corner[1])]
    np.testing.assert_allclose(apply_affine_points(corners, matrix), expected, atol=1e-12)


def test_rotation_turns_points_about_the_centre():
    center, scale, size = (100.0, 80.0), (60.0, 80.0), (48, 64)
    sx, sy = 47 / 60, 63 / 80
    matrix = warp_matrix(center, scale, 90.0, size)
    # y down: the point right of the centre goes below it, the point above the centre goes to its right.
    mapped = apply_affine_points(np.array([(130.0, 80.0), (100.0, 60.0)]), matrix)
    np.testing.assert_allclose(mapped, [(23.5, 31.5 + 30 * sy), (23.5 + 20 * sx, 31.5)], atol=1e-12)
    theta = math.radians(30.0)
    point = np.array([107.0, 71.0])
    d = point - center
    reference = (
        23.5 + sx * (math.cos(theta) * d[0] - math.sin(theta) * d[1]),
        31.5 + sy * (math.sin(theta) * d[0] + math.cos(theta) * d[1]),
    )
    np.testing.assert_allclose(apply_affine_points(point, warp_matrix(center, scale, 30.0, size)), reference)


def test_image_warp_puts_a_pixel_where_the_points_go():
    labels = np.zeros((50, 60), dtype=np.uint8)
    labels[45, 55] = 7  # (x=55, y=45)
    matrix = warp_matrix((50.0, 40.0), (40.0, 30.0), 90.0, (41, 31))  # scale 1, quarter turn
    x, y = apply_affine_points(np.array([55.0, 45.0]), matrix)
    assert (round(x), round(y)) == (15, 20)
    warped = warp_labels(labels, matrix, (41, 31), fill=255)
    assert warped.shape == (31, 41)
    assert warped[20, 15] == 7
    assert np.count_nonzero(warped == 7) == 1
    assert warped[0, 0] == 255  # from (35, 60), below the source: the fill value


def test_apply_then_invert_is_identity():
    matrix = warp_matrix((321.5, 198.25), (143.0, 190.0), 23.0, (192, 256))
    points = np.random.default_rng(0).uniform(0, 600, size=(50, 2))
    back = apply_affine_points(apply_affine_points(points, matrix), invert_affine(matrix))
    np.testing.assert_allclose(back, points, atol=1e-9)
    np.testing.assert_allclose(compose_affine(invert_affine(matrix), matrix), [[1, 0, 0], [0, 1, 0]], atol=1e-12)


def test_whole_image_at_the_same_size_is_the_identity():
    image = data.coffee()  # [400, 600, 3]
    center, scale = fit_center_scale((600, 400), (600, 400))
    matrix = warp_matrix(center, scale, 0.0, (600, 400))
    np.testing.assert_allclose(matrix, [[1, 0, 0], [0, 1, 0]], atol=1e-12)
    np.testing.assert_allclose(
        apply_affine_points(np.array([[123.0, 45.0], [599.0, 399.0]]), matrix), [[123, 45], [599, 399]]
    )
    np.testing.assert_array_equal(warp_image(image, matrix, (600, 400)), image)


def test_udp_halving_maps_first_and_last_pixel_centres():
    center, scale = fit_center_scale((101, 51), (51, 26))
    matrix = warp_matrix(center, scale, 0.0, (51, 26))
    np.testing.assert_allclose(apply_affine_points(np.array([[0.0, 0.0], [100.0, 50.0]]), matrix), [[0, 0], [50, 25]])


def test_fit_letterboxes_the_long_side():
    center, scale = fit_center_scale((600, 400), (101, 101))
    np.testing.assert_allclose(center, [299.5, 199.5])
    np.testing.assert_allclose(scale, [599.0, 599.0])
    matrix = warp_matrix(center, scale, 0.0, (101, 101))
    # The full width spans the output; the height is centred with bands above and below.
    np.testing.assert_allclose(apply_affine_points(np.array([[0.0, 0.0], [599.0, 399.0]]), matrix)[:, 0], [0, 100])
    top, bottom = apply_affine_points(np.array([[0.0, 0.0], [599.0, 399.0]]), matrix)[:, 1]
    assert top == pytest.approx(50 - 399 / 599 * 50) and bottom == pytest.approx(50 + 399 / 599 * 50)


def test_flip_matrix_mirrors_images_and_points():
    image = data.chelsea()  # [300, 451, 3]
    np.testing.assert_array_equal(warp_image(image, flip_matrix(451), (451, 300)), image[:, ::-1])
    np.testing.assert_allclose(
        apply_affine_points(np.array([[0.0, 7.0], [100.0, 8.0]]), flip_matrix(451)), [[450, 7], [350, 8]]
    )


def test_warp_image_fills_every_channel():
    image = np.full((10, 10, 3), 200, dtype=np.uint8)
    matrix = warp_matrix((4.5, 4.5), (9.0, 9.0), 0.0, (10, 10))
    matrix[0, 2] += 5  # content moves 5 px right: columns 0..4 come from outside
    warped = warp_image(image, matrix, (10, 10), fill=17)
    np.testing.assert_array_equal(warped[:, :5], 17)
    np.testing.assert_array_equal(warped[:, 5:], 200)
