"""The model set of the curation score phase: structured configs, the `production` and `tiny` profiles, and where
each library keeps weights, so a run can be refused up front with a list of what is missing.

Nothing here imports torch, ultralytics or open_clip at module level: drivers import this to check a config
before anything heavy loads, and nothing here ever downloads.
"""

import json
import logging
import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING, Any

from common.config import bounded
from common.errors import UsageError

if TYPE_CHECKING:
    from omegaconf import DictConfig

log = logging.getLogger(__name__)

# Where the published weights come from, for the messages of check_weights.
ULTRALYTICS_RELEASES = "https://github.com/ultralytics/assets/releases"
LAION_AESTHETIC_NAME = "sac+logos+ava1-l14-linearMSE.pth"
LAION_AESTHETIC_URL = (
    "https://github.com/christophschuhmann/improved-aesthetic-predictor/raw/main/sac%2Blogos%2Bava1-l14-linearMSE.pth"
)
# The LAION CLIP-based NSFW detector's ViT-L/14 head as a torch state dict (the Keras original is
# clip_autokeras_binary_nsfw.zip; curation/models/nsfw.py maps its layers to these keys).
LAION_NSFW_NAME = "clip_ViT-L-14_openai_binary_nsfw_head.pth"
LAION_NSFW_URL = f"https://github.com/LAION-AI/CLIP-based-NSFW-Detector/raw/main/models/{LAION_NSFW_NAME}"
HF_WEIGHTS_NAMES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")  # open_clip's HF file names
TINY_CLIP_NAME = "humans1b-tiny-clip"
YAML_SUFFIXES = (".yaml", ".yml")
_TRUE = {"1", "true", "yes", "on", "y", "t"}  # the strings ultralytics' env_bool accepts; huggingface_hub agrees


@dataclass
class YoloConfig:
    """An ultralytics YOLO model: a weights path (.pt, or .safetensors written by `humans1b models convert-yolo`), an
    ultralytics release name, or a model yaml (random init)."""

    weights: str = "yolo11m.pt"  # ultralytics release name, resolved like ultralytics: cwd, then its weights_dir
    task: str = "detect"  # "detect" or "pose": the loader refuses weights of another task
    imgsz: int = bounded(640, ge=32)  # ultralytics predict default; YOLO11 is trained at 640
    conf: float = bounded(
        0.25, ge=0, le=1
    )  # ultralytics predict default, a floor for NMS only: stages apply their own thresholds
    iou: float = bounded(0.7, ge=0, le=1)  # ultralytics NMS IoU default
    max_det: int = bounded(300, ge=1)  # ultralytics default
    person_class: int = bounded(0, ge=0)  # COCO class 0 is person
    batch_size: int = bounded(16, ge=1)  # images per forward pass
    half: bool = True  # fp16 compute on CUDA (ultralytics quantize=16); never on CPU
    device: str = "auto"  # "auto": CUDA when available, else CPU
    seed: int = bounded(0, ge=0)  # random init from a yaml
    # The weights file's expected sha256 (hex); when set, a file that differs is refused before any of it is parsed
    sha256: str | None = None


@dataclass
class TinyClipArch:
    """A small open_clip architecture, registered under ClipConfig.model at load time."""

    embed_dim: int = bounded(64, ge=1)
    image_size: int = bounded(64, ge=1)
    patch_size: int = bounded(16, ge=1)
    vision_width: int = bounded(128, ge=1)
    vision_layers: int = bounded(2, ge=1)
    vision_head_width: int = bounded(64, ge=1)
    text_width: int = bounded(64, ge=1)
    text_heads: int = bounded(2, ge=1)
    text_layers: int = bounded(2, ge=1)
    # The text tower keeps open_clip's bundled BPE tokenizer (vocab 49408, context 77), so real prompts tokenise.

    def open_clip_config(self) -> dict[str, Any]:
        return {
            "embed_dim": self.embed_dim,
            "vision_cfg": {
                "image_size": self.image_size,
                "patch_size": self.patch_size,
                "width": self.vision_width,
                "layers": self.vision_layers,
                "head_width": self.vision_head_width,
            },
            "text_cfg": {
                "context_length": 77,
                "vocab_size": 49408,
                "width": self.text_width,
                "heads": self.text_heads,
                "layers": self.text_layers,
            },
        }


