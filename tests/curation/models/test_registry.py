import json
import os
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from common.config import ConfigError, load_config, to_object
from curation.models.registry import (
    LAION_AESTHETIC_NAME,
    LAION_NSFW_NAME,
    ClipConfig,
    ModelsConfig,
    YoloConfig,
    check_weights,
    find_yolo_weights,
    models_profile,
    prepare_ultralytics_env,
    tiny_profile,
    yolo_weight_dirs,
)
from curation.sample_corpus.sources import photo_path

VITL14_REPO = "models--timm--vit_large_patch14_clip_224.openai"


@pytest.fixture
def caches(tmp_path, monkeypatch):
    """Empty, private library caches: ultralytics settings and weights dir, user settings, HF hub cache, cwd."""
    import huggingface_hub.constants

    yolo_dir, weights_dir, xdg, hub, cwd = (tmp_path / n for n in ("yolo", "w", "xdg", "hub", "cwd"))
    (yolo_dir / "Ultralytics").mkdir(parents=True)
    (yolo_dir / "Ultralytics" / "settings.json").write_text(json.dumps({"weights_dir": str(weights_dir)}))
    for d in (weights_dir, xdg, hub, cwd):
        d.mkdir()
    monkeypatch.setenv("YOLO_CONFIG_DIR", str(yolo_dir))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(xdg))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(hub))
    monkeypatch.chdir(cwd)
    return {"weights": weights_dir, "xdg": xdg, "hub": hub, "cwd": cwd}


def _cache_hf_file(hub: Path, repo_dir: str, filename: str) -> Path:
    """The layout huggingface_hub leaves behind: refs/main -> snapshots/<commit>/<file>."""
    commit = "0" * 40
    (hub / repo_dir / "refs").mkdir(parents=True)
    (hub / repo_dir / "refs" / "main").write_text(commit)
    path = hub / repo_dir / "snapshots" / commit / filename
    path.parent.mkdir(parents=True)
    path.write_bytes(b"weights")
    return path


def test_production_profile_is_the_documented_model_set():
    cfg = models_profile("production")
    assert (cfg.detector.weights, cfg.detector.task) == ("yolo11m.pt", "detect")
    assert (cfg.pose.weights, cfg.pose.task) == ("yolo11m-pose.pt", "pose")
    assert (cfg.clip.model, cfg.clip.pretrained, cfg.clip.arch) == ("ViT-L-14", "openai", None)
    assert cfg.aesthetic.weights == f"weights/{LAION_AESTHETIC_NAME}" and cfg.aesthetic.input_dim == 768
    assert cfg.nsfw.weights == f"weights/{LAION_NSFW_NAME}" and cfg.nsfw.input_dim == 768
    assert cfg.zero_shot.realism.positive and cfg.zero_shot.text_overlay.negative
    with pytest.raises(ValueError, match="unknown model profile 'huge'; known: production, tiny"):
        models_profile("huge")


def test_tiny_profile_is_the_same_families_with_random_weights():
    cfg = tiny_profile(seed=3)
    assert (cfg.detector.weights, cfg.pose.weights) == ("yolo11n.yaml", "yolo11n-pose.yaml")
    assert cfg.clip.pretrained == "" and cfg.clip.arch is not None
    assert cfg.aesthetic.weights is None and cfg.aesthetic.input_dim == cfg.clip.arch.embed_dim
    assert cfg.nsfw.weights is None and cfg.nsfw.input_dim == cfg.clip.arch.embed_dim
    assert {cfg.detector.seed, cfg.pose.seed, cfg.clip.seed, cfg.aesthetic.seed, cfg.nsfw.seed} == {3}


def test_model_configs_work_as_strict_structured_configs(tmp_path):
    cfg = load_config(ModelsConfig, overrides=["clip.batch_size=8", "zero_shot.realism.probe=/p.safetensors"])
    obj = to_object(cfg)
    assert obj.clip.batch_size == 8 and obj.zero_shot.realism.probe == "/p.safetensors"
    assert replace(obj, clip=ClipConfig(), zero_shot=ModelsConfig().zero_shot) == ModelsConfig()
    with pytest.raises(ConfigError, match=r"detector\.treshold"):
        load_config(ModelsConfig, overrides=["detector.treshold=0.5"])
    tiny = OmegaConf.structured(tiny_profile())  # the optional nested arch survives the round trip
    assert to_object(tiny) == tiny_profile()
    saved = tmp_path / "models.yaml"
    saved.write_text(OmegaConf.to_yaml(tiny))
    assert to_object(load_config(ModelsConfig, config_path=saved)) == tiny_profile()


