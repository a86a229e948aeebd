"""Multi-crop views for self-distillation + MAE: 2 global and N local crops of one image, ImageNet-normalised.

Randomness comes from a per-sample torch.Generator seeded from (seed, epoch, key), never from the global RNG, so a
sample replayed after a resume gets exactly the same crops, flips and colours (torchvision's v2 transform classes
draw from the global RNG, so only their functional ops are used here).
"""

import hashlib
import math
from dataclasses import dataclass

import torch
import torchvision.transforms.v2.functional as TF
from PIL import Image
from torch import Tensor

from common.config import bounded, check_ranges

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_CROP_ATTEMPTS = 10  # draws of (area, aspect) before falling back to the largest centred crop


@dataclass(frozen=True)
class MultiCropConfig:
    # Sapiens2 pretrains at 1024 x 768 (H x W), patch 16: 64 x 48 tokens.
    global_size: tuple[int, int] = bounded((1024, 768), ge=1)
    # Same 4:3 aspect at a quarter of the side (16 x 12 tokens). DINOv2 uses 96 px locals for 224 px globals
    # (0.43); at 1K a quarter keeps local crops cheap and still covers a body part. Not a published Sapiens2 value.
    local_size: tuple[int, int] = bounded((256, 192), ge=1)
    # DINOv2 uses 8 local crops (local_crops_number); 6 trims the local-view cost at high resolution. Our choice.
    num_local: int = bounded(6, ge=0)
    # Crop area as a share of the image: DINOv2's global_crops_scale (0.32, 1.0) and local_crops_scale (0.05, 0.32).
    global_scale: tuple[float, float] = bounded((0.32, 1.0), gt=0, le=1)
    local_scale: tuple[float, float] = bounded((0.05, 0.32), gt=0, le=1)
    # Crop aspect (w / h) is drawn log-uniformly within the target's aspect times [1/max, max]: a 4/3 spread, as in
    # RandomResizedCrop's (3/4, 4/3), but centred on the target's aspect so people are not squashed.
    max_aspect_change: float = bounded(4.0 / 3.0, ge=1)
    flip_p: float = bounded(0.5, ge=0, le=1)
    # Mild jitter only: downstream albedo and normal heads read colour and shading, so the backbone must not learn to
    # ignore them. DINOv2 uses (0.4, 0.4, 0.2, 0.1) plus grayscale, blur and solarize; none of those are used here.
    jitter_p: float = bounded(0.8, ge=0, le=1)
    brightness: float = bounded(0.2, ge=0)
    contrast: float = bounded(0.2, ge=0)
    saturation: float = bounded(0.2, ge=0)
    hue: float = bounded(0.0, ge=0, le=0.5)  # hue shifts change skin and clothing albedo: off by default

    def __post_init__(self) -> None:
        check_ranges(self)
        for name in ("global_size", "local_size", "global_scale", "local_scale"):
            if len(getattr(self, name)) != 2:
                raise ValueError(f"{name} must be a pair, got {getattr(self, name)}")
        for name in ("global_scale", "local_scale"):
            lo, hi = getattr(self, name)
            if lo > hi:
                raise ValueError(f"{name} must satisfy lo <= hi, got {(lo, hi)}")


def stable_seed(*parts: object) -> int:
    """A 63-bit seed from its parts: stable across processes and runs (unlike hash(), which is salted)."""
    digest = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def sample_seed(seed: int, epoch: int, key: str) -> int:
    """The view seed of one sample in one epoch: the same crops on replay, new crops each epoch."""
    return stable_seed(seed, epoch, key)


def _uniform(lo: float, hi: float, generator: torch.Generator) -> float:
    return lo + (hi - lo) * torch.rand((), generator=generator).item()


