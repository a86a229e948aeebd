"""The Sapiens2 backbone: model, size table and safetensors checkpoints."""

from common.models.checkpoint import CheckpointMismatchError, LoadResult, load_backbone, save_backbone
from common.models.official import load_official_pretrained
from common.models.sapiens2 import Sapiens2, visible_token_indices
from common.models.sapiens2_4k import Sapiens2Hierarchical, create_backbone_4k
from common.models.sizes import SIZES, BackboneSize, create_backbone

__all__ = [
    "SIZES",
    "BackboneSize",
    "CheckpointMismatchError",
    "LoadResult",
    "Sapiens2",
    "Sapiens2Hierarchical",
    "create_backbone",
    "create_backbone_4k",
    "load_backbone",
    "load_official_pretrained",
    "save_backbone",
    "visible_token_indices",
]