def test_check_weights_lists_every_missing_file_with_its_config_key(caches, no_network):
    problems = check_weights(ModelsConfig(), offline=True)
    assert len(problems) == 5
    detector, pose, clip, aesthetic, nsfw = problems
    assert detector.startswith("models.detector.weights: yolo11m.pt ") and str(caches["weights"]) in detector
    assert "models.detector.weights=/path/to/yolo11m.pt" in detector
    assert pose.startswith("models.pose.weights: yolo11m-pose.pt ") and str(caches["weights"]) in pose
    assert clip.startswith("models.clip.pretrained: ") and "timm/vit_large_patch14_clip_224.openai" in clip
    assert str(caches["hub"]) in clip and "models.clip.pretrained=" in clip
    assert aesthetic.startswith("models.aesthetic.weights: ") and LAION_AESTHETIC_NAME in aesthetic
    assert str(caches["cwd"] / "weights") in aesthetic  # where to put it: the configured relative path, resolved
    assert nsfw.startswith("models.nsfw.weights: ") and LAION_NSFW_NAME in nsfw
    assert str(caches["cwd"] / "weights") in nsfw and f"models.nsfw.weights=/path/to/{LAION_NSFW_NAME}" in nsfw


def test_check_weights_accepts_files_already_in_the_library_caches(caches, genuine_detect, no_network):
    release = genuine_detect.read_bytes()  # YOLO files are checked, so they must look like a release
    (caches["weights"] / "yolo11m.pt").write_bytes(release)  # ultralytics weights_dir
    (caches["cwd"] / "yolo11m-pose.pt").write_bytes(release)  # ultralytics looks in cwd first
    _cache_hf_file(caches["hub"], VITL14_REPO, "open_clip_model.safetensors")
    (caches["cwd"] / "weights").mkdir()
    (caches["cwd"] / "weights" / LAION_AESTHETIC_NAME).write_bytes(b"x")
    (caches["cwd"] / "weights" / LAION_NSFW_NAME).write_bytes(b"x")
    assert check_weights(ModelsConfig(), offline=True) == []
    assert check_weights(OmegaConf.structured(ModelsConfig()), offline=True) == []  # a DictConfig works too


def test_check_weights_finds_the_users_own_ultralytics_weights_dir_and_the_bin_checkpoint(
    caches, genuine_detect, no_network
):
    own = caches["xdg"] / "own-weights"
    own.mkdir()
    (caches["xdg"] / "Ultralytics").mkdir()
    (caches["xdg"] / "Ultralytics" / "settings.json").write_text(json.dumps({"weights_dir": str(own)}))
    (own / "yolo11m.pt").write_bytes(genuine_detect.read_bytes())
    assert find_yolo_weights("yolo11m.pt") == own / "yolo11m.pt"
    assert yolo_weight_dirs() == [caches["weights"], own]
    _cache_hf_file(caches["hub"], VITL14_REPO, "open_clip_pytorch_model.bin")
    keys = [p.split(":")[0] for p in check_weights(ModelsConfig(), offline=True)]
    assert keys == ["models.pose.weights", "models.aesthetic.weights", "models.nsfw.weights"]


def test_check_weights_checks_yolo_files_on_disk_before_anything_loads(caches, genuine_detect, no_network):
    """The driver's check: a hostile or unpinned-mismatching YOLO file fails with one line naming key and file."""
    import hashlib

    from curation.models.pickle_guard import UnsafeCheckpointError

    hostile = caches["weights"] / "yolo11m.pt"
    hostile.write_bytes(genuine_detect.read_bytes()[:100])  # truncated: not a readable archive
    with pytest.raises(UnsafeCheckpointError, match=rf"^models\.detector\.weights: {hostile}: refused: it is not a"):
        check_weights(ModelsConfig(), offline=True)
    hostile.write_bytes(genuine_detect.read_bytes())
    digest = hashlib.sha256(hostile.read_bytes()).hexdigest()
    pose = YoloConfig(weights=str(genuine_detect), task="pose", sha256="0" * 64)
    cfg = replace(ModelsConfig(), detector=YoloConfig(sha256=digest), pose=pose)
    with pytest.raises(
        UnsafeCheckpointError, match=rf"models\.pose\.weights: .*its sha256 is {digest}, not the pinned"
    ):
        check_weights(cfg, offline=True)
    keys = [p.split(":")[0] for p in check_weights(replace(cfg, pose=replace(pose, sha256=digest)), offline=True)]
    assert keys == ["models.clip.pretrained", "models.aesthetic.weights", "models.nsfw.weights"]