@dataclass
class ClipConfig:
    model: str = "ViT-L-14"  # open_clip architecture; 768-d, the embedding the LAION aesthetic MLP expects
    pretrained: str = "openai"  # open_clip pretrained tag, a local checkpoint path, or "" for random init
    # OpenAI's CLIP was trained with QuickGELU (open_clip's 'openai' tags say quick_gelu); false for most LAION tags
    quick_gelu: bool = True
    arch: TinyClipArch | None = None  # set: `model` is registered with open_clip as this architecture
    cache_dir: str | None = None  # open_clip's cache_dir; None: the Hugging Face hub cache (HF_HUB_CACHE)
    # open_clip precision: fp32, fp16, bf16, amp, or "auto": fp16 on CUDA (tensor cores; fp16 weights, half the memory),
    # fp32 on CPU (fp16 matmuls there are slow and change the scores)
    precision: str = "auto"
    batch_size: int = bounded(64, ge=1)  # images or prompts per forward pass
    device: str = "auto"
    seed: int = bounded(0, ge=0)  # random init when pretrained is ""


@dataclass
class AestheticConfig:
    # LAION improved-aesthetic-predictor, trained on L2-normalised CLIP ViT-L/14 embeddings; None: random init
    weights: str | None = f"weights/{LAION_AESTHETIC_NAME}"
    input_dim: int = bounded(768, ge=1)  # CLIP ViT-L/14 embedding size
    device: str = "auto"
    seed: int = bounded(0, ge=0)  # random init when weights is None


@dataclass
class NsfwConfig:
    # LAION CLIP-based NSFW detector, fed L2-normalised CLIP ViT-L/14 embeddings as clip-retrieval does.
    # None: random init (the tiny profile).
    weights: str | None = f"weights/{LAION_NSFW_NAME}"  # safetensors, or a torch state dict (weights_only=True)
    input_dim: int = bounded(768, ge=1)  # CLIP ViT-L/14 embedding size
    device: str = "auto"
    seed: int = bounded(0, ge=0)  # random init when weights is None


@dataclass
class ZeroShotHeadConfig:
    """A binary zero-shot score: P(positive) from two prompt ensembles, or a linear probe that replaces them."""

    positive: list[str] = field(default_factory=list)
    negative: list[str] = field(default_factory=list)
    probe: str | None = None  # safetensors or .pt with `weight` [D] and `bias` []: sigmoid(w·x + b)


# Prompt ensembles after CLIP's zero-shot recipe (Radford et al. 2021: templates averaged per class); project choice.
# Negation is avoided ("a photo without text"): CLIP embeds the noun either way.
REALISM_PHOTO = [
    "a photo of a person",
    "a photograph of people",
    "a candid photo of a person",
    "a high resolution photograph of a person",
    "a snapshot of a person taken with a camera",
    "a real photo",
]
REALISM_NOT_PHOTO = [
    "a painting of a person",
    "a drawing of a person",
    "a sketch of a person",
    "a 3d render of a person",
    "a cartoon of a person",
    "an anime illustration",
    "digital art of a person",
    "a statue of a person",
    "a screenshot of a video game",
    "a screenshot",
]
TEXT_OVERLAY = [
    "an image with text on it",
    "a photo with a watermark",
    "a photo with a caption",
    "a photo with a logo",
    "a meme with text",
    "a poster with text",
    "a video frame with subtitles",
]
CLEAN_PHOTO = [
    "a clean photo",
    "a clean photo of a person",
    "a plain photograph",
    "an unedited photo",
    "a photo",
]


