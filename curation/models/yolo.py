"""Person detection and pose with ultralytics YOLO: load (a checked .pt, a converted pickle-free .safetensors, a release
name or a random-init yaml) and run batched inference, returning person boxes (+ 17 COCO keypoints for pose) in pixels
of each given image."""

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image

from curation.models.registry import (
    YAML_SUFFIXES,
    YoloConfig,
    check_yolo_weights,
    env_flag,
    find_yolo_weights,
    prepare_ultralytics_env,
    resolve_device,
    yolo_weight_dirs,
    yolo_weights_problem,
)
from curation.models.yolo_file import SAFETENSORS_SUFFIX, load_checked_pt, read_yolo_weights
from curation.models.yolo_safetensors import build_yolo

if TYPE_CHECKING:
    from ultralytics import YOLO
    from ultralytics.engine.results import Results

log = logging.getLogger(__name__)

ImageLike = Image.Image | np.ndarray  # RGB (numpy: HxWx3 uint8, or HxW grayscale)
COCO_KEYPOINTS = 17


@dataclass(frozen=True)
class PersonBoxes:
    boxes: np.ndarray  # [K, 4] float32 xyxy, pixels of the given image, highest confidence first
    conf: np.ndarray  # [K] float32


@dataclass(frozen=True)
class PersonPoses(PersonBoxes):
    keypoints: np.ndarray  # [K, 17, 3] float32 (x, y, conf), COCO order, pixels of the given image


def load_yolo(cfg: YoloConfig, *, key: str) -> "YOLO":
    """The ultralytics model of `cfg`, checked to be of `cfg.task`. `key` names the config entry in errors."""
    prepare_ultralytics_env()  # before the import: it fixes where ultralytics keeps its settings
    problem = yolo_weights_problem(cfg, key, offline=env_flag("YOLO_OFFLINE"))
    if problem is not None:
        raise FileNotFoundError(problem)
    from ultralytics import YOLO

    if cfg.weights.endswith(YAML_SUFFIXES):
        check_yolo_weights(cfg, key)  # refuses a sha256 pin on a yaml
        log.warning("%s: building %s with random weights (seed %d)", key, cfg.weights, cfg.seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            model = YOLO(cfg.weights, verbose=False)
    else:
        found = find_yolo_weights(cfg.weights)
        if found is None:  # a release name, allowed to download: into the weights_dir where it is found next time
            from ultralytics.utils.downloads import attempt_download_asset

            found = yolo_weight_dirs()[0] / cfg.weights
            log.info("%s: downloading %s into %s", key, cfg.weights, found.parent)
            found = Path(attempt_download_asset(found))
        # Read once and checked (pin, then pickle or converted-file check); these bytes are what gets loaded.
        data = read_yolo_weights(found, sha256=cfg.sha256, key=key)
        model = build_yolo(data, found, key=key) if found.suffix == SAFETENSORS_SUFFIX else load_checked_pt(data, found)
    if model.task != cfg.task:
        raise ValueError(f"{key}: {cfg.weights} is a {model.task!r} model, expected {cfg.task!r}")
    name = str(model.names.get(cfg.person_class, ""))
    if name != "person" and not name.isdigit():  # digits: the placeholder names of an untrained yaml model
        section = key.rsplit(".", 1)[0]
        raise ValueError(
            f"{key}: class {cfg.person_class} of {cfg.weights} is {name!r}, not 'person'; set {section}.person_class"
        )
    if cfg.task == "pose":
        kpt_shape = list(getattr(model.model, "kpt_shape", []) or [])
        if kpt_shape != [COCO_KEYPOINTS, 3]:
            raise ValueError(f"{key}: {cfg.weights} predicts keypoints {kpt_shape}, expected COCO [17, 3]")
    return model


class _YoloRunner:
    task: str
    default_key: str

    def __init__(self, cfg: YoloConfig, *, key: str | None = None) -> None:
        if cfg.task != self.task:
            raise ValueError(f"{type(self).__name__} needs a config with task={self.task!r}, got {cfg.task!r}")
        self.cfg = cfg
        self.device = resolve_device(cfg.device)
        self.model = load_yolo(cfg, key=key or self.default_key)

    def _predict(self, images: Sequence[ImageLike]) -> list["Results"]:
        cfg = self.cfg
        results: list[Results] = []
        for start in range(0, len(images), cfg.batch_size):
            batch = [_to_bgr(image) for image in images[start : start + cfg.batch_size]]
            results += self.model.predict(
                batch,
                imgsz=cfg.imgsz,
                conf=cfg.conf,
                iou=cfg.iou,
                max_det=cfg.max_det,
                classes=[cfg.person_class],
                # Always the square letterbox: with rect, a batch of same-sized images is padded differently from a
                # mixed batch, so a row's boxes would depend on which batch it arrived in.
                rect=False,
                device=self.device,
                quantize=16 if cfg.half and self.device.startswith("cuda") else None,  # `half` is deprecated
                verbose=False,
            )
        return results


class PersonDetector(_YoloRunner):
    task = "detect"
    default_key = "models.detector.weights"

    def __call__(self, images: Sequence[ImageLike]) -> list[PersonBoxes]:
        return [PersonBoxes(*_boxes(r)) for r in self._predict(images)]


class PoseEstimator(_YoloRunner):
    task = "pose"
    default_key = "models.pose.weights"

    def __call__(self, images: Sequence[ImageLike]) -> list[PersonPoses]:
        out = []
        for r in self._predict(images):
            boxes, conf = _boxes(r)
            kpts = r.keypoints.data.float().cpu().numpy() if r.keypoints is not None else np.zeros((0, 17, 3))
            out.append(PersonPoses(boxes, conf, kpts.reshape(len(boxes), COCO_KEYPOINTS, 3).astype(np.float32)))
        return out


def _boxes(result: "Results") -> tuple[np.ndarray, np.ndarray]:
    if result.boxes is None or len(result.boxes) == 0:
        return np.zeros((0, 4), np.float32), np.zeros((0,), np.float32)
    boxes = result.boxes.xyxy.float().cpu().numpy().astype(np.float32)
    conf = result.boxes.conf.float().cpu().numpy().astype(np.float32)
    return boxes, conf


def _to_bgr(image: ImageLike) -> np.ndarray:
    """ultralytics reads numpy arrays as BGR (OpenCV order); RGB PIL images and arrays are flipped here."""
    if isinstance(image, Image.Image):
        array = np.asarray(image.convert("RGB"))
    else:
        array = np.asarray(image)
        if array.ndim == 2:
            array = np.stack([array] * 3, axis=-1)
        if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
            raise ValueError(f"expected an RGB uint8 array [H, W, 3], got {array.dtype} {list(array.shape)}")
    return np.ascontiguousarray(array[..., ::-1])