def crop_box(
    image_hw: tuple[int, int],
    target_hw: tuple[int, int],
    scale: tuple[float, float],
    max_aspect_change: float,
    generator: torch.Generator,
) -> tuple[int, int, int, int]:
    """(top, left, height, width) of a random crop covering `scale` of the area at an aspect near the target's."""
    H, W = image_hw
    target_aspect = target_hw[1] / target_hw[0]
    log_lo, log_hi = math.log(target_aspect / max_aspect_change), math.log(target_aspect * max_aspect_change)
    for _ in range(_CROP_ATTEMPTS):
        area = H * W * _uniform(scale[0], scale[1], generator)
        aspect = math.exp(_uniform(log_lo, log_hi, generator))
        w, h = round(math.sqrt(area * aspect)), round(math.sqrt(area / aspect))
        if 0 < w <= W and 0 < h <= H:
            top = int(torch.randint(H - h + 1, (), generator=generator))
            left = int(torch.randint(W - w + 1, (), generator=generator))
            return top, left, h, w
    # Fallback: the largest centred crop at the target's aspect.
    if target_aspect < W / H:
        h, w = H, max(1, round(H * target_aspect))
    else:
        h, w = max(1, round(W / target_aspect)), W
    return (H - h) // 2, (W - w) // 2, h, w


class MultiCropTransform:
    """PIL RGB image -> {"global": [2, 3, Hg, Wg], "local": [N, 3, Hl, Wl]} float32, ImageNet-normalised."""

    def __init__(self, config: MultiCropConfig) -> None:
        self.config = config

    def __call__(self, image: Image.Image, *, seed: int) -> dict[str, Tensor]:
        cfg = self.config
        generator = torch.Generator().manual_seed(seed)
        pixels = TF.to_dtype(TF.to_image(image.convert("RGB")), torch.float32, scale=True)  # [3, H, W] in [0, 1]
        hw = (pixels.shape[-2], pixels.shape[-1])
        views = {
            "global": [self._view(pixels, hw, cfg.global_size, cfg.global_scale, generator) for _ in range(2)],
            "local": [self._view(pixels, hw, cfg.local_size, cfg.local_scale, generator) for _ in range(cfg.num_local)],
        }
        h, w = cfg.local_size
        return {
            "global": torch.stack(views["global"]),
            "local": torch.stack(views["local"]) if views["local"] else torch.empty(0, 3, h, w),
        }

    def _view(
        self,
        pixels: Tensor,
        hw: tuple[int, int],
        size: tuple[int, int],
        scale: tuple[float, float],
        generator: torch.Generator,
    ) -> Tensor:
        cfg = self.config
        top, left, h, w = crop_box(hw, size, scale, cfg.max_aspect_change, generator)
        view = TF.resized_crop(pixels, top, left, h, w, list(size), antialias=True)  # [3, *size]
        if torch.rand((), generator=generator).item() < cfg.flip_p:
            view = TF.horizontal_flip(view)
        view = self._jitter(view, generator)
        return TF.normalize(view, IMAGENET_MEAN, IMAGENET_STD)

    def _jitter(self, view: Tensor, generator: torch.Generator) -> Tensor:
        cfg = self.config
        # Drawn even when not applied, so the number of RNG draws per view is fixed.
        apply = torch.rand((), generator=generator).item() < cfg.jitter_p
        b = _uniform(1 - cfg.brightness, 1 + cfg.brightness, generator)
        c = _uniform(1 - cfg.contrast, 1 + cfg.contrast, generator)
        s = _uniform(1 - cfg.saturation, 1 + cfg.saturation, generator)
        hue = _uniform(-cfg.hue, cfg.hue, generator)
        if not apply:
            return view
        # Fixed order (torchvision's ColorJitter permutes it at random): one less source of variance, same effect.
        view = TF.adjust_brightness(view, b)
        view = TF.adjust_contrast(view, c)
        view = TF.adjust_saturation(view, s)
        if cfg.hue > 0:
            view = TF.adjust_hue(view, hue)
        return view.clamp(0.0, 1.0)