@dataclass
class ZeroShotConfig:
    realism: ZeroShotHeadConfig = field(
        default_factory=lambda: ZeroShotHeadConfig(positive=list(REALISM_PHOTO), negative=list(REALISM_NOT_PHOTO))
    )
    text_overlay: ZeroShotHeadConfig = field(
        default_factory=lambda: ZeroShotHeadConfig(positive=list(TEXT_OVERLAY), negative=list(CLEAN_PHOTO))
    )
    logit_scale: float = bounded(100.0, gt=0)  # CLIP's learned temperature, clamped at 100 and ending there


ZERO_SHOT_HEADS = ("realism", "text_overlay")


@dataclass
class ModelsConfig:
    """The `production` profile by default; see tiny_profile() for the random-weight one."""

    detector: YoloConfig = field(default_factory=YoloConfig)
    pose: YoloConfig = field(default_factory=lambda: YoloConfig(weights="yolo11m-pose.pt", task="pose"))
    clip: ClipConfig = field(default_factory=ClipConfig)
    aesthetic: AestheticConfig = field(default_factory=AestheticConfig)
    nsfw: NsfwConfig = field(default_factory=NsfwConfig)
    zero_shot: ZeroShotConfig = field(default_factory=ZeroShotConfig)


def production_profile() -> ModelsConfig:
    return ModelsConfig()


def tiny_profile(seed: int = 0) -> ModelsConfig:
    """The production families with random weights: same code paths and outputs, nothing to download."""
    arch = TinyClipArch()
    return ModelsConfig(
        detector=YoloConfig(weights="yolo11n.yaml", seed=seed),
        pose=YoloConfig(weights="yolo11n-pose.yaml", task="pose", seed=seed),
        clip=ClipConfig(model=TINY_CLIP_NAME, pretrained="", quick_gelu=False, arch=arch, seed=seed),
        aesthetic=AestheticConfig(weights=None, input_dim=arch.embed_dim, seed=seed),
        nsfw=NsfwConfig(weights=None, input_dim=arch.embed_dim, seed=seed),
    )


PROFILES: dict[str, Callable[[], ModelsConfig]] = {"production": production_profile, "tiny": tiny_profile}


def models_profile(name: str) -> ModelsConfig:
    if name not in PROFILES:
        raise ValueError(f"unknown model profile {name!r}; known: {', '.join(PROFILES)}")
    return PROFILES[name]()


def resolve_device(device: str) -> str:
    """The torch device for a config value: "auto" is CUDA when available, else CPU; others pass through."""
    if device != "auto":
        return device
    import torch

    return "cuda:0" if torch.cuda.is_available() else "cpu"


def resolve_precision(precision: str, device: str) -> str:
    """The open_clip precision for a config value on a resolved device: "auto" is fp16 on CUDA, else fp32."""
    if precision != "auto":
        return precision
    return "fp16" if device.startswith("cuda") else "fp32"


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in _TRUE


# --- ultralytics: its settings dir, and where it finds weights -----------------------------------------------------


def _private_yolo_config_dir() -> Path:
    return Path(tempfile.gettempdir()) / f"humans1b-ultralytics-{os.getuid()}"


def prepare_ultralytics_env() -> None:
    """Set before ultralytics is imported: it writes settings.json into YOLO_CONFIG_DIR (default ~/.config) at import,
    and pip-installs missing extras unless YOLO_AUTOINSTALL is off. Values the user set are kept."""
    if "YOLO_CONFIG_DIR" not in os.environ:
        if "ultralytics" in sys.modules:
            log.warning("ultralytics was imported before its config dir was set; it may write under $HOME")
        path = _private_yolo_config_dir()
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        if path.stat().st_uid != os.getuid():  # a shared temp dir: never use a directory someone else made
            path = Path(tempfile.mkdtemp(prefix="humans1b-ultralytics-"))
        os.environ["YOLO_CONFIG_DIR"] = str(path)
    os.environ.setdefault("YOLO_AUTOINSTALL", "0")


