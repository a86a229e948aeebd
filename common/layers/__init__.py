"""Building blocks of the Sapiens2 backbone, one per file."""

from common.layers.attention import Attention
from common.layers.block import Block
from common.layers.drop_path import DropPath
from common.layers.layer_scale import LayerScale
from common.layers.patch_embed import PatchEmbed
from common.layers.rms_norm import RMSNorm
from common.layers.rope import RopePositionEmbedding, apply_rope, patch_coords
from common.layers.swiglu import SwiGLUFFN

__all__ = [
    "Attention",
    "Block",
    "DropPath",
    "LayerScale",
    "PatchEmbed",
    "RMSNorm",
    "RopePositionEmbedding",
    "SwiGLUFFN",
    "apply_rope",
    "patch_coords",
]
