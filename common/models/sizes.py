"""Sapiens2 sizes as data: one row per size, one factory for all of them."""

from dataclasses import dataclass
from typing import Any

from common.models.sapiens2 import Sapiens2


@dataclass(frozen=True)
class BackboneSize:
    dim: int
    depth: int
    num_heads: int
    published_params_b: float | None = None  # billions, from the public Sapiens2 release; None: not a released size
    local_depth: int = 2  # blocks of the 4K variant's window stage (`create_backbone_4k`), per size as in the release


SIZES: dict[str, BackboneSize] = {
    "tiny": BackboneSize(dim=64, depth=4, num_heads=4),  # tests, demos and compute checks only
    "0.1b": BackboneSize(dim=768, depth=12, num_heads=12, published_params_b=0.114),
    "0.4b": BackboneSize(dim=1024, depth=24, num_heads=16, published_params_b=0.398),
    "0.8b": BackboneSize(dim=1280, depth=32, num_heads=16, published_params_b=0.818, local_depth=3),
    "1b": BackboneSize(dim=1536, depth=40, num_heads=24, published_params_b=1.462, local_depth=4),
    "5b": BackboneSize(dim=2432, depth=56, num_heads=32, published_params_b=5.071, local_depth=6),
}


def create_backbone(name: str, **overrides: Any) -> Sapiens2:
    """Build the Sapiens2 backbone of size `name`; `overrides` are `Sapiens2` keyword arguments (img_size,
    drop_path_rate, layer_scale_init, …) and win over the size table. Build under `torch.device("meta")` to size a
    model without allocating it."""
    if name not in SIZES:
        raise ValueError(f"unknown backbone size {name!r}; known sizes: {', '.join(SIZES)}")
    size = SIZES[name]
    kwargs = {"dim": size.dim, "depth": size.depth, "num_heads": size.num_heads, **overrides}
    return Sapiens2(**kwargs)
