import json
import time
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from curation.models.registry import YoloConfig, tiny_profile
from curation.models.yolo import PersonDetector, PersonPoses, PoseEstimator, load_yolo
from curation.sample_corpus.sources import photo_path

# conf 0: random weights score every box near 0; without a floor the results would be empty and prove little.
DETECT = replace(tiny_profile().detector, conf=0.0)
POSE = replace(tiny_profile().pose, conf=0.0)


@pytest.fixture(scope="module")
def photos() -> list[Image.Image]:
    return [Image.open(photo_path("bus")).convert("RGB"), Image.open(photo_path("zidane")).convert("RGB")]


@pytest.fixture(scope="module")
def detector() -> PersonDetector:
    return PersonDetector(DETECT)


@pytest.fixture(scope="module")
def pose() -> PoseEstimator:
    return PoseEstimator(POSE)


def _assert_well_formed(result, image: Image.Image, max_det: int) -> None:
    k = len(result.conf)
    assert result.boxes.shape == (k, 4) and result.boxes.dtype == np.float32
    assert result.conf.shape == (k,) and result.conf.dtype == np.float32 and k <= max_det
    assert ((result.conf >= 0) & (result.conf <= 1)).all() and (np.diff(result.conf) <= 0).all()
    x1, y1, x2, y2 = result.boxes.T
    assert ((x1 >= 0) & (x1 <= x2) & (x2 <= image.width)).all()
    assert ((y1 >= 0) & (y1 <= y2) & (y2 <= image.height)).all()


def test_tiny_detector_returns_person_boxes_in_pixels_of_each_photo(detector, photos, no_network):
    results = detector(photos)
    assert len(results) == 2 and all(len(r.conf) > 0 for r in results)
    for result, image in zip(results, photos, strict=True):
        _assert_well_formed(result, image, DETECT.max_det)


