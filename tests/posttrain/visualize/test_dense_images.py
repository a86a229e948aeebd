import numpy as np
import pytest
from PIL import Image

from posttrain.visualize.dense import albedo_to_rgb, depth_to_rgb, normals_to_rgb, points_to_depth, save_image


def test_normal_facing_the_camera_and_the_axes():
    normals = np.zeros((3, 1, 4))  # [3, H, W]
    normals[:, 0, 0] = (0, 0, -1)  # facing the camera
    normals[:, 0, 1] = (1, 0, 0)  # right
    normals[:, 0, 2] = (0, 1, 0)  # down
    normals[:, 0, 3] = (0, 0, 1)  # away
    rgb = normals_to_rgb(normals)
    assert rgb.dtype == np.uint8
    assert rgb[0].tolist() == [[128, 128, 0], [255, 128, 128], [128, 255, 128], [128, 128, 255]]  # 127.5 → 128


def test_normals_channels_last_equal_channels_first_and_invalid_is_black():
    rng = np.random.default_rng(0)
    n = rng.normal(size=(3, 4, 5))
    n /= np.linalg.norm(n, axis=0)
    valid = rng.random((4, 5)) > 0.3
    n[:, 0, 0] = np.nan  # non-finite counts as invalid
    valid[0, 0] = True
    chw = normals_to_rgb(n, valid)
    assert np.array_equal(chw, normals_to_rgb(n.transpose(1, 2, 0), valid))
    invalid = ~valid
    invalid[0, 0] = True
    assert (chw[invalid] == 0).all()
    expected = np.floor((n.transpose(1, 2, 0) + 1) / 2 * 255 + 0.5)
    assert np.array_equal(chw[~invalid], expected[~invalid].astype(np.uint8))


def test_albedo_scales_clips_and_rounds_half_up():
    albedo = np.array([0.5, 1.7, -0.2, 0.2, 1.0, 0.0]).reshape(2, 1, 3)  # [H, W, 3]
    rgb = albedo_to_rgb(albedo)
    assert rgb.reshape(2, 3).tolist() == [[128, 255, 0], [51, 255, 0]]  # 127.5 → 128, 51.0 stays


def test_albedo_invalid_is_black_and_input_untouched():
    albedo = np.full((3, 2, 2), 0.5)
    before = albedo.copy()
    rgb = albedo_to_rgb(albedo, valid=np.array([[True, False], [True, True]]))
    assert rgb[0, 1].tolist() == [0, 0, 0] and rgb[1, 1].tolist() == [128, 128, 128]
    assert np.array_equal(albedo, before)


def test_points_to_depth_is_z():
    points = np.arange(3 * 2 * 2, dtype=np.float64).reshape(3, 2, 2)
    assert np.array_equal(points_to_depth(points), points[2])
    assert np.array_equal(points_to_depth(points.transpose(1, 2, 0)), points[2])


def test_depth_nearer_is_brighter_with_a_monotonic_colormap():
    depth = np.linspace(1.0, 5.0, 101)[None, :]  # [1, 101], depth grows to the right
    grey = depth_to_rgb(depth, cmap="gray")[0, :, 0].astype(int)
    assert (np.diff(grey) <= 0).all() and grey[0] > grey[-1]
    # Beyond the 2nd / 98th percentile the colour saturates: both ends of the colormap are reached.
    assert grey[0] == 255 and grey[1] == 255 and grey[-1] == 0 and grey[-2] == 0


def test_depth_turbo_near_is_the_warm_high_end():
    depth = np.linspace(1.0, 5.0, 101)[None, :]
    from matplotlib import colormaps  # lazy, as in the module under test

    rgb = depth_to_rgb(depth)
    turbo = colormaps["turbo"]
    assert rgb[0, 0].tolist() == list(turbo(1.0, bytes=True)[:3])  # dark red
    assert rgb[0, -1].tolist() == list(turbo(0.0, bytes=True)[:3])  # dark blue
    assert rgb[0, 0, 0] > rgb[0, 0, 2] and rgb[0, -1, 2] > rgb[0, -1, 0]


def test_depth_invalid_pixels_are_black_and_excluded_from_the_range():
    depth = np.array([[1.0, 2.0, 1000.0, np.nan, 0.0, -1.0]])
    valid = np.array([[True, True, False, True, True, True]])
    rgb = depth_to_rgb(depth, valid=valid, cmap="gray")
    assert rgb[0, 2:].tolist() == [[0, 0, 0]] * 4  # masked, nan, zero, behind the camera
    # The far outlier is masked, so 1 and 2 span the whole colormap.
    assert rgb[0, 0].tolist() == [255, 255, 255] and rgb[0, 1].tolist() == [0, 0, 0]
    assert not depth_to_rgb(np.full((2, 2), np.nan)).any()


def test_constant_depth_does_not_divide_by_zero():
    rgb = depth_to_rgb(np.full((2, 2), 3.0), cmap="gray")
    assert (rgb == 255).all()


def test_save_image_round_trips(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    path = tmp_path / "sub" / "x.png"
    save_image(path, rgb)
    with Image.open(path) as img:
        assert img.format == "PNG" and img.mode == "RGB"
        assert np.array_equal(np.asarray(img), rgb)


@pytest.mark.parametrize(
    ("fn", "arg"),
    [(normals_to_rgb, np.zeros((2, 4, 4))), (albedo_to_rgb, np.zeros((4, 4))), (depth_to_rgb, np.zeros((3, 4, 4)))],
)
def test_wrong_shapes_are_rejected(fn, arg):
    with pytest.raises(ValueError, match=r"\[H, W\]|\[3, H, W\]"):
        fn(arg)


def test_save_image_rejects_non_uint8(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        save_image(tmp_path / "x.png", np.zeros((2, 2, 3)))
