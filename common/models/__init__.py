"""The Sapiens2 backbone: model, size table and safetensors checkpoints."""

from common.models.checkpoint import CheckpointMismatchError, LoadResult, load_backbone, save_backbone
from common.models.sapiens2 import Sapiens2, visible_token_indices
from common.models.sizes import SIZES, BackboneSize, create_backbone

__all__ = [
    "SIZES",
    "BackboneSize",
    "CheckpointMismatchError",
    "LoadResult",
    "Sapiens2",
    "create_backbone",
    "load_backbone",
    "save_backbone",
    "visible_token_indices",
]
