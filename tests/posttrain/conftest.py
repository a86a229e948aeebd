"""Small labelled datasets for every post-training task, built from photos that ship with scikit-image."""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from PIL import Image

PHOTOS = ("astronaut", "coffee", "chelsea")
SIZE = (96, 128)  # (W, H) of the written images


@dataclass(frozen=True)
class TaskData:
    images: Path  # the photos (pose images, predict inputs)
    pose_annotations: Path  # COCO-17 keypoints over images/
    seg: Path  # images/ + masks/
    dense: Path  # images/ + normal/, pointmap/, albedo/ (.npy)


def _photo(name: str) -> np.ndarray:
    return np.asarray(Image.fromarray(np.asarray(getattr(skimage.data, name)())).convert("RGB").resize(SIZE))


def _pose_file(root: Path, rng: np.random.Generator) -> Path:
    w, h = SIZE
    images, annotations = [], []
    for i, name in enumerate(PHOTOS):
        images.append({"id": i + 1, "file_name": f"{name}.jpg", "width": w, "height": h})
        box = [10.0, 12.0, w - 20.0, h - 24.0]
        xy = np.stack([rng.uniform(box[0], box[0] + box[2], 17), rng.uniform(box[1], box[1] + box[3], 17)], 1)
        keypoints = np.concatenate([xy, np.full((17, 1), 2.0)], 1)
        keypoints[3, 2] = 0  # one unlabelled point
        keypoints[3, :2] = 0
        annotations.append(
            {"id": i + 1, "image_id": i + 1, "category_id": 1, "bbox": box, "area": box[2] * box[3] * 0.6,
             "iscrowd": 0, "num_keypoints": 16, "keypoints": keypoints.reshape(-1).round(2).tolist()}
        )  # fmt: skip
    path = root / "pose.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": [{"id": 1}]}))
    return path


def _dense_targets(rng: np.random.Generator) -> dict[str, np.ndarray]:
    w, h = SIZE
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    tilt = rng.uniform(-0.3, 0.3, 2)
    normal = np.stack([np.full_like(xs, tilt[0]), np.full_like(xs, tilt[1]), -np.ones_like(xs)], -1)
    normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
    depth = 2.0 + 0.004 * xs + 0.002 * ys  # a slanted plane in front of the camera
    points = np.stack([(xs - w / 2) * depth / 100, (ys - h / 2) * depth / 100, depth], -1)
    albedo = np.stack([xs / w, ys / h, np.full_like(xs, 0.4)], -1)
    return {"normal": normal, "pointmap": points, "albedo": albedo}


@pytest.fixture(scope="session")
def task_data(tmp_path_factory) -> TaskData:
    root = tmp_path_factory.mktemp("posttrain-data")
    rng = np.random.default_rng(0)
    images, seg, dense = root / "images", root / "seg", root / "dense"
    for folder in (images, seg / "images", seg / "masks", dense / "images"):
        folder.mkdir(parents=True)
    w, h = SIZE
    for i, name in enumerate(PHOTOS):
        for folder in (images, seg / "images", dense / "images"):
            Image.fromarray(_photo(name)).save(folder / f"{name}.jpg", quality=95)
        labels = np.zeros((h, w), np.uint8)
        labels[20:80, 20:50] = 22  # torso
        labels[20:60, 50:70] = 5 + i  # a left part
        labels[80:110, 30:60] = 14 + i  # a right part
        labels[0:5] = 255  # ignored band
        Image.fromarray(labels, mode="L").save(seg / "masks" / f"{name}.png")
        for target, values in _dense_targets(rng).items():
            (dense / target).mkdir(exist_ok=True)
            np.save(dense / target / f"{name}.npy", values.astype(np.float32))
    return TaskData(images, _pose_file(root, rng), seg, dense)