@pytest.fixture(scope="module")
def sensitive() -> PersonDetector:
    """Freshly initialised YOLO gives the same boxes for any image (its outputs are its biases), all of class 0.
    Kaiming-normal convolutions make them depend on the pixels and a random class layer spreads the classes, so
    comparisons against ultralytics itself can tell inputs and classes apart."""
    detector = PersonDetector(replace(DETECT, max_det=100_000))  # a max_det that cannot hide a difference
    with torch.no_grad(), torch.random.fork_rng():
        torch.manual_seed(0)
        *body, head = detector.model.model.model
        for module in torch.nn.Sequential(*body).modules():
            if isinstance(module, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
        for branch in head.cv3:  # class logits: spread over the classes instead of class 0 winning everywhere
            branch[-1].weight.normal_(0.0, 0.3)
            branch[-1].bias.zero_()
    return detector


def _raw(detector: PersonDetector, image, **kwargs):
    """ultralytics' own predict on a PIL image: the reference."""
    args = {"conf": 0.0, "max_det": 100_000, "verbose": False, "device": "cpu", "rect": False, **kwargs}
    return detector.model.predict([image], **args)[0]


def test_detector_keeps_the_person_class_only(sensitive, photos):
    (kept,) = sensitive(photos[:1])
    raw = _raw(sensitive, photos[0], classes=None)
    person = (raw.boxes.cls == 0).numpy()
    assert 0 < person.sum() < len(person)  # the raw model predicts other classes too
    np.testing.assert_allclose(kept.boxes, raw.boxes.xyxy.numpy()[person], atol=1e-3)
    np.testing.assert_allclose(kept.conf, raw.boxes.conf.numpy()[person], atol=1e-6)


def test_pil_and_numpy_rgb_inputs_match_ultralytics_reading_the_pil_image(sensitive, photos):
    raw = _raw(sensitive, photos[0], classes=[0])
    swapped = _raw(sensitive, Image.fromarray(np.asarray(photos[0])[..., ::-1].copy()), classes=[0])
    assert len(swapped.boxes) != len(raw.boxes) or not np.allclose(swapped.boxes.xyxy, raw.boxes.xyxy, atol=1)
    for image in (photos[0], np.asarray(photos[0])):  # ultralytics reads arrays as BGR: RGB ones must be flipped
        (ours,) = sensitive([image])
        np.testing.assert_allclose(ours.boxes, raw.boxes.xyxy.numpy(), atol=1e-3)
    gray = sensitive([np.asarray(photos[0].convert("L"))])[0]  # grayscale arrays are accepted as well
    np.testing.assert_allclose(gray.boxes, sensitive([photos[0].convert("L")])[0].boxes, atol=1e-3)
    with pytest.raises(ValueError, match="RGB uint8"):
        sensitive([np.zeros((8, 8, 3), np.float32)])


def test_tiny_pose_returns_17_coco_keypoints_per_person(pose, photos, no_network):
    results = pose(photos)
    for result, image in zip(results, photos, strict=True):
        assert isinstance(result, PersonPoses)
        _assert_well_formed(result, image, POSE.max_det)
        k = len(result.conf)
        assert k > 0 and result.keypoints.shape == (k, 17, 3) and result.keypoints.dtype == np.float32
        assert np.isfinite(result.keypoints).all()
        assert ((result.keypoints[..., 2] >= 0) & (result.keypoints[..., 2] <= 1)).all()


def test_default_confidence_floor_gives_well_formed_possibly_empty_results(photos):
    (result,) = PersonDetector(tiny_profile().detector)(photos[1:])
    _assert_well_formed(result, photos[1], 300)
    assert PersonDetector(DETECT)([]) == []


def test_random_init_is_deterministic_given_the_seed():
    def weights(seed: int) -> dict[str, torch.Tensor]:
        return load_yolo(replace(DETECT, seed=seed), key="k").model.state_dict()

    a, b, c = weights(0), weights(0), weights(1)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_release_name_loads_from_the_ultralytics_weights_dir(detector, photos, tmp_path, monkeypatch, no_network):
    """The production path: a release name found in ultralytics' weights_dir, loaded as a .pt checkpoint."""
    weights_dir = tmp_path / "weights"
    (tmp_path / "yolo" / "Ultralytics").mkdir(parents=True)
    (tmp_path / "yolo" / "Ultralytics" / "settings.json").write_text(json.dumps({"weights_dir": str(weights_dir)}))
    monkeypatch.setenv("YOLO_CONFIG_DIR", str(tmp_path / "yolo"))
    monkeypatch.chdir(tmp_path)
    weights_dir.mkdir()
    detector.model.save(weights_dir / "yolo11m.pt")  # ultralytics stores fp16 weights
    loaded = PersonDetector(replace(DETECT, weights="yolo11m.pt"))
    original, restored = detector.model.model.state_dict(), loaded.model.model.state_dict()
    assert all(torch.equal(v.half().float() if v.is_floating_point() else v, restored[k]) for k, v in original.items())
    _assert_well_formed(loaded(photos[:1])[0], photos[0], DETECT.max_det)


def test_weights_of_the_wrong_task_are_refused():
    with pytest.raises(ValueError, match=r"yolo11n-pose\.yaml is a 'pose' model, expected 'detect'"):
        load_yolo(replace(DETECT, weights="yolo11n-pose.yaml"), key="models.detector.weights")
    with pytest.raises(ValueError, match="needs a config with task='pose'"):
        PoseEstimator(DETECT)


def test_missing_release_name_offline_fails_at_once_naming_file_and_key(tmp_path, monkeypatch, no_network):
    (tmp_path / "yolo" / "Ultralytics").mkdir(parents=True)
    (tmp_path / "yolo" / "Ultralytics" / "settings.json").write_text(json.dumps({"weights_dir": str(tmp_path / "w")}))
    monkeypatch.setenv("YOLO_CONFIG_DIR", str(tmp_path / "yolo"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    start = time.perf_counter()
    with pytest.raises(FileNotFoundError, match=r"models\.pose\.weights: yolo11m-pose\.pt is not on disk"):
        PoseEstimator(YoloConfig(weights="yolo11m-pose.pt", task="pose"))
    assert time.perf_counter() - start < 1.0
