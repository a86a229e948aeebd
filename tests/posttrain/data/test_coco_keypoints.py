import importlib.util
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from posttrain.data.affine import apply_affine_points, warp_matrix
from posttrain.data.augment import AugmentConfig, augment_generator, sample_augment
from posttrain.data.coco_keypoints import CocoKeypointDataset, crop_to_image
from posttrain.data.image_io import IMAGENET_MEAN, IMAGENET_STD

ZIDANE = Path(importlib.util.find_spec("ultralytics").submodule_search_locations[0]) / "assets" / "zidane.jpg"
FLIP_INDEX = [0, 2, 1, 4, 3]  # nose, left/right shoulder, left/right hip
INPUT = (192, 256)  # (W, H)
# Person box (500, 100, 200, 400) at aspect 0.75: width grows to 300, then x 1.25.
CENTER, SCALE = np.array([600.0, 300.0]), np.array([375.0, 500.0])
KEYPOINTS = np.array(
    [
        (600, 150, 2),
        (550, 300, 2),
        (650, 300, 1),
        (560, 480, 0),  # not labelled
        (900, 300, 2),  # labelled but right of the crop (x > 787.5)
    ],
    dtype=np.float64,
)
ONLY_FLIP = AugmentConfig(flip_p=1.0, scale_range=(1.0, 1.0), rotate_p=0.0, shift_p=0.0)


def annotation(ann_id, image_id=1, keypoints=KEYPOINTS, bbox=(500, 100, 200, 400), **extra):
    return {"id": ann_id, "image_id": image_id, "bbox": list(bbox), "keypoints": keypoints.ravel().tolist(), **extra}