def ultralytics_env() -> dict[str, str]:
    """The variables prepare_ultralytics_env sets, for a Ray runtime_env."""
    return {
        "YOLO_CONFIG_DIR": os.environ.get("YOLO_CONFIG_DIR", str(_private_yolo_config_dir())),
        "YOLO_AUTOINSTALL": os.environ.get("YOLO_AUTOINSTALL", "0"),
    }


def _platform_yolo_config_dir() -> Path:
    """ultralytics' own default settings dir (read here, never written)."""
    home = Path.home()
    if sys.platform == "darwin":
        return home / "Library" / "Application Support"
    if sys.platform == "win32":
        return home / "AppData" / "Roaming"
    return Path(os.environ.get("XDG_CONFIG_HOME", home / ".config"))


def _default_weights_dir() -> Path:
    """ultralytics' default weights_dir: <git root above the ultralytics package, else cwd>/weights."""
    spec = find_spec("ultralytics")
    if spec is not None and spec.origin:
        package = Path(spec.origin).resolve().parent
        root = next((d for d in [package, *package.parents] if (d / ".git").exists()), None)
        if root is not None:
            return root / "weights"
    return Path("weights")


def _settings_weights_dir(config_dir: Path) -> Path | None:
    settings = config_dir / "Ultralytics" / "settings.json"
    try:
        value = json.loads(settings.read_text()).get("weights_dir")
    except (OSError, ValueError):
        return None
    return Path(value) if isinstance(value, str) and value else None


def yolo_weight_dirs() -> list[Path]:
    """Where ultralytics finds a release name besides cwd: the weights_dir of the settings this project's processes
    use (YOLO_CONFIG_DIR), then the one of the user's own ultralytics settings. The first is the download target."""
    env = os.environ.get("YOLO_CONFIG_DIR")
    active = Path(env).expanduser() if env else _private_yolo_config_dir()
    dirs = [_settings_weights_dir(active) or _default_weights_dir(), _settings_weights_dir(_platform_yolo_config_dir())]
    unique: list[Path] = []
    for d in dirs:
        if d is not None and d.absolute() not in unique:
            unique.append(d.absolute())
    return unique


def is_release_name(weights: str) -> bool:
    """A bare .pt file name like `yolo11m.pt`: ultralytics looks it up and downloads it when missing."""
    return Path(weights).name == weights and weights.endswith(".pt")


def find_yolo_weights(weights: str) -> Path | None:
    """The file `weights` names, without downloading: a path, or a bare file name in cwd or a weights_dir (where
    ultralytics finds release names). None when it is not on disk (or is a yaml)."""
    if weights.endswith(YAML_SUFFIXES):
        return None
    path = Path(weights).expanduser()
    if path.is_file():
        return path.absolute()
    if Path(weights).name == weights:  # a bare name: looked up like ultralytics looks up release names
        for d in yolo_weight_dirs():
            if (d / weights).is_file():
                return d / weights
    return None


def yolo_weights_problem(cfg: YoloConfig, key: str, *, offline: bool) -> str | None:
    """Why `cfg.weights` cannot be loaded without a download that is not allowed; None when it can."""
    weights = cfg.weights
    if weights.endswith(YAML_SUFFIXES):
        if Path(weights).name == weights or Path(weights).expanduser().is_file():
            return None  # a bare yaml name is one of ultralytics' bundled model configs
        return f"{key}: model yaml {weights} does not exist; set {key} to a yaml file or weights file"
    if find_yolo_weights(weights) is not None:
        return None
    if weights.endswith(".safetensors"):
        return (
            f"{key}: weights file {weights} does not exist; write it from the ultralytics .pt with "
            f"`humans1b models convert-yolo IN.pt {weights}` or set {key}=PATH"
        )
    if not is_release_name(weights):
        return f"{key}: weights file {weights} does not exist; put the ultralytics .pt file there or set {key}=PATH"
    if not offline:
        return None  # ultralytics downloads a release name on first load
    dirs = yolo_weight_dirs()
    looked = ", ".join(str(p) for p in [Path.cwd(), *dirs])
    return (
        f"{key}: {weights} is not on disk (looked in {looked}) and downloads are off. "
        f"Download {weights} from {ULTRALYTICS_RELEASES} into {dirs[0]}, or set {key}=/path/to/{weights}"
    )


