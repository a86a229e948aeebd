"""Per-sample augmentation parameters (flip, scale, rotation, shift), drawn reproducibly.

Randomness comes from a generator seeded from (seed, epoch, index), never from a global RNG, so an item is a pure
function of those three numbers and the files: replays after a resume and across worker counts are identical.
Every draw consumes the same number of uniforms, so one parameter's outcome never shifts the others.

Order of operations, for every dataset: the region (center, scale) is shifted, scaled and rotated by one affine warp
to the input size; a flip is then applied to the warped output (x' = (W - 1) - x) together with its label remapping.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from common.config import bounded, check_ranges
from posttrain.data.affine import warp_matrix


@dataclass(frozen=True)
class AugmentConfig:
    flip_p: float = bounded(0.5, ge=0, le=1)
    # Multiplies the region's scale: > 1 zooms out (more context). mmpose/Sapiens top-down draw a scale factor too.
    scale_range: tuple[float, float] = bounded((0.75, 1.25), gt=0)
    rotate_p: float = bounded(0.6, ge=0, le=1)  # mmpose RandomBBoxTransform's rotate_prob
    rotate_deg: float = bounded(30.0, ge=0)  # uniform in [-rotate_deg, rotate_deg] when rotating
    shift_p: float = bounded(0.3, ge=0, le=1)  # mmpose RandomBBoxTransform's shift_prob
    # centre shift, uniform in +-shift_frac of the region's width / height (mmpose: 0.16)
    shift_frac: float = bounded(0.16, ge=0)

    def __post_init__(self) -> None:
        check_ranges(self)
        low, high = self.scale_range
        if low > high:
            raise ValueError(f"scale_range must satisfy low <= high, got {tuple(self.scale_range)}")


@dataclass(frozen=True)
class Augment:
    flip: bool = False
    scale: float = 1.0
    rotation: float = 0.0  # degrees, warp_matrix's convention
    shift: tuple[float, float] = (0.0, 0.0)  # centre shift as a share of the region's (width, height)


NO_AUGMENT = Augment()


def augment_generator(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator for one sample of one epoch."""
    if min(seed, epoch, index) < 0:
        raise ValueError(f"seed, epoch and index must be >= 0, got {(seed, epoch, index)}")
    return np.random.default_rng(np.random.SeedSequence([seed, epoch, index]))


def sample_augment(cfg: AugmentConfig, generator: np.random.Generator | torch.Generator) -> Augment:
    """Draw one sample's parameters from a numpy or torch generator (7 uniforms, whatever the outcome)."""
    if isinstance(generator, torch.Generator):
        u = torch.rand(7, generator=generator, dtype=torch.float64).tolist()
    else:
        u = generator.random(7).tolist()
    low, high = cfg.scale_range
    rotation = (2.0 * u[3] - 1.0) * cfg.rotate_deg if u[2] < cfg.rotate_p else 0.0
    shift = ((2.0 * u[5] - 1.0) * cfg.shift_frac, (2.0 * u[6] - 1.0) * cfg.shift_frac) if u[4] < cfg.shift_p else None
    return Augment(
        flip=u[0] < cfg.flip_p,
        scale=low + (high - low) * u[1],
        rotation=rotation,
        shift=shift or (0.0, 0.0),
    )


def augmented_region(
    center: np.ndarray, scale: np.ndarray, augment: Augment, output_size: Sequence[int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(center, scale, 2x3 warp) of a region after the augment's shift, scale and rotation (not its flip)."""
    center = np.asarray(center, dtype=np.float64) + np.asarray(augment.shift) * scale
    scale = np.asarray(scale, dtype=np.float64) * augment.scale
    return center, scale, warp_matrix(center, scale, augment.rotation, output_size)


def check_flip_index(flip_index: Sequence[int], size: int, name: str) -> np.ndarray:
    """`flip_index` as an array [size], after checking it is a permutation of range(size) that is its own inverse."""
    index = np.asarray(flip_index, dtype=np.int64)
    if index.shape != (size,) or sorted(index.tolist()) != list(range(size)) or (index[index] != np.arange(size)).any():
        raise ValueError(
            f"{name} needs {size} entries, entry i the index of i's mirror (a permutation that is its own inverse, "
            f"e.g. [0, 2, 1] for centre, left, right); got {list(flip_index)}"
        )
    return index


def rotate_vectors(vectors: np.ndarray, rotation_deg: float) -> np.ndarray:
    """Rotate the (x, y) components of vectors [..., 3] as warp_matrix turns image points (y pointing down)."""
    theta = math.radians(rotation_deg)
    cos, sin = math.cos(theta), math.sin(theta)
    out = vectors.copy()
    out[..., 0] = cos * vectors[..., 0] - sin * vectors[..., 1]
    out[..., 1] = sin * vectors[..., 0] + cos * vectors[..., 1]
    return out
