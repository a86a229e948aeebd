from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from posttrain.data.affine import apply_affine_points, invert_affine
from posttrain.data.augment import AugmentConfig, augment_generator, sample_augment
from posttrain.data.image_io import IMAGENET_MEAN, IMAGENET_STD
from posttrain.data.segmentation_folder import SegmentationFolder

CLASS_FLIP = [0, 2, 1, 3]  # background, left arm, right arm, torso
# (class, x0, y0, x1, y1, colour painted on the image): regions far from each other and from the borders.
REGIONS = [(1, 50, 60, 110, 130, (255, 0, 0)), (2, 300, 100, 360, 170, (0, 255, 0)), (3, 180, 200, 260, 260, None)]
SIZE = (451, 300)  # chelsea, (W, H)
ONLY_FLIP = AugmentConfig(flip_p=1.0, scale_range=(1.0, 1.0), rotate_p=0.0, shift_p=0.0)
EVERYTHING = AugmentConfig(flip_p=1.0, scale_range=(0.8, 1.2), rotate_p=1.0, rotate_deg=45.0, shift_p=1.0)


def painted() -> tuple[np.ndarray, np.ndarray]:
    image, mask = data.chelsea().copy(), np.zeros(SIZE[::-1], dtype=np.uint8)
    for cls, x0, y0, x1, y1, colour in REGIONS:
        mask[y0:y1, x0:x1] = cls
        if colour is not None:
            image[y0:y1, x0:x1] = colour
    mask[0:5, 0:5] = 255  # already ignored in the source
    return image, mask


def palette_png(mask: np.ndarray, path: Path) -> None:
    im = Image.fromarray(mask).convert("P")  # L -> P keeps the values as indices
    im.putpalette([0, 0, 0, 200, 10, 10, 10, 200, 10, 10, 10, 200] + [255, 255, 255] * 252)
    im.save(path)


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("seg")
    (root / "images").mkdir()
    (root / "masks").mkdir()
    image, mask = painted()
    Image.fromarray(image).save(root / "images" / "cat.png")
    palette_png(mask, root / "masks" / "cat.png")
    assert Image.open(root / "masks" / "cat.png").mode == "P"
    Image.fromarray(data.astronaut()).save(root / "images" / "astronaut.jpg")
    Image.fromarray(np.full((512, 512), 3, dtype=np.uint8), mode="L").save(root / "masks" / "astronaut.png")
    return root


def normalised(rgb: np.ndarray) -> np.ndarray:
    return (rgb / 255.0 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)  # [H, W, 3]


def test_identity_size_returns_the_files(root):
    ds = SegmentationFolder(root, SIZE, CLASS_FLIP)
    assert [s[0] for s in ds.samples] == ["astronaut", "cat"]
    item = ds[1]
    image, mask = painted()
    # The palette PNG is read as its indices, not its colours.
    np.testing.assert_array_equal(item["mask"].numpy(), mask.astype(np.int64))
    assert item["mask"].dtype == torch.int64 and item["image"].shape == (3, 300, 451)
    np.testing.assert_allclose(item["image"].permute(1, 2, 0).numpy(), normalised(image), atol=1e-5)


def test_flip_mirrors_and_swaps_classes(root):
    item = SegmentationFolder(root, SIZE, CLASS_FLIP, augment=ONLY_FLIP)[1]
    image, mask = painted()
    expected = np.array(CLASS_FLIP + [0] * 251 + [255])[mask[:, ::-1]]
    np.testing.assert_array_equal(item["mask"].numpy(), expected)
    assert (item["mask"] == 2).sum() == 60 * 70 and (item["mask"] == 1).sum() == 60 * 70  # left arm became right
    np.testing.assert_allclose(item["image"].permute(1, 2, 0).numpy(), normalised(image[:, ::-1]), atol=1e-5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mask_and_image_land_where_the_affine_says(root, seed):
    out = (256, 192)
    item = SegmentationFolder(root, out, CLASS_FLIP, augment=EVERYTHING, seed=seed)[1]
    assert item["flipped"]
    mask, image = item["mask"].numpy(), item["image"].permute(1, 2, 0).numpy()
    ys, xs = np.mgrid[0 : out[1], 0 : out[0]]
    source = apply_affine_points(np.stack([xs, ys], axis=-1).astype(np.float64), invert_affine(item["matrix"]))
    sx, sy = source[..., 0], source[..., 1]
    checked = 0
    for cls, x0, y0, x1, y1, colour in REGIONS:
        inside = (sx > x0 + 1.5) & (sx < x1 - 2.5) & (sy > y0 + 1.5) & (sy < y1 - 2.5)
        assert inside.sum() > 100
        assert (mask[inside] == CLASS_FLIP[cls]).all()
        if colour is not None:
            np.testing.assert_allclose(
                image[inside], np.broadcast_to(normalised(np.array(colour)), (inside.sum(), 3)), atol=1e-4
            )
        checked += inside.sum()
    outside = (sx < -1) | (sx > SIZE[0]) | (sy < -1) | (sy > SIZE[1])
    assert outside.sum() > 100  # 45 degrees of rotation range and zooming out leave uncovered areas
    assert (mask[outside] == 255).all()
    np.testing.assert_allclose(image[outside], np.broadcast_to(normalised(np.zeros(3)), (outside.sum(), 3)), atol=1e-5)


def test_rotation_fills_corners_with_ignore(root):
    cfg = AugmentConfig(flip_p=0.0, scale_range=(1.0, 1.0), rotate_p=1.0, rotate_deg=45.0, shift_p=0.0)
    ds = SegmentationFolder(root, (128, 128), CLASS_FLIP, augment=cfg, ignore_index=250)
    rotation = sample_augment(cfg, augment_generator(0, 0, 0)).rotation
    assert abs(rotation) > 20  # this seed turns the image enough to uncover every corner
    mask = ds[0]["mask"].numpy()  # astronaut: all torso
    assert set(np.unique(mask).tolist()) == {3, 250}
    assert mask[0, 0] == mask[0, -1] == mask[-1, 0] == mask[-1, -1] == 250
    assert mask[64, 64] == 3


def test_missing_masks_are_listed(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    for i in range(7):
        Image.fromarray(data.coffee()[:50, :50]).save(tmp_path / "images" / f"img{i}.jpg")
    Image.fromarray(np.zeros((50, 50), np.uint8)).save(tmp_path / "masks" / "img3.png")
    with pytest.raises(FileNotFoundError, match=r"6 images have no mask .*img0, img1, img2, img4, img5, \.\.\."):
        SegmentationFolder(tmp_path, (32, 32), CLASS_FLIP)


def test_bad_masks_name_their_file(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    Image.fromarray(data.coffee()[:50, :60]).save(tmp_path / "images" / "a.png")
    Image.fromarray(data.coffee()[:50, :60]).save(tmp_path / "images" / "b.png")
    bad = np.zeros((50, 60), np.uint8)
    bad[10, 10] = 4  # only 4 classes: 0..3
    Image.fromarray(bad).save(tmp_path / "masks" / "a.png")
    Image.fromarray(data.coffee()[:50, :60]).save(tmp_path / "masks" / "b.png")  # RGB
    ds = SegmentationFolder(tmp_path, (32, 32), CLASS_FLIP)
    with pytest.raises(ValueError, match=r"a\.png: mask holds values \[4\]"):
        ds[0]
    with pytest.raises(ValueError, match=r"b\.png: label map has mode RGB"):
        ds[1]