def check_yolo_weights(cfg: YoloConfig, key: str) -> None:
    """Raise UnsafeCheckpointError (a UsageError) if the YOLO weights file of `cfg`, when on disk, must not be
    loaded; a model yaml cannot carry a sha256 pin."""
    if cfg.weights.endswith(YAML_SUFFIXES):
        if cfg.sha256:
            raise UsageError(f"{key.rsplit('.', 1)[0]}.sha256 pins a weights file, but {key}={cfg.weights} is a yaml")
        return
    found = find_yolo_weights(cfg.weights)
    if found is not None:
        from curation.models.yolo_file import read_yolo_weights

        read_yolo_weights(found, sha256=cfg.sha256, key=key)


# --- open_clip: pretrained tags and the caches they resolve to -------------------------------------------------------


def hf_hub_cache(cache_dir: str | None = None) -> Path:
    if cache_dir:
        return Path(cache_dir).expanduser()
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def _clip_tag_config(model: str, tag: str) -> dict[str, Any]:
    import open_clip

    return open_clip.get_pretrained_cfg(model, tag)


def _hf_candidates(filename: str) -> list[str]:
    """The files open_clip asks the hub for, in order: a safetensors twin first."""
    if not filename or filename == HF_WEIGHTS_NAMES[1]:
        return list(HF_WEIGHTS_NAMES)
    if filename.endswith((".bin", ".pth")):
        return [filename[:-4] + ".safetensors", filename]
    return [filename]


def find_cached_clip_weights(tag_cfg: dict[str, Any], cache_dir: str | None = None) -> Path | None:
    """The file open_clip would load for a pretrained tag, if it is already cached; never downloads.

    With huggingface_hub installed open_clip prefers the tag's hub repo (safetensors first), in the hub cache or
    `cache_dir`; a tag without a hub repo is fetched from its URL into `cache_dir` or ~/.cache/clip.
    """
    hub = tag_cfg.get("hf_hub", "")
    if hub and find_spec("huggingface_hub") is not None:
        from huggingface_hub import try_to_load_from_cache

        repo_id, filename = os.path.split(hub)  # "org/repo/" -> the default file names; "org/repo/file" -> that file
        for name in _hf_candidates(filename):
            found = try_to_load_from_cache(repo_id, name, cache_dir=cache_dir)
            if isinstance(found, str):
                return Path(found)
        return None
    url = tag_cfg.get("url", "")
    if url:
        path = Path(cache_dir or Path.home() / ".cache" / "clip").expanduser() / os.path.basename(url)
        return path if path.is_file() else None
    return None


def clip_weights_problem(cfg: ClipConfig, key: str, *, offline: bool) -> str | None:
    """Why `cfg.pretrained` cannot be loaded without a download that is not allowed; None when it can."""
    pretrained = cfg.pretrained
    if not pretrained or Path(pretrained).expanduser().is_file():
        return None
    tag_cfg = {} if cfg.arch is not None else _clip_tag_config(cfg.model, pretrained)
    if not tag_cfg:
        if Path(pretrained).suffix or os.sep in pretrained:
            return (
                f"{key}: checkpoint {pretrained} does not exist; put the open_clip checkpoint there or set {key}=PATH"
            )
        return f"{key}: {pretrained!r} is neither a file nor an open_clip pretrained tag of {cfg.model}"
    if not offline or find_cached_clip_weights(tag_cfg, cfg.cache_dir) is not None:
        return None
    repo_id, filename = os.path.split(tag_cfg.get("hf_hub", ""))
    if repo_id:
        name = _hf_candidates(filename)[0]
        where = f"https://huggingface.co/{repo_id} (e.g. `hf download {repo_id} {name}`)"
        cache = hf_hub_cache(cfg.cache_dir)
    else:
        where = tag_cfg.get("url", "")
        cache = Path(cfg.cache_dir or Path.home() / ".cache" / "clip").expanduser()
    return (
        f"{key}: open_clip weights {cfg.model}/{pretrained} are not in the cache {cache} and downloads are off. "
        f"Fetch them from {where} into that cache, or download the checkpoint anywhere and set {key}=/path/to/it"
    )