def test_check_weights_online_leaves_library_names_to_the_library(caches, no_network, tmp_path):
    online = [p.split(":")[0] for p in check_weights(ModelsConfig(), offline=False)]
    assert online == ["models.aesthetic.weights", "models.nsfw.weights"]
    cfg = replace(ModelsConfig(), detector=YoloConfig(weights=str(tmp_path / "mine" / "det.pt")))
    problems = check_weights(
        replace(cfg, clip=ClipConfig(pretrained=str(tmp_path / "clip.safetensors"))), offline=False
    )
    assert [p.split(":")[0] for p in problems][:2] == ["models.detector.weights", "models.clip.pretrained"]
    assert str(tmp_path / "mine" / "det.pt") in problems[0] and str(tmp_path / "clip.safetensors") in problems[1]


def test_check_weights_follows_the_libraries_offline_switches(caches, no_network, monkeypatch):
    monkeypatch.setenv("YOLO_OFFLINE", "0")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    keys = [p.split(":")[0] for p in check_weights(ModelsConfig())]
    assert keys == ["models.clip.pretrained", "models.aesthetic.weights", "models.nsfw.weights"]
    monkeypatch.setenv("YOLO_OFFLINE", "true")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    keys = [p.split(":")[0] for p in check_weights(ModelsConfig())]
    assert keys == ["models.detector.weights", "models.pose.weights", "models.aesthetic.weights", "models.nsfw.weights"]


def test_check_weights_on_probes_unknown_tags_and_the_tiny_profile(caches, no_network, tmp_path):
    assert check_weights(tiny_profile(), offline=True) == []
    cfg = tiny_profile()
    cfg.zero_shot.text_overlay.probe = str(tmp_path / "probe.safetensors")
    (problem,) = check_weights(cfg, offline=True, prefix="score.models")
    assert problem.startswith("score.models.zero_shot.text_overlay.probe: ") and "probe.safetensors" in problem
    (problem,) = check_weights(replace(tiny_profile(), clip=ClipConfig(pretrained="openia")), offline=False)
    assert problem == "models.clip.pretrained: 'openia' is neither a file nor an open_clip pretrained tag of ViT-L-14"


def test_prepare_ultralytics_env_keeps_ultralytics_out_of_home(tmp_path, monkeypatch):
    monkeypatch.delenv("YOLO_CONFIG_DIR")
    monkeypatch.delenv("YOLO_AUTOINSTALL")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    prepare_ultralytics_env()
    config_dir = Path(os.environ["YOLO_CONFIG_DIR"])
    assert config_dir.parent == tmp_path and config_dir.is_dir() and not config_dir.is_relative_to(Path.home())
    assert os.environ["YOLO_AUTOINSTALL"] == "0"
    monkeypatch.setenv("YOLO_CONFIG_DIR", str(tmp_path / "mine"))
    prepare_ultralytics_env()
    assert os.environ["YOLO_CONFIG_DIR"] == str(tmp_path / "mine")  # the user's choice wins


def test_tiny_profile_builds_every_model_offline(no_network):
    from PIL import Image

    from curation.models.aesthetic import load_aesthetic
    from curation.models.clip import load_clip
    from curation.models.nsfw import load_nsfw
    from curation.models.yolo import PersonDetector, PoseEstimator
    from curation.models.zero_shot import ZeroShotScorer

    cfg = tiny_profile()
    images = [Image.open(photo_path("zidane")), Image.open(photo_path("bus"))]
    detections = PersonDetector(cfg.detector)(images)
    poses = PoseEstimator(cfg.pose)(images)
    clip = load_clip(cfg.clip)
    embeddings = clip.encode_images(images)
    aesthetic = load_aesthetic(cfg.aesthetic).score(embeddings)
    nsfw = load_nsfw(cfg.nsfw).score(embeddings)
    zero_shot = ZeroShotScorer.from_config(cfg.zero_shot, clip.encode_texts).score(embeddings)
    assert len(detections) == len(poses) == 2
    assert embeddings.shape == (2, cfg.clip.arch.embed_dim) and embeddings.dtype == np.float32
    assert aesthetic.shape == (2,) and aesthetic.dtype == np.float32
    assert nsfw.shape == (2,) and nsfw.dtype == np.float32 and ((nsfw >= 0) & (nsfw <= 1)).all()
    assert set(zero_shot) == {"realism", "text_overlay"}
    assert all(v.shape == (2,) and ((v >= 0) & (v <= 1)).all() for v in zero_shot.values())
