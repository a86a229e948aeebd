"""Stage 5: open_clip image embedding, L2-normalised, stored as float16."""

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from common.image_decode import DecodeConfig
from curation.models.registry import ClipConfig
from curation.stages.base import Stage, StageResources, StageResult
from curation.stages.detect import model_resources
from curation.stages.pixels import decode_batch

CLIP = "clip"


def clip_embed_dim(cfg: ClipConfig) -> int:
    """Embedding width from the config alone, so the candidate schema is known before any model loads."""
    if cfg.arch is not None:
        return cfg.arch.embed_dim
    import open_clip

    model_cfg = open_clip.get_model_config(cfg.model)
    if model_cfg is None:
        raise ValueError(f"open_clip has no model config {cfg.model!r} (models.clip.model)")
    return int(model_cfg["embed_dim"])


def clip_column(batch: pa.Table) -> np.ndarray:
    """[N, D] float32 embeddings of a batch's clip column."""
    column = batch[CLIP].combine_chunks()
    return column.values.to_numpy(zero_copy_only=False).astype(np.float32).reshape(len(column), -1)


@dataclass
class ClipStageConfig:
    resources: StageResources = field(default_factory=model_resources)


class ClipStage(Stage):
    name = "clip"
    needs_model = True

    def __init__(self, config: ClipStageConfig, model: ClipConfig, decode: DecodeConfig) -> None:
        super().__init__(config.resources)
        self.model_config, self.decode = model, decode
        self.fields = [pa.field(CLIP, pa.list_(pa.float16(), clip_embed_dim(model)))]
        self.encoder = None

    def setup(self) -> None:
        from curation.models.clip import load_clip

        self.encoder = load_clip(self.model_config)

    def process(self, batch: pa.Table) -> StageResult:
        embeddings = self.encoder.encode_images(decode_batch(batch, self.decode)).astype(np.float16)
        return StageResult(columns={CLIP: list(embeddings)})