# --- the rest: plain files -------------------------------------------------------------------------------------------


def aesthetic_weights_problem(cfg: AestheticConfig, key: str) -> str | None:
    if cfg.weights is None or Path(cfg.weights).expanduser().is_file():
        return None
    path = Path(cfg.weights).expanduser().absolute()
    return (
        f"{key}: aesthetic weights {path.name} not found at {path}. Download {LAION_AESTHETIC_NAME} from "
        f"{LAION_AESTHETIC_URL} into {path.parent}, or set {key}=/path/to/{LAION_AESTHETIC_NAME}"
    )


def nsfw_weights_problem(cfg: NsfwConfig, key: str) -> str | None:
    if cfg.weights is None or Path(cfg.weights).expanduser().is_file():
        return None
    path = Path(cfg.weights).expanduser().absolute()
    return (
        f"{key}: NSFW detector weights {path.name} not found at {path}. Download {LAION_NSFW_NAME} from "
        f"{LAION_NSFW_URL} into {path.parent}, or set {key}=/path/to/{LAION_NSFW_NAME} "
        "(a converted Keras model works too: see curation/models/nsfw.py)"
    )


def probe_problem(cfg: ZeroShotHeadConfig, key: str) -> str | None:
    if cfg.probe is None or Path(cfg.probe).expanduser().is_file():
        return None
    return f"{key}: linear-probe file {cfg.probe} does not exist; put it there, or set {key}=null to use the prompts"


def check_weights(
    models_cfg: "ModelsConfig | DictConfig", *, prefix: str = "models", offline: bool | None = None
) -> list[str]:
    """Every weights file a run of `models_cfg` (ModelsConfig or its DictConfig) would miss, one message each naming
    the file, where to put it and the config key to set. Never downloads, never opens a connection.

    A library's own name (`yolo11m.pt`, an open_clip tag) counts as missing only when it is not cached and downloads
    are off: `offline`, or by default the libraries' own switches (YOLO_OFFLINE, HF_HUB_OFFLINE).

    A YOLO weights file that is on disk is checked here already (sha256 pin, pickle check or converted-file check),
    so a file that must not be loaded raises UnsafeCheckpointError (a UsageError) in the driver, before Ray starts.
    """
    yolo_offline = env_flag("YOLO_OFFLINE") if offline is None else offline
    hf_offline = env_flag("HF_HUB_OFFLINE") if offline is None else offline
    check_yolo_weights(models_cfg.detector, f"{prefix}.detector.weights")
    check_yolo_weights(models_cfg.pose, f"{prefix}.pose.weights")
    problems = [
        yolo_weights_problem(models_cfg.detector, f"{prefix}.detector.weights", offline=yolo_offline),
        yolo_weights_problem(models_cfg.pose, f"{prefix}.pose.weights", offline=yolo_offline),
        clip_weights_problem(models_cfg.clip, f"{prefix}.clip.pretrained", offline=hf_offline),
        aesthetic_weights_problem(models_cfg.aesthetic, f"{prefix}.aesthetic.weights"),
        nsfw_weights_problem(models_cfg.nsfw, f"{prefix}.nsfw.weights"),
        *(
            probe_problem(getattr(models_cfg.zero_shot, head), f"{prefix}.zero_shot.{head}.probe")
            for head in ZERO_SHOT_HEADS
        ),
    ]
    return [p for p in problems if p is not None]