@pytest.fixture(scope="module")
def coco(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("coco")
    (root / "images").mkdir()
    # Red squares on the labelled keypoints, so the tests can see where the crop puts them.
    image = np.asarray(Image.open(ZIDANE).convert("RGB")).copy()
    for x, y, _ in KEYPOINTS:
        image[int(y) - 3 : int(y) + 4, int(x) - 3 : int(x) + 4] = (255, 0, 0)
    Image.fromarray(image).save(root / "images" / "zidane.png")
    second = KEYPOINTS.copy()
    second[:, :2] += (-300, 50)
    annotations = [
        annotation(1),
        annotation(2, keypoints=second, bbox=(200, 150, 200, 400)),
        annotation(3, iscrowd=1),
        annotation(4, keypoints=np.zeros_like(KEYPOINTS), num_keypoints=0),
        annotation(5, bbox=(500, 100, 0, 400)),
        annotation(6, image_id=99),
    ]
    path = root / "person_keypoints.json"
    path.write_text(json.dumps({"images": [{"id": 1, "file_name": "zidane.png"}], "annotations": annotations}))
    return path, root / "images"


def dataset(coco, **kwargs) -> CocoKeypointDataset:
    return CocoKeypointDataset(coco[0], coco[1], num_keypoints=5, flip_index=FLIP_INDEX, input_size=INPUT, **kwargs)


def unnormalise(image: torch.Tensor) -> np.ndarray:
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return ((image * std + mean) * 255).permute(1, 2, 0).numpy()  # [H, W, 3]


def test_crop_matches_the_affine_reference(coco):
    ds = dataset(coco)
    item = ds[0]
    matrix = warp_matrix(CENTER, SCALE, 0.0, INPUT)
    np.testing.assert_allclose(item["meta"]["matrix"], matrix, atol=1e-12)
    np.testing.assert_allclose(item["keypoints"].numpy(), apply_affine_points(KEYPOINTS[:, :2], matrix), atol=1e-4)
    np.testing.assert_array_equal(item["visible"].numpy(), [1, 1, 1, 0, 0])
    assert item["keypoints"].shape == (5, 2) and item["image"].shape == (3, 256, 192)
    source = np.asarray(Image.open(coco[1] / "zidane.png").convert("RGB"))
    crop = cv2.warpAffine(source, matrix, INPUT, flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))
    expected = (crop / 255.0 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    np.testing.assert_allclose(item["image"].permute(1, 2, 0).numpy(), expected, atol=1e-5)
    meta = item["meta"]
    assert (meta["image_id"], meta["annotation_id"], meta["flipped"]) == (1, 1, False)
    np.testing.assert_allclose(meta["center"], CENTER)
    np.testing.assert_allclose(meta["scale"], SCALE)
    np.testing.assert_allclose(meta["bbox"], [500, 100, 200, 400])


def test_crop_to_image_round_trips(coco):
    plain = dataset(coco)[0]
    np.testing.assert_allclose(crop_to_image(plain["keypoints"], plain["meta"]), KEYPOINTS[:, :2], atol=1e-4)
    augmented = dataset(coco, augment=AugmentConfig(flip_p=1.0, rotate_p=1.0, shift_p=1.0))[0]
    assert augmented["meta"]["flipped"]
    # In a flipped crop keypoint i sits where the original's mirror keypoint was.
    back = crop_to_image(augmented["keypoints"], augmented["meta"])
    np.testing.assert_allclose(back, KEYPOINTS[FLIP_INDEX, :2], atol=1e-4)


def test_flip_mirrors_x_and_swaps_left_and_right(coco):
    plain, flipped = dataset(coco)[0], dataset(coco, augment=ONLY_FLIP)[0]
    expected = plain["keypoints"].numpy()[FLIP_INDEX]
    expected[:, 0] = (INPUT[0] - 1) - expected[:, 0]
    np.testing.assert_allclose(flipped["keypoints"].numpy(), expected, atol=1e-4)
    np.testing.assert_array_equal(flipped["visible"].numpy(), [1, 1, 1, 0, 0])  # right shoulder <- left, both seen
    torch.testing.assert_close(flipped["image"], plain["image"].flip(-1))
    assert flipped["meta"]["flipped"] and not plain["meta"]["flipped"]


def test_augmented_keypoints_land_on_their_pixels(coco):
    # Rotation, scale, shift and flip together: each visible keypoint's crop pixel is still its red marker.
    ds = dataset(coco, augment=AugmentConfig(flip_p=1.0, rotate_p=1.0, rotate_deg=40.0, shift_p=1.0), seed=3)
    item = ds[0]
    aug = sample_augment(ds.augment, augment_generator(3, 0, 0))
    center = CENTER + np.asarray(aug.shift) * SCALE
    matrix = warp_matrix(center, SCALE * aug.scale, aug.rotation, INPUT)
    expected = apply_affine_points(KEYPOINTS[:, :2], matrix)[FLIP_INDEX]
    expected[:, 0] = (INPUT[0] - 1) - expected[:, 0]
    np.testing.assert_allclose(item["keypoints"].numpy(), expected, atol=1e-4)
    pixels = unnormalise(item["image"])
    for (x, y), seen in zip(item["keypoints"].numpy(), item["visible"].numpy(), strict=True):
        if seen:
            r, g, b = pixels[round(y), round(x)]
            assert r > 200 and g < 60 and b < 60, (x, y)


def test_wrong_keypoint_count_names_the_file(coco):
    with pytest.raises(ValueError, match=r"person_keypoints\.json.*annotation 1 has 15 keypoint values"):
        CocoKeypointDataset(coco[0], coco[1], num_keypoints=4, flip_index=[0, 1, 2, 3], input_size=INPUT)


def test_bad_flip_index_is_refused(coco):
    with pytest.raises(ValueError, match="own inverse"):
        CocoKeypointDataset(coco[0], coco[1], num_keypoints=5, flip_index=[1, 2, 0, 3, 4], input_size=INPUT)


def test_skipped_annotations_are_counted(coco):
    ds = dataset(coco)
    assert len(ds) == 2
    assert ds.skipped == {"crowd": 1, "no_keypoints": 1, "invalid_bbox": 1, "unknown_image": 1}
    assert [ds[i]["meta"]["annotation_id"] for i in range(len(ds))] == [1, 2]


def test_items_are_a_function_of_seed_epoch_and_index(coco):
    ds = dataset(coco, augment=AugmentConfig(), seed=7)
    first, again = ds[1], ds[1]
    torch.testing.assert_close(first["image"], again["image"], rtol=0, atol=0)
    torch.testing.assert_close(first["keypoints"], again["keypoints"], rtol=0, atol=0)
    ds.set_epoch(1)
    assert not np.allclose(ds[1]["meta"]["matrix"], first["meta"]["matrix"])
    other_seed = dataset(coco, augment=AugmentConfig(), seed=8)
    assert not np.allclose(other_seed[1]["meta"]["matrix"], first["meta"]["matrix"])


def test_sample_augment_ranges_and_generators():
    cfg = AugmentConfig(flip_p=0.5, scale_range=(0.75, 1.25), rotate_p=0.6, rotate_deg=30.0, shift_p=0.3)
    draws = [sample_augment(cfg, augment_generator(0, 0, i)) for i in range(400)]
    assert all(0.75 <= d.scale <= 1.25 and abs(d.rotation) <= 30.0 for d in draws)
    assert all(max(abs(s) for s in d.shift) <= 0.16 for d in draws)
    assert 0.4 < np.mean([d.flip for d in draws]) < 0.6
    assert 0.5 < np.mean([d.rotation != 0 for d in draws]) < 0.7
    assert 0.2 < np.mean([d.shift != (0.0, 0.0) for d in draws]) < 0.4
    assert sample_augment(cfg, augment_generator(0, 0, 5)) == draws[5]
    torch_draws = [sample_augment(cfg, torch.Generator().manual_seed(s)) for s in (1, 1, 2)]
    assert torch_draws[0] == torch_draws[1] != torch_draws[2]
    with pytest.raises(ValueError, match="scale_range"):
        AugmentConfig(scale_range=(1.2, 0.8))
